"""Autoregressive greedy attention pseudo-labels (USR eq. 1; USR 2.0 AR mode, Section 4.2).

The teacher decoder decodes greedily, one token per step, conditioning on its own past
outputs: ``y_att[l] = argmax_c p_dec(c | sos, y_att[<l], x)``. Used in AR mode of
USR 2.0 (eq. 6) and every step by USR v1.

Batched: all sequences advance together; a sequence stops at its first ``<eos>`` (kept
in the PL) or at its step limit (no ``<eos>`` then). The limit is
``floor(T_b * max_len_ratio)`` for a sequence with T_b encoder frames (``limit_over:
utterance``, the default), at least ``min_len`` and at most ``max_len`` when given. USR's
code uses T // 5 of the *padded* batch for every sequence (``limit_over: batch``,
``max_len_ratio = 0.2``): a short clip batched with a long one may then run on for the long
one's steps when it never emits ``<eos>``.

``use_cache=True`` uses ESPnet's incremental key/value cache (``forward_one_step``);
``use_cache=False`` recomputes the full causally-masked decoder pass every step -- the
reference the cache is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask

from espnet_usr2.model.incremental import IncrementalDecoder, UnsupportedDecoderError
from espnet_usr2.semi.confidence import check_unit_interval, length_mask, token_confidence_mask
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels

LIMITS_OVER = ("utterance", "batch")


@dataclass(frozen=True)
class ARDecodingConfig:
    """Step limit of AR greedy pseudo-labelling: ``clip(floor(T * max_len_ratio), min_len, max_len)``."""

    max_len_ratio: float = 0.2
    min_len: int = 1
    max_len: Optional[int] = None
    limit_over: str = "utterance"  # T of each utterance, or of the longest in the batch (USR's code)

    def __post_init__(self):
        if self.limit_over not in LIMITS_OVER:
            raise ValueError(f"limit_over must be one of {LIMITS_OVER}, got {self.limit_over!r}")
        if not (self.max_len_ratio >= 0 and math.isfinite(self.max_len_ratio)):
            raise ValueError(f"max_len_ratio must be a finite number >= 0, got {self.max_len_ratio}")
        if self.min_len < 0:
            raise ValueError(f"min_len must be >= 0, got {self.min_len}")
        if self.max_len is not None and self.max_len < self.min_len:
            raise ValueError(f"max_len must be >= min_len ({self.min_len}), got {self.max_len}")

    def step_limits(self, memory_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) maximum number of decoding steps (tokens, ``<eos>`` included) per sequence."""
        if self.limit_over == "batch" and memory_lengths.numel():
            memory_lengths = memory_lengths.max().expand_as(memory_lengths)
        # tiny epsilon: 0.2 * 10 must give 2 like 10 // 5, whatever the float rounding
        steps = torch.floor(memory_lengths.double() * self.max_len_ratio + 1e-9).long()
        steps = steps.clamp(min=self.min_len)
        if self.max_len is not None:
            steps = steps.clamp(max=self.max_len)
        return steps


def _next_logp(decoder, ys, memory, memory_lengths, memory_mask, cache, modality, use_cache):
    """Log-probabilities (B, V) of the token after ``ys`` (B, l), and the new cache."""
    if use_cache:
        length = ys.size(1)
        tgt_mask = subsequent_mask(length, device=ys.device).unsqueeze(0).expand(ys.size(0), length, length)
        return decoder.forward_one_step(ys, tgt_mask, memory, memory_mask, cache=cache, modality=modality)
    lens = torch.full((ys.size(0),), ys.size(1), dtype=torch.long, device=ys.device)
    logits, _ = decoder(memory, memory_lengths, ys, lens, modality=modality)
    return torch.log_softmax(logits[:, -1].float(), dim=-1), None


def _incremental_stepper(decoder, memory, memory_lengths, modality) -> Optional[IncrementalDecoder]:
    """One hypothesis per utterance of the fast incremental decoder, if it supports ``decoder``."""
    try:
        return IncrementalDecoder(decoder, memory, memory_lengths, modality, hyps_per_utt=1)
    except (UnsupportedDecoderError, AttributeError, TypeError):
        return None


@torch.no_grad()
def ar_greedy_pseudo_labels(
    decoder,
    memory: torch.Tensor,
    memory_lengths: torch.Tensor,
    sos: int,
    eos: int,
    config: ARDecodingConfig = ARDecodingConfig(),
    threshold: float = 0.8,
    modality: Optional[str] = "av",
    use_cache: bool = True,
    ignore_id: int = -1,
    incremental: bool = True,
) -> AttentionPseudoLabels:
    """Batched AR greedy decoding of the teacher decoder (eval mode) into attention PLs.

    Args:
        decoder: ``USR2TransformerDecoder``.
        memory: (B, T, d) teacher encoder output; memory_lengths (B,).
        config: the step limit.
        threshold: tau of the token-wise mask (eq. 11).
        use_cache: key/value cache (fast) or full recompute per step (reference).
        incremental: with ``use_cache``, step with the decoding package's
            :class:`~espnet_usr2.model.incremental.IncrementalDecoder`, which also projects
            the memory to cross-attention keys/values once instead of at every step (about
            2x faster than ESPnet's cache); decoders it does not support fall back to
            ESPnet's ``forward_one_step`` cache.
    Returns:
        tokens (B, Lmax) with ``<eos>`` where produced, ``ignore_id`` padded; lengths
        (B,) counting the ``<eos>``; max softmax probability per token and its mask.
    """
    check_unit_interval("threshold", threshold)
    batch, device = memory.size(0), memory.device
    limits = config.step_limits(memory_lengths).to(device)
    memory_mask = length_mask(memory_lengths, memory.size(1))[:, None, :]
    ys = torch.full((batch, 1), sos, dtype=torch.long, device=device)
    finished = limits <= 0
    cache = None
    stepper = _incremental_stepper(decoder, memory, memory_lengths, modality) if use_cache and incremental else None
    tokens, confidences = [], []
    for step in range(int(limits.max()) if batch > 0 else 0):
        if bool(finished.all()):
            break
        if stepper is not None:
            logp = stepper.step(ys[:, -1]).float()
        else:
            logp, cache = _next_logp(decoder, ys, memory, memory_lengths, memory_mask, cache, modality, use_cache)
        best_logp, best = logp.max(dim=-1)
        active = ~finished
        tokens.append(best.masked_fill(~active, ignore_id))
        confidences.append(best_logp.exp().masked_fill(~active, 0.0))
        finished = finished | (best == eos) | (step + 1 >= limits)
        # finished rows keep being fed <eos>; their outputs are discarded above
        ys = torch.cat([ys, best.masked_fill(~active, eos)[:, None]], dim=1)
    if tokens:
        out, conf = torch.stack(tokens, dim=1), torch.stack(confidences, dim=1)
    else:
        out = torch.full((batch, 0), ignore_id, dtype=torch.long, device=device)
        conf = torch.zeros((batch, 0), device=device)
    lengths = (out != ignore_id).sum(dim=1)
    return AttentionPseudoLabels(out, lengths, conf, token_confidence_mask(conf, lengths, threshold))
