#!/usr/bin/env python3
"""Train a USR 2.0 model: ``python -m espnet_usr2.bin.usr2_train --config conf/... ``.

Takes every option of ESPnet's training entry points (``--output_dir``, ``--ngpu``,
``--resume``, ``--max_epoch``, ``--batch_type``, ``--collect_stats``, ``--dry_run``, ...).
"""
from typing import List, Optional

from espnet_usr2.tasks.usr2 import USR2Task


def get_parser():
    return USR2Task.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    USR2Task.main(cmd=cmd)


if __name__ == "__main__":
    main()
