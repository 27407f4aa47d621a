"""The decoder's token-level loss and accuracy, computed without reading a value on the host.

ESPnet's ``LabelSmoothingLoss`` counts the non-padding tokens with ``.item()`` on every call
(also when the count is not used, ``normalize_length=False``), and ``th_accuracy`` returns a
Python float: each is a wait for the GPU, several times a step (issue 23's count:
``bench/count_host_syncs.py``). These give the same values as tensors on the device:

* :class:`LabelSmoothingCrossEntropy` -- ESPnet's label-smoothed loss, the KL divergence of
  the model's distribution from the smoothed one-hot target q (``1 - s`` on the target,
  ``s / (V - 1)`` elsewhere), summed over the non-padding positions and divided by the batch
  size (or by the token count with ``normalize_length``). Written in closed form,
  ``KL(q || p) = sum_v q_v log q_v - (1 - s) log p_y - s / (V - 1) (sum_v log p_v - log p_y)``,
  so no (tokens x V) target is materialised either; equal to ESPnet's to float rounding
  (test/model/test_token_losses.py).
* :func:`token_accuracy` -- the share of non-padding positions whose argmax is the target.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


class LabelSmoothingCrossEntropy(nn.Module):
    """ESPnet's ``LabelSmoothingLoss(size, padding_idx, smoothing, normalize_length)``, on the device."""

    def __init__(self, size: int, padding_idx: int, smoothing: float, normalize_length: bool = False):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.size = size
        self.padding_idx = padding_idx
        self.smoothing = smoothing
        self.normalize_length = normalize_length
        self.confidence = 1.0 - smoothing
        self.off_target = smoothing / (size - 1)
        # sum_v q_v log q_v: the same for every position
        self.target_entropy_term = _xlogx(self.confidence) + (size - 1) * _xlogx(self.off_target)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits`` (B, L, V), ``target`` (B, L) with ``padding_idx`` where nothing is scored."""
        if logits.size(-1) != self.size:
            raise ValueError(f"logits have {logits.size(-1)} classes, the loss was built for {self.size}")
        batch_size = logits.size(0)
        logp = torch.log_softmax(logits.reshape(-1, self.size), dim=-1)
        target = target.reshape(-1)
        scored = target != self.padding_idx
        logp_target = logp.gather(1, target.masked_fill(~scored, 0).unsqueeze(1)).squeeze(1)
        cross = self.confidence * logp_target
        if self.smoothing > 0:
            cross = cross + self.off_target * (logp.sum(dim=-1) - logp_target)
        total = (self.target_entropy_term - cross).masked_fill(~scored, 0.0).sum()
        return total / (scored.sum() if self.normalize_length else batch_size)


def token_accuracy(logits: torch.Tensor, target: torch.Tensor, ignore_id: int) -> torch.Tensor:
    """Share (0-d float tensor) of positions ``target != ignore_id`` where ``logits.argmax`` is the target."""
    scored = target != ignore_id
    correct = (logits.argmax(dim=-1) == target) & scored
    return correct.sum() / scored.sum().clamp(min=1)


def decoder_targets(
    text: torch.Tensor, text_lengths: torch.Tensor, sos: int, eos: int, ignore_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPnet's ``add_sos_eos`` without a per-utterance read: ``(ys_in, ys_out)``, (B, L + 1).

    ``ys_in`` = ``<sos> y_1 .. y_n`` padded with ``<eos>``, ``ys_out`` = ``y_1 .. y_n <eos>``
    padded with ``ignore_id``, where ``n`` = ``text_lengths`` and ``text`` (B, L) is padded past
    each length. ESPnet pads to the longest transcript + 1; this pads to ``L + 1``, the same
    when ``text`` is cut to its longest transcript, as the training paths cut it.
    """
    width = text.size(1) + 1
    pos = torch.arange(width, device=text.device)[None, :]
    lengths = text_lengths[:, None]
    tokens = torch.nn.functional.pad(text, (0, 1), value=eos)  # (B, L + 1)
    ys_out = torch.where(pos < lengths, tokens, torch.where(pos == lengths, eos, ignore_id))
    shifted = torch.nn.functional.pad(text, (1, 0), value=sos)  # <sos> y_1 .. y_L
    ys_in = torch.where(pos <= lengths, shifted, eos)  # position 0 (<sos>) is always kept
    return ys_in, ys_out
