"""Two ranks of DDP (gloo, CPU) and their EMA teachers, shared by the recognition and the
pre-training tests: each rank trains the real model wrapped in DistributedDataParallel, with
USR2Trainer's EMA hook on the optimiser, for one epoch of the real iterator factory, and records
after every step whether every rank's teacher is the same tensor for tensor.

A test module keeps its own worker (how it builds the model and the factory); the worker joins
with :func:`join_group`, trains with :func:`train_epoch` and leaves with :func:`leave_group`; the
test runs it with :func:`run_ranks` and checks with :func:`assert_teachers_identical`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
# (keys, batch, stats) of one step -> values to record for it, by name
Observe = Callable[[Any, dict, dict], dict]


def join_group(rank: int, port: int) -> None:
    """This process as ``rank`` of the WORLD gloo ranks meeting at 127.0.0.1:``port``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)


def _teachers_equal(model: torch.nn.Module) -> bool:
    """Whether every rank's teacher parameters equal this rank's (all ranks must call it)."""
    flat = torch.cat([p.detach().flatten() for p in model.teacher.model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered)


def train_epoch(model: torch.nn.Module, factory, rank: int, observe: Observe) -> dict:
    """One epoch of ``factory`` through DDP(``model``) with the EMA hook: the record of every step
    (``teachers_equal`` and what ``observe`` returns) and the teacher's ``num_updates``."""
    from torch.nn.parallel import DistributedDataParallel

    from espnet_usr2.train.trainer import ema_step_hook

    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    optimizer.register_step_post_hook(ema_step_hook(model))
    record: dict = {"teachers_equal": []}
    for step, (keys, batch) in enumerate(factory.build_iter(1)):
        torch.manual_seed(100 * rank + step)  # ranks augment and draw masks differently, as in real runs
        loss, stats, _ = ddp(**batch)
        loss.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        record["teachers_equal"].append(_teachers_equal(model))
        for name, value in observe(keys, batch, stats).items():
            record.setdefault(name, []).append(value)
    record["num_updates"] = int(model.teacher.num_updates)
    return record


def leave_group(root: Path, rank: int, record: dict) -> None:
    """Writes ``record`` to ``root/rank<rank>.json`` and leaves the group with the other ranks."""
    (Path(root) / f"rank{rank}.json").write_text(json.dumps(record))
    # both ranks leave together: a rank tearing gloo down while the other still talks to it
    # aborted the process now and then ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def run_ranks(worker: Callable, root: Path, *args) -> list[dict]:
    """``worker(rank, str(root), *args)`` on WORLD spawned processes; their records, by rank."""
    mp.spawn(worker, args=(str(root), *args), nprocs=WORLD, join=True)
    return [json.loads((Path(root) / f"rank{r}.json").read_text()) for r in range(WORLD)]


def assert_teachers_identical(records: list[dict]) -> None:
    """Every rank took the same number of steps, and after each the teachers were identical,
    each updated once per step."""
    steps = [len(r["teachers_equal"]) for r in records]
    assert steps[0] > 0 and len(set(steps)) == 1, steps
    assert all(all(r["teachers_equal"]) for r in records)
    assert all(r["num_updates"] == steps[0] for r in records), [r["num_updates"] for r in records]
