"""ResNet-18 trunks shared by the audio (1-D) and video (2-D) frontends.

Both frontends of USR / USR 2.0 use the same ResNet-18 layout (four stages of two basic
blocks, 64/128/256/512 channels, strides 1/2/2/2); only the convolution dimensionality and
kernel size differ. One generic block keeps the two in step.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from espnet_usr2.utils.masks import valid_mask

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def make_activation(name: str, channels: int) -> nn.Module:
    """The frontends' activation; USR uses Swish (SiLU)."""
    if name == "swish":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "prelu":
        return nn.PReLU(num_parameters=channels)
    raise ValueError(f"unknown activation {name!r}; choose swish, relu or prelu")


def conv_bn(dims: int, in_ch: int, out_ch: int, kernel, stride, padding) -> nn.Sequential:
    """Bias-free convolution followed by batch norm (the bias would be absorbed by BN)."""
    return nn.Sequential(
        _CONV[dims](in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
        _BATCH_NORM[dims](out_ch),
    )


class BasicBlock(nn.Module):
    """Two convolutions with a residual connection (He et al., 2016), for 1-D or 2-D input."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: int, kernel: int, act: str):
        super().__init__()
        pad = kernel // 2
        self.stride = stride
        self.conv1 = conv_bn(dims, in_ch, out_ch, kernel, stride, pad)
        self.act1 = make_activation(act, out_ch)
        self.conv2 = conv_bn(dims, out_ch, out_ch, kernel, 1, pad)
        self.act2 = make_activation(act, out_ch)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut = conv_bn(dims, in_ch, out_ch, 1, stride, 0) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor, out_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``out_lengths`` (1-D only): valid output steps; padding is zeroed between the convs."""
        y = self.act1(self.conv1(x))
        if out_lengths is not None:
            y = zero_padding(y, out_lengths)
        y = self.act2(self.conv2(y) + self.shortcut(x))
        return y if out_lengths is None else zero_padding(y, out_lengths)


class ResNetTrunk(nn.Module):
    """The four ResNet-18 stages (without stem and pooling)."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        strides: Sequence[int] = (1, 2, 2, 2),
        blocks_per_stage: int = 2,
        kernel: int = 3,
        act: str = "swish",
    ):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"channels {list(channels)} and strides {list(strides)} differ in length")
        layers = []
        ch_in = in_channels
        for ch_out, stride in zip(channels, strides):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(dims, ch_in, ch_out, stride if i == 0 else 1, kernel, act))
                ch_in = ch_out
        self.layers = nn.Sequential(*layers)
        self.out_channels = ch_in
        self.total_stride = 1
        for s in strides:
            self.total_stride *= s

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``lengths`` (1-D trunks only): valid steps per sample, re-zeroed after every block.

        Batch norm shifts padded steps away from zero; without re-zeroing, the next
        convolution would mix them into the last valid steps, so an utterance would encode
        differently alone and padded in a batch.
        """
        if lengths is None:
            return self.layers(x)
        for block in self.layers:
            lengths = ceil_div(lengths, block.stride)
            x = block(x, lengths)
        return x


def ceil_div(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the steps at and after ``lengths`` along the last axis of (B, C, T)."""
    return x * valid_mask(lengths.to(x.device), x.size(-1)).unsqueeze(1).to(x.dtype)
