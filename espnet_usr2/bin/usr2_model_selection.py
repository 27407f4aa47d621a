#!/usr/bin/env python3
"""The model file a training config's selection writes, or its path in an experiment directory::

    python -m espnet_usr2.bin.usr2_model_selection --train_config exp/x/config.yaml
    python -m espnet_usr2.bin.usr2_model_selection --exp_dir exp/x

See :mod:`espnet_usr2.utils.model_selection`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet_usr2.utils.model_selection import default_inference_model, find_model_file


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m espnet_usr2.bin.usr2_model_selection",
        description="Print the model file ESPnet's trainer writes for a training config "
        "(--train_config), or its path in an experiment directory (--exp_dir).",
    )
    p.add_argument(
        "--train_config", default=None, help="training config (default with --exp_dir: <exp_dir>/config.yaml)"
    )
    p.add_argument(
        "--exp_dir",
        default=None,
        help="experiment or model directory: print the model's path; exit 1 naming the "
        "missing file and the .pth files present when it does not exist",
    )
    p.add_argument("--name", default=None, help="a model file name that overrides the selection")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.exp_dir is not None:
            print(find_model_file(args.exp_dir, args.train_config, args.name))
        elif args.train_config is not None:
            print(args.name or default_inference_model(args.train_config))
        else:
            get_parser().error("give --train_config and/or --exp_dir")
    except (FileNotFoundError, ValueError) as e:
        print(f"model_selection: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
