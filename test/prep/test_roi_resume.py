"""Resumable ROI preparation: a job SIGKILLed mid-way and run again decodes only what it had
not finished and ends with the lists of an uninterrupted run; progress across jobs."""

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from espnet_usr2.bin.usr2_prepare_roi import main
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep import roi_lists as L
from espnet_usr2.prep.roi_journal import JOURNAL, Journal
from espnet_usr2.prep.roi_progress import JobProgress, format_progress, read_progress
from espnet_usr2.testing.roi_synth import make_clip

SLOW = str(Path(__file__).with_name("slow_prepare_roi.py"))
LISTS = ("video.scp", "wav.scp", "utt2num_frames", "text", "skipped.tsv", "damaged.tsv")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seven 1 s clips (one without a face) in two jobs, with transcripts."""
    root = tmp_path_factory.mktemp("resume")
    rows = []
    for k in range(7):
        no_face = range(25) if k == 3 else ()
        rows.append((f"utt{k}", make_clip(root / f"c{k}.mp4", seconds=1.0, size=128, seed=k, no_face=no_face).path))
    listing = root / "list"
    listing.write_text("".join(f"{u} {p}\n" for u, p in rows))
    text = root / "text"
    text.write_text("".join(f"{u} WORD {u.upper()}\n" for u, _ in rows))
    return listing, text


def _cli(counter, delay, listing, text, outdir, *extra, nj=2):
    return [
        sys.executable,
        SLOW,
        str(counter),
        str(delay),
        "--input",
        str(listing),
        "--text",
        str(text),
        "--outdir",
        str(outdir),
        "--nj",
        str(nj),
        *extra,
    ]


def _lines(path: Path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def _lists(outdir: Path) -> dict:
    """The merged lists with the output directory made relative (two runs write to two dirs)."""
    return {name: (outdir / name).read_text().replace(str(outdir), "OUT") for name in LISTS}


def _wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_killed_job_resumes_without_decoding_finished_utterances(corpus, tmp_path):
    listing, text = corpus
    # the reference: an uninterrupted run
    ref = tmp_path / "ref"
    for job in ("1", "2"):
        subprocess.run(_cli(tmp_path / "ref.count", 0, listing, text, ref, "--job", job), check=True)
    assert main(["--input", str(listing), "--outdir", str(ref), "--nj", "2", "--merge"]) == 0

    out, counter = tmp_path / "out", tmp_path / "count"
    journal = out / "split2" / "1" / JOURNAL
    job1 = subprocess.Popen(_cli(counter, 0.5, listing, text, out, "--job", "1"))
    # SIGKILL once two utterances are in the journal (the third is then being decoded)
    _wait_for(lambda: len(_lines(journal)) >= 3)  # header + 2 results
    job1.send_signal(signal.SIGKILL)
    job1.wait()
    finished_before = {line.split('"uttid": "')[1].split('"')[0] for line in _lines(journal)[1:]}
    assert len(finished_before) >= 2 and not (out / "split2" / "1" / L.DONE_MARKER).exists()
    with open(journal, "a") as fh:  # a torn last line, as a crash inside write() leaves
        fh.write('{"key": {"path": "')
    # the half-done state never leaks into merged lists: the job's entries are shard_missing
    assert main(["--input", str(listing), "--outdir", str(out), "--nj", "2", "--merge"]) == 0
    assert {s.reason for s in L.read_skip_report(out / "skipped.tsv") if s.uttid <= "utt2"} == {E.SHARD_MISSING}

    # rerun both jobs (job 2 had not run) with the progress watcher, as usr2.sh stage 2 does
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "espnet_usr2.bin.usr2_prepare_roi",
            "--input",
            str(listing),
            "--outdir",
            str(out),
            "--nj",
            "2",
            "--progress",
            "--progress_interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for job in ("1", "2"):
        subprocess.run(_cli(counter, 0.1, listing, text, out, "--job", job), check=True)
    lines = watcher.communicate(timeout=60)[0].splitlines()
    assert main(["--input", str(listing), "--outdir", str(out), "--nj", "2", "--merge"]) == 0

    assert _lists(out) == _lists(ref)
    counts = Counter(_lines(counter))
    assert set(counts) == {f"utt{k}" for k in range(7)}
    assert all(counts[u] == 1 for u in finished_before)  # finished: never decoded again
    assert sum(counts.values()) <= 7 + 1  # at most the one in flight at the kill twice
    skipped = {s.uttid: s.reason for s in L.read_skip_report(out / "skipped.tsv")}
    assert skipped == {"utt3": E.NO_FACE}
    assert lines[-1].startswith(f"{out}: 7/7 utterances done (1 skipped, {len(finished_before)} from an earlier run)")
    assert lines[-1].endswith("finished") and "frames/s" in lines[-1]

    # a third run of a finished job decodes nothing and changes nothing
    subprocess.run(_cli(counter, 0, listing, text, out, "--job", "1"), check=True)
    assert sum(Counter(_lines(counter)).values()) == sum(counts.values())
    progress = read_progress(out / "split2" / "1")
    assert progress.finished and progress.resumed == progress.total == progress.done and progress.frames == 0

    # a rerun with another --nj takes the results over from the other split's journals
    for job in ("1", "2", "3"):
        subprocess.run(_cli(counter, 0, listing, text, out, "--job", job, nj=3), check=True)
    assert main(["--input", str(listing), "--outdir", str(out), "--nj", "3", "--merge"]) == 0
    assert sum(Counter(_lines(counter)).values()) == sum(counts.values())
    assert _lists(out) == _lists(ref)


def test_journal_results_count_only_under_the_same_settings_and_inputs(tmp_path):
    roi, wav = tmp_path / "a.mkv", tmp_path / "a.wav"
    roi.write_bytes(b"x")
    wav.write_bytes(b"x")
    done = L.Processed("a", str(roi), str(wav), 25, "HI", damage=(L.DamageRow("audio", 1, 0.023),))
    crashed = L.Skipped("b", "/b.mp4", E.INTERNAL_ERROR, "boom")
    bad = L.Skipped("c", "/c.mp4", E.NO_FACE, "none")
    with Journal(tmp_path, {"crop_size": 96}) as journal:
        for result in (done, crashed, bad):
            journal.add({"path": result.uttid}, result)
    with Journal(tmp_path, {"crop_size": 96}) as journal:
        assert journal.lookup("a", {"path": "a"}) == done  # read back field for field
        assert journal.lookup("a", {"path": "other.mp4"}) is None  # input changed: decode again
        assert journal.lookup("b", {"path": "b"}) is None  # a crash is retried
        assert journal.lookup("c", {"path": "c"}) == bad  # a bad input is not decoded again
        wav.unlink()
        assert journal.lookup("a", {"path": "a"}) is None  # its files are gone: decode again
    with Journal(tmp_path, {"crop_size": 88}) as journal:  # other settings: start afresh
        assert journal.results == {}


def test_progress_line_sums_the_jobs():
    jobs = [
        JobProgress(50, done=30, skipped=2, resumed=10, frames=2000, elapsed=10.0),
        JobProgress(50, done=50, skipped=1, frames=5000, elapsed=20.0, finished=True),
        None,
    ]
    line = format_progress("dump/extract/train", 150, jobs)
    # running jobs' rates add up: job 1 decoded 20 utterances in 10 s -> 70 left at 2/s
    assert line == (
        "dump/extract/train: 80/150 utterances done (3 skipped, 10 from an earlier run), "
        "1 of 3 jobs running, 200.0 frames/s, about 0:00:35 left"
    )
    assert format_progress("x", 10, [None]).endswith("0 of 1 jobs running, 0.0 frames/s, time left unknown yet")


TEMPLATE = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2"


def _recipe(tmp_path, listing, text):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    for name in ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh"):
        (recipe / name).symlink_to(TEMPLATE / name)
    data = recipe / "data" / "tr"
    data.mkdir(parents=True)
    data.joinpath("video_src.scp").write_text("".join(listing.read_text().splitlines(keepends=True)[:3]))
    data.joinpath("text").write_text(text.read_text())
    return recipe


STAGE2 = [
    "./usr2.sh",
    "--stage",
    "2",
    "--stop_stage",
    "2",
    "--labelled_sets",
    "tr",
    "--nj",
    "2",
    "--python",
    sys.executable,
]


def test_usr2_stage2_shows_progress_on_the_console_and_a_rerun_resumes(corpus, tmp_path):
    recipe, stage2 = _recipe(tmp_path, *corpus), STAGE2
    first = subprocess.run(stage2, cwd=recipe, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    out = recipe / "dump" / "extract" / "tr"
    assert f"{out.relative_to(recipe)}: 0/3 utterances done" in first.stdout  # the watcher's first line
    assert "tr: 3 extracted, 0 skipped" in first.stdout
    lists = _lists(out)
    again = subprocess.run(stage2, cwd=recipe, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _lists(out) == lists
    logs = " ".join(p.read_text() for p in (out / "log").glob("roi.*.log"))
    assert "1 of 1 utterances done by an earlier run" in logs and "2 of 2 utterances done by an earlier run" in logs


def test_usr2_stage2_failing_jobs_end_the_watcher_and_name_their_logs(corpus, tmp_path):
    recipe = _recipe(tmp_path, *corpus)
    start = time.monotonic()
    p = subprocess.run(
        STAGE2 + ["--roi_opts", "--no_face keep"], cwd=recipe, capture_output=True, text=True, timeout=60
    )
    assert p.returncode != 0
    assert "ROI extraction of tr failed: see dump/extract/tr/log/roi.*.log" in p.stderr
    assert time.monotonic() - start < 9  # the watcher (10 s lines) was stopped, not waited for


def test_usr2_stage2_counts_single_stream_utterances(corpus, tmp_path):
    import soundfile

    from espnet_usr2.testing.roi_synth import tone

    recipe = _recipe(tmp_path, *corpus)
    speech = tmp_path / "speech.flac"
    soundfile.write(str(speech), tone(1.0, 16000, 1)[0], 16000)
    scp = recipe / "data" / "tr" / "video_src.scp"
    scp.write_text(scp.read_text().splitlines(keepends=True)[0] + f"utt9 {speech}\n")
    (recipe / "data" / "tr" / "text").write_text("utt0 A\nutt9 B\n")
    p = subprocess.run(
        STAGE2 + ["--roi_opts", "--allow_single_stream true"], cwd=recipe, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert "tr: 2 extracted, 0 skipped" in p.stdout
    assert "of which 1 audio-only (dump/extract/tr/audio_only.list)" in p.stdout
