#!/usr/bin/env python3
"""Train a USR 2.0 model: ``python -m espnet_usr2.bin.usr2_train --config conf/... ``.

Takes every option of ESPnet's training entry points (``--output_dir``, ``--ngpu``,
``--resume``, ``--max_epoch``, ``--batch_type``, ``--collect_stats``, ``--dry_run``, ...).
"""

import sys
from typing import List, Optional

import torch.multiprocessing

from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.train.stop_signal import PREEMPTED_EXIT_CODE


def get_parser():
    return USR2Task.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    try:
        USR2Task.main(cmd=cmd)
    except torch.multiprocessing.ProcessExitedException as error:
        # --multiprocessing_distributed: a rank that stopped on --stop_signals exits with the
        # preemption code; the launcher process passes it on instead of a traceback
        if error.exit_code != PREEMPTED_EXIT_CODE:
            raise
        sys.exit(PREEMPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
