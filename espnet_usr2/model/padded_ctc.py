"""ESPnet's CTC head and loss, fed the padded transcripts as they are (no wait for the GPU).

ESPnet's ``CTC.forward`` concatenates the targets utterance by utterance
(``torch.cat([ys_pad[i, :l] for i, l in enumerate(ys_lens)])``): each ``l`` is read from the
device, one wait for the GPU per utterance and step (issue 23). PyTorch's CTC loss also takes
the padded ``(B, S)`` targets with their lengths and computes the same loss (bitwise equal on
CPU; ``test/model/test_padded_ctc.py``). Parameters, options and every other method are
ESPnet's, so checkpoints and the released weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from espnet2.asr.ctc import CTC


class PaddedTargetsCTC(CTC):
    """:class:`espnet2.asr.ctc.CTC` whose ``builtin`` loss reads padded targets; other
    ``ctc_type`` values run ESPnet's own code."""

    def forward(
        self, hs_pad: torch.Tensor, hlens: torch.Tensor, ys_pad: torch.Tensor, ys_lens: torch.Tensor
    ) -> torch.Tensor:
        """The loss of ``hs_pad`` (B, T, D) against ``ys_pad`` (B, S), padded with -1 past ``ys_lens``."""
        if self.ctc_type != "builtin":
            return super().forward(hs_pad, hlens, ys_pad, ys_lens)
        ys_hat = self.ctc_lo(F.dropout(hs_pad, p=self.dropout_rate)).transpose(0, 1)
        targets = ys_pad.clamp(min=0)  # padding past each length is never read; -1 is not an index
        return self.loss_fn(ys_hat, targets, hlens, ys_lens).to(device=hs_pad.device, dtype=hs_pad.dtype)
