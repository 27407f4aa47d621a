"""CTC-driven teacher forcing (USR 2.0 paper, Section 4.1, eq. 4).

The teacher decoder is fed the collapsed CTC pseudo-label with ``<sos>`` prepended,
``[sos] + y_ctc`` (length L + 1), in ONE parallel, causally-masked forward pass.
Position l's argmax is the attention PL

    y_att[l] = argmax_c p_dec(c | sos, y_ctc[<l], x),   l = 1 .. L + 1,

so ``y_att`` has L + 1 tokens, aligned position by position with ``y_ctc + [eos]`` (the
last one is ideally ``<eos>``). No autoregressive loop. An empty ``y_ctc`` (L = 0)
yields one target, the decoder's prediction after ``<sos>`` alone.

The token-wise confidence is the max softmax probability at each position; the mask of
eq. 11 keeps token l iff it is ``>= tau``. The raw argmax is kept as is (it may be any
vocabulary id, including ``<eos>`` before the last position): the student is trained to
reproduce the teacher's conditional prediction for the same prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from espnet_usr2.semi.confidence import check_unit_interval, length_mask, token_confidence_mask


@dataclass
class AttentionPseudoLabels:
    """Attention-based PLs (teacher forcing or AR greedy).

    tokens: (B, Lmax) long, ``ignore_id`` padded.
    lengths: (B,) long.
    confidence: (B, Lmax) max softmax probability per token, 0 at padding.
    mask: (B, Lmax) bool, token-wise confidence mask (eq. 11), False at padding.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    confidence: torch.Tensor
    mask: torch.Tensor


def prepend_sos(tokens: torch.Tensor, lengths: torch.Tensor, sos: int, pad: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[sos] + tokens[:lengths]`` per row: (B, Lmax + 1) padded with ``pad``, lengths + 1.

    The decoder ignores padded inputs through its causal/length mask; ESPnet pads the
    decoder input with ``<eos>``, so callers pass ``pad=eos``.
    """
    body = tokens.masked_fill(~length_mask(lengths, tokens.size(1)), pad)
    sos_col = tokens.new_full((tokens.size(0), 1), sos)
    return torch.cat([sos_col, body], dim=1), lengths + 1


def append_eos(tokens: torch.Tensor, lengths: torch.Tensor, eos: int, ignore_id: int = -1) -> torch.Tensor:
    """``tokens[:lengths] + [eos]`` per row: (B, Lmax + 1) padded with ``ignore_id``."""
    out = torch.cat([tokens, tokens.new_full((tokens.size(0), 1), ignore_id)], dim=1)
    out = out.masked_fill(~length_mask(lengths, out.size(1)), ignore_id)
    out[torch.arange(out.size(0), device=out.device), lengths] = eos
    return out


@torch.no_grad()
def ctc_driven_teacher_forcing(
    decoder,
    memory: torch.Tensor,
    memory_lengths: torch.Tensor,
    ctc_tokens: torch.Tensor,
    ctc_lengths: torch.Tensor,
    sos: int,
    eos: int,
    threshold: float = 0.8,
    modality: Optional[str] = "av",
    ignore_id: int = -1,
) -> AttentionPseudoLabels:
    """Attention PLs of eq. 4 from one parallel decoder pass on ``[sos] + y_ctc``.

    Args:
        decoder: ``USR2TransformerDecoder`` (teacher, eval mode), called as
            ``decoder(memory, memory_lengths, ys_in, ys_in_lens, modality=modality)``.
        memory: (B, T, d) teacher encoder output (AV view); memory_lengths (B,).
        ctc_tokens: (B, L) collapsed CTC PLs, ``ignore_id`` padded; ctc_lengths (B,).
        threshold: tau of the token-wise mask.
    Returns:
        ``AttentionPseudoLabels`` with tokens (B, Lmax + 1), lengths ``ctc_lengths + 1``.
    """
    check_unit_interval("threshold", threshold)
    ys_in, ys_in_lens = prepend_sos(ctc_tokens, ctc_lengths, sos, pad=eos)
    logits, _ = decoder(memory, memory_lengths, ys_in, ys_in_lens, modality=modality)
    max_prob, best = logits.float().softmax(dim=-1).max(dim=-1)
    valid = length_mask(ys_in_lens, ys_in.size(1))
    tokens = best.masked_fill(~valid, ignore_id)
    confidence = max_prob.masked_fill(~valid, 0.0)
    return AttentionPseudoLabels(
        tokens, ys_in_lens, confidence, token_confidence_mask(confidence, ys_in_lens, threshold)
    )
