"""USR2Trainer: ESPnet's Trainer plus the EMA teacher update after every optimiser step.

ESPnet's Trainer has no per-step hook, so the teacher update is registered as a
``torch.optim`` step post-hook on each optimiser. That gives exactly the semantics the
method needs:

* the teacher moves once per *optimiser* step (not per micro-batch under ``accum_grad``);
* a step that ESPnet skips because the gradient norm is not finite (a NaN/inf loss) never
  calls ``optimizer.step()`` -- nor does GradScaler when it finds inf gradients -- so a
  non-finite loss never reaches the teacher; ESPnet logs the skipped step;
* under DDP every rank applies the same update to the same all-reduced student, so the
  teachers stay identical without communication.

After every training epoch a model with an ``end_of_epoch_check`` method (self-supervised
pre-training: the collapse check of its targets) gets it called.

Run lengths that are not configured are derived here as ``max_epoch x steps per epoch /
accum_grad`` optimiser steps: the teacher's (``teacher_conf.total_steps: 0``), so the cosine
momentum reaches its end value at the end of training, and the ``warmupcosine`` lr
schedule's (``scheduler_conf.total_steps: 0``), so the lr reaches ``min_lr`` then.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.schedulers.abs_scheduler import AbsScheduler
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.trainer import Trainer

from espnet_usr2.train.scheduler import WarmupCosineLR


class USR2Trainer(Trainer):
    @classmethod
    def run(
        cls,
        model: AbsESPnetModel,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[AbsScheduler]],
        train_iter_factory: AbsIterFactory,
        valid_iter_factory: AbsIterFactory,
        plot_attention_iter_factory: Optional[AbsIterFactory],
        trainer_options,
        distributed_option: DistributedOption,
    ) -> None:
        teacher = getattr(model, "teacher", None)
        teacher_needs_length = teacher is not None and int(teacher.total_steps) <= 0
        schedulers_need_length = [s for s in schedulers if isinstance(s, WarmupCosineLR)
                                  and (s.total_steps <= 0 or s.warmup_epochs > 0 or s.warmup_fraction > 0)]
        if teacher_needs_length or schedulers_need_length:
            total = _total_optimizer_steps(train_iter_factory, trainer_options)
            for scheduler in schedulers_need_length:
                scheduler.fit_to_run(total, trainer_options.max_epoch)
                logging.info(f"warmupcosine: {scheduler.warmup_steps} warm-up steps, cosine to step "
                             f"{scheduler.total_steps}")
            if teacher_needs_length:
                teacher.total_steps.fill_(total)
                logging.info(f"EMA teacher: momentum schedule over {total} optimiser steps")
        handles = [opt.register_step_post_hook(_ema_hook(model)) for opt in optimizers] if teacher is not None else []
        try:
            super().run(model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
                        plot_attention_iter_factory, trainer_options, distributed_option)
        finally:
            for handle in handles:
                handle.remove()

    @classmethod
    def train_one_epoch(cls, model: torch.nn.Module, *args, **kwargs) -> bool:
        all_steps_are_invalid = super().train_one_epoch(model, *args, **kwargs)
        check = getattr(getattr(model, "module", model), "end_of_epoch_check", None)  # DDP wraps the model
        if check is not None:
            check()
        return all_steps_are_invalid


def _ema_hook(model):
    def update_teacher(optimizer, args, kwargs) -> None:
        model.update_teacher()
    return update_teacher


def _total_optimizer_steps(train_iter_factory: AbsIterFactory, options) -> int:
    """max_epoch x steps per epoch / accum_grad: the optimiser steps of the whole run."""
    steps_per_epoch = options.num_iters_per_epoch if getattr(options, "num_iters_per_epoch", None) else None
    if steps_per_epoch is None:
        steps_per_epoch = len(train_iter_factory.build_iter(1, shuffle=False))
    total = max(1, options.max_epoch * steps_per_epoch // max(1, options.accum_grad))
    logging.info(f"the run has {total} optimiser steps "
                 f"({options.max_epoch} epochs x {steps_per_epoch} steps / accum_grad {options.accum_grad})")
    return total
