"""Length masks in O(batch x length) memory.

ESPnet's ``make_pad_mask`` builds a (maxlen x maxlen) matrix in its traceable branch;
over raw 16 kHz waveforms (maxlen ~ 10^5 samples) that is tens of GB. These are plain
comparisons against ``arange``.
"""

import torch


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool: True at positions < length."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool: True at padded positions (>= length)."""
    return ~valid_mask(lengths, max_len)
