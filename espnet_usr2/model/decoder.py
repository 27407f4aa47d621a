"""The shared attention decoder with per-modality (or shared) output projections.

ESPnet's ``TransformerDecoder`` (absolute positions, pre-LN) computes the hidden states;
this subclass replaces its single output layer by one projection per modality when
``per_modality_output`` is true (USR keeps modality-specific heads), or one shared head.

``modality`` selects the head in :meth:`forward` and :meth:`forward_one_step`. It may also
be a sequence of modality names when the batch is the concatenation of equally sized
chunks, one per modality (the model runs the three streams through the decoder at once).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
from torch import nn

from espnet_usr2.utils.masks import valid_mask
from espnet_usr2.utils.modalities import AUDIOVISUAL, MODALITIES, canonical_modality

ModalitySpec = Union[str, Sequence[str]]
SHARED_HEAD = "shared"


class USR2TransformerDecoder(TransformerDecoder):
    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 8,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.1,
        src_attention_dropout_rate: float = 0.1,
        layer_drop_rate: float = 0.0,
        per_modality_output: bool = True,
        default_modality: str = AUDIOVISUAL,
    ):
        super().__init__(
            vocab_size=vocab_size,
            encoder_output_size=encoder_output_size,
            attention_heads=attention_heads,
            linear_units=linear_units,
            num_blocks=num_blocks,
            dropout_rate=dropout_rate,
            positional_dropout_rate=positional_dropout_rate,
            self_attention_dropout_rate=self_attention_dropout_rate,
            src_attention_dropout_rate=src_attention_dropout_rate,
            use_output_layer=False,
            layer_drop_rate=layer_drop_rate,
            use_flash_attn=False,
        )
        self.vocab_size = vocab_size
        self.per_modality_output = per_modality_output
        head_names = MODALITIES if per_modality_output else (SHARED_HEAD,)
        self.output_layers = nn.ModuleDict({m: nn.Linear(encoder_output_size, vocab_size) for m in head_names})
        # the head that ESPnet's scorer interface (score / batch_score) uses
        self.default_modality = canonical_modality(default_modality)

    def output_head(self, modality: Optional[str]) -> nn.Linear:
        """The output projection used for ``modality`` (None: ``default_modality``)."""
        if not self.per_modality_output:
            return self.output_layers[SHARED_HEAD]
        return self.output_layers[canonical_modality(modality or self.default_modality)]

    def project(self, hidden: torch.Tensor, modality: Optional[ModalitySpec]) -> torch.Tensor:
        """Hidden states -> logits; a sequence of modalities splits the batch into chunks."""
        if modality is None or isinstance(modality, str):
            return self.output_head(modality)(hidden)
        chunks = hidden.chunk(len(modality), dim=0)
        if len(chunks) != len(modality) or any(c.size(0) != chunks[0].size(0) for c in chunks):
            raise ValueError(f"batch of {hidden.size(0)} cannot be split into {len(modality)} equal modality chunks")
        return torch.cat([self.output_head(m)(c) for m, c in zip(modality, chunks)], dim=0)

    def forward(
        self,
        hs_pad: torch.Tensor,
        hlens: torch.Tensor,
        ys_in_pad: torch.Tensor,
        ys_in_lens: torch.Tensor,
        return_hs: bool = False,
        return_all_hs: bool = False,
        modality: Optional[ModalitySpec] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: logits (B, L, V) and output lengths."""
        hidden, olens = self.hidden_states(hs_pad, hlens, ys_in_pad, ys_in_lens, return_all_hs=return_all_hs)
        if return_all_hs:
            hidden, intermediate = hidden
            return (self.project(hidden, modality), intermediate), olens
        logits = self.project(hidden, modality)
        if return_hs:
            return (logits, hidden), olens
        return logits, olens

    def hidden_states(
        self,
        hs_pad: torch.Tensor,
        hlens: torch.Tensor,
        ys_in_pad: torch.Tensor,
        ys_in_lens: torch.Tensor,
        return_all_hs: bool = False,
    ):
        """ESPnet's ``TransformerDecoder.forward`` (this decoder has no output layer there) with
        its masks built on the device: ESPnet's ``make_pad_mask`` reads the lengths on the host,
        two waits for the GPU per call (issue 23 point 3). The masks are as wide as the inputs
        (ESPnet's target mask is as wide as the longest length: the same when, as everywhere
        here, the input is no wider). Returns what ESPnet's does: the hidden states (with
        ``return_all_hs`` also every layer's) and ``olens``."""
        width = ys_in_pad.size(1)
        causal = subsequent_mask(width, device=ys_in_pad.device).unsqueeze(0)
        tgt_mask = valid_mask(ys_in_lens.to(ys_in_pad.device), width)[:, None, :] & causal
        memory, memory_mask = hs_pad, valid_mask(hlens.to(hs_pad.device), hs_pad.size(1))[:, None, :]
        x = self.embed(ys_in_pad)
        every_layer = []
        for index, layer in enumerate(self.decoders):
            if index + 1 in self.gradient_checkpoint_layers:
                x, tgt_mask, memory, memory_mask = torch.utils.checkpoint.checkpoint(
                    layer, x, tgt_mask, memory, memory_mask, use_reentrant=False
                )
            else:
                x, tgt_mask, memory, memory_mask = layer(x, tgt_mask, memory, memory_mask)
            every_layer.append(x)
        if self.normalize_before:
            x = self.after_norm(x)
        olens = tgt_mask.sum(1)
        return ((x, every_layer) if return_all_hs else x), olens

    def forward_modalities(
        self,
        encoded: Mapping[str, Tuple[torch.Tensor, torch.Tensor]],
        ys_in: torch.Tensor,
        ys_in_lens: torch.Tensor,
        heads: Optional[Mapping[str, nn.Module]] = None,
    ) -> List[torch.Tensor]:
        """Logits of every modality's encoding ``{m: (enc, lens)}`` for the same decoder input,
        in one pass over the stacked batch; ``heads`` replace the output projections."""
        modalities = list(encoded)
        n = len(modalities)
        memory = torch.cat([encoded[m][0] for m in modalities], dim=0)
        memory_lens = torch.cat([encoded[m][1] for m in modalities], dim=0)
        ys_in, ys_in_lens = ys_in.repeat(n, 1), ys_in_lens.repeat(n)
        if heads is None:
            logits, _ = self(memory, memory_lens, ys_in, ys_in_lens, modality=modalities)
            return list(logits.chunk(n, dim=0))
        (_, hidden), _ = self(memory, memory_lens, ys_in, ys_in_lens, return_hs=True, modality=modalities)
        return [heads[m](h) for m, h in zip(modalities, hidden.chunk(n, dim=0))]

    def forward_one_step(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor = None,
        *,
        cache: List[torch.Tensor] = None,
        return_hs: bool = False,
        modality: Optional[ModalitySpec] = None,
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """One incremental step with key/value cache: log-probabilities (B, V) of the next token."""
        hidden, new_cache = super().forward_one_step(tgt, tgt_mask, memory, memory_mask, cache=cache)
        logp = torch.log_softmax(self.project(hidden, modality), dim=-1)
        if return_hs:
            return (logp, hidden), new_cache
        return logp, new_cache
