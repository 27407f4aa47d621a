#!/usr/bin/env python3
"""COMAT cost on CPU: monotonic alignment search, and a training step with and without COMAT.

    python bench/bench_comat.py                       # tiny config, 2 threads; ~1 min
    python bench/bench_comat.py --config egs2/TEMPLATE/usr2/conf/train_usr2_base.yaml \\
        --lm_config egs2/TEMPLATE/usr2/conf/train_lm_transformer.yaml --steps 3

1. **MAS**: :func:`~espnet_usr2.model.comat.monotonic_alignment_search` on a random
   similarity of batch ``--mas_batch`` (16) x ``--mas_frames`` (600) frames x ``--mas_tokens``
   (150) tokens, lengths spread down to 75 % (padding exercised); median of ``--repeats``.
2. **Training step**: forward + backward of one labelled batch (``--batch`` utterances of
   ``--frames`` frames, all of the config's modalities, train mode) by the same model
   without and with COMAT (the COMAT model = the plain one + the compressor, same weights
   otherwise), interleaved step by step so both see the same machine load; the PLM is an
   ESPnet LM of ``--lm_config`` with random weights and the model's token list; transcripts
   of ``--tokens_per_s`` tokens per second (5: ~LRS3 in 1000 BPE units). Reported: medians
   and their ratio. Random weights and inputs: every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FPS, random_av, token_list, write_lm_run_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "egs2" / "TEMPLATE" / "usr2" / "conf"


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def spread(n: int, hi: int) -> torch.Tensor:
    """``n`` lengths spread evenly over [0.75 hi, hi]."""
    lo = int(0.75 * hi)
    return torch.tensor([hi if n == 1 else round(hi - (hi - lo) * i / (n - 1)) for i in range(n)])


def bench_mas(args) -> None:
    from espnet_usr2.model.comat import monotonic_alignment_search

    g = torch.Generator().manual_seed(0)
    sim = torch.randn(args.mas_batch, args.mas_frames, args.mas_tokens, generator=g)
    frames, tokens = spread(args.mas_batch, args.mas_frames), spread(args.mas_batch, args.mas_tokens)
    monotonic_alignment_search(sim, frames, tokens)  # warm-up
    sec = median_seconds(lambda: monotonic_alignment_search(sim, frames, tokens), args.repeats)
    print(
        f"MAS  batch {args.mas_batch} x {args.mas_frames} frames x {args.mas_tokens} tokens (lengths down to "
        f"75 %): {1000 * sec:.1f} ms per batch (median of {args.repeats}, {torch.get_num_threads()} threads)"
    )


def bench_step(args) -> None:
    from espnet_usr2.tasks.config import build_model_from_config

    tokens = token_list(args.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        lm_config = write_lm_run_config(Path(args.lm_config), tokens, Path(tmp))
        comat = f"{{plm: espnet_lm, lm_train_config: {lm_config}, compress_factor: {args.compress_factor}}}"
        torch.manual_seed(args.seed)
        plain = build_model_from_config(Path(args.config), tokens)
        torch.manual_seed(args.seed)
        with_comat = build_model_from_config(Path(args.config), tokens, ["--comat_conf", comat])
        n_text = max(1, round(args.frames / FPS * args.tokens_per_s))
        batch = random_av([args.frames] * args.batch, seed=args.seed)
        g = torch.Generator().manual_seed(args.seed)
        batch["text"] = torch.randint(2, args.vocab - 1, (args.batch, n_text), generator=g)
        batch["text_lengths"] = torch.full((args.batch,), n_text)

        def step(model) -> float:
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss, _, _ = model(**batch)
            loss.backward()
            return time.perf_counter() - t0

        plain.train(), with_comat.train()
        step(plain), step(with_comat)  # warm-up (and the PLM's first load)
        times = {"without": [], "with": []}
        for _ in range(args.steps):
            times["without"].append(step(plain))
            times["with"].append(step(with_comat))
        n_params = sum(p.numel() for p in plain.parameters()) / 1e6
        extra = sum(p.numel() for p in with_comat.comat.parameters()) / 1e6
        lm_params = sum(p.numel() for p in with_comat.comat.plm.module.parameters()) / 1e6
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print(
        f"step {Path(args.config).name} ({n_params:.2f} M parameters; COMAT adds {extra:.3f} M trainable), "
        f"PLM {Path(args.lm_config).name} ({lm_params:.2f} M, frozen), batch {args.batch} x {args.frames} frames, "
        f"{n_text} tokens, compress factor {args.compress_factor}, modalities {list(plain.modalities)}"
    )
    print(
        f"step forward+backward, median of {args.steps}: without COMAT {without:.3f} s | with COMAT {with_:.3f} s "
        f"| ratio {with_ / without:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONF / "train_usr2_tiny.yaml"))
    parser.add_argument("--lm_config", default=str(CONF / "train_lm_tiny.yaml"))
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mas_batch", type=int, default=16)
    parser.add_argument("--mas_frames", type=int, default=600)
    parser.add_argument("--mas_tokens", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--tokens_per_s", type=float, default=5.0)
    parser.add_argument("--compress_factor", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_mas(args)
    bench_step(args)


if __name__ == "__main__":
    main()
