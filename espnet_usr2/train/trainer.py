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

For preemptible clusters (:mod:`espnet_usr2.train.checkpoints`, :mod:`espnet_usr2.train.stop_signal`):
every checkpoint ESPnet's loop writes is written atomically; ``--save_every_n_steps N`` adds a
resume point every N optimiser steps (``--keep_last_n K`` keeps the last K as
``checkpoint.step<N>.pth``), from which ``--resume true`` continues at the same batch; and
``--stop_signals SIGTERM,SIGUSR1`` turns those signals into a resume point at the next step
boundary and exit code 75.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import espnet2.main_funcs.average_nbest_models
import espnet2.train.trainer
import torch
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.schedulers.abs_scheduler import AbsScheduler
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.reporter import Reporter, SubReporter
from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.build_dataclass import build_dataclass
from espnet2.utils.types import str2bool

from espnet_usr2.train.checkpoints import (
    EpochPosition,
    atomic_save,
    atomic_writes_in,
    checkpoint_states,
    keep_last,
    load_sub_reporter_state,
    remove_stale_temporaries,
    rng_states,
    set_rng_states,
    skip_batches,
    sub_reporter_state,
)
from espnet_usr2.train.compilation import COMPILE_MODES, compile_for_training
from espnet_usr2.train.deferred_stats import defer_reads, resolve
from espnet_usr2.train.scheduler import WarmupCosineLR
from espnet_usr2.train.stop_signal import StopRequest, TrainingPreempted, parse_signals
from espnet_usr2.utils.distributed import rank_and_world

CHECKPOINT = "checkpoint.pth"  # ESPnet's resume point, read by --resume true


@dataclasses.dataclass
class USR2TrainerOptions(TrainerOptions):
    save_every_n_steps: int = 0
    keep_last_n: int = 0
    stop_signals: str = ""
    compile: bool = False
    compile_mode: str = "default"
    compile_pad_frames: int = 0


class USR2Trainer(Trainer):
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Resume points for preemptible clusters")
        group.add_argument(
            "--save_every_n_steps",
            type=int,
            default=0,
            help="Write the resume point (checkpoint.pth) every N optimiser steps as well as "
            "after every epoch; --resume true continues at that step (0: epochs only)",
        )
        group.add_argument(
            "--keep_last_n",
            type=int,
            default=0,
            help="Keep the last N step resume points as checkpoint.step<N>.pth (0: none)",
        )
        group.add_argument(
            "--stop_signals",
            type=str,
            default="",
            help="Signals that stop training cleanly, e.g. SIGTERM,SIGUSR1: at the next step "
            "the run writes a resume point and exits with code 75 (empty: none caught)",
        )
        group = parser.add_argument_group("Compilation (espnet_usr2/train/compilation.py)")
        group.add_argument(
            "--compile",
            type=str2bool,
            default=False,
            help="torch.compile the front-ends' ResNets, the encoder blocks and the decoder "
            "layers (student and EMA teacher) for training, as USR's code compiles its model",
        )
        group.add_argument(
            "--compile_mode",
            type=str,
            default="default",
            choices=COMPILE_MODES,
            help="torch.compile mode (reduce-overhead: CUDA graphs, one per batch shape)",
        )
        group.add_argument(
            "--compile_pad_frames",
            type=int,
            default=0,
            help="With --compile true: pad every batch's time axis to a multiple of N video "
            "frames (audio to the same duration) so a run sees a handful of shapes; the "
            "front-ends' batch norm sees the extra zero frames (0: no padding)",
        )

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> USR2TrainerOptions:
        if args.save_every_n_steps < 0 or args.keep_last_n < 0:
            raise ValueError("--save_every_n_steps and --keep_last_n must be 0 or more")
        if args.keep_last_n and not args.save_every_n_steps:
            raise ValueError("--keep_last_n keeps step resume points: give --save_every_n_steps too")
        parse_signals(args.stop_signals)  # a misspelt signal fails here, not at the first step
        if args.compile_pad_frames < 0:
            raise ValueError(f"--compile_pad_frames must be 0 or more, got {args.compile_pad_frames}")
        return build_dataclass(USR2TrainerOptions, args)

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
        teacher_needs_length = teacher is not None and teacher.schedule_steps <= 0
        schedulers_need_length = [
            s
            for s in schedulers
            if isinstance(s, WarmupCosineLR) and (s.total_steps <= 0 or s.warmup_epochs > 0 or s.warmup_fraction > 0)
        ]
        if teacher_needs_length or schedulers_need_length:
            total = _total_optimizer_steps(train_iter_factory, trainer_options)
            for scheduler in schedulers_need_length:
                scheduler.fit_to_run(total, trainer_options.max_epoch)
                logging.info(
                    f"warmupcosine: {scheduler.warmup_steps} warm-up steps, cosine to step {scheduler.total_steps}"
                )
            if teacher_needs_length:
                teacher.total_steps.fill_(total)
                logging.info(f"EMA teacher: momentum schedule over {total} optimiser steps")
        handles = (
            [opt.register_step_post_hook(ema_step_hook(model)) for opt in optimizers] if teacher is not None else []
        )
        if trainer_options.compile:
            compile_for_training(model, trainer_options.compile_mode)
        points = ResumePoints.for_run(trainer_options, distributed_option)
        trainer_options.resume_points = points  # train_one_epoch reads it
        try:
            with ExitStack() as stack:
                # ESPnet's loop writes checkpoint.pth, <epoch>epoch.pth and the averaged models
                stack.enter_context(atomic_writes_in(espnet2.train.trainer, espnet2.main_funcs.average_nbest_models))
                stack.enter_context(_reporter_seen_by(points))
                stack.enter_context(points.stop)
                super().run(
                    model,
                    optimizers,
                    schedulers,
                    train_iter_factory,
                    valid_iter_factory,
                    plot_attention_iter_factory,
                    trainer_options,
                    distributed_option,
                )
        finally:
            for handle in handles:
                handle.remove()

    @classmethod
    def train_one_epoch(
        cls,
        model: torch.nn.Module,
        iterator: Iterable,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[AbsScheduler]],
        scaler: Optional[Any],
        reporter: SubReporter,
        summary_writer: Any,
        options: Any,
        distributed_option: DistributedOption,
    ) -> bool:
        points: Optional[ResumePoints] = getattr(options, "resume_points", None)
        if points is not None:
            iterator = points.epoch_batches(iterator, model, optimizers, schedulers, scaler, reporter)
        all_steps_are_invalid = super().train_one_epoch(
            model=model,
            iterator=iterator,
            optimizers=optimizers,
            schedulers=schedulers,
            scaler=scaler,
            reporter=reporter,
            summary_writer=summary_writer,
            options=options,
            distributed_option=distributed_option,
        )
        check = getattr(getattr(model, "module", model), "end_of_epoch_check", None)  # DDP wraps the model
        if check is not None:
            check()
        return all_steps_are_invalid


class ResumePoints:
    """One run's resume points within epochs and its stop request (see the module docstring).

    ``epoch_batches`` wraps each training epoch's iterator: at every optimiser-step boundary it
    writes a resume point when one is due (``--save_every_n_steps``) or a stop is agreed
    (``--stop_signals``), and on ``--resume`` from a resume point inside an epoch it skips the
    batches already trained and restores the statistics and generator states.
    """

    def __init__(
        self,
        output_dir: Path,
        accum_grad: int,
        save_every: int,
        keep: int,
        stop: StopRequest,
        distributed: bool,
        rank: int,
        device: str,
        pending: Optional[EpochPosition],
    ):
        self.output_dir = output_dir
        self.accum_grad = max(1, accum_grad)
        self.save_every = save_every
        self.keep = keep
        self.stop = stop
        self.distributed = distributed
        self.rank = rank
        self.device = device
        self.pending = pending  # the position to continue from, consumed by its epoch
        self.reporter: Optional[Reporter] = None  # ESPnet's run builds it; _reporter_seen_by hands it over

    @classmethod
    def for_run(cls, options: Any, distributed_option: DistributedOption) -> "ResumePoints":
        output_dir = Path(options.output_dir)
        rank, world = rank_and_world(distributed_option)
        if rank == 0:
            remove_stale_temporaries(output_dir)
        pending = None
        if options.resume and (output_dir / CHECKPOINT).exists():
            pending = EpochPosition.from_checkpoint(output_dir / CHECKPOINT)
            if pending is not None and len(pending.rng) != world:
                logging.warning(
                    f"the resume point was written by {len(pending.rng)} ranks, this run has {world}: "
                    f"each rank's batches differ, so epoch {pending.epoch} starts again from its "
                    "first batch"
                )
                pending = None
        return cls(
            output_dir,
            options.accum_grad,
            options.save_every_n_steps,
            options.keep_last_n,
            StopRequest(parse_signals(options.stop_signals)),
            distributed_option.distributed,
            rank,
            "cuda" if options.ngpu > 0 else "cpu",
            pending,
        )

    def epoch_batches(
        self,
        loader: Iterable,
        model: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[AbsScheduler]],
        scaler: Optional[Any],
        sub_reporter: SubReporter,
    ) -> Iterator:
        epoch = sub_reporter.get_epoch()
        position = None
        if self.pending is not None and self.pending.epoch == epoch:  # consumed by its epoch
            position, self.pending = self.pending, None
        start = position.batches if position is not None else 0
        if position is not None:
            loader = skip_batches(loader, start)
            load_sub_reporter_state(sub_reporter, position.statistics)
        batches = iter(loader)  # a DataLoader draws its workers' base seed here, before the restore
        if position is not None:
            set_rng_states(position.rng[self.rank])
            logging.info(f"resumed inside epoch {epoch}: {start} batches were trained before the resume point")
        done = start
        for batch in batches:
            if done % self.accum_grad == 0:  # a step boundary: everything before it has been applied
                self._at_boundary(epoch, done, start, model, optimizers, schedulers, scaler, sub_reporter)
            yield batch
            done += 1

    def _at_boundary(
        self,
        epoch: int,
        done: int,
        start: int,
        model: torch.nn.Module,
        optimizers,
        schedulers,
        scaler,
        sub_reporter: SubReporter,
    ) -> None:
        stop = self.stop.enabled and self.stop.agreed(self.distributed, self.device)
        step = sub_reporter.get_total_count() // self.accum_grad  # optimiser steps of the whole run so far
        due = self.save_every > 0 and done != start and step % self.save_every == 0
        if not (stop or due):
            return
        self._write(
            EpochPosition(epoch, done, self._all_rng_states(), sub_reporter_state(sub_reporter)),
            model,
            optimizers,
            schedulers,
            scaler,
            step,
        )
        if stop:
            stopped = TrainingPreempted(
                f"stopped by {', '.join(self.stop.received) or 'a signal on another rank'} "
                f"at step {step} ({done} batches into epoch {epoch}); the resume point is "
                f"{self.output_dir / CHECKPOINT}: rerun with --resume true"
            )
            logging.warning(str(stopped))
            raise stopped

    def _all_rng_states(self) -> list:
        if not self.distributed:
            return [rng_states()]
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, rng_states())
        return gathered

    def _write(
        self, position: EpochPosition, model: torch.nn.Module, optimizers, schedulers, scaler, step: int
    ) -> None:
        if self.rank == 0:
            if self.reporter is None:
                raise RuntimeError("USR2Trainer did not see ESPnet's Reporter: cannot write a resume point")
            states = checkpoint_states(
                getattr(model, "module", model), self.reporter, optimizers, schedulers, scaler, position
            )
            atomic_save(states, self.output_dir / CHECKPOINT)
            if self.keep:
                keep_last(self.output_dir, self.output_dir / CHECKPOINT, step, self.keep)
            logging.info(
                f"resume point at step {step}, {position.batches} batches into epoch {position.epoch}: "
                f"{self.output_dir / CHECKPOINT}"
            )
        if self.distributed:
            torch.distributed.barrier()  # no rank leaves (or is killed by its launcher) while rank 0 writes


@contextmanager
def _reporter_seen_by(points: ResumePoints) -> Iterator[None]:
    """ESPnet's ``run`` builds its Reporter as a local; a resume point needs its finished
    epochs. Its sub-reporters read the step statistics on the host once per log interval
    (``deferred_stats``), not at every step."""

    class SeenReporter(Reporter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            points.reporter = self

        def start_epoch(self, key: str, epoch: Optional[int] = None) -> SubReporter:
            return defer_reads(super().start_epoch(key, epoch))

        def finish_epoch(self, sub_reporter: SubReporter) -> None:
            resolve(sub_reporter)
            super().finish_epoch(sub_reporter)

    module = espnet2.train.trainer
    original = module.Reporter
    module.Reporter = SeenReporter
    try:
        yield
    finally:
        module.Reporter = original


def ema_step_hook(model):
    """An optimiser step post-hook that updates ``model``'s EMA teacher after every step (so a
    skipped step -- e.g. a non-finite gradient -- updates nothing)."""

    def update_teacher(optimizer, args, kwargs) -> None:
        model.update_teacher()

    return update_teacher


def _total_optimizer_steps(train_iter_factory: AbsIterFactory, options) -> int:
    """max_epoch x steps per epoch / accum_grad: the optimiser steps of the whole run."""
    steps_per_epoch = options.num_iters_per_epoch if getattr(options, "num_iters_per_epoch", None) else None
    if steps_per_epoch is None:
        steps_per_epoch = len(train_iter_factory.build_iter(1, shuffle=False))
    total = max(1, options.max_epoch * steps_per_epoch // max(1, options.accum_grad))
    logging.info(
        f"the run has {total} optimiser steps "
        f"({options.max_epoch} epochs x {steps_per_epoch} steps / accum_grad {options.accum_grad})"
    )
    return total
