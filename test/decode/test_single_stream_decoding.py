"""usr2_inference and usr2_score on a data directory mixing audio-visual, video-only (not in
wav.scp) and audio-only (not in video.scp) utterances: each is decoded in the modalities its
streams allow, with the same hypotheses as from the full audio-visual directory; jobs merge;
scoring is per modality over the utterances that have it; an all-AV set decodes as before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from espnet_usr2.bin import usr2_inference, usr2_score
from espnet_usr2.inference import splits
from espnet_usr2.scoring.results import collect_results, render_results_md

FILES = ("text", "token", "token_int", "score")


def _decode(setup, data: Path, out: Path, *extra: str) -> None:
    config, model_file = setup["random"]
    usr2_inference.main(
        [
            "--train_config",
            str(config),
            "--model_file",
            str(model_file),
            "--output_dir",
            str(out),
            "--data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound",
            "--data_path_and_name_and_type",
            f"{data}/video.scp,video,roi_video",
            "--log_level",
            "INFO",
            "--num_workers",
            "0",
            "--method",
            "greedy_att",
            "--modalities",
            "v",
            "a",
            "av",
            *extra,
        ]
    )


def _read(path: Path) -> dict:
    return {
        line.split(maxsplit=1)[0]: (line.split(maxsplit=1) + [""])[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
    }


@pytest.fixture(scope="module")
def mixed(decode_setup, tmp_path_factory):
    """The toy data dir with its first utterance video-only and its last audio-only."""
    root = tmp_path_factory.mktemp("mixed")
    keys = sorted(decode_setup["texts"])
    video_only, audio_only = keys[0], keys[-1]
    for name, drop in (("wav.scp", video_only), ("video.scp", audio_only)):
        lines = (decode_setup["data"] / name).read_text().splitlines()
        (root / name).write_text("".join(f"{x}\n" for x in lines if x.split()[0] != drop))
    for name in ("text", "utt2spk"):
        (root / name).write_text((decode_setup["data"] / name).read_text())
    return dict(data=root, keys=keys, video_only=video_only, audio_only=audio_only)


@pytest.fixture(scope="module")
def full_decode(decode_setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    _decode(decode_setup, decode_setup["data"], out / "plain")
    _decode(decode_setup, decode_setup["data"], out / "flag", "--allow_single_stream", "true")
    return out


def test_all_av_set_decodes_bit_identically_with_the_option(full_decode):
    plain = sorted(p.relative_to(full_decode / "plain") for p in (full_decode / "plain").rglob("*") if p.is_file())
    flag = sorted(p.relative_to(full_decode / "flag") for p in (full_decode / "flag").rglob("*") if p.is_file())
    assert plain == flag and len(plain) == 3 * 2 * len(FILES)
    for rel in plain:
        assert (full_decode / "plain" / rel).read_bytes() == (full_decode / "flag" / rel).read_bytes(), rel


def test_each_utterance_gets_the_modalities_it_has(decode_setup, mixed, full_decode, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        _decode(decode_setup, mixed["data"], tmp_path / "out", "--allow_single_stream", "true")
    keys, v_only, a_only = mixed["keys"], mixed["video_only"], mixed["audio_only"]
    expected = {
        "video": set(keys) - {a_only},
        "audio": set(keys) - {v_only},
        "audiovisual": set(keys) - {v_only, a_only},
    }
    for long, want in expected.items():
        for f in FILES:
            assert set(_read(tmp_path / "out" / long / f)) == want, (long, f)
        # batch size 1: a single-stream utterance's hypothesis is that of the full AV directory
        # (an audio-only one's audio is not cut to a video's length: scores agree to float precision)
        assert _read(tmp_path / "out" / long / "text") == {
            k: v for k, v in _read(full_decode / "plain" / long / "text").items() if k in want
        }
        full = _read(full_decode / "plain" / long / "score")
        got = _read(tmp_path / "out" / long / "score")
        assert {k: float(v) for k, v in got.items()} == pytest.approx({k: float(full[k]) for k in want}, rel=1e-5)
    n = len(keys)
    line = next(r.getMessage() for r in caplog.records if "decoded per modality" in r.getMessage())
    assert f"V {n - 1}, A {n - 1}, AV {n - 2}" in line, line
    assert f"{n - 2} audio-visual, 1 video-only, 1 audio-only" in line, line


def test_without_the_option_a_missing_stream_is_an_error(decode_setup, mixed, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _decode(decode_setup, mixed["data"], tmp_path / "out")
    err = capsys.readouterr().err
    assert mixed["audio_only"] in err and "--allow_single_stream true" in err  # keys: wav.scp's


def test_utterance_in_neither_stream_is_named(decode_setup, mixed, tmp_path, capsys):
    key_file = tmp_path / "keys"
    key_file.write_text(f"{mixed['keys'][1]}\nspk9-nowhere\n")
    with pytest.raises(SystemExit):
        _decode(
            decode_setup, mixed["data"], tmp_path / "out", "--allow_single_stream", "true", "--key_file", str(key_file)
        )
    assert "spk9-nowhere" in capsys.readouterr().err


def test_single_stream_jobs_merge_and_score_per_modality(decode_setup, mixed, tmp_path):
    """A job holding only the video-only utterance still writes every modality (empty files),
    so jobs merge; each modality is scored over the utterances with its streams."""
    keys = mixed["keys"]
    job_keys = [[keys[0]], keys[1:]]  # job 1: the video-only utterance alone
    jobs = []
    for n, ks in enumerate(job_keys, 1):
        (tmp_path / f"keys.{n}").write_text("".join(f"{k}\n" for k in ks))
        _decode(
            decode_setup,
            mixed["data"],
            tmp_path / f"output.{n}",
            "--allow_single_stream",
            "true",
            "--key_file",
            str(tmp_path / f"keys.{n}"),
        )
        jobs.append(tmp_path / f"output.{n}")
    assert (jobs[0] / "audio" / "text").read_text() == ""
    merged = tmp_path / "exp" / "m" / "decode_x" / "test"
    splits.merge_decode_dirs(jobs, merged)
    single = tmp_path / "single"
    _decode(decode_setup, mixed["data"], single, "--allow_single_stream", "true")
    for long in ("video", "audio", "audiovisual"):
        assert _read(merged / long / "text") == _read(single / long / "text")
    data = mixed["data"]
    lists = {"video": data / "video.scp", "audio": data / "wav.scp"}
    av = tmp_path / "av.list"
    av.write_text("".join(f"{k}\n" for k in keys[1:-1]))
    lists["audiovisual"] = av
    for long, utts in lists.items():
        usr2_score.main(
            [
                "--ref_text",
                str(data / "text"),
                "--hyp_text",
                str(merged / long / "text"),
                "--utt2spk",
                str(data / "utt2spk"),
                "--out_dir",
                str(merged / long),
                "--backend",
                "python",
                "--utt_list",
                str(utts),
            ]
        )
    # without the list the missing hypotheses are refused
    with pytest.raises(SystemExit):
        usr2_score.main(
            [
                "--ref_text",
                str(data / "text"),
                "--hyp_text",
                str(merged / "audio" / "text"),
                "--utt2spk",
                str(data / "utt2spk"),
                "--out_dir",
                str(tmp_path / "x"),
                "--backend",
                "python",
            ]
        )
    entries, problems = collect_results(tmp_path / "exp")
    assert not problems
    snt = {e.modality: e.summary.snt for e in entries}
    n = len(keys)
    assert snt == {"audio": n - 1, "video": n - 1, "audiovisual": n - 2}
    md = render_results_md(entries, env=["- date: `x`"])
    section = md.split("### Utterances scored per modality", 1)[1].split("###", 1)[0].strip().splitlines()
    assert section[2] == f"|decode_x/test|{n - 1}|{n - 1}|{n - 2}|", section


def test_utt_list_naming_an_unknown_utterance_is_an_error(decode_setup, mixed, tmp_path, capsys):
    bad = tmp_path / "list"
    bad.write_text("spk9-nowhere\n")
    data = mixed["data"]
    with pytest.raises(SystemExit):
        usr2_score.main(
            [
                "--ref_text",
                str(data / "text"),
                "--hyp_text",
                str(data / "text"),
                "--utt2spk",
                str(data / "utt2spk"),
                "--out_dir",
                str(tmp_path / "o"),
                "--backend",
                "python",
                "--utt_list",
                str(bad),
            ]
        )
    assert "spk9-nowhere" in capsys.readouterr().err
