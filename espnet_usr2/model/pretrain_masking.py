"""Span masks of self-supervised pre-training (USR's pre-training; USR 2.0 paper, Appendix A).

The student of pre-training sees its input with random spans of video frames zeroed and
must predict the teacher's features there. Spans are drawn as fairseq's
``compute_mask_indices`` does for wav2vec 2.0 (static span length), per utterance over its
valid frames:

* ``num_spans = int(mask_prob * length / span_length + u)``, ``u ~ U[0, 1)`` (stochastic
  rounding), at least ``min_spans``; so ``mask_prob`` is the expected fraction of frames
  that *start* a span times the span length -- the masked fraction is somewhat lower
  because spans overlap;
* the span starts are distinct positions drawn uniformly from ``[0, length - span_length]``;
* each span covers ``span_length`` frames (clipped at the utterance's end).

Unlike fairseq, utterances keep their own number of masked frames (fairseq's
``require_same_masks`` exists only to reshape the masked frames into one tensor).

The audio mask is a frame mask too: a masked frame zeroes its ``samples_per_frame`` audio
samples (640 at 16 kHz / 25 fps), so audio and video masks are aligned to video frames.
"""
from __future__ import annotations

from typing import Optional

import torch


def span_mask(lengths: torch.Tensor, max_len: int, mask_prob: float, span_length: int, min_spans: int = 1,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, max_len) bool, True at masked frames (never at padding); see the module docstring."""
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if span_length < 1:
        raise ValueError(f"span_length must be >= 1, got {span_length}")
    if min_spans < 0:
        raise ValueError(f"min_spans must be >= 0, got {min_spans}")
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool)
    offsets = torch.arange(span_length)
    for i, length in enumerate(lengths.tolist()):
        if length <= 0:
            continue
        starts_possible = max(1, length - span_length + 1)
        u = float(torch.rand((), generator=generator))
        num_spans = max(min_spans, int(mask_prob * length / span_length + u))
        num_spans = min(num_spans, starts_possible)
        if num_spans == 0:
            continue
        starts = torch.randperm(starts_possible, generator=generator)[:num_spans]
        frames = (starts[:, None] + offsets[None, :]).reshape(-1)
        mask[i, frames[frames < length]] = True
    return mask.to(lengths.device)


def frames_to_samples(frame_mask: torch.Tensor, samples_per_frame: int, num_samples: int) -> torch.Tensor:
    """(B, T) frame mask -> (B, num_samples) sample mask: each frame covers its samples."""
    samples = frame_mask.repeat_interleave(samples_per_frame, dim=1)
    if samples.size(1) >= num_samples:
        return samples[:, :num_samples]
    return torch.nn.functional.pad(samples, (0, num_samples - samples.size(1)), value=False)

