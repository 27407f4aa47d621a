"""The comparison report (issue 12): a fake comparison dir of 2 methods x 2 seeds with real
ESPnet Reporter state in checkpoint.pth, hand-written hypotheses, hand-computed figures."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
from pathlib import Path
from typing import Dict, Sequence

import pytest
import torch
from espnet2.train.reporter import Reporter

from espnet_usr2.analysis.compare_collect import compare
from espnet_usr2.analysis.compare_runs import ComparisonInputError, read_manifest
from espnet_usr2.analysis.compare_stats import paired_bootstrap
from espnet_usr2.analysis.time_to_accuracy import time_to_reach, tta_markdown
from espnet_usr2.bin import usr2_compare_report

REPO = Path(__file__).resolve().parents[2]
TEST_REF = {"t1": "a b c d", "t2": "e f g h", "t3": "i j k l"}  # 12 words
LONG_REF = {
    "l1": "the cat sat on the mat",
    "l2": "one two three four five six",
    "l3": "red green blue black",
    "l4": "up down left right",
}  # 20 words
LONG_FRAMES = {"l1": 420, "l2": 380, "l3": 260, "l4": 230}
TEST_FRAMES = {"t1": 60, "t2": 75, "t3": 130}
# errors per (method, seed) on the test set, per modality: V, A, AV
TEST_ERRORS = {("usr2", "1"): (4, 2, 1), ("usr2", "2"): (6, 2, 3), ("usr1", "1"): (5, 3, 2), ("usr1", "2"): (7, 5, 4)}
# validation acc_av per epoch (60 s per usr2 epoch, 100 s per usr1 epoch), warm-up ends at 0.3
ACC = {
    ("usr2", "1"): [0.5, 0.7, 0.9],
    ("usr2", "2"): [0.5, 0.7, 0.9],
    ("usr1", "1"): [0.4, 0.6, 0.8],
    ("usr1", "2"): [0.4, 0.6, 0.85],
}
EPOCH_SECONDS = {"usr2": 60.0, "usr1": 100.0}


def save_checkpoint(
    exp: Path, epoch_seconds: Sequence[float], valid: Sequence[Dict[str, float]], train: Sequence[Dict[str, float]]
) -> None:
    """checkpoint.pth as ESPnet's Trainer saves it, the reporter filled through its own API;
    only each epoch's measured train time is replaced by the wanted one."""
    reporter = Reporter()
    for epoch, (secs, v, t) in enumerate(zip(epoch_seconds, valid, train), 1):
        reporter.set_epoch(epoch)
        for key, stats in (("train", t), ("valid", v)):
            with reporter.observe(key) as sub:
                sub.register(stats)
                sub.next()
        reporter.stats[epoch]["train"]["time"] = datetime.timedelta(seconds=secs)
    exp.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model": {}, "reporter": reporter.state_dict(), "optimizers": [], "schedulers": [], "scaler": None},
        exp / "checkpoint.pth",
    )


def with_errors(ref: Dict[str, str], n_errors: int) -> Dict[str, str]:
    """The reference with its first ``n_errors`` words (in utterance order) substituted."""
    out, left = {}, n_errors
    for uid, text in ref.items():
        words = text.split()
        for i in range(min(left, len(words))):
            words[i] = "zzz"
        left -= min(left, len(words))
        out[uid] = " ".join(words)
    return out


def write_text(path: Path, entries: Dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {t}\n" for u, t in entries.items()), encoding="utf-8")


def write_decodes(exp: Path, errors: Sequence[int], long_hyp: Dict[str, str]) -> None:
    for tag in ("greedy", "beam"):
        for mod, n in zip(("video", "audio", "audiovisual"), errors):
            write_text(exp / tag / "test" / mod / "text", with_errors(TEST_REF, n))
            write_text(exp / tag / "test_long" / mod / "text", long_hyp)


def long_hyp(method: str, seed: str) -> Dict[str, str]:
    """usr1 loops on l1 and stops early on l2 (seed 1 only); usr2 has one substitution per seed."""
    if method == "usr1":
        return {**LONG_REF, "l1": "the cat the cat the cat the cat", "l2": "one two" if seed == "1" else LONG_REF["l2"]}
    return with_errors(LONG_REF, int(seed))


@pytest.fixture()
def cmp_dir(tmp_path: Path) -> Path:
    root = tmp_path / "exp_cmp"
    for s, ref, frames in (("test", TEST_REF, TEST_FRAMES), ("test_long", LONG_REF, LONG_FRAMES)):
        write_text(tmp_path / "dump" / s / "text", ref)
        write_text(tmp_path / "dump" / s / "utt2num_frames", {u: str(n) for u, n in frames.items()})
    save_checkpoint(root / "warmup", [30.0], [{"acc_av": 0.3, "cer_ctc_av": 0.6}], [{"loss": 1.0}])
    write_decodes(root / "warmup", (8, 4, 3), LONG_REF)
    rows = ["method\tseed\texp_dir"]
    for (m, seed), errors in TEST_ERRORS.items():
        exp = root / f"{m}_seed{seed}"
        acc = ACC[(m, seed)]
        train = [
            {
                "loss": 1.0,
                "pl_att_len": 5.0,
                **({"pl_ctc_keep": k, "pl_ctc_keep_emitting": k / 2} if m == "usr2" else {"pl_frame_keep": 0.25}),
            }
            for k in (0.5, 0.7, 0.9)
        ]
        save_checkpoint(exp, [EPOCH_SECONDS[m]] * 3, [{"acc_av": a, "cer_ctc_av": 1 - a} for a in acc], train)
        write_decodes(exp, errors, long_hyp(m, seed))
        if m == "usr2":  # only usr2 has the noise sweep
            for label, n in (("snr10", 2), ("snr5", 4), ("snr0", 6), ("snrm5", 8 + int(seed))):
                for mod in ("audio", "audiovisual"):
                    write_text(exp / "noise" / "decode" / label / mod / "text", with_errors(TEST_REF, n))
        rows.append(f"{m}\t{seed}\t{exp.name}")
    (root / "runs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def run_report(cmp_dir: Path, *extra: str) -> Path:
    out = cmp_dir / "compare"
    usr2_compare_report.main(
        [
            "--manifest",
            str(cmp_dir / "runs.tsv"),
            "--ref_dir",
            str(cmp_dir.parent / "dump"),
            "--warmup_dir",
            str(cmp_dir / "warmup"),
            "--out_dir",
            str(out),
            "--n_draws",
            "200",
            *extra,
        ]
    )
    return out


def test_report_figures_match_hand_computation(cmp_dir):
    out = run_report(cmp_dir)
    summary = json.loads((out / "summary.json").read_text())
    md = (out / "results.md").read_text()
    # AV errors 1 and 3 of 12 words -> 8.33 and 25.0 %
    av = summary["wer"]["test"]["greedy"]["usr2"]["av"]
    assert av["mean"] == pytest.approx(100 / 12 * 2, abs=1e-4)
    assert av["std"] == pytest.approx(100 / 12 * math.sqrt(2), abs=1e-4)  # sample std of (1, 3) errors
    assert av["n"] == 2
    assert "| usr2 | 2 | 41.7 ± 11.8 | 16.7 ± 0.0 | 16.7 ± 11.8 |" in md
    assert "| warm-up | 1 | 66.7 | 33.3 | 25.0 |" in md
    # noise: usr2 only; usr1 has none and the report says so
    snrm5 = summary["noise"]["usr2"]["a"]["-5"]
    assert snrm5["mean"] == pytest.approx(100 / 12 * 9.5, abs=1e-4)
    assert "usr1" not in summary["noise"]
    assert any("no babble-noise decoding" in n and "usr1/seed1" in n for n in summary["notes"])
    assert "no babble-noise decoding" in md
    # failures on the long set: usr1 loops on l1 in both seeds, omits l2 in seed 1
    f = summary["failures"]["greedy"]["usr1"]["av"]
    assert (f["repetition"]["mean"], f["omission"]["mean"]) == (1.0, 0.5)
    assert summary["failures"]["greedy"]["usr2"]["av"]["repetition"]["mean"] == 0.0
    # time to accuracy: default target 0.8 = usr1 seed 1's best; usr2 at 150 s, usr1 at 300 s / 280 s
    tta = summary["time_to_accuracy"]
    assert tta["target"] == pytest.approx(0.8) and tta["target_is_default"]
    assert tta["seconds"]["usr2"]["1"] == pytest.approx(150.0)
    assert tta["seconds"]["usr1"]["2"] == pytest.approx(280.0)
    assert tta["ratio"]["mean"] == pytest.approx((0.5 + 150 / 280) / 2, abs=1e-6)
    assert summary["pl_keep"]["usr2"]["pl_ctc_keep"]["mean"] == pytest.approx(0.7)
    assert summary["pl_keep"]["usr2"]["pl_ctc_keep_emitting"]["mean"] == pytest.approx(0.35)
    assert set(summary["pl_keep"]["usr1"]) == {"pl_frame_keep"}  # pl_att_len is not a keep fraction
    assert summary["sets"]["test_long"] == {"utterances": 4, "words": 20}
    boot = summary["bootstrap"]["usr2 - usr1"]["1"]  # AV greedy, long set: 0 vs 8 errors of 20 words
    assert boot["diff"] == pytest.approx(-40.0) and boot["std"] > 0 and boot["n_words"] == 20
    assert any("usr2 vs sup" in n for n in summary["notes"])  # no 'sup' runs here
    # length buckets: test+test_long combined, every utterance inside 50-600
    assert summary["length_outside"] == 0
    assert summary["length"]["greedy"]["av"]["usr2"]["50-100"]["mean"] == pytest.approx(100 / 8 * 2, abs=1e-4)
    for png in ("valid_vs_time.png", "wer_vs_length.png", "wer_vs_snr.png"):
        assert (out / png).stat().st_size > 1000


def _numbers_at_target(cmp_dir, target: str):
    """The report's numbers only (no plots, noise or bootstrap) with time-to-accuracy target ``target``."""
    args = usr2_compare_report.get_parser().parse_args(
        [
            "--manifest",
            str(cmp_dir / "runs.tsv"),
            "--ref_dir",
            str(cmp_dir.parent / "dump"),
            "--warmup_dir",
            str(cmp_dir / "warmup"),
            "--out_dir",
            str(cmp_dir / "unused"),
            "--target_acc",
            target,
            "--snrs",
            "--bootstrap_pairs",
        ]
    )
    return compare(usr2_compare_report.config_from_args(args))


def test_run_that_never_reaches_the_target_is_reported(cmp_dir):
    comp = _numbers_at_target(cmp_dir, "0.88")
    assert comp.tta.seconds["usr2"]["1"] == pytest.approx(120 + 0.9 * 60)
    assert comp.tta.seconds["usr1"] == {"1": None, "2": None}  # kept, not dropped
    assert comp.tta.ratios() == {} and not comp.noise and not comp.bootstrap
    assert "| 1 | 2.90 | not reached | - |" in tta_markdown(comp.tta)
    assert not comp.tta.reached_at_start and "already meets" not in tta_markdown(comp.tta)


def test_a_target_the_warm_up_already_meets_is_flagged_not_timed(cmp_dir):
    """The continuations of a warm-up that already meets the target all 'reach' it at time 0:
    the report says the metric cannot time them instead of printing 0-minute crossings."""
    tta = _numbers_at_target(cmp_dir, "0.25").tta  # the warm-up's acc_av is 0.3
    assert tta.start_value == pytest.approx(0.3) and tta.reached_at_start
    assert tta.ratios() == {} and tta.as_dict()["reached_at_start"] is True
    assert "The warm-up's own value (0.3000) already meets the target" in tta_markdown(tta)


def test_missing_decode_text_names_the_path(cmp_dir, capsys):
    missing = cmp_dir / "usr1_seed2" / "beam" / "test" / "video" / "text"
    missing.unlink()
    with pytest.raises(SystemExit):
        run_report(cmp_dir)
    err = capsys.readouterr().err
    assert str(missing) in err and "usr1/seed2" in err


def test_time_to_reach_interpolates_between_epochs():
    times, values = [60.0, 120.0, 180.0], [0.5, 0.7, 0.9]
    assert time_to_reach(times, values, 0.8, start=(0.0, 0.3)) == pytest.approx(150.0)
    assert time_to_reach(times, values, 0.4, start=(0.0, 0.3)) == pytest.approx(60 * 0.5)
    assert time_to_reach(times, values, 0.2, start=(0.0, 0.3)) == 0.0
    assert time_to_reach(times, values, 0.95) is None
    assert time_to_reach(times, [0.5, math.nan, 0.9], 0.7) == pytest.approx(120.0)  # NaN epoch skipped


def test_paired_bootstrap_spread():
    ref = {f"u{i}": "a b c d" for i in range(20)}
    hyp_a = {u: ("a b c x" if i % 3 else "a b c d") for i, u in enumerate(ref)}
    same = paired_bootstrap(ref, hyp_a, dict(hyp_a), n_draws=300)
    assert (same.diff, same.std, same.n_utts, same.n_words) == (0.0, 0.0, 20, 80)
    other = paired_bootstrap(ref, hyp_a, ref, n_draws=300)
    assert other.diff == pytest.approx(100 * 13 / 80) and other.std > 0
    assert paired_bootstrap(ref, hyp_a, ref, n_draws=300).std == other.std  # fixed seed


def test_manifest_errors(tmp_path):
    bad = tmp_path / "runs.tsv"
    bad.write_text("method\tseed\n", encoding="utf-8")
    with pytest.raises(ComparisonInputError, match="first line"):
        read_manifest(bad)
    bad.write_text("method\tseed\texp_dir\nusr2\t1\tnowhere\n", encoding="utf-8")
    with pytest.raises(ComparisonInputError, match="nowhere"):
        read_manifest(bad)


def test_bench_time_to_accuracy(cmp_dir, capsys):
    spec = importlib.util.spec_from_file_location("bench_tta", REPO / "bench" / "bench_time_to_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tta = bench.main(["--manifest", str(cmp_dir / "runs.tsv"), "--warmup_dir", str(cmp_dir / "warmup")])
    assert tta.ratios() == pytest.approx({"1": 0.5, "2": 150 / 280})
    printed = capsys.readouterr().out
    assert "| 1 | 2.50 | 5.00 | 0.50 |" in printed and "usr2 / usr1" in printed


def test_cost_per_training_step_is_the_median_step_time_of_each_arm(cmp_dir):
    """train_time per epoch (the reporter's mean seconds per optimiser step): the median over
    epochs leaves out a slow first epoch; mean over seeds; warm-up and --step_cost_dirs rows."""
    for (m, seed), factor in ((("usr2", "1"), 1.0), (("usr2", "2"), 1.2), (("usr1", "1"), 2.0), (("usr1", "2"), 2.0)):
        exp = cmp_dir / f"{m}_seed{seed}"
        save_checkpoint(
            exp,
            [EPOCH_SECONDS[m]] * 3,
            [{"acc_av": a} for a in ACC[(m, seed)]],
            [{"loss": 1.0, "train_time": t * factor} for t in (9.0, 0.5, 0.5)],
        )
    save_checkpoint(cmp_dir / "pretrain", [10.0, 10.0], [{"loss": 1.0}] * 2, [{"train_time": 0.25}] * 2)
    out = run_report(cmp_dir, "--step_cost_dirs", f"pt={cmp_dir / 'pretrain'}")
    steps = json.loads((out / "summary.json").read_text())["step_seconds"]
    assert steps["usr2"]["mean"] == pytest.approx(0.55) and steps["usr2"]["n"] == 2
    assert steps["usr1"]["mean"] == pytest.approx(1.0)
    assert steps["pt"]["mean"] == pytest.approx(0.25)
    assert steps["warm-up"]["n"] == 0  # its reporter has no train_time: shown as "-"
    md = (out / "results.md").read_text()
    assert "| usr1 | 2 | 1.000 ± 0.000 | 1.82 |" in md and "| pt | 1 | 0.250 | 0.45 |" in md


def test_step_cost_dirs_needs_name_and_dir(cmp_dir, capsys):
    with pytest.raises(SystemExit):
        run_report(cmp_dir, "--step_cost_dirs", "no_equals_sign")
    assert "expected NAME=EXP_DIR" in capsys.readouterr().err


def _pl_table(wer: Dict[str, float], loops: int = 0) -> dict:
    """One teacher setting of usr2_pl_quality's results.json: two length buckets and "all"."""
    rows = {k: {"utterances": 4, "wer": w, "loops": loops, "omissions": 0, "kept": 0.5} for k, w in wer.items()}
    return {"bn=batch view=clean ar_limit=utterance": {"0-49": rows, "200-249": rows, "all": rows}}


def test_the_teachers_pseudo_labels_against_the_truth(cmp_dir):
    """The warm-up (where every teacher starts) and each semi-supervised run's EMA teacher at its
    end, as run_compare.sh scores them into <run>/pl_quality/<set>/results.json."""
    tables = {
        "warmup": _pl_table({"ctc": 40.0, "att_tf": 35.0, "ar": 60.0}, loops=2),
        "usr2_seed1": _pl_table({"ctc": 20.0, "att_tf": 18.0, "ar": 30.0}),
        "usr2_seed2": _pl_table({"ctc": 30.0, "att_tf": 22.0, "ar": 50.0}),
    }
    for run, table in tables.items():
        path = cmp_dir / run / "pl_quality" / "pretrain" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(table))
    out = run_report(cmp_dir)
    pl = json.loads((out / "summary.json").read_text())["pl_quality"]["pretrain"]
    assert pl["usr2"]["att_tf"]["all"]["wer"]["mean"] == pytest.approx(20.0)
    assert pl["usr2"]["ar"]["200-249"]["wer"]["std"] == pytest.approx(math.sqrt(200))
    assert pl["warm-up"]["ar"]["all"]["loops"]["mean"] == 2 and "usr1" not in pl  # usr1 runs scored nothing
    md = (out / "results.md").read_text()
    assert "### pretrain (4 clips)" in md
    assert "| warm-up | 40.0 | 35.0 | 60.0 | 2.0 | 2.0 | 2.0 |" in md
    assert "| usr2 | 25.0 ± 7.1 | 20.0 ± 2.8 | 40.0 ± 14.1 |" in md
    assert "| pretrain | 200-249 | 40.0 | 25.0 ± 7.1 |" in md
    assert (out / "pl_wer_vs_length.png").stat().st_size > 1000
    # two teacher settings in one file: the report does not guess which one to compare
    (cmp_dir / "warmup" / "pl_quality" / "pretrain" / "results.json").write_text(
        json.dumps({**tables["warmup"], "bn=running view=clean ar_limit=utterance": {}})
    )
    with pytest.raises(SystemExit):
        run_report(cmp_dir)


def test_steps_to_accuracy_and_the_gpu_product(cmp_dir):
    """The same crossing in optimiser steps (ESPnet's total_count: one step an epoch here), and
    the steps ratio times the GPU per-step cost ratio, labelled as the product it is."""
    out = run_report(cmp_dir, "--gpu_step_seconds", "usr2=0.6", "usr1=0.8", "--gpu_step_source", "an H200 run")
    tta = json.loads((out / "summary.json").read_text())["time_to_accuracy"]
    # target 0.8 from 0.3 at step 0: usr2 (0.5, 0.7, 0.9) at 2.5 steps; usr1 seed 1 (.., 0.8) at 3,
    # seed 2 (.., 0.85) at 2.8
    assert tta["steps"] == {"usr2": {"1": 2.5, "2": 2.5}, "usr1": {"1": 3.0, "2": pytest.approx(2.8)}}
    steps_ratio = (2.5 / 3.0 + 2.5 / 2.8) / 2
    assert tta["steps_ratio"]["mean"] == pytest.approx(steps_ratio)
    assert tta["gpu_product_ratio"]["mean"] == pytest.approx(steps_ratio * 0.75)
    md = (out / "results.md").read_text()
    assert "| 2 | 2.5 | 2.8 | 0.89 |" in md
    assert "0.600 / usr1 0.800 = 0.750 (an H200 run): **0.65 ± 0.03**" in md
    bare = (run_report(cmp_dir) / "results.md").read_text()
    assert "no GPU product" in bare
    with pytest.raises(SystemExit):
        usr2_compare_report.get_parser().parse_args(["--gpu_step_seconds", "usr2=fast"])
