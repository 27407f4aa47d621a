"""Per-modality losses on unlabelled data (USR 2.0 paper, eqs. 5, 6, 14-16).

For one student modality m (encoder output of the masked view), with teacher PLs
``y_ctc`` (collapsed CTC, sequence mask M_ctc of eq. 13) and ``y_att`` (token mask M_att
of eq. 11):

* **CTC-driven mode** (eq. 5), decoder input ``[sos] + y_ctc``:
  ``L_ctc = CTC(ctc_m, y_ctc)`` under M_ctc;
  ``L_att = (1 - beta) CE_ls(dec_m, y_att) + beta CE(dec_m, y_ctc + [eos])`` -- the
  y_att term under M_att (label smoothing), the y_ctc term under M_ctc (plain CE by
  default: the method writes CE, not CE_ls, for it; ``ctc_target_lsm_weight`` smooths it).
* **AR mode** (eq. 6), decoder input ``[sos] + y_att[:-1]``:
  ``L_att = CE_ls(dec_m, y_att)`` under M_att;
  ``L_ctc = (1 - alpha) CTC(ctc_m, y_ctc) + alpha CTC(ctc_m, y_att without eos)``.
  The token mask cannot be applied token by token inside a CTC loss, so the y_att CTC
  term uses a sequence mask derived from the token confidences (``att_ctc_mask``):
  ``"mean"`` (default) keeps the sequence iff ``exp(mean log max p_dec) >= att_ctc_threshold``
  (eq. 12 applied to the attention tokens), ``"all"`` iff every token passes M_att,
  ``"none"`` keeps all. Blank/sos/eos ids in y_att are removed from that CTC target
  (a CTC target may not contain the blank).
* **USR v1** (eqs. 14-15), decoupled: frame-wise cross-entropy of the CTC head on the
  frame-level PLs under the frame mask (no collapse), ``CE_ls(dec_m, y_att)`` on AR PLs.
* eq. 16: ``L_unl^m = lambda L_ctc^m + (1 - lambda) L_att^m``.

Normalisation (same as the supervised loss in ``espnet_model.py``): every term is a sum
over the kept units (tokens, frames, or whole sequences for CTC) divided by the batch
size B -- masked units count in B but add nothing, exactly like ESPnet's
``LabelSmoothingLoss(normalize_length=False)`` (computed on the device:
``model/token_losses.py``) and ``CTC`` (sum / B). With
``normalize_length=True`` the cross-entropy terms are divided by the number of kept
tokens instead (like ESPnet's option); the CTC terms stay sum / B as in ESPnet's CTC.

The ``*_loss_terms`` functions take precomputed logits, so the objectives
(``semi/objective.py``) can run the stacked modalities through the decoder in one pass,
and return ``(L_ctc, L_att, detailed terms)``; :func:`unlabelled_loss` (eq. 16) mixes
them -- the only place that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet_usr2.model.token_losses import LabelSmoothingCrossEntropy
from espnet_usr2.semi.confidence import check_choice, check_unit_interval, length_mask, token_sequence_confidence
from espnet_usr2.semi.ctc_pseudo_labels import CTCPseudoLabels, FramePseudoLabels
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels, append_eos, prepend_sos

ATT_CTC_MASKS = ("mean", "all", "none")
Stats = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class PLLossConfig:
    """Weights of eqs. 5, 6 and 16; defaults are the paper's (Sec. 4.3, Appendix B.2)."""

    ctc_weight: float = 0.1  # lambda (eq. 16)
    beta: float = 0.5  # weight of CE(dec, y_ctc + [eos]) in CTC-driven mode (eq. 5)
    alpha: float = 0.5  # weight of CTC(y_att) in AR mode (eq. 6)
    lsm_weight: float = 0.1  # label smoothing of CE_ls
    normalize_length: bool = False  # CE terms: sum / B (False, as the model) or sum / kept tokens
    att_ctc_mask: str = "mean"  # how M_att masks CTC(y_att) in AR mode
    att_ctc_threshold: float = 0.8  # tau for att_ctc_mask="mean"
    frame_lsm_weight: float = 0.0  # label smoothing of USR v1 frame-wise CE
    # label smoothing of CE(dec, y_ctc + [eos]) in CTC-driven mode (eq. 5). 0.0: plain CE, as
    # eq. 5 writes it (CE, not CE_ls); 0.1 smooths it like every other attention loss
    # (lsm_weight) -- an open reading, decided by experiment (issue 12)
    ctc_target_lsm_weight: float = 0.0

    def __post_init__(self):
        for name in ("ctc_weight", "beta", "alpha", "att_ctc_threshold"):
            check_unit_interval(name, getattr(self, name))
        for name in ("lsm_weight", "frame_lsm_weight", "ctc_target_lsm_weight"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        check_choice("att_ctc_mask", self.att_ctc_mask, ATT_CTC_MASKS)


# ---------------------------------------------------------------- masked building blocks
def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    keep: torch.Tensor,
    smoothing: float,
    normalize_length: bool = False,
    ignore_id: int = -1,
) -> torch.Tensor:
    """Cross-entropy over kept positions: sum / B (or / #kept with ``normalize_length``).

    Args:
        logits: (B, L, V); targets: (B, L) ids, ``ignore_id`` padded; keep: (B, L) bool.
        smoothing: 0 gives plain CE; > 0 ESPnet's label smoothing (as ``criterion_att``).
    """
    if logits.size(1) != targets.size(1):
        raise ValueError(f"logits cover {logits.size(1)} positions but targets {targets.size(1)}")
    kept = keep & (targets != ignore_id)
    targets = targets.masked_fill(~kept, ignore_id)
    criterion = LabelSmoothingCrossEntropy(logits.size(-1), ignore_id, smoothing, normalize_length=False)
    loss = criterion(logits.float(), targets)  # sum over kept positions / B
    if normalize_length:
        loss = loss * logits.size(0) / kept.sum().clamp(min=1)
    return loss


def ctc_loss_per_sequence(
    ctc_logits: torch.Tensor,
    enc_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank_id: int = 0,
) -> torch.Tensor:
    """(B,) CTC negative log-likelihood per sequence (``zero_infinity``: infeasible -> 0)."""
    log_probs = ctc_logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, V)
    targets = targets.masked_fill(~length_mask(target_lengths, targets.size(1)), blank_id)
    if targets.size(1) == 0:  # all targets empty: CTC needs a (B, >=1) tensor
        targets = targets.new_full((targets.size(0), 1), blank_id)
    return F.ctc_loss(
        log_probs, targets, enc_lengths, target_lengths, blank=blank_id, reduction="none", zero_infinity=True
    )


def masked_ctc_loss(
    ctc_logits: torch.Tensor,
    enc_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    keep: torch.Tensor,
    blank_id: int = 0,
) -> torch.Tensor:
    """Sum of the per-sequence CTC losses of kept sequences / B (like ESPnet's CTC)."""
    per_seq = ctc_loss_per_sequence(ctc_logits, enc_lengths, targets, target_lengths, blank_id)
    return torch.where(keep, per_seq, torch.zeros_like(per_seq)).sum() / ctc_logits.size(0)


def strip_special(
    tokens: torch.Tensor, lengths: torch.Tensor, drop_ids, ignore_id: int = -1
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Remove ``drop_ids`` (e.g. eos, sos, blank) from each row and re-pack to the left."""
    valid = length_mask(lengths, tokens.size(1))
    keep = valid.clone()
    for i in drop_ids:
        keep &= tokens != i
    new_lengths = keep.sum(dim=1)
    out = tokens.new_full((tokens.size(0), int(new_lengths.max()) if tokens.size(0) else 0), ignore_id)
    slot = keep.long().cumsum(dim=1) - 1
    rows = torch.arange(tokens.size(0), device=tokens.device)[:, None].expand_as(slot)
    out[rows[keep], slot[keep]] = tokens[keep]
    return out, new_lengths


def ar_ctc_sequence_mask(att: AttentionPseudoLabels, policy: str, threshold: float) -> torch.Tensor:
    """(B,) bool: which AR PLs may supervise the CTC head (see ``att_ctc_mask``)."""
    check_choice("att_ctc_mask", policy, ATT_CTC_MASKS)
    if policy == "none":
        return torch.ones_like(att.lengths, dtype=torch.bool)
    if policy == "all":
        return att.mask.sum(dim=1) == att.lengths
    return token_sequence_confidence(att.confidence, att.lengths) >= threshold


def _att_targets(att: AttentionPseudoLabels, width: int, ignore_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """y_att tokens and mask widened to the decoder's ``width`` (an all-empty batch still
    runs the decoder on ``[sos]``, one position, which then has no target)."""
    extra = width - att.tokens.size(1)
    if extra <= 0:
        return att.tokens, att.mask
    return F.pad(att.tokens, (0, extra), value=ignore_id), F.pad(att.mask, (0, extra), value=False)


# ---------------------------------------------------------------- logit-level losses (one modality)
def ctc_driven_loss_terms(
    ctc_logits: torch.Tensor,
    enc_lengths: torch.Tensor,
    dec_logits: torch.Tensor,
    ctc_pl: CTCPseudoLabels,
    att_pl: AttentionPseudoLabels,
    eos: int,
    cfg: PLLossConfig = PLLossConfig(),
    blank_id: int = 0,
    ignore_id: int = -1,
) -> Tuple[torch.Tensor, torch.Tensor, Stats]:
    """Eq. 5 before the lambda mix: (L_ctc, L_att, detailed terms)."""
    seq_keep = ctc_pl.mask
    loss_ctc = masked_ctc_loss(ctc_logits, enc_lengths, ctc_pl.tokens, ctc_pl.lengths, seq_keep, blank_id)
    att_term = masked_cross_entropy(
        dec_logits, att_pl.tokens, att_pl.mask, cfg.lsm_weight, cfg.normalize_length, ignore_id
    )
    ctc_targets = append_eos(ctc_pl.tokens, ctc_pl.lengths, eos, ignore_id)
    ctc_term = masked_cross_entropy(
        dec_logits,
        ctc_targets,
        seq_keep[:, None].expand_as(ctc_targets),
        cfg.ctc_target_lsm_weight,
        cfg.normalize_length,
        ignore_id,
    )
    loss_att = (1.0 - cfg.beta) * att_term + cfg.beta * ctc_term
    return loss_ctc, loss_att, {"loss_unl_att_yatt": att_term, "loss_unl_att_yctc": ctc_term}


def ar_mode_loss_terms(
    ctc_logits: torch.Tensor,
    enc_lengths: torch.Tensor,
    dec_logits: torch.Tensor,
    ctc_pl: CTCPseudoLabels,
    att_pl: AttentionPseudoLabels,
    sos: int,
    eos: int,
    cfg: PLLossConfig = PLLossConfig(),
    blank_id: int = 0,
    ignore_id: int = -1,
) -> Tuple[torch.Tensor, torch.Tensor, Stats]:
    """Eq. 6 before the lambda mix: (L_ctc, L_att, detailed terms)."""
    att_targets, att_mask = _att_targets(att_pl, dec_logits.size(1), ignore_id)
    loss_att = masked_cross_entropy(dec_logits, att_targets, att_mask, cfg.lsm_weight, cfg.normalize_length, ignore_id)
    ctc_term = masked_ctc_loss(ctc_logits, enc_lengths, ctc_pl.tokens, ctc_pl.lengths, ctc_pl.mask, blank_id)
    att_tokens, att_lengths = strip_special(att_pl.tokens, att_pl.lengths, (eos, sos, blank_id), ignore_id)
    att_keep = ar_ctc_sequence_mask(att_pl, cfg.att_ctc_mask, cfg.att_ctc_threshold)
    att_term = masked_ctc_loss(ctc_logits, enc_lengths, att_tokens, att_lengths, att_keep, blank_id)
    loss_ctc = (1.0 - cfg.alpha) * ctc_term + cfg.alpha * att_term
    return loss_ctc, loss_att, {"loss_unl_ctc_yctc": ctc_term, "loss_unl_ctc_yatt": att_term}


def usr_v1_loss_terms(
    ctc_logits: torch.Tensor,
    frame_pl: FramePseudoLabels,
    dec_logits: torch.Tensor,
    att_pl: AttentionPseudoLabels,
    cfg: PLLossConfig = PLLossConfig(),
    ignore_id: int = -1,
) -> Tuple[torch.Tensor, torch.Tensor, Stats]:
    """USR v1 (eqs. 14-15) before the lambda mix: (L_ctc, L_att, no detailed terms).

    L_ctc is the frame-wise CE of the CTC head on frame PLs (frame mask), L_att the CE_ls of
    the decoder on AR PLs (token mask), decoder input ``[sos] + y_att[:-1]``.
    """
    if ctc_logits.size(1) != frame_pl.labels.size(1):
        raise ValueError(f"student has {ctc_logits.size(1)} frames, frame PLs {frame_pl.labels.size(1)}")
    loss_ctc = masked_cross_entropy(
        ctc_logits, frame_pl.labels, frame_pl.mask, cfg.frame_lsm_weight, cfg.normalize_length, ignore_id
    )
    att_targets, att_mask = _att_targets(att_pl, dec_logits.size(1), ignore_id)
    loss_att = masked_cross_entropy(dec_logits, att_targets, att_mask, cfg.lsm_weight, cfg.normalize_length, ignore_id)
    return loss_ctc, loss_att, {}


def unlabelled_loss(cfg: PLLossConfig, loss_ctc: torch.Tensor, loss_att: torch.Tensor) -> Tuple[torch.Tensor, Stats]:
    """Eq. 16, ``L_unl^m = lambda L_ctc^m + (1 - lambda) L_att^m``, and its logged terms."""
    loss = cfg.ctc_weight * loss_ctc + (1.0 - cfg.ctc_weight) * loss_att
    return loss, {"loss_unl": loss.detach(), "loss_unl_ctc": loss_ctc.detach(), "loss_unl_att": loss_att.detach()}


# ---------------------------------------------------------------- decoder inputs
def ctc_driven_decoder_input(ctc_pl: CTCPseudoLabels, sos: int, eos: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[sos] + y_ctc``: (B, L+1) (padded with eos, as ESPnet) and lengths L+1."""
    return prepend_sos(ctc_pl.tokens, ctc_pl.lengths, sos, pad=eos)


def ar_decoder_input(att_pl: AttentionPseudoLabels, sos: int, eos: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[sos] + y_att[:-1]``: (B, L_att) and lengths L_att (targets are ``y_att`` itself)."""
    ys_in, _ = prepend_sos(att_pl.tokens, att_pl.lengths - 1, sos, pad=eos)
    ys_in = ys_in[:, : att_pl.tokens.size(1)] if att_pl.tokens.size(1) > 0 else ys_in
    return ys_in, att_pl.lengths.clamp(min=1)


# ---------------------------------------------------------------- student logits
def ctc_projection(ctc_head: nn.Module) -> nn.Linear:
    """The output projection of an ESPnet ``CTC`` module (its ``ctc_lo``), or the linear itself."""
    return getattr(ctc_head, "ctc_lo", ctc_head)


def ctc_logits_of(ctc_head: nn.Module, enc: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) of an ESPnet ``CTC`` module (its ``ctc_lo``, with its dropout) or a plain linear."""
    linear = ctc_projection(ctc_head)
    p = float(getattr(ctc_head, "dropout_rate", 0.0))
    return linear(F.dropout(enc, p=p, training=ctc_head.training) if p > 0 else enc)
