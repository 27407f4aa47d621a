"""bench/bench_gpu_check.py and bench/gpu_check.sh: the GPU check a session with the device
runs in one go (issue 12 point 5) runs end to end on CPU with the tiny config and writes
every figure it promises."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_gpu_check  # noqa: E402
from bench_common import peak_bf16_flops  # noqa: E402

PEAK = 2e12  # a made-up peak: MFU is then reported on CPU too


def positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("gpu_check")
    result = bench_gpu_check.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--config",
            str(tiny_config),
            "--out_dir",
            str(out),
            "--threads",
            "1",
            "--peak_flops",
            str(PEAK),
            "--compare_paths",
            "--path_steps",
            "3",
            "--path_modes",
            "usr2_ctc",
            "--compile_backend",
            "aot_eager",
        ]
    )
    return out, result


def test_default_and_optimised_paths_side_by_side_with_their_losses(cpu_run):
    out, result = cpu_run
    paths = json.loads((out / "gpu_check.json").read_text())["paths"]
    assert list(paths["modes"]) == ["usr2_ctc"]
    mode = paths["modes"]["usr2_ctc"]
    default, optimised = mode["default"], mode["optimised"]
    assert default["options"]["compile"] is None and optimised["options"]["compile"] == "aot_eager"
    assert optimised["options"]["channels_last"] and optimised["options"]["cudnn_benchmark"]
    assert len(default["losses"]) == len(optimised["losses"]) == 3
    assert all(positive_finite(x) for x in default["losses"] + optimised["losses"])
    # on the CPU the two paths compute the same arithmetic: equal losses
    assert mode["max_rel_loss_diff"] < 1e-5, (default["losses"], optimised["losses"])
    assert mode["speedup"] == pytest.approx(default["step_s"] / optimised["step_s"])
    assert default["mfu"] == pytest.approx(
        result["train"]["modes"]["usr2_ctc"]["flops_per_step"] / default["step_s"] / PEAK
    )
    text = (out / "gpu_check.md").read_text()
    assert "## Default vs optimised training path" in text and "| optimised |" in text


def test_json_has_every_section_with_positive_finite_figures(cpu_run):
    out, returned = cpu_run
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["train"]["modes"].keys() == {"usr2_ctc", "usr2_ar", "usr1"}
    assert result["train"]["precision"] == "fp32"  # bf16 autocast only on CUDA
    for mode in result["train"]["modes"].values():
        for key in ("step_s", "video_frames_per_s", "peak_memory_mb", "flops_per_step", "achieved_flops_per_s", "mfu"):
            assert positive_finite(mode[key]), (mode["name"], key, mode[key])
        assert mode["mfu"] == pytest.approx(mode["flops_per_step"] / mode["step_s"] / PEAK)
        assert "RSS" in mode["memory_kind"]
    pl = result["pl"]
    for key in ("teacher_encoder_s", "ctc_driven_s", "ar_greedy_s", "ar_over_ctc"):
        assert positive_finite(pl[key]), (key, pl[key])
    assert pl["ar_over_ctc"] == pytest.approx(pl["ar_greedy_s"] / pl["ctc_driven_s"])
    dec = result["decode"]
    for key in ("input_s", "fast_s", "espnet_s", "rtf_fast", "rtf_espnet", "espnet_over_fast"):
        assert positive_finite(dec[key]), (key, dec[key])
    assert dec["rtf_fast"] == pytest.approx(dec["fast_s"] / dec["input_s"])
    assert dec["identical_1best"] == dec["utterances"]  # the two searches find the same 1-best
    assert result["environment"]["torch"] == torch.__version__
    assert returned["decode"]["rtf_espnet"] == dec["rtf_espnet"]


def test_markdown_summary_has_the_three_tables(cpu_run):
    out, _ = cpu_run
    text = (out / "gpu_check.md").read_text()
    for name in (
        "USR 2.0 CTC-driven (p_AR 0)",
        "USR 2.0 AR mode (p_AR 1)",
        "USR v1",
        "AR / CTC-driven",
        "fast batched beam search",
        "ESPnet beam search",
    ):
        assert name in text


def test_mfu_is_not_reported_on_cpu_without_a_peak(tiny_config, tmp_path):
    args = bench_gpu_check.parse_args(
        ["--device", "cpu", "--quick", "--config", str(tiny_config), "--out_dir", str(tmp_path)]
    )
    assert args.peak_flops is None and args.beam == bench_gpu_check.QUICK["beam"]
    assert bench_gpu_check.parse_args(["--device", "cpu", "--out_dir", str(tmp_path)]).beam == 40
    assert peak_bf16_flops("NVIDIA H200") == 989e12 and peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_bf16_flops("Some CPU") is None


def test_bad_options_name_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_gpu_check.parse_args(["--device", "cpu", "--batch", "0", "--out_dir", str(tmp_path)])
    assert "--batch must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench_gpu_check.parse_args(["--device", "cuda", "--out_dir", str(tmp_path)])
        assert "torch sees no CUDA device" in capsys.readouterr().err


def test_gpu_check_sh_is_valid_bash():
    subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], check=True)


def test_profile_train_step_splits_the_step_and_ranks_operators(tiny_config, tmp_path):
    """bench/profile_train_step.py (why the GPU check's MFU is low) runs on CPU: each timed part of
    the step, their sum, and the operator tables."""
    import profile_train_step

    report = profile_train_step.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--config",
            str(tiny_config),
            "--out_dir",
            str(tmp_path),
            "--mode",
            "usr1",
            "--rows",
            "5",
        ]
    )
    assert (tmp_path / "profile.md").read_text() == report
    seconds = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] in profile_train_step.PARTS + ("whole step",):
            seconds[cells[0]] = float(cells[1])
    assert set(seconds) == set(profile_train_step.PARTS) | {"whole step"}
    assert all(seconds[p] > 0 for p in profile_train_step.PARTS)
    assert seconds["whole step"] == pytest.approx(sum(seconds[p] for p in profile_train_step.PARTS), abs=2e-4)
    assert "usr1" in report.splitlines()[0]
    assert "## Most device time" in report and "## Most host time" in report
    assert "aten::" in report  # the ranked operators are torch's


def test_channels_last_option_reaches_the_front_end_and_is_checked_against_the_default(tiny_config, tmp_path):
    """--channels_last: the layout section compares the video front-end with and without it on
    the same weights; on CPU the front-end ignores the option (PyTorch's CPU channels-last
    backward corrupted the heap here), so the two agree exactly."""
    result = bench_gpu_check.main(
        [
            "--device",
            "cpu",
            "--quick",
            "--config",
            str(tiny_config),
            "--out_dir",
            str(tmp_path),
            "--threads",
            "1",
            "--channels_last",
        ]
    )
    layout = result["layout"]
    assert layout["applied"] is False
    assert layout["max_abs_output_diff"] == 0.0 and layout["max_abs_stem_grad_diff"] == 0.0
    assert layout["max_abs_output"] > 0 and layout["max_abs_stem_grad"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "Channels-last video front-end" in text and "not applied on CPU" in text
