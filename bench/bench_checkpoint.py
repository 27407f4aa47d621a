#!/usr/bin/env python3
"""What a resume point weighs per model size, and how long it takes to write here.

    python bench/bench_checkpoint.py                       # sizes of all four; writes Base and Large
    python bench/bench_checkpoint.py --write base --repeats 1 --out_dir /scratch   # on the cluster's disk

A resume point (``checkpoint.pth``) holds what ``--resume`` needs: the model's state dict --
the student, the EMA teacher (``teacher.model.*``), the unlabelled heads -- and AdamW's two
moments of every trainable tensor (fp32). Sizes come from the paper configs built on PyTorch's
meta device (no memory), semi-supervised (``--semi usr2``, unlabelled heads on), a 1000-token
vocabulary as in the recipes.

For the models in ``--write`` the script builds the real tensors, gives AdamW its state with
one step, and writes the same checkpoint dict two ways, side by side, ``--repeats`` times each:
``torch.save`` in place (what ESPnet's Trainer does) and :func:`atomic_save` (temporary file,
fsync, rename: what USR2Trainer does). The atomic write includes an fsync -- the bytes are on
the disk when it returns -- so it is the honest figure for "how long a preemption must wait".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import token_list  # noqa: E402

from espnet_usr2.tasks.config import build_model_from_config  # noqa: E402
from espnet_usr2.train.checkpoints import atomic_save  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "egs2" / "TEMPLATE" / "usr2" / "conf"
SIZES = ("base", "base_plus", "large", "huge")
SEMI = ["--semi", "usr2"]


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def checkpoint_bytes(model: torch.nn.Module) -> Dict[str, int]:
    """Bytes of the model's state dict by part, and of AdamW's two moments (fp32, trainable tensors)."""
    state = model.state_dict()
    teacher = tensor_bytes(v for k, v in state.items() if k.startswith("teacher."))
    heads = tensor_bytes(v for k, v in state.items() if "unlabelled" in k and not k.startswith("teacher."))
    total = tensor_bytes(state.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "student": total - teacher - heads,
        "teacher": teacher,
        "unlabelled_heads": heads,
        "adamw_moments": 2 * 4 * trainable,
        "trainable_params": trainable,
        "total": total + 2 * 4 * trainable,
    }


def real_checkpoint(size: str) -> Dict:
    model = build_model_from_config(CONF / f"train_usr2_{size}.yaml", token_list(1000), SEMI)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()  # creates exp_avg / exp_avg_sq for every trainable tensor
    optimizer.zero_grad(set_to_none=True)
    return {
        "model": model.state_dict(),
        "optimizers": [optimizer.state_dict()],
        "schedulers": [None],
        "scaler": None,
        "reporter": {"stats": {}, "epoch": 0},
    }


def time_writes(states: Dict, out_dir: Path, repeats: int) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {"torch.save in place": [], "atomic_save": []}
    path = out_dir / "checkpoint.pth"
    for _ in range(repeats):
        for name, save in (("torch.save in place", torch.save), ("atomic_save", atomic_save)):
            start = time.perf_counter()
            save(states, path)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--write",
        nargs="*",
        default=["base", "large"],
        choices=SIZES,
        help="sizes whose checkpoint is written and timed (Huge needs ~20 GB of memory)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out_dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    print(
        "| model | trainable params (M) | student (GB) | EMA teacher (GB) | unlabelled heads (GB) "
        "| AdamW moments (GB) | checkpoint.pth (GB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        parts = checkpoint_bytes(
            build_model_from_config(CONF / f"train_usr2_{size}.yaml", token_list(1000), SEMI, meta=True)
        )
        gb = {k: v / 1e9 for k, v in parts.items()}
        print(
            f"| {size} | {parts['trainable_params'] / 1e6:.0f} | {gb['student']:.2f} | {gb['teacher']:.2f} "
            f"| {gb['unlabelled_heads']:.3f} | {gb['adamw_moments']:.2f} | {gb['total']:.2f} |"
        )

    if not args.write:
        return
    print(f"\nWrite time, {args.repeats} repeats each, median (min-max) seconds:\n")
    print("| model | file (GB) | torch.save in place (s) | atomic_save, fsync included (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.out_dir) as tmp:
        for size in args.write:
            states = real_checkpoint(size)
            times = time_writes(states, Path(tmp), args.repeats)
            gigabytes = (Path(tmp) / "checkpoint.pth").stat().st_size / 1e9
            in_place, atomic = (statistics.median(times[k]) for k in ("torch.save in place", "atomic_save"))
            cells = [f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})" for v in times.values()]
            print(f"| {size} | {gigabytes:.2f} | {cells[0]} | {cells[1]} | {atomic / in_place:.2f} |")
            del states


if __name__ == "__main__":
    main()
