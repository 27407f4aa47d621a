"""Robustness analyses: length buckets, WER tables by length and SNR, plots and the CLI."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.bin import usr2_robustness_report
from espnet_usr2.scoring.sclite import ScoringInputError, score

# ------------------------------------------------------------------ buckets and frame counts


@pytest.mark.parametrize(
    "n,label",
    [
        (49, None),
        (50, "50-100"),
        (99, "50-100"),
        (100, "100-150"),
        (149, "100-150"),
        (550, "550-600"),
        (599, "550-600"),
        (600, "550-600"),
        (601, None),
        (0, None),
    ],
)
def test_bucket_edges(n, label):
    buckets = rb.make_buckets()
    assert len(buckets) == 11 and buckets[0].label == "50-100" and buckets[-1].label == "550-600"
    found = rb.bucket_of(n, buckets)
    assert (found.label if found else None) == label


def test_bucket_arguments_are_checked():
    with pytest.raises(ValueError):
        rb.make_buckets(50, 600, 70)
    assert [b.label for b in rb.make_buckets(0, 20, 10)] == ["0-10", "10-20"]


def test_frame_counts_from_utt2num_frames_shape_files_and_samples(tmp_path):
    (tmp_path / "utt2num_frames").write_text("a 75\nb 120\n")
    (tmp_path / "video_shape").write_text("a 75,96,96\nb 120,96,96,1\n")
    (tmp_path / "speech_shape").write_text("a 48000\nb 76800\n")
    expected = {"a": 75, "b": 120}
    assert rb.read_num_frames(tmp_path / "utt2num_frames") == expected
    assert rb.read_num_frames(tmp_path / "video_shape") == expected
    assert rb.read_num_frames(tmp_path / "speech_shape", samples_per_frame=640) == expected
    (tmp_path / "bad").write_text("a seventy\n")
    with pytest.raises(ScoringInputError, match="not a frame count"):
        rb.read_num_frames(tmp_path / "bad")


# ------------------------------------------------------------------ WER tables


def _ref_hyp_frames():
    ref = {"short": "A B C D", "mid1": "ONE TWO THREE", "mid2": "FOUR FIVE", "long": "W X Y Z", "tiny": "Q"}
    frames = {"short": 60, "mid1": 100, "mid2": 149, "long": 600, "tiny": 20}
    greedy = {"short": "A B C", "mid1": "ONE TWO THREE", "mid2": "FOUR FIVE SIX", "long": "W X Y Z", "tiny": "R"}
    beam = {"short": "A B C D", "mid1": "ONE 2 THREE", "mid2": "FOUR FIVE", "long": "", "tiny": "Q"}
    return ref, frames, {"video/greedy": greedy, "video/beam": beam}


def test_wer_by_length_matches_hand_counts():
    ref, frames, hyps = _ref_hyp_frames()
    table = rb.wer_by_length(ref, hyps, frames)
    b = {x.label: x for x in table.buckets}
    # greedy: 50-100 holds "short" (1 deletion / 4 words); 100-150 holds mid1 + mid2 (1 insertion / 5)
    assert table.wer("video/greedy", b["50-100"]) == pytest.approx(25.0)
    assert table.wer("video/greedy", b["100-150"]) == pytest.approx(20.0)
    assert table.wer("video/greedy", b["550-600"]) == pytest.approx(0.0)  # 600 belongs to the last bucket
    assert math.isnan(table.wer("video/greedy", b["300-350"]))  # no utterance there
    assert table.cells[("video/greedy", "100-150")].n_utts == 2
    # beam: 1 substitution / 5 words in 100-150, 4 deletions / 4 words at 600 frames
    assert table.wer("video/beam", b["100-150"]) == pytest.approx(20.0)
    assert table.wer("video/beam", b["550-600"]) == pytest.approx(100.0)
    assert table.n_outside == {"video/greedy": 1, "video/beam": 1}  # "tiny" (20 frames) is out of range
    assert table.total["video/greedy"].wer == pytest.approx(100 * 2 / 13)
    md = rb.length_markdown(table)
    assert "| 50-100 | 1 | 25.0 | 0.0 |" in md and "| 300-350 | 0 | - | - |" in md
    assert "Outside the buckets (not scored): video/greedy: 1, video/beam: 1 utterances." in md


def test_length_totals_agree_with_the_sclite_style_scorer(tmp_path):
    rng = random.Random(3)
    ref, hyp, frames = {}, {}, {}
    for k in range(40):
        words = [rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(1, 12))]
        ref[f"u{k:02d}"] = " ".join(words)
        hyp[f"u{k:02d}"] = " ".join(w if rng.random() < 0.8 else "oops" for w in words if rng.random() < 0.9)
        frames[f"u{k:02d}"] = rng.randint(50, 600)
    for name, content in (("text", ref), ("hyp", hyp)):
        (tmp_path / name).write_text("".join(f"{u} {t}\n" for u, t in content.items()))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {u}\n" for u in ref))
    summary = score(tmp_path / "text", tmp_path / "hyp", tmp_path / "utt2spk", tmp_path / "o", backend="python")
    table = rb.wer_by_length(ref, {"audio": hyp}, frames)
    assert f"{table.total['audio'].wer:.1f}" == summary["wer"].summary.fields[6]


def test_wer_by_snr_reports_all_samples_and_longer_than_100_frames():
    ref, frames, _ = _ref_hyp_frames()
    perfect = dict(ref)
    noisy = dict(ref, short="", mid2="FOUR")  # errors on a 60-frame and a 149-frame utterance
    hyps = {("audio", rb.CLEAN): perfect, ("audio", -5.0): noisy, ("audiovisual", -5.0): perfect}
    table = rb.wer_by_snr(ref, hyps, frames, min_frames=100)
    assert table.subsets == ["all samples", "longer than 100 frames"]
    assert table.snrs == [rb.CLEAN, -5.0]
    assert table.wer("all samples", "audio", -5.0) == pytest.approx(100 * 5 / 14)
    # longer than 100 (strictly): mid2 (149) and long (600) -> 1 deletion / 6 words; mid1 (100) is out
    assert table.wer("longer than 100 frames", "audio", -5.0) == pytest.approx(100 / 6)
    assert table.cells[("longer than 100 frames", "audio", -5.0)].n_utts == 2
    assert math.isnan(table.wer("all samples", "audiovisual", rb.CLEAN))  # not decoded
    md = rb.noise_markdown(table)
    assert "**longer than 100 frames** (2 utterances)" in md and "| -5 | 16.7 | 0.0 |" in md


def test_tables_refuse_incomplete_inputs():
    ref, frames, hyps = _ref_hyp_frames()
    with pytest.raises(ScoringInputError, match="no hypothesis: 'tiny'"):
        rb.wer_by_length(ref, {"x": {k: v for k, v in hyps["video/beam"].items() if k != "tiny"}}, frames)
    with pytest.raises(ScoringInputError, match="no frame count for 1 utterances: 'long'"):
        rb.wer_by_length(ref, hyps, {k: v for k, v in frames.items() if k != "long"})


# ------------------------------------------------------------------ plots and the CLI


def _png_is_a_real_plot(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 15_000
    img = mpimg.imread(str(path))
    assert img.shape[0] > 300 and img.shape[1] > 500
    rgb = img[..., :3].reshape(-1, 3)
    non_white = np.mean(np.any(rgb < 0.95, axis=1))
    assert 0.02 < non_white < 0.6  # axes, lines and text, not an empty or solid image
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 20  # several line colours, anti-aliasing


def test_cli_writes_tables_json_and_plots(tmp_path):
    rng = random.Random(0)
    ref, frames = {}, {}
    for k in range(120):
        uid = f"spk{k % 9}-utt{k:03d}"
        frames[uid] = rng.randint(50, 600)
        ref[uid] = " ".join(rng.choice(["we", "can", "see", "the", "lips", "move"]) for _ in range(frames[uid] // 12))
    conditions = {"audio/beam30": 0.05, "video/greedy": 0.35, "video/beam30": 0.25, "audiovisual/beam30": 0.04}
    snr_rates = {"clean": 0.0, "10": 0.02, "5": 0.05, "0": 0.12, "-5": 0.3}

    def corrupt(text: str, rate: float, length: int) -> str:
        rate = rate * (1.0 + 0.002 * max(length - 300, 0))  # longer inputs degrade a little
        return " ".join("x" if rng.random() < rate else w for w in text.split())

    args = [
        "--ref_text",
        str(tmp_path / "text"),
        "--num_frames",
        str(tmp_path / "utt2num_frames"),
        "--out_dir",
        str(tmp_path / "report"),
    ]
    for name, rate in conditions.items():
        path = tmp_path / f"{name.replace('/', '_')}.txt"
        path.write_text("".join(f"{u} {corrupt(t, rate, frames[u])}\n" for u, t in ref.items()))
        args += ["--length_hyp", f"{name}={path}"]
    for modality, base in (("audio", 0.05), ("audiovisual", 0.03)):
        for snr, extra in snr_rates.items():
            path = tmp_path / f"{modality}_{snr}.txt"
            path.write_text(
                "".join(
                    f"{u} {corrupt(t, base + extra * (0.3 if modality == 'audiovisual' else 1), 0)}\n"
                    for u, t in ref.items()
                )
            )
            args += ["--noise_hyp", f"{modality}@{snr}={path}"]
    (tmp_path / "text").write_text("".join(f"{u} {t}\n" for u, t in ref.items()))
    (tmp_path / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in frames.items()))
    usr2_robustness_report.main(args)

    out = tmp_path / "report"
    md = (out / "robustness.md").read_text()
    assert "## WER (%) by input length" in md and "| frames (25 fps) | #utts | audio/beam30 |" in md
    assert "**all samples** (120 utterances)" in md and "**longer than 100 frames**" in md
    assert "| SNR (dB) | audio | audiovisual |" in md and "| clean |" in md and "| -5 |" in md
    import json

    data = json.loads((out / "robustness.json").read_text())
    assert set(data["length"]) == set(conditions) and set(data["noise"]) == {"all samples", "longer than 100 frames"}
    _png_is_a_real_plot(out / "wer_vs_length.png")
    _png_is_a_real_plot(out / "wer_vs_snr.png")


def test_cli_rejects_malformed_specs(tmp_path, capsys):
    (tmp_path / "text").write_text("u1 A\n")
    with pytest.raises(SystemExit):
        usr2_robustness_report.main(
            [
                "--ref_text",
                str(tmp_path / "text"),
                "--out_dir",
                str(tmp_path),
                "--noise_hyp",
                f"audio={tmp_path / 'text'}",
            ]
        )
    assert "expected NAME@SNR=PATH" in capsys.readouterr().err
