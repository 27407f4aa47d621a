#!/usr/bin/env python3
"""Print the parameter count of each part of the model a training config builds.

    python -m espnet_usr2.bin.usr2_model_info egs2/TEMPLATE/usr2/conf/train_usr2_*.yaml

The model is built on PyTorch's meta device (no memory, ~1 s even for Huge); the
vocabulary size (default 1000, the paper's SentencePiece size) sets the head sizes.
"""

import argparse
from typing import List, Optional

from espnet_usr2.tasks.config import build_model_from_config

PARTS = ("video_frontend", "audio_frontend", "fusion", "encoder", "ctc", "decoder")


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(cmd: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="training YAML files")
    parser.add_argument("--vocab_size", type=int, default=1000)
    args = parser.parse_args(cmd)
    print("| config | " + " | ".join(PARTS) + " | total (M) |")
    print("|---" * (len(PARTS) + 2) + "|")
    for config in args.configs:
        model = build_model_from_config(config, [f"tok{i}" for i in range(args.vocab_size)], meta=True)
        parts = " | ".join(f"{count(getattr(model, p)) / 1e6:.2f}" for p in PARTS)
        print(f"| {config} | {parts} | {count(model) / 1e6:.1f} |")


if __name__ == "__main__":
    main()
