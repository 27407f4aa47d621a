"""CTC pseudo-labels of the teacher (USR 2.0 paper, Section 4.1, eq. 3; USR v1 eq. 1).

USR 2.0 (eq. 3): greedy argmax of the teacher's (AV) CTC posteriors per frame, then the
CTC post-processing B(.) -- merge repeated labels, drop blanks -- giving token-level PLs
``y_ctc`` of length L (not T). Their sequence-level confidence is eq. 12 (see
:mod:`espnet_usr2.semi.confidence`).

USR v1 (eq. 1): the frame-level greedy labels themselves (no collapse), one per frame,
filtered frame by frame (eq. 11).

Token PLs are padded with ``ignore_id`` (-1), like ESPnet's ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch

from espnet_usr2.semi.confidence import (
    CTC_AVERAGES,
    ConfidenceConfig,
    ctc_sequence_confidence,
    frame_confidence_mask,
    length_mask,
    sequence_confidence_mask,
)

DEFAULT_CONFIDENCE = ConfidenceConfig()  # frozen: one shared default is safe


@dataclass
class CTCPseudoLabels:
    """Collapsed CTC PLs (USR 2.0) with their sequence confidence and mask.

    tokens: (B, Lmax) long, ``ignore_id`` padded (Lmax may be 0 when all are empty).
    lengths: (B,) long, L per sequence.
    confidence: (B,) eq. 12 confidence in probability space.
    mask: (B,) bool, eq. 13 (keep the sequence).
    mask_by_average: the eq. 13 mask under each reading of the eq. 12 average
        (``{"all": (B,), "emitting": (B,)}``, same threshold and all-blank policy), so that
        one teacher pass logs what either reading would keep; ``mask`` is the configured one.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    confidence: torch.Tensor
    mask: torch.Tensor
    mask_by_average: Dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FramePseudoLabels:
    """USR v1 frame-level CTC PLs: labels (B, T) (``ignore_id`` at padding), max posterior (B, T), mask (B, T)."""

    labels: torch.Tensor
    confidence: torch.Tensor
    mask: torch.Tensor


def greedy_ctc_frames(
    log_probs: torch.Tensor, lengths: torch.Tensor, ignore_id: int = -1
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-frame argmax of CTC log-posteriors (B, T, V).

    Returns the greedy labels (B, T) with ``ignore_id`` at padded frames and the log of
    the max posterior (B, T) (0 at padded frames).
    """
    max_logp, ids = log_probs.max(dim=-1)
    valid = length_mask(lengths, log_probs.size(1))
    return ids.masked_fill(~valid, ignore_id), max_logp.masked_fill(~valid, 0.0)


def ctc_collapse(
    frame_ids: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0, ignore_id: int = -1
) -> Tuple[torch.Tensor, torch.Tensor]:
    """B(.): merge repeats, then drop blanks, per sequence; vectorised over the batch.

    Args:
        frame_ids: (B, T) greedy labels; frames at or beyond ``lengths`` are ignored.
        lengths: (B,) valid frames.
    Returns:
        tokens (B, Lmax) padded with ``ignore_id`` and their lengths (B,).
        ``a a <b> a`` -> ``a a`` (a blank separates two real repetitions).
    """
    batch, n_frames = frame_ids.shape
    valid = length_mask(lengths, n_frames)
    # a frame starts a new label iff it differs from the previous frame (merge repeats)
    new_run = torch.ones_like(valid)
    new_run[:, 1:] = frame_ids[:, 1:] != frame_ids[:, :-1]
    keep = valid & new_run & (frame_ids != blank_id)
    out_lengths = keep.sum(dim=1)
    l_max = int(out_lengths.max()) if batch > 0 else 0
    tokens = frame_ids.new_full((batch, l_max), ignore_id)
    if l_max > 0:
        # target slot of each kept frame = number of kept frames before it
        slot = keep.long().cumsum(dim=1) - 1
        rows = torch.arange(batch, device=frame_ids.device)[:, None].expand_as(slot)
        tokens[rows[keep], slot[keep]] = frame_ids[keep]
    return tokens, out_lengths


@torch.no_grad()
def ctc_pseudo_labels(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    config: ConfidenceConfig = DEFAULT_CONFIDENCE,
    blank_id: int = 0,
    ignore_id: int = -1,
) -> CTCPseudoLabels:
    """USR 2.0 CTC PLs (eq. 3) with the sequence mask of eqs. 12-13.

    Args:
        log_probs: (B, T, V) teacher CTC log-posteriors (``ctc_head.log_softmax(enc)``).
        lengths: (B,) encoder lengths.
    """
    ids, max_logp = greedy_ctc_frames(log_probs, lengths, ignore_id)
    tokens, token_lengths = ctc_collapse(ids, lengths, blank_id, ignore_id)
    # both readings of eq. 12 cost a masked mean each; the configured one filters the PLs
    confidences = {
        average: ctc_sequence_confidence(max_logp, ids, lengths, average, config.all_blank, blank_id)
        for average in CTC_AVERAGES
    }
    masks = {average: sequence_confidence_mask(conf, config.threshold) for average, conf in confidences.items()}
    return CTCPseudoLabels(tokens, token_lengths, confidences[config.ctc_average], masks[config.ctc_average], masks)


@torch.no_grad()
def frame_pseudo_labels(
    log_probs: torch.Tensor, lengths: torch.Tensor, threshold: float = 0.8, ignore_id: int = -1
) -> FramePseudoLabels:
    """USR v1 frame-level CTC PLs (eq. 1, no collapse) with the frame-wise mask of eq. 11."""
    ids, max_logp = greedy_ctc_frames(log_probs, lengths, ignore_id)
    max_prob = max_logp.exp().masked_fill(~length_mask(lengths, log_probs.size(1)), 0.0)
    return FramePseudoLabels(ids, max_prob, frame_confidence_mask(max_prob, lengths, threshold))
