"""Linear warm-up then cosine decay over the whole run (paper Appendix A: "warmup then
cosine decay"), with the run's length derived instead of typed in.

ESPnet's ``cosineannealingwarmuprestarts`` needs ``first_cycle_steps`` -- iterations per
epoch x max_epoch -- which a user can only know after the batches are packed, and which
changes with every data or GPU-count change; a wrong value silently restarts the cycle or
leaves the lr high at the end. Here ``total_steps: 0`` (the default) means "the whole run":
USR2Trainer sets it from ``max_epoch x steps per epoch / accum_grad`` before the first step
(the same count the EMA teacher's momentum schedule uses). The value is part of the
scheduler's state, so ``--resume`` continues the same curve.

    lr(s) = peak * s / W                                          s < W  (s = 1, 2, ...)
    lr(s) = min_lr + (peak - min_lr) * (1 + cos(pi * (s - W) / (N - W))) / 2   W <= s <= N
    lr(s) = min_lr                                                s > N

``peak`` is the optimiser's configured lr (``optim_conf.lr``), ``W = warmup_steps``,
``N = total_steps``. ``warmup_epochs`` instead of ``warmup_steps`` gives the warm-up in
epochs (USR's pre-training: 40 of 150), ``warmup_fraction`` as a fraction of the run (USR's
semi-supervised training: 20 of 75 epochs, 0.2667); the trainer converts either with the
run's steps. USR's schedule decays to 0 (``min_lr: 0``).

Registered in ESPnet's scheduler table as ``warmupcosine`` (``scheduler: warmupcosine``).
"""

from __future__ import annotations

import math
from typing import List

import torch
from espnet2.schedulers.abs_scheduler import AbsBatchStepScheduler
from torch.optim.lr_scheduler import _LRScheduler

SCHEDULER_NAME = "warmupcosine"


class WarmupCosineLR(_LRScheduler, AbsBatchStepScheduler):
    """Per-optimiser-step schedule; ``total_steps <= 0`` until the trainer sets it."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int = 0,
        total_steps: int = 0,
        min_lr: float = 0.0,
        warmup_epochs: float = 0.0,
        warmup_fraction: float = 0.0,
        last_epoch: int = -1,
    ):
        # numbers may arrive as strings (YAML 1.1 reads "1e-5" as one; so do some --*_conf forms)
        warmup_steps, total_steps, min_lr = int(warmup_steps), int(total_steps), float(min_lr)
        if warmup_steps < 0:
            raise ValueError(f"warmupcosine: warmup_steps must be >= 0, got {warmup_steps}")
        if min_lr < 0:
            raise ValueError(f"warmupcosine: min_lr must be >= 0, got {min_lr}")
        warmup_epochs, warmup_fraction = float(warmup_epochs), float(warmup_fraction)
        if warmup_epochs < 0 or not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(
                f"warmupcosine: warmup_epochs must be >= 0 and warmup_fraction in [0, 1); got "
                f"{warmup_epochs}, {warmup_fraction}"
            )
        if sum(v > 0 for v in (warmup_steps, warmup_epochs, warmup_fraction)) > 1:
            raise ValueError(
                f"warmupcosine: give one of warmup_steps, warmup_epochs, warmup_fraction; got "
                f"{warmup_steps}, {warmup_epochs}, {warmup_fraction}"
            )
        self.warmup_epochs = warmup_epochs
        self.warmup_fraction = warmup_fraction
        self.warmup_steps = warmup_steps
        self.total_steps = 0
        self.min_lr = min_lr
        if total_steps > 0:
            self.set_total_steps(total_steps)
        super().__init__(optimizer, last_epoch)

    def set_total_steps(self, total_steps: int) -> None:
        """The run's length in optimiser steps; must leave room after the warm-up."""
        if total_steps <= self.warmup_steps:
            raise ValueError(
                f"warmupcosine: the run has {total_steps} optimiser steps, not more than "
                f"warmup_steps={self.warmup_steps}; lower scheduler_conf.warmup_steps or train longer"
            )
        self.total_steps = int(total_steps)

    def fit_to_run(self, run_steps: int, max_epoch: int) -> None:
        """Set what the config left to the run: the length (``total_steps: 0``: the whole run,
        ``run_steps`` optimiser steps) and a warm-up given in epochs or as a fraction."""
        total = self.total_steps or run_steps
        if self.warmup_epochs > 0:
            self.warmup_steps = round(self.warmup_epochs * run_steps / max_epoch)
        if self.warmup_fraction > 0:
            self.warmup_steps = round(self.warmup_fraction * total)
        self.set_total_steps(total)

    def lr_factor(self, step: int) -> float:
        """Fraction of the way from min_lr (0) to the peak (1) at optimiser step ``step``."""
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if self.total_steps <= 0:
            # not told the run's length (used outside USR2Trainer): hold the peak
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> List[float]:
        # last_epoch counts finished steps; the coming update is step last_epoch + 1, so the
        # first update already moves (as ESPnet's warmuplr)
        step = self.last_epoch + 1
        factor = self.lr_factor(step)
        if step < self.warmup_steps:
            return [peak * factor for peak in self.base_lrs]
        return [self.min_lr + (peak - self.min_lr) * factor for peak in self.base_lrs]


def register_with_espnet() -> None:
    """Make ``scheduler: warmupcosine`` available to every ESPnet task parser.

    ESPnet keeps its schedulers in a module-level table that the parser's choices and the
    training entry point both read; adding to it before the parser is built is enough.
    """
    from espnet2.tasks import abs_task

    abs_task.scheduler_classes.setdefault(SCHEDULER_NAME, WarmupCosineLR)
