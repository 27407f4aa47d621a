"""This process's rank and the world size of a run, from ESPnet's distributed options."""

from __future__ import annotations

from typing import Tuple

import torch
from espnet2.train.distributed_utils import DistributedOption


def rank_and_world(distributed_option: DistributedOption) -> Tuple[int, int]:
    if not distributed_option.distributed:
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if distributed_option.dist_rank is None or distributed_option.dist_world_size is None:
        raise RuntimeError(
            "distributed training, but neither a process group nor --dist_rank and "
            "--dist_world_size say which shard of the batches this process takes"
        )
    return int(distributed_option.dist_rank), int(distributed_option.dist_world_size)
