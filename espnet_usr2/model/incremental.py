"""Step-wise attention decoding over many utterances and hypotheses at once.

ESPnet's ``TransformerDecoder.forward_one_step`` recomputes, at every step and for every
hypothesis, the key/value projections of the whole encoder output (the memory) in each
source-attention layer, and the self-attention keys/values of the whole prefix. With a
beam of 30 over 150 frames that is ~95 % of the decoder's arithmetic. This module runs the
same layers (same modules, same weights, same operation order) but

* projects the memory to keys/values **once per utterance**, shared by all its hypotheses
  (a batched matmul of the W queries of an utterance against its T keys);
* keeps the self-attention keys/values of earlier positions in a cache that is reordered
  with the beam instead of recomputing them.

It supports the decoder ESPnet builds for ``USR2TransformerDecoder``: pre-LayerNorm
layers of ``MultiHeadedAttention`` without ``concat_after``, sequential attention, q/k
norm, SDPA or flash attention. :func:`check_supported` says clearly when a decoder is
outside that set (use ``--beam_impl espnet`` then).

Hypotheses are laid out utterance-major: row ``b * W + w`` is hypothesis ``w`` of
utterance ``b``.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.embedding import PositionalEncoding
from torch import nn

from espnet_usr2.utils.masks import valid_mask


class UnsupportedDecoderError(NotImplementedError):
    """The decoder has a layout the fast incremental path does not implement."""


def check_supported(decoder: nn.Module) -> None:
    """Raise :class:`UnsupportedDecoderError` naming the first unsupported feature."""
    embed = getattr(decoder, "embed", None)
    if not (
        isinstance(embed, nn.Sequential)
        and len(embed) == 2
        and isinstance(embed[0], nn.Embedding)
        and type(embed[1]) is PositionalEncoding
    ):
        raise UnsupportedDecoderError("the fast decoder needs input_layer='embed' with absolute PositionalEncoding")
    if not decoder.normalize_before:
        raise UnsupportedDecoderError("the fast decoder needs normalize_before=True")
    for i, layer in enumerate(decoder.decoders):
        problems = []
        if layer.concat_after:
            problems.append("concat_after")
        if getattr(layer, "sequential_attn", None) is not None:
            problems.append("sequential attention")
        for name in ("self_attn", "src_attn"):
            att = getattr(layer, name)
            if type(att) is not MultiHeadedAttention:
                problems.append(f"{name} of type {type(att).__name__}")
            elif getattr(att, "use_sdpa", False) or getattr(att, "use_flash_attn", False):
                problems.append(f"{name} with SDPA/flash attention")
            elif not isinstance(att.q_norm, nn.Identity):
                problems.append(f"{name} with q/k norm")
        if problems:
            raise UnsupportedDecoderError(
                f"decoder layer {i}: {', '.join(problems)} is not supported by the fast path; use --beam_impl espnet"
            )


def _heads(x: torch.Tensor, att: MultiHeadedAttention) -> torch.Tensor:
    """(N, L, d) -> (N, H, L, d_k), as ``MultiHeadedAttention.forward_qkv`` arranges it."""
    return x.view(x.size(0), -1, att.h, att.d_k).transpose(1, 2)


class IncrementalDecoder:
    """Decoder state for ``B`` utterances x ``W`` hypotheses; :meth:`step` adds one token."""

    def __init__(
        self, decoder: nn.Module, memory: torch.Tensor, memory_lengths: torch.Tensor, modality: str, hyps_per_utt: int
    ):
        check_supported(decoder)
        self.decoder = decoder
        self.head = decoder.output_head(modality) if hasattr(decoder, "output_head") else decoder.output_layer
        self.W = hyps_per_utt
        n_frames = memory.size(1)
        # (B, 1, 1, T): True where a frame exists; padding gets zero attention
        self.memory_mask = valid_mask(memory_lengths.to(memory.device), n_frames)[:, None, None, :]
        self.mem_k: List[torch.Tensor] = []
        self.mem_v: List[torch.Tensor] = []
        for layer in decoder.decoders:
            att = layer.src_attn
            self.mem_k.append(_heads(att.linear_k(memory), att))  # (B, H, T, d_k)
            self.mem_v.append(_heads(att.linear_v(memory), att))
        self.self_k: List[Optional[torch.Tensor]] = [None] * len(decoder.decoders)
        self.self_v: List[Optional[torch.Tensor]] = [None] * len(decoder.decoders)
        self.position = 0

    # ----------------------------------------------------------------- bookkeeping
    @property
    def num_utts(self) -> int:
        return self.mem_k[0].size(0)

    def reorder(self, hyp_index: torch.Tensor) -> None:
        """Keep the prefixes ``hyp_index`` (global row numbers, one per new row)."""
        for i in range(len(self.self_k)):
            if self.self_k[i] is not None:
                self.self_k[i] = self.self_k[i].index_select(0, hyp_index)
                self.self_v[i] = self.self_v[i].index_select(0, hyp_index)

    def keep_utts(self, utt_index: torch.Tensor) -> None:
        """Drop every utterance not in ``utt_index`` (finished ones), with its hypotheses."""
        rows = (utt_index[:, None] * self.W + torch.arange(self.W, device=utt_index.device)).reshape(-1)
        self.memory_mask = self.memory_mask.index_select(0, utt_index)
        self.mem_k = [k.index_select(0, utt_index) for k in self.mem_k]
        self.mem_v = [v.index_select(0, utt_index) for v in self.mem_v]
        self.reorder(rows)

    # ----------------------------------------------------------------- computation
    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embedding plus the positional encoding of the current position: (N, 1, d)."""
        emb, pos = self.decoder.embed[0], self.decoder.embed[1]
        x = emb(tokens[:, None])
        pos.extend_pe(torch.empty(1, self.position + 1, device=x.device, dtype=x.dtype))
        return x * pos.xscale + pos.pe[:, self.position : self.position + 1]

    def _self_attention(self, i: int, att: MultiHeadedAttention, h: torch.Tensor) -> torch.Tensor:
        q = _heads(att.linear_q(h), att)
        k, v = _heads(att.linear_k(h), att), _heads(att.linear_v(h), att)
        if self.self_k[i] is not None:
            k, v = torch.cat([self.self_k[i], k], dim=2), torch.cat([self.self_v[i], v], dim=2)
        self.self_k[i], self.self_v[i] = k, v
        # the newest position may look at every cached one: no mask needed
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(att.d_k)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)  # (N, H, 1, d_k)
        return att.linear_out(ctx.transpose(1, 2).reshape(h.size(0), 1, att.h * att.d_k))

    def _source_attention(self, i: int, att: MultiHeadedAttention, h: torch.Tensor) -> torch.Tensor:
        n_utts, W = self.num_utts, self.W
        # the W queries of an utterance against its keys: (B, H, W, d_k) x (B, H, d_k, T)
        q = _heads(att.linear_q(h), att).reshape(n_utts, W, att.h, att.d_k).transpose(1, 2)
        scores = torch.matmul(q, self.mem_k[i].transpose(-2, -1)) / math.sqrt(att.d_k)
        pad = ~self.memory_mask
        scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).masked_fill(pad, 0.0)
        ctx = torch.matmul(weights, self.mem_v[i])  # (B, H, W, d_k)
        return att.linear_out(ctx.permute(0, 2, 1, 3).reshape(n_utts * W, 1, att.h * att.d_k))

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V) of the next token after each prefix ending in ``tokens``."""
        x = self._embed(tokens)
        for i, layer in enumerate(self.decoder.decoders):
            x = x + self._self_attention(i, layer.self_attn, layer.norm1(x))
            x = x + self._source_attention(i, layer.src_attn, layer.norm2(x))
            x = x + layer.feed_forward(layer.norm3(x))
        self.position += 1
        hidden = self.decoder.after_norm(x[:, -1])
        return torch.log_softmax(self.head(hidden), dim=-1)
