"""Projection of frontend features into the shared encoder space (paper Sec. 4.3, "Architecture").

Three linear maps: ``v`` (video -> d), ``a`` (audio -> d) and ``av`` (concat(video, audio)
-> d). The audio-visual stream is early fusion by concatenation with its own projection,
as in USR (Haliassos et al., 2024).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, VIDEO


class ConcatProjectionFusion(nn.Module):
    """Per-modality linear projections; AV = Linear(concat(video_feats, audio_feats))."""

    def __init__(self, video_size: int, audio_size: int, output_size: int):
        super().__init__()
        self.proj = nn.ModuleDict(
            {
                VIDEO: nn.Linear(video_size, output_size),
                AUDIO: nn.Linear(audio_size, output_size),
                AUDIOVISUAL: nn.Linear(video_size + audio_size, output_size),
            }
        )
        self._output_size = output_size

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self,
        video_feats: Optional[torch.Tensor],
        audio_feats: Optional[torch.Tensor],
        modalities,
    ) -> Dict[str, torch.Tensor]:
        """Features (B, T, D_m) of each frontend -> {modality: (B, T, d)} for the modalities asked."""
        out = {}
        for m in modalities:
            if m == VIDEO:
                out[m] = self.proj[m](video_feats)
            elif m == AUDIO:
                out[m] = self.proj[m](audio_feats)
            else:
                out[m] = self.proj[m](torch.cat([video_feats, audio_feats], dim=-1))
        return out
