"""Training statistics read on the host once per logging interval, not every step.

ESPnet's trainer hands each step's statistics (losses, accuracies, pseudo-label counts, the
gradient norm: ~30 scalars) to ``SubReporter.register``, which reads every tensor with
``.item()``. On a GPU the first read makes the host wait for the whole forward pass before
it can queue the backward one -- a pipeline drain every step (issue 23 point 3).

:class:`DeferredSubReporter` keeps those tensors (detached) and reads them in one transfer
per device when something needs the numbers: the log line every ``log_interval`` steps,
TensorBoard / W&B, the end of the epoch, a resume point. Until then each deferred value
sits in ESPnet's statistics as a placeholder of the same kind (``Average`` or
``WeightedAverage``); the numbers ESPnet aggregates afterwards are the ones it would have
read itself (the same values, converted to float the same way).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.train.reporter import SubReporter, to_reported_value

Pending = Tuple[str, int, object, object]  # key, index in its list, value, weight


class DeferredSubReporter(SubReporter):
    """An ESPnet ``SubReporter`` whose tensor statistics are read on the host only by
    :meth:`resolve` (called by everything that reads them)."""

    @property
    def pending(self) -> List[Pending]:
        if "_pending" not in self.__dict__:
            self._pending: List[Pending] = []
        return self._pending

    def register(self, stats: Dict[str, object], weight: Optional[object] = None) -> None:
        weight_is_tensor = isinstance(weight, torch.Tensor)
        deferred = {k: v for k, v in stats.items() if weight_is_tensor or isinstance(v, torch.Tensor)}
        if not deferred:
            return super().register(stats, weight)
        for key, value in deferred.items():
            _check_scalar(key, value)
        plain = {k: v for k, v in stats.items() if k not in deferred}
        # one register call for the whole dict (ESPnet counts a step at its first register);
        # the placeholders are of the kind the values will be (weighted or not)
        super().register({**plain, **{k: np.nan for k in deferred}}, 0.0 if weight_is_tensor else weight)
        kept_weight = weight.detach() if weight_is_tensor else weight
        for key, value in deferred.items():
            kept = value.detach() if isinstance(value, torch.Tensor) else value
            self.pending.append((key, len(self.stats[key]) - 1, kept, kept_weight))

    def resolve(self) -> None:
        """Read every deferred value (one transfer per device) into ESPnet's statistics."""
        if not self.pending:
            return
        numbers = _to_host([entry[2] for entry in self.pending] + [entry[3] for entry in self.pending])
        n = len(self.pending)
        for i, (key, index, _, _) in enumerate(self.pending):
            value = np.nan if numbers[i] is None else numbers[i]  # ESPnet reports None as nan
            self.stats[key][index] = to_reported_value(value, numbers[n + i])
        self.pending.clear()

    def log_message(self, start: int = None, end: int = None) -> str:
        self.resolve()
        return super().log_message(start, end)

    def tensorboard_add_scalar(self, summary_writer, start: int = None):
        self.resolve()
        return super().tensorboard_add_scalar(summary_writer, start)

    def wandb_log(self, start: int = None):
        self.resolve()
        return super().wandb_log(start)

    def finished(self) -> None:
        self.resolve()
        super().finished()


def defer_reads(sub_reporter: SubReporter) -> SubReporter:
    """Make an ESPnet ``SubReporter`` (as ``Reporter.start_epoch`` builds it) a
    :class:`DeferredSubReporter` in place."""
    if type(sub_reporter) is SubReporter:
        sub_reporter.__class__ = DeferredSubReporter
    return sub_reporter


def resolve(sub_reporter: SubReporter) -> None:
    """Read a sub-reporter's deferred values, if it has any (any ``SubReporter``)."""
    if isinstance(sub_reporter, DeferredSubReporter):
        sub_reporter.resolve()


def _check_scalar(key: str, value: object) -> None:
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise ValueError(f"statistic {key!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")


def _to_host(values: List[object]) -> List[Optional[float]]:
    """Python numbers of ``values`` (tensors, numbers or None): the tensors of each device
    stacked and copied to the host at once."""
    numbers: List[Optional[float]] = [None if v is None else v for v in values]
    by_device: Dict[torch.device, List[int]] = {}
    for i, value in enumerate(values):
        if isinstance(value, torch.Tensor):
            by_device.setdefault(value.device, []).append(i)
    for device, indices in by_device.items():
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        stacked = torch.stack([values[i].reshape(()).to(dtype) for i in indices])
        for i, number in zip(indices, stacked.cpu().tolist()):
            numbers[i] = number
    return numbers
