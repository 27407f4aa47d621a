"""Span masks of self-supervised pre-training (USR's pre-training; USR 2.0 paper, Appendix A).

The student of pre-training sees its input with random spans of video frames masked and
must predict the teacher's features there. Spans are drawn as fairseq's
``compute_mask_indices`` draws them for wav2vec 2.0 with USR's arguments (``pre_learner.py``:
static span length, ``min_masks`` 1, overlap allowed, ``require_same_masks``), per utterance
over its valid frames:

* ``num_spans = int(mask_prob * length / span_length + u)``, ``u ~ U[0, 1)`` (stochastic
  rounding), at least ``min_spans``; so ``mask_prob`` is the expected fraction of frames
  that *start* a span times the span length -- the masked fraction is somewhat lower
  because spans overlap;
* the span starts are distinct positions drawn uniformly from ``[0, length - span_length - 1]``
  (fairseq's range: no span starts in the last ``span_length`` frames, so the last frame is
  never masked; an utterance too short for that many starts gets ``num_spans + 1`` positions);
* each span covers ``span_length`` frames (clipped at the utterance's end);
* ``same_count`` (fairseq's ``require_same_masks``, on in USR): every utterance of the batch
  keeps as many masked frames as the one with the fewest, a random subset of its own (so
  spans may lose frames); off, each keeps its own count.

The audio mask is a frame mask too: a masked frame zeroes its ``samples_per_frame`` audio
samples (640 at 16 kHz / 25 fps), so audio and video masks are aligned to video frames.
"""

from __future__ import annotations

from typing import Optional

import torch


def span_mask(
    lengths: torch.Tensor,
    max_len: int,
    mask_prob: float,
    span_length: int,
    min_spans: int = 1,
    same_count: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(B, max_len) bool, True at masked frames (never at padding); see the module docstring."""
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if span_length < 1:
        raise ValueError(f"span_length must be >= 1, got {span_length}")
    if min_spans < 0:
        raise ValueError(f"min_spans must be >= 0, got {min_spans}")
    rows = [_masked_frames(length, mask_prob, span_length, min_spans, generator) for length in lengths.tolist()]
    if same_count and rows:
        fewest = min(len(frames) for frames in rows)
        rows = [frames[torch.randperm(len(frames), generator=generator)[:fewest]] for frames in rows]
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool)
    for i, frames in enumerate(rows):
        mask[i, frames] = True
    return mask.to(lengths.device)


def _masked_frames(
    length: int, mask_prob: float, span_length: int, min_spans: int, generator: Optional[torch.Generator]
) -> torch.Tensor:
    """The distinct masked frames of one utterance of ``length`` valid frames (sorted)."""
    if length <= 0:
        return torch.zeros(0, dtype=torch.long)
    u = float(torch.rand((), generator=generator))
    num_spans = max(min_spans, int(mask_prob * length / span_length + u))
    if num_spans == 0:
        return torch.zeros(0, dtype=torch.long)
    starts_possible = length - span_length
    if starts_possible <= num_spans:  # fairseq: leave room for the spans, even overlapping the end
        starts_possible = num_spans + 1
    starts = torch.randperm(starts_possible, generator=generator)[:num_spans]
    frames = (starts[:, None] + torch.arange(span_length)[None, :]).reshape(-1)
    return torch.unique(frames[frames < length])


def frames_to_samples(frame_mask: torch.Tensor, samples_per_frame: int, num_samples: int) -> torch.Tensor:
    """(B, T) frame mask -> (B, num_samples) sample mask: each frame covers its samples."""
    samples = frame_mask.repeat_interleave(samples_per_frame, dim=1)
    if samples.size(1) >= num_samples:
        return samples[:, :num_samples]
    return torch.nn.functional.pad(samples, (0, num_samples - samples.size(1)), value=False)
