#!/usr/bin/env python3
"""Split a decoding set into job key files, and merge the jobs' outputs (usr2.sh stage 12)::

    python -m espnet_usr2.bin.usr2_decode_splits split --scp dump/test/wav.scp --nj 8 --out_dir logdir
    python -m espnet_usr2.bin.usr2_decode_splits merge --out_dir decode/test logdir/output.*

See :mod:`espnet_usr2.inference.splits`.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from espnet_usr2.inference.splits import SplitMergeError, merge_decode_dirs, split_key_file


def main(cmd: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("split", help="write keys.N.scp files")
    sp.add_argument("--scp", required=True)
    sp.add_argument("--nj", type=int, required=True)
    sp.add_argument("--out_dir", required=True)
    mp = sub.add_parser("merge", help="merge job output directories")
    mp.add_argument("--out_dir", required=True)
    mp.add_argument("job_dirs", nargs="+")
    args = parser.parse_args(cmd)
    try:
        if args.command == "split":
            for p in split_key_file(args.scp, args.nj, args.out_dir):
                print(p)
        else:
            merged = merge_decode_dirs(args.job_dirs, args.out_dir)
            print(f"merged {len(merged)} files from {len(args.job_dirs)} jobs into {args.out_dir}")
    except (SplitMergeError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"usr2_decode_splits: error: {e}") from None


if __name__ == "__main__":
    main()
