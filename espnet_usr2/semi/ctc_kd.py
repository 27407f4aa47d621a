"""CTC knowledge distillation with blank selection (Hilmes et al., "Analyzing the
Importance of Blank for CTC-Based Knowledge Distillation").

Frame-level KL divergence between teacher and student CTC posteriors, summed over a
selected set of frames (their eqs. 2-3):

    KD = sum_{t in S} sum_c p_tea(c|t) (log p_tea(c|t) - log p_stu(c|t)),

mixed with a CTC pseudo-label loss as ``s * KD + (1 - s) * CTC`` (their eq. 4, s = the
distillation scale; s = 1 needs no CTC term). Frame selections S (``selection``):

* ``"all"``: every valid frame;
* ``"blank_elimination"``: frames whose teacher argmax is not blank (eq. 3);
* ``"symmetric"``: non-blank frames plus ``symmetric_n`` neighbours on each side (Sec. 3.2.1);
* ``"trim"``: everything from the first to the last non-blank frame (leading and
  trailing blank runs dropped);
* ``"threshold"``: frames with teacher blank probability ``< blank_threshold`` (Sec. 3.2.2);
* ``"random"``: the non-blank frames plus ``round(random_ratio * #non-blank)`` blank
  frames drawn uniformly at random (at most all blanks) -- the paper's control, where
  "the blank positions seen during KD are selected randomly" in proportion to the
  non-blank count. Drawn from a caller-supplied ``torch.Generator`` for reproducibility.

Padding (frames >= length) is never selected. Normalisation as the other losses of this
package: sum over selected frames and classes, divided by the batch size B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from espnet_usr2.semi.confidence import check_choice, check_unit_interval, length_mask

SELECTIONS = ("all", "blank_elimination", "symmetric", "trim", "threshold", "random")


@dataclass(frozen=True)
class CTCKDConfig:
    selection: str = "symmetric"
    scale: float = 1.0  # s: s * KD + (1 - s) * CTC
    symmetric_n: int = 2  # neighbours each side (paper tried 1..5)
    blank_threshold: float = 0.9  # alpha of the threshold selection
    random_ratio: float = 1.0  # beta of the random selection

    def __post_init__(self):
        check_choice("selection", self.selection, SELECTIONS)
        check_unit_interval("scale", self.scale)
        check_unit_interval("blank_threshold", self.blank_threshold)
        if self.symmetric_n < 0 or int(self.symmetric_n) != self.symmetric_n:
            raise ValueError(f"symmetric_n must be an integer >= 0, got {self.symmetric_n}")
        if self.random_ratio < 0:
            raise ValueError(f"random_ratio must be >= 0, got {self.random_ratio}")


def non_blank_frames(teacher_log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> torch.Tensor:
    """(B, T) bool: valid frames whose teacher argmax is not blank."""
    return (teacher_log_probs.argmax(dim=-1) != blank_id) & length_mask(lengths, teacher_log_probs.size(1))


def symmetric_selection(non_blank: torch.Tensor, valid: torch.Tensor, n: int) -> torch.Tensor:
    """Non-blank frames dilated by ``n`` frames on each side, within the valid frames."""
    if n == 0:
        return non_blank & valid
    dilated = F.max_pool1d(non_blank.float()[:, None, :], kernel_size=2 * n + 1, stride=1, padding=n)[:, 0] > 0
    return dilated & valid


def trim_selection(non_blank: torch.Tensor) -> torch.Tensor:
    """Frames from the first to the last non-blank frame (none for an all-blank row)."""
    seen_from_left = non_blank.long().cumsum(dim=1) > 0
    seen_from_right = non_blank.flip(1).long().cumsum(dim=1).flip(1) > 0
    return seen_from_left & seen_from_right


def random_selection(
    non_blank: torch.Tensor, valid: torch.Tensor, ratio: float, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Non-blank frames plus ``round(ratio * #non-blank)`` random blank frames per row."""
    blank = valid & ~non_blank
    n_pick = torch.minimum(torch.round(non_blank.sum(dim=1) * ratio).long(), blank.sum(dim=1))
    scores = torch.rand(non_blank.shape, generator=generator).to(non_blank.device)
    scores = scores.masked_fill(~blank, 2.0)  # non-candidates rank last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return non_blank | (blank & (ranks < n_pick[:, None]))


def select_frames(
    teacher_log_probs: torch.Tensor,
    lengths: torch.Tensor,
    config: CTCKDConfig,
    blank_id: int = 0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(B, T) bool: the frames S that enter the KD sum under ``config.selection``."""
    valid = length_mask(lengths, teacher_log_probs.size(1))
    non_blank = non_blank_frames(teacher_log_probs, lengths, blank_id)
    sel = config.selection
    if sel == "all":
        return valid
    if sel == "blank_elimination":
        return non_blank
    if sel == "symmetric":
        return symmetric_selection(non_blank, valid, int(config.symmetric_n))
    if sel == "trim":
        return trim_selection(non_blank)
    if sel == "threshold":
        return (teacher_log_probs[..., blank_id].exp() < config.blank_threshold) & valid
    return random_selection(non_blank, valid, config.random_ratio, generator)


def ctc_kd_loss(
    student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor, selected: torch.Tensor
) -> torch.Tensor:
    """sum_{t in S} KL(p_tea(.|t) || p_stu(.|t)) / B; the teacher is a constant target."""
    teacher_log_probs = teacher_log_probs.detach().float()
    p_tea = teacher_log_probs.exp()
    # 0 * log 0 = 0: classes the teacher gives no mass contribute nothing (and no NaN)
    terms = torch.where(p_tea > 0, p_tea * (teacher_log_probs - student_log_probs.float()), torch.zeros_like(p_tea))
    kl = terms.sum(dim=-1)
    return torch.where(selected, kl, torch.zeros_like(kl)).sum() / student_log_probs.size(0)


def ctc_kd_objective(
    student_log_probs: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    lengths: torch.Tensor,
    config: CTCKDConfig = CTCKDConfig(),
    ctc_loss: Optional[torch.Tensor] = None,
    blank_id: int = 0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """``s * KD + (1 - s) * CTC``; ``ctc_loss`` (a scalar, e.g. the masked CTC PL loss) may be
    omitted only when ``scale == 1``.

    Args:
        student_log_probs / teacher_log_probs: (B, T, V) CTC log-posteriors.
        lengths: (B,) valid frames.
    """
    selected = select_frames(teacher_log_probs, lengths, config, blank_id, generator)
    kd = ctc_kd_loss(student_log_probs, teacher_log_probs, selected)
    if config.scale == 1.0:
        return kd
    if ctc_loss is None:
        raise ValueError(f"ctc_kd scale={config.scale} < 1 needs a CTC loss to mix with")
    return config.scale * kd + (1.0 - config.scale) * ctc_loss
