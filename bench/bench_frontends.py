#!/usr/bin/env python3
"""Audio frontend cost on CPU: the paper's raw-waveform ResNet (``resnet1d``) vs the log-mel
frontend (``logmel``), side by side in one run, at the mini recipe's and the Base size.

    python bench/bench_frontends.py                 # 1 thread, ~1 min on an idle machine
    python bench/bench_frontends.py --threads 2 --batch 8 --frames 70 --repeats 5

Timed: forward + backward of the audio frontend alone on random 16 kHz audio, batch
``--batch`` x ``--frames`` video frames (640 samples each); the best of ``--repeats`` runs
after one warm-up run. Also printed: each frontend's parameter count. Nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import torch

from espnet_usr2.model.frontends import LogMelAudioFrontend, ResNet1DAudioFrontend

#: (setting, frontend name) -> constructor, with the configs' values
FRONTENDS: Dict[Tuple[str, str], Callable[[], torch.nn.Module]] = {
    ("mini", "resnet1d"): lambda: ResNet1DAudioFrontend(channels=(8, 16, 32, 64)),
    ("mini", "logmel"): lambda: LogMelAudioFrontend(channels=128, output_size=128),
    ("base", "resnet1d"): lambda: ResNet1DAudioFrontend(),
    ("base", "logmel"): lambda: LogMelAudioFrontend(channels=512, output_size=512),
}


def time_frontend(frontend: torch.nn.Module, batch: int, frames: int, repeats: int) -> float:
    """Best wall time (s) of one forward + backward over a random batch."""
    wav = torch.randn(batch, frames * 640)
    lengths = torch.full((batch,), frames * 640)
    times: List[float] = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        out, _ = frontend(wav, lengths)
        out.sum().backward()
        if i:  # the first run warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=70, help="video frames per utterance (25 fps)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"audio frontend fwd+bwd, batch {args.batch} x {args.frames} frames ({args.frames / 25:.1f} s), "
        f"{args.threads} thread(s), best of {args.repeats}"
    )
    print("| setting | frontend | parameters (M) | time (s) | resnet1d / logmel |")
    print("|---|---|---|---|---|")
    for setting in ("mini", "base"):
        seconds = {}
        for name in ("resnet1d", "logmel"):
            frontend = FRONTENDS[(setting, name)]().train()
            params = sum(p.numel() for p in frontend.parameters()) / 1e6
            seconds[name] = time_frontend(frontend, args.batch, args.frames, args.repeats)
            ratio = f"{seconds['resnet1d'] / seconds['logmel']:.1f}x" if name == "logmel" else ""
            print(f"| {setting} | {name} | {params:.2f} | {seconds[name]:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
