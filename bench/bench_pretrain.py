#!/usr/bin/env python3
"""Cost of a self-supervised pre-training step relative to a semi-supervised step, on CPU.

    python bench/bench_pretrain.py                     # Base, 3 utterances x 50 frames, 2 threads
    python bench/bench_pretrain.py --size tiny --steps 5 --frames 100    # seconds

Both models are built from the shipped configs of one size (``pretrain_usr2_<size>.yaml``
and ``train_usr2_<size>.yaml`` with ``--semi usr2``), random weights, and run on the SAME
batch of random audio / video (``--utts`` utterances of ``--frames`` frames): the
semi-supervised step takes the first ``--labelled`` as labelled (random token targets of
T/5 tokens) and the rest as unlabelled, the pre-training step all of them without text.
Measured is forward + backward of one training step (no optimiser step, no EMA update),
both steps interleaved on the same machine load, after one warm-up step each; printed are
the median wall-clock, CPU seconds and the extra peak RSS (see bench_common.Measured).

Semi-supervised step: USR 2.0 with p_AR = 0 (every step CTC-driven, the cheaper mode;
AR steps cost more), confidence threshold 0 (every PL term does its work), and the
teacher's CTC head biased so its PLs have ~T/5 tokens (bench_semi.force_realistic_pl_lengths;
a random-init CTC head emits one token per utterance). Pre-training step: the teacher's
AV layer average (one encoder pass of one stream), the student's three masked streams and
the 2-block predictor over all three. Nothing is hard-coded: every figure is this run's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_common import Measured, max_rss_mb, random_av, token_list  # noqa: E402
from bench_semi import PL_MODALITY, force_realistic_pl_lengths  # noqa: E402

CONF = REPO / "egs2" / "TEMPLATE" / "usr2" / "conf"


def build_models(args):
    from espnet_usr2.tasks.config import build_model_from_config
    from espnet_usr2.tasks.usr2 import USR2Task

    torch.manual_seed(args.seed)
    semi = build_model_from_config(
        CONF / f"train_usr2_{args.size}.yaml",
        token_list(args.vocab),
        ["--semi", "usr2", "--semi_conf", "threshold=0.0", "--semi_conf", "p_ar=0.0"],
    )
    torch.manual_seed(args.seed)
    pretrain = USR2Task.build_model(
        USR2Task.get_parser().parse_args(["--config", str(CONF / f"pretrain_usr2_{args.size}.yaml")])
    )
    return semi, pretrain


def semi_batch(args, batch):
    g = torch.Generator().manual_seed(args.seed + 2)
    n_tokens = max(1, args.frames // 5)
    n_unl = args.utts - args.labelled
    text = torch.randint(2, args.vocab - 2, (args.utts, n_tokens), generator=g)
    text[args.labelled :] = -1
    return {
        **batch,
        "text": text,
        "text_lengths": torch.tensor([n_tokens] * args.labelled + [0] * n_unl),
        "labelled": torch.tensor([1] * args.labelled + [0] * n_unl).unsqueeze(1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="base", choices=["tiny", "base", "base_plus", "large", "huge"])
    p.add_argument("--utts", type=int, default=3, help="utterances in the batch")
    p.add_argument("--labelled", type=int, default=1, help="of which labelled in the semi-supervised step")
    p.add_argument("--frames", type=int, default=50, help="frames per utterance (25 per second)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not 0 < args.labelled < args.utts:
        p.error("--labelled must leave at least one unlabelled utterance (0 < labelled < utts)")
    torch.set_num_threads(args.threads)

    semi, pretrain = build_models(args)
    batch = random_av([args.frames] * args.utts, args.seed + 1)
    semi_inputs = semi_batch(args, batch)
    semi.ensure_teacher_initialized()
    with torch.no_grad():
        unl = {k: v[args.labelled :] for k, v in batch.items()}
        enc, enc_lens = semi.teacher.model.encode(**unl, modalities=[PL_MODALITY], augment=False)[PL_MODALITY]
    force_realistic_pl_lengths(semi.teacher.model, enc, enc_lens, 0.2)
    semi.train(), pretrain.train()
    n_params = {
        name: sum(x.numel() for x in m.parameters() if x.requires_grad) / 1e6
        for name, m in (("semi", semi), ("pretrain", pretrain))
    }
    print(
        f"{args.size}: semi-supervised model {n_params['semi']:.1f} M trainable parameters, "
        f"pre-training model {n_params['pretrain']:.1f} M; batch {args.utts} x {args.frames} frames, "
        f"{args.threads} threads",
        flush=True,
    )

    def step(model, inputs, k):
        torch.manual_seed(args.seed + k)  # augmentation and masks
        loss, _, _ = model(**inputs)
        loss.backward()
        model.zero_grad(set_to_none=True)

    runs = {"semi": (semi, semi_inputs), "pretrain": (pretrain, batch)}
    for model, inputs in runs.values():
        step(model, inputs, 0)  # warm-up
    results = {name: [] for name in runs}
    t0 = time.perf_counter()
    for k in range(args.steps):
        for name in ("semi", "pretrain") if k % 2 == 0 else ("pretrain", "semi"):
            model, inputs = runs[name]
            results[name].append(Measured(lambda model=model, inputs=inputs, k=k: step(model, inputs, k + 1)))
    for name, measured in results.items():
        wall = statistics.median(m.wall for m in measured)
        cpu = statistics.median(m.cpu for m in measured)
        extra = [m.extra_mb for m in measured if m.extra_mb is not None]
        print(
            f"  {name:9s} step: {wall:.2f} s wall, {cpu:.2f} s CPU, extra peak {max(extra):.0f} MB"
            if extra
            else f"  {name:9s} step: {wall:.2f} s wall, {cpu:.2f} s CPU"
        )
    ratio = statistics.median(m.wall for m in results["pretrain"]) / statistics.median(m.wall for m in results["semi"])
    print(f"pre-training step / semi-supervised step (wall, median of {args.steps}): {ratio:.2f}")
    print(f"(measured in {time.perf_counter() - t0:.0f} s; process peak RSS {max_rss_mb():.0f} MB)")


if __name__ == "__main__":
    main()
