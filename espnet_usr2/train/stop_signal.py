"""A clean stop on a cluster's signal: finish the step, write a resume point, exit with a known code.

Clusters preempt with SIGTERM and warn before a time limit with a signal of the user's choice
(Slurm: ``--signal=USR1@120``). With ``--stop_signals SIGTERM,SIGUSR1`` the trainer turns such a
signal into a request; at the next optimiser-step boundary every rank agrees on it (one
all-reduce of a flag, so a signal delivered to a single rank stops them all at the same step),
rank 0 writes a resume point (:mod:`espnet_usr2.train.checkpoints`), and every process exits
with :data:`PREEMPTED_EXIT_CODE` -- 75, ``EX_TEMPFAIL`` of sysexits.h, "try again later" -- on
which ``utils/run_slurm.sh --requeue true`` requeues the job.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Dict, List, Sequence

import torch

PREEMPTED_EXIT_CODE = 75


class TrainingPreempted(SystemExit):
    """Raised once the resume point is written; exits the process with PREEMPTED_EXIT_CODE."""

    def __init__(self, message: str):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def parse_signals(spec: str) -> List[signal.Signals]:
    """``"SIGTERM,SIGUSR1"`` (or ``"TERM USR1"``) -> the signals; ``""``/``"none"`` -> none."""
    names = [n for n in spec.replace(",", " ").split() if n.lower() != "none"]
    signals = []
    for name in names:
        full = name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"
        try:
            signals.append(signal.Signals[full])
        except KeyError:
            raise ValueError(
                f"--stop_signals: {name!r} is not a signal of this system (e.g. SIGTERM, SIGUSR1)"
            ) from None
    return signals


class StopRequest:
    """Holds whether one of ``signals`` has arrived; installed for the duration of a ``with`` block."""

    def __init__(self, signals: Sequence[signal.Signals]):
        self.signals = list(signals)
        self.received: List[str] = []
        self._previous: Dict[signal.Signals, object] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.signals)

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        logging.warning(f"{name} received: the run stops after this step and writes a resume point")

    def __enter__(self) -> "StopRequest":
        if self.signals and threading.current_thread() is not threading.main_thread():
            logging.warning("--stop_signals: not the main thread, signals are not caught")
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self, distributed: bool, device: str) -> bool:
        """Whether any rank has a request (an all-reduce under DDP: every rank must call this)."""
        if not distributed:
            return self.requested
        flag = torch.tensor(int(self.requested), device=device)
        torch.distributed.all_reduce(flag, torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
