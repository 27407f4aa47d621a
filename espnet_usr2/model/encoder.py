"""The shared encoder: a pre-LN transformer with relative positional self-attention.

Paper Sec. 4.3 ("Architecture"): Transformer-XL style relative positions (Dai et al., 2019;
ESPnet's "latest" rel-pos attention), LayerScale (Touvron et al., 2021; initialised at 0.1) on both residual branches
and drop path (stochastic depth per sample). The same weights encode the video, audio and
audio-visual streams; the model stacks the three along the batch and runs this once.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from espnet.nets.pytorch_backend.transformer.attention import RelPositionMultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.embedding import RelPositionalEncoding
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm
from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import PositionwiseFeedForward
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from torch import nn

from espnet_usr2.utils.masks import valid_mask

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}


class DropPath(nn.Module):
    """Drops the whole residual branch for a random subset of samples (stochastic depth).

    Kept samples are rescaled by 1 / (1 - p) so the expected output is unchanged; at
    evaluation time the branch is always kept.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch, initialised small (0.1)."""

    def __init__(self, dim: int, init_value: float = 0.1):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class RelPosEncoderLayer(nn.Module):
    """x + DropPath(LS(MHSA_rel(LN(x)))), then x + DropPath(LS(FFN(LN(x))))."""

    def __init__(
        self,
        size: int,
        heads: int,
        linear_units: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        drop_path_rate: float,
        layer_scale_init: float,
        activation: str,
    ):
        super().__init__()
        self.norm_attn = LayerNorm(size)
        self.attn = RelPositionMultiHeadedAttention(heads, size, attention_dropout_rate)
        self.scale_attn = LayerScale(size, layer_scale_init) if layer_scale_init > 0 else nn.Identity()
        self.norm_ff = LayerNorm(size)
        self.feed_forward = PositionwiseFeedForward(size, linear_units, dropout_rate, _ACTIVATIONS[activation]())
        self.scale_ff = LayerScale(size, layer_scale_init) if layer_scale_init > 0 else nn.Identity()
        self.dropout = nn.Dropout(dropout_rate)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_attn(x)
        x = x + self.drop_path(self.scale_attn(self.dropout(self.attn(h, h, h, pos_emb, mask))))
        x = x + self.drop_path(self.scale_ff(self.dropout(self.feed_forward(self.norm_ff(x)))))
        return x


class RelPosTransformerEncoder(AbsEncoder):
    """Encoder over already-projected features (B, T, output_size).

    ``drop_path_rate`` is the rate of the last block; earlier blocks get linearly smaller
    rates (``drop_path_schedule: linear``, as in ViT/DeiT) or the same rate (``constant``).
    """

    def __init__(
        self,
        input_size: Optional[int] = None,
        output_size: int = 512,
        attention_heads: int = 8,
        linear_units: int = 2048,
        num_blocks: int = 12,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.1,
        drop_path_rate: float = 0.1,
        drop_path_schedule: str = "linear",
        layer_scale_init: float = 0.1,
        activation: str = "relu",
    ):
        super().__init__()
        if input_size is not None and input_size != output_size:
            raise ValueError(
                f"the encoder input ({input_size}) must already have the model dimension ({output_size}); "
                "the fusion module projects each modality to it"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        self._output_size = output_size
        self.pos_enc = RelPositionalEncoding(output_size, positional_dropout_rate)
        rates = _drop_path_rates(drop_path_rate, num_blocks, drop_path_schedule)
        self.blocks = nn.ModuleList(
            RelPosEncoderLayer(
                output_size,
                attention_heads,
                linear_units,
                dropout_rate,
                attention_dropout_rate,
                rate,
                layer_scale_init,
                activation,
            )
            for rate in rates
        )
        self.after_norm = LayerNorm(output_size)

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self,
        xs_pad: torch.Tensor,
        ilens: torch.Tensor,
        prev_states: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        return self.after_norm(self.block_outputs(xs_pad, ilens)[-1]), ilens, None

    def block_outputs(self, xs_pad: torch.Tensor, ilens: torch.Tensor) -> List[torch.Tensor]:
        """The output (B, T, output_size) of every block, before the final norm.

        Self-supervised pre-training regresses the layer average of these (USR's targets).
        """
        mask = valid_mask(ilens.to(xs_pad.device), xs_pad.size(1))[:, None, :]
        x, pos_emb = self.pos_enc(xs_pad)
        outputs = []
        for block in self.blocks:
            x = block(x, pos_emb, mask)
            outputs.append(x)
        return outputs


def _drop_path_rates(rate: float, num_blocks: int, schedule: str) -> list:
    if schedule == "constant":
        return [rate] * num_blocks
    if schedule == "linear":
        return [rate * i / max(num_blocks - 1, 1) for i in range(num_blocks)]
    raise ValueError(f"unknown drop_path_schedule {schedule!r}; choose linear or constant")
