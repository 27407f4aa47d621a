#!/usr/bin/env python3
"""Check that an ESPnet LM predicts a recipe's tokens (same list, same order; usr2.sh stages 8
and 12) before it is fused or distilled::

    python -m espnet_usr2.bin.usr2_check_lm exp/lm_train_lm_transformer/config.yaml data/token_list/.../tokens.txt

Exits 1 with the mismatch named; see :func:`espnet_usr2.utils.espnet_lm.check_lm_config`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet_usr2.utils.espnet_lm import LMMismatchError, check_lm_config


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lm_train_config", help="the LM run's config.yaml")
    parser.add_argument("token_list", help="the recipe's tokens.txt")
    args = parser.parse_args(argv)
    try:
        check_lm_config(args.lm_train_config, args.token_list)
    except (LMMismatchError, FileNotFoundError) as e:
        sys.exit(f"usr2_check_lm: error: {e}")


if __name__ == "__main__":
    main()
