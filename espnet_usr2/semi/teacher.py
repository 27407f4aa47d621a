"""The EMA teacher of USR / USR 2.0 (paper Sec. 3, "Teacher–student setup").

The teacher xi is a full copy of the student theta (frontends, fusion, encoder, CTC heads,
decoder), updated after every optimiser step as

    xi <- mu * xi + (1 - mu) * theta,

with the momentum mu following a cosine from ``momentum_start`` (0.998) to
``momentum_end`` (1.0) over all training steps (paper Sec. 3; USR used 0.999). Only the
parameters are averaged. It runs without gradient, dropout and drop path off.

Its batch norm (``batch_norm``):

* ``"batch"`` (USR's code, ``models/usr.py`` ``set_dropout_mode``, and the default): while
  the model trains, the teacher's BatchNorm layers normalise with the statistics of the
  batch the teacher is given -- its own unmasked view -- synced across ranks where the
  model's batch norm is (``sync_batchnorm``). Their running statistics are the teacher's own
  (updated by its forward passes, used when it is evaluated: validation, ``--model_role
  teacher``), never copied from the student.
* ``"running"`` (this project's earlier behaviour): the teacher always runs in evaluation
  mode with running statistics *copied* from the student at every update -- statistics the
  student gathered on its masked views under newer weights. Measured on a mini warm-up
  model over 200 unlabelled clips (issue 20's report), CTC pseudo-label WER 64.6 (batch)
  against 70.7 (statistics of masked student views); on another warm-up, against the
  teacher's own stored statistics, 53.9 against 54.6 (``usr2_pl_quality``,
  ``egs2/mini_lrs3/usr2/results/pl_quality_warmup/``).

State that must survive ``--resume`` -- the number of updates, the schedule length and
whether the teacher has been initialised from the student -- lives in buffers, so it is
part of the model's ``state_dict`` and of every ESPnet checkpoint. The training step reads
them on the host (:attr:`~EMATeacher.steps_done`, :attr:`~EMATeacher.schedule_steps`,
:attr:`~EMATeacher.is_initialized`) from a copy that is read from the buffer again only when
the buffer has changed outside this class (a checkpoint loaded, ``.fill_``, a move to
another device): on a GPU a read is a wait for the device, and the step would otherwise wait
several times for three numbers the host already knows (``bench/count_host_syncs.py``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BATCH_NORM_MODES = ("batch", "running")


def cosine_momentum(step: int, total_steps: int, start: float, end: float) -> float:
    """mu(step): ``start`` at step 0, ``end`` at ``total_steps`` and after, cosine in between."""
    if total_steps <= 0:
        return start
    progress = min(max(step, 0) / total_steps, 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


class EMATeacher(nn.Module):
    """Exponential-moving-average copy of a student network.

    ``student`` is deep-copied once so the teacher has the student's interface (for
    :class:`ESPnetUSR2Model`: ``encode``, ``ctc_head``, ``decoder``); call
    :meth:`sync_from` to restart from the student's current weights, and :meth:`update`
    after each optimiser step.
    """

    def __init__(
        self,
        student: nn.Module,
        momentum_start: float = 0.998,
        momentum_end: float = 1.0,
        total_steps: int = 0,
        validate: bool = True,
        batch_norm: str = "batch",
    ):
        """``validate``: also report the teacher's validation metrics (``*_teacher`` stats);
        ``batch_norm``: ``"batch"`` or ``"running"`` (module docstring)."""
        super().__init__()
        for name, value in (("momentum_start", momentum_start), ("momentum_end", momentum_end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"teacher {name} must be in [0, 1], got {value}")
        if momentum_end < momentum_start:
            raise ValueError(f"teacher momentum_end ({momentum_end}) must be >= momentum_start ({momentum_start})")
        if total_steps < 0:
            raise ValueError(f"teacher total_steps must be >= 0 (0: set by the trainer), got {total_steps}")
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.momentum_start = momentum_start
        self.momentum_end = momentum_end
        self.validate = bool(validate)
        self.batch_norm = batch_norm
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.tensor(total_steps, dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._host_values: dict = {}  # buffer name -> (buffer, its version, value)
        self.train(self.training)

    def train(self, mode: bool = True) -> "EMATeacher":
        """Dropout and drop path stay off whatever the enclosing model does; with
        ``batch_norm: batch`` the BatchNorm layers follow ``mode`` (batch statistics while
        training), with ``running`` they stay in eval mode too."""
        super().train(mode)
        set_teacher_mode(self.model, self.batch_norm, mode)
        return self

    def _host_value(self, name: str) -> int:
        """A state buffer's value on the host, read from the buffer only when it changed since."""
        buffer = getattr(self, name)
        if buffer.is_inference():  # made under torch.inference_mode: no version counter to key on
            return int(buffer.item())
        known = self._host_values.get(name)
        if known is None or known[0] is not buffer or known[1] != buffer._version:
            known = (buffer, buffer._version, int(buffer.item()))
            self._host_values[name] = known
        return known[2]

    def _set_host_value(self, name: str, value: int) -> None:
        """Record the value this class just wrote into a state buffer (no read)."""
        buffer = getattr(self, name)
        if not buffer.is_inference():
            self._host_values[name] = (buffer, buffer._version, value)

    @property
    def steps_done(self) -> int:
        """The number of EMA updates so far (``num_updates``)."""
        return self._host_value("num_updates")

    @property
    def schedule_steps(self) -> int:
        """The momentum schedule's length (``total_steps``; 0 until the trainer sets it)."""
        return self._host_value("total_steps")

    @property
    def is_initialized(self) -> bool:
        """Whether the teacher was initialised from the student (``initialized``)."""
        return bool(self._host_value("initialized"))

    def current_momentum(self) -> float:
        return cosine_momentum(self.steps_done, self.schedule_steps, self.momentum_start, self.momentum_end)

    @torch.no_grad()
    def sync_from(self, student: nn.Module) -> None:
        """Copy the student's weights and buffers into the teacher (start of training)."""
        for (_, p_t), (_, p_s) in _paired(self.model.named_parameters(), _own(student.named_parameters())):
            p_t.copy_(p_s.detach())
        for (_, b_t), (_, b_s) in _paired(self.model.named_buffers(), _own(student.named_buffers())):
            b_t.copy_(b_s)
        self.initialized.fill_(True)
        self._set_host_value("initialized", 1)

    @torch.no_grad()
    def update(self, student: nn.Module) -> float:
        """One EMA step towards the student; returns the momentum used."""
        if not self.is_initialized:
            raise RuntimeError("the EMA teacher was never initialised from the student (call sync_from first)")
        mu = self.current_momentum()
        pairs = list(_paired(self.model.named_parameters(), _own(student.named_parameters())))
        teacher_params = [p_t for (_, p_t), _ in pairs]
        student_params = [p_s.detach() for _, (_, p_s) in pairs]
        torch._foreach_mul_(teacher_params, mu)
        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - mu)
        if self.batch_norm == "running":
            for (_, b_t), (_, b_s) in _paired(self.model.named_buffers(), _own(student.named_buffers())):
                b_t.copy_(b_s)
        steps = self.steps_done
        self.num_updates += 1
        self._set_host_value("num_updates", steps + 1)
        return mu


# Parts of the model the teacher does not mirror: the teacher itself, and the unlabelled
# objective (it may own extra heads used only for the student's unlabelled losses).
NOT_MIRRORED = ("teacher.", "unlabelled_objective.")


def _own(named_tensors):
    """The student's tensors that the teacher mirrors."""
    return [(n, t) for n, t in named_tensors if not n.startswith(NOT_MIRRORED)]


def _paired(teacher_items, student_items):
    """Zip named tensors of teacher and student, checking that the names line up."""
    teacher_items, student_items = list(teacher_items), list(student_items)
    if [n for n, _ in teacher_items] != [n for n, _ in student_items]:
        raise RuntimeError("teacher and student structures differ; was the student modified after the copy?")
    return zip(teacher_items, student_items)


def set_teacher_mode(network: nn.Module, batch_norm: str, training: bool = True) -> None:
    """Put ``network`` in the EMA teacher's mode: dropout and drop path off, BatchNorm on each
    batch's statistics while ``training`` with ``batch_norm: batch`` (USR's teacher), else on
    the stored running statistics."""
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"teacher batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
    network.eval()
    if training and batch_norm == "batch":
        for module in network.modules():
            if isinstance(module, _BatchNorm):
                module.train()


class EMATeacherMixin:
    """The one teacher-initialisation and update path of every model with an EMA teacher.

    Recognition (:class:`~espnet_usr2.model.espnet_model.ESPnetUSR2Model`, whose teacher
    mirrors the whole network) and pre-training (whose teacher mirrors only the encoder stack)
    both mix this in; they differ only in :meth:`teacher_mirror`. The model sets
    ``self.teacher`` (an :class:`EMATeacher` or None) in its constructor.
    """

    def teacher_mirror(self) -> nn.Module:
        """The part of this model that the teacher copies (default: all of it)."""
        return self

    def ensure_teacher_initialized(self) -> None:
        """Start the teacher from the student's weights at the first training step.

        Done lazily (not at construction) so that weights loaded after the model is built
        -- ``--init_param`` from a self-supervised checkpoint -- reach the teacher too; on
        ``--resume`` the flag comes back from the checkpoint and the teacher is kept.
        """
        if not self.teacher.is_initialized:
            self.teacher.sync_from(self.teacher_mirror())

    def update_teacher(self) -> None:
        """EMA step of the teacher (called after every optimiser step by USR2Trainer)."""
        if self.teacher is not None and self.teacher.is_initialized:
            self.teacher.update(self.teacher_mirror())
