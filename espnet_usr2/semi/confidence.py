"""Confidence filtering of pseudo-labels (USR 2.0 paper, Appendix B.2, eqs. 11-13).

USR keeps a pseudo-label only where the teacher is confident (threshold tau = 0.8):

* eq. 11, **frame-wise** (USR v1 frame-level CTC PLs): keep frame t iff
  ``max_c p_ctc(c | x, t) >= tau``;
* eq. 11, **token-wise** (attention PLs, both teacher forcing and AR): keep token l iff
  ``max_c p_dec(c | ...) >= tau``;
* eqs. 12-13, **sequence-level** (collapsed CTC PLs of USR 2.0): the CTC loss is a
  sequence loss, so a single confidence per sequence is computed as the average
  log-probability of the greedy per-frame predictions and compared in probability space,
  keep iff ``exp(mean log p) >= tau``.

Open points of the method that this module fixes (``ConfidenceConfig``):

``ctc_average`` -- what the eq. 12 average runs over:
    ``"all"`` (default): every valid (non-padded) frame, blank frames included. The
    student's CTC loss is trained on all frames (its blank frames define the alignment),
    so the teacher's certainty about blanks is part of the PL's reliability; this is
    also the literal reading of eq. 12 (a mean over t = 1..T).
    ``"emitting"``: only the frames whose greedy label is non-blank, i.e. the frames
    that emitted the kept tokens (every frame of a repeated run emits its token). This
    ignores the usually very confident blank frames and so is the stricter choice.

``all_blank`` -- what an all-blank greedy path (empty PL, L = 0) gets:
    ``"mask"`` (default): confidence 0, so it is always filtered out. An empty PL for a
    clip of the speech corpora this method trains on is almost always a teacher failure,
    and a *confident* one: a young CTC head collapses to blank everywhere with
    probabilities near 1, so with the mean over its frames such PLs pass tau = 0.8 and
    teach the student to output nothing (seen on the toy corpus: the validation loss rose
    from the first semi-supervised epoch until this default changed).
    ``"frames"``: its confidence is the mean over its (blank) frames, exactly as
    ``ctc_average="all"`` would give; it can then pass and teach "no speech" (CTC with an
    empty target, the decoder ``[sos] -> <eos>``), which suits unlabelled data with many
    non-speech clips and a mature teacher.

All comparisons use ``>=`` (a value exactly at tau is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from espnet_usr2.utils.masks import valid_mask as length_mask  # noqa: F401  (re-exported)

CTC_AVERAGES = ("all", "emitting")
ALL_BLANK_POLICIES = ("frames", "mask")


def check_unit_interval(name: str, value: float) -> None:
    """ValueError naming ``name`` unless ``0 <= value <= 1``."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def check_choice(name: str, value: str, choices) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class ConfidenceConfig:
    """Thresholds and the open choices of eqs. 11-13 (see the module docstring)."""

    threshold: float = 0.8
    ctc_average: str = "all"
    all_blank: str = "mask"

    def __post_init__(self):
        check_unit_interval("threshold", self.threshold)
        check_choice("ctc_average", self.ctc_average, CTC_AVERAGES)
        check_choice("all_blank", self.all_blank, ALL_BLANK_POLICIES)


def frame_confidence_mask(frame_max_prob: torch.Tensor, lengths: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 11 (frame-wise): (B, T) bool, keep frame t iff ``max_c p_ctc >= threshold``.

    ``frame_max_prob`` is the teacher's max CTC posterior per frame (B, T); padded frames
    are never kept.
    """
    check_unit_interval("threshold", threshold)
    return (frame_max_prob >= threshold) & length_mask(lengths, frame_max_prob.size(1))


def token_confidence_mask(token_max_prob: torch.Tensor, lengths: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 11 (token-wise): (B, L) bool, keep token l iff ``max_c p_dec >= threshold``."""
    check_unit_interval("threshold", threshold)
    return (token_max_prob >= threshold) & length_mask(lengths, token_max_prob.size(1))


def ctc_sequence_confidence(
    frame_max_logp: torch.Tensor,
    frame_ids: torch.Tensor,
    lengths: torch.Tensor,
    average: str = "all",
    all_blank: str = "mask",
    blank_id: int = 0,
) -> torch.Tensor:
    """Eq. 12: (B,) sequence confidence ``exp(mean log max_c p_ctc)`` in probability space.

    Args:
        frame_max_logp: (B, T) log of the greedy (max) posterior per frame.
        frame_ids: (B, T) greedy label per frame (blank = ``blank_id``).
        lengths: (B,) valid frames per sequence.
        average: ``"all"`` frames or only the ``"emitting"`` (non-blank) frames.
        all_blank: ``"frames"`` (mean over its blank frames) or ``"mask"`` (0).
    A sequence without any valid frame has confidence 0 (nothing to learn from).
    """
    check_choice("ctc_average", average, CTC_AVERAGES)
    check_choice("all_blank", all_blank, ALL_BLANK_POLICIES)
    valid = length_mask(lengths, frame_max_logp.size(1))
    emitting = valid & (frame_ids != blank_id)
    is_all_blank = ~emitting.any(dim=1)
    # an all-blank path has no emitting frame: fall back to its frames (policy "frames")
    use = emitting if average == "emitting" else valid
    use = torch.where(is_all_blank[:, None], valid, use)
    count = use.sum(dim=1)
    mean_logp = torch.where(use, frame_max_logp, torch.zeros_like(frame_max_logp)).sum(dim=1) / count.clamp(min=1)
    conf = mean_logp.exp()
    conf = torch.where(count > 0, conf, torch.zeros_like(conf))
    if all_blank == "mask":
        conf = torch.where(is_all_blank, torch.zeros_like(conf), conf)
    return conf


def sequence_confidence_mask(confidence: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 13: (B,) bool, keep the whole sequence iff its confidence ``>= threshold``."""
    check_unit_interval("threshold", threshold)
    return confidence >= threshold


def token_sequence_confidence(token_max_prob: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,) ``exp(mean_l log max p_dec)``: eq. 12 applied to the tokens of an attention PL.

    Used where a token-level PL feeds a sequence-level loss (AR mode: CTC on y_att), so
    the token-wise mask of eq. 11 cannot be applied token by token. An empty PL gets 0.
    """
    valid = length_mask(lengths, token_max_prob.size(1))
    logp = token_max_prob.clamp(min=torch.finfo(token_max_prob.dtype).tiny).log()
    count = valid.sum(dim=1)
    conf = (torch.where(valid, logp, torch.zeros_like(logp)).sum(dim=1) / count.clamp(min=1)).exp()
    return torch.where(count > 0, conf, torch.zeros_like(conf))
