#!/usr/bin/env python3
"""Where a training step's time goes: torch.profiler over the GPU check's USR 2.0 step.

    python bench/profile_train_step.py --device cuda --batch 16 --out_dir exp/profile   # on the GPU
    python bench/profile_train_step.py --device cpu --quick \
        --config egs2/TEMPLATE/usr2/conf/train_usr2_tiny.yaml --out_dir /tmp/profile     # seconds

The GPU check (``bench_gpu_check.py``) measures a low model FLOPs utilisation; this script says
why. Same model, batch and step as that check (forward + backward + AdamW + EMA teacher update,
bf16 autocast on CUDA, CTC-driven mode unless ``--mode``), ``--steps`` profiled steps after
two warm-up steps. It prints and writes (``<out_dir>/profile.md``):

- the wall time of a step, split into the parts timed on their own (forward, backward,
  optimiser, EMA update), each with the device synchronised around it;
- the device's busy time (sum of kernel times) against the step's wall time: a ratio far below 1
  means the step waits on the host (kernel launches, Python) rather than on the GPU;
- the operators with the most device time and the most host time (``key_averages``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gpu_check import FULL, autocast, build_model, cuda_synchronize, prepare_training, semi_batch, timed  # noqa: E402

PARTS = ("forward", "backward", "optimizer", "ema_update")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--config", default=str(Path(__file__).resolve().parents[1] / "egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml")
    )
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--out_dir", required=True)
    p.add_argument("--mode", default="usr2_ctc", choices=("usr2_ctc", "usr2_ar", "usr1"))
    p.add_argument("--batch", type=int, default=FULL["batch"])
    p.add_argument("--frames", type=int, default=FULL["frames"])
    p.add_argument("--vocab", type=int, default=FULL["vocab"])
    p.add_argument("--steps", type=int, default=3, help="profiled steps (and timed steps per part)")
    p.add_argument("--rows", type=int, default=25, help="operators listed per table")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run)")
    p.add_argument("--channels_last", action="store_true", help="channels-last video front-end (on CUDA)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.frames, args.vocab, args.steps = 1, 25, 50, 1
    args.peak_flops, args.lr = None, 1e-4
    return args


def timed_parts(model, optimizer, batch, device: torch.device) -> Dict[str, float]:
    """One step with the device synchronised between its parts: seconds per part."""

    def forward():
        with autocast(device):
            return model(**batch)[0]

    seconds = {}
    loss, seconds["forward"] = timed(forward, device)
    for name, fn in (("backward", loss.backward), ("optimizer", optimizer.step), ("ema_update", model.update_teacher)):
        _, seconds[name] = timed(fn, device)
    model.zero_grad(set_to_none=True)
    return seconds


def operator_table(events, key: str, rows: int) -> List[str]:
    """Markdown rows of the ``rows`` operators with the largest ``key`` (self time, microseconds)."""
    ranked = sorted(events, key=lambda e: getattr(e, key, 0.0), reverse=True)[:rows]
    lines = ["| operator | calls | self device ms | self host ms |", "|---|---|---|---|"]
    for e in ranked:
        lines.append(
            f"| {e.key[:60]} | {e.count} | {getattr(e, 'self_device_time_total', 0.0) / 1e3:.1f} "
            f"| {e.self_cpu_time_total / 1e3:.1f} |"
        )
    return lines


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    device = torch.device(args.device)
    model, objectives = build_model(args, device)
    model.unlabelled_objective = objectives[args.mode]
    batch = semi_batch(args, device)
    optimizer = prepare_training(args, device, model, batch)  # as the GPU check
    for _ in range(2):  # kernels, allocator, optimiser state
        timed_parts(model, optimizer, batch, device)
    parts = [timed_parts(model, optimizer, batch, device) for _ in range(args.steps)]
    part_s = {name: statistics.median(p[name] for p in parts) for name in PARTS}

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    cuda_synchronize(device)
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            timed_parts(model, optimizer, batch, device)
    wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    on_device = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]  # kernels, memcpy
    device_busy = sum(e.self_device_time_total for e in on_device) / 1e6 / args.steps
    kernels = sum(e.count for e in on_device) / args.steps

    lines = [
        f"# Training step profile: {Path(args.config).name}, {args.mode}, "
        f"{args.batch} labelled + {args.batch} unlabelled x {args.frames} frames, {device.type}",
        "",
        "| part | seconds (median, synchronised) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {part_s[name]:.4f} |" for name in PARTS]
    lines += [
        f"| whole step | {sum(part_s.values()):.4f} |",
        "",
        f"Under the profiler: {wall:.4f} s per step, device busy {device_busy:.4f} s "
        f"({device_busy / wall:.0%} of the step), {kernels:.0f} device kernels per step.",
        "",
        f"## Most device time ({args.steps} steps)",
        "",
    ]
    lines += operator_table(events, "self_device_time_total", args.rows)
    lines += ["", f"## Most host time ({args.steps} steps)", ""]
    lines += operator_table(events, "self_cpu_time_total", args.rows)
    report = "\n".join(lines) + "\n"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.md").write_text(report)
    print(report)
    return report


if __name__ == "__main__":
    main()
