"""Mixed sampling of the pseudo-labelling mode (USR 2.0 paper, Section 4.2; Appendix C.2).

At each training step the unlabelled loss uses **AR mode** (eq. 6) with probability
p_AR, otherwise **CTC-driven mode** (eq. 5). p_AR follows a schedule over training
progress ``s = step / total_steps`` (clipped to [0, 1]):

* ``"constant"`` (the paper's default): ``p_AR = p_ar`` (0.5);
* ``"linear"``: ``p_start + (p_end - p_start) * s``;
* ``"cosine"``: ``p_start + (p_end - p_start) * (1 - cos(pi * s)) / 2``
  (both increase the AR share over training, as tried in Table 10(d)).

The draw is a pure function of ``(seed, step)``: a dedicated ``torch.Generator`` is
seeded from both (mixed through NumPy's ``SeedSequence`` so neighbouring steps are
decorrelated) and never touches the global RNG. Every DDP rank therefore picks the same
mode at the same step without communication, and a resumed run repeats the same modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from espnet_usr2.semi.confidence import check_choice, check_unit_interval

SCHEDULES = ("constant", "linear", "cosine")
AR_MODE = "ar"
CTC_DRIVEN_MODE = "ctc_driven"


@dataclass(frozen=True)
class MixedSamplingConfig:
    """p_AR schedule; ``p_ar`` is used by "constant", ``p_ar_start``/``p_ar_end`` by the others."""

    p_ar: float = 0.5
    schedule: str = "constant"
    p_ar_start: float = 0.0
    p_ar_end: float = 1.0

    def __post_init__(self):
        for name in ("p_ar", "p_ar_start", "p_ar_end"):
            check_unit_interval(name, getattr(self, name))
        check_choice("schedule", self.schedule, SCHEDULES)


def ar_probability(config: MixedSamplingConfig, step: int, total_steps: int) -> float:
    """p_AR at ``step`` of ``total_steps`` under ``config.schedule``."""
    if config.schedule == "constant":
        return config.p_ar
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0 for the {config.schedule!r} schedule, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    if config.schedule == "cosine":
        progress = (1.0 - math.cos(math.pi * progress)) / 2.0
    return config.p_ar_start + (config.p_ar_end - config.p_ar_start) * progress


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator determined by ``(seed, step)`` only."""
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}")
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def use_ar_mode(config: MixedSamplingConfig, seed: int, step: int, total_steps: int = 0) -> bool:
    """True iff the step uses AR mode: ``u < p_AR`` for ``u ~ U[0, 1)`` from :func:`step_generator`.

    p_AR = 0 never and p_AR = 1 always selects AR mode.
    """
    p = ar_probability(config, step, total_steps)
    u = float(torch.rand((), generator=step_generator(seed, step), dtype=torch.float64))
    return u < p


def sample_mode(config: MixedSamplingConfig, seed: int, step: int, total_steps: int = 0) -> str:
    """``"ar"`` or ``"ctc_driven"`` for this step."""
    return AR_MODE if use_ar_mode(config, seed, step, total_steps) else CTC_DRIVEN_MODE
