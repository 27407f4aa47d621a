"""COMAT: "Compress, Align and Transfer" a pre-trained language model into the CTC branch.

J. Choi, D. Kim, J.-H. Chang, "Compress, Align, and Transfer: A new method for transferring
pre-trained language models knowledge to CTC-based speech recognition", Computer Speech &
Language 97, 2026 (doi:10.1016/j.csl.2025.101900). Only the abstract is available: a
compressing module condenses the speech embeddings towards the length of the PLM's token
embeddings, monotonic alignment search (MAS) aligns the two sequences, and the PLM
embeddings are distilled into the CTC model, whose non-autoregressive decoding is kept.
The details below are this project's choices:

* **What is distilled into**: the shared encoder output that the CTC heads read, per
  modality (``v``, ``a``, ``av``). Decoding never touches COMAT: the compressor is used
  only in the training loss, CTC / beam decoding are unchanged.
* **Compress** (:class:`FrameCompressor`): a strided 1-D convolution (kernel = stride =
  ``compress_factor``) + GELU + a linear map to the PLM's hidden size. Encoder frames are
  25 per second; BPE-1000 transcripts have ~3-6 pieces per second, characters ~12-15, so
  the default factor 2 (12.5 frames/s) shortens the speech while leaving MAS a feasible
  path (it needs at least one frame per token). An utterance with fewer compressed frames
  than PLM tokens is left out of the loss (counted in ``comat_skipped_<m>``).
* **Align** (:func:`monotonic_alignment_search`): Glow-TTS's MAS. Every PLM token gets a
  contiguous, non-empty run of compressed frames, in order, every frame belongs to one
  token, and the total similarity is maximal. Dynamic programming over the frame axis
  with tensor operations over batch x tokens; run without gradients (the path is a
  constant, as in Glow-TTS).
* **Transfer**: cosine distance ``1 - cos`` between each aligned frame and its token's PLM
  state. Cosine, not L2, because the PLM's hidden states have their own scale (LayerNorm
  outputs of a Transformer, tanh-bounded LSTM states, BERT's large-norm dimensions): the
  speech side should match directions, not norms, and an L2 target would push the encoder
  towards the PLM's magnitude. The same cosine is MAS's similarity, so the alignment
  maximises exactly what the loss then minimises. Per utterance: the mean over tokens of
  the mean distance over the token's frames (each token counts once, however long it is
  spoken); then the mean over utterances. Zero when the compressed speech equals the PLM
  sequence (one frame per token).
* **Weight**: ``L_lab^m += comat_weight * L_comat^m`` (comat_conf ``weight``, default 1.0,
  not tuned: the ESPnet CTC loss is a per-utterance sum, tens to hundreds, COMAT is in
  [0, 2]).
* **Text**: on labelled data the PLM reads the transcript. With ``pseudo_labels: true``
  (semi: usr2 only) the unlabelled term L_unl^m also gets ``weight * L_comat^m`` with the
  PLM reading the teacher's collapsed CTC pseudo-label (utterances failing its confidence
  mask are left out). Whether that helps was not measured.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet_usr2.model.comat_plm import FrozenPLM, build_frozen_plm

COMAT_CONF_KEYS = (
    "plm",
    "lm_train_config",
    "lm_file",
    "hf_dir",
    "weight",
    "compress_factor",
    "modalities",
    "pseudo_labels",
    "plm_dim",
)


def monotonic_alignment_search(
    similarity: torch.Tensor, frame_lengths: torch.Tensor, token_lengths: torch.Tensor
) -> torch.Tensor:
    """The best monotonic alignment of tokens to frames (Glow-TTS's MAS), for a batch.

    Args:
        similarity: (B, T, L) score of frame t with token l (padded entries are ignored).
        frame_lengths: (B,) frames per utterance, T_b.
        token_lengths: (B,) tokens per utterance, L_b.

    Returns:
        (B, T, L) 0/1 path: for t < T_b exactly one token per frame, token indices
        non-decreasing by steps of 0 or 1 from token 0 at frame 0 to token L_b - 1 at frame
        T_b - 1, so each token owns a contiguous non-empty run of frames. Rows with
        T_b < L_b (no such path) or L_b = 0 are all zero.
    """
    if similarity.dim() != 3:
        raise ValueError(f"similarity must be (B, T, L), got shape {tuple(similarity.shape)}")
    b, t_max, l_max = similarity.shape
    device = similarity.device
    if t_max == 0 or l_max == 0:
        return torch.zeros_like(similarity)
    frame_lengths = frame_lengths.to(device)
    token_lengths = token_lengths.to(device)
    sim = similarity.detach().float()
    token_ok = torch.arange(l_max, device=device)[None] < token_lengths[:, None]
    sim = torch.where(token_ok[:, None, :], sim, torch.zeros_like(sim))
    neg = torch.tensor(float("-inf"), device=device)

    # forward pass: best[b, l] = best score of a path ending at token l at the current frame
    best = torch.full((b, l_max), float("-inf"), device=device)
    best[:, 0] = sim[:, 0, 0]
    advanced = torch.zeros(b, t_max, l_max, dtype=torch.bool, device=device)
    for t in range(1, t_max):
        from_previous = torch.cat([neg.expand(b, 1), best[:, :-1]], dim=1)
        move = from_previous > best
        advanced[:, t] = move
        best = torch.where(move, from_previous, best) + sim[:, t]

    # backtrack from (T_b - 1, L_b - 1), one frame at a time for the whole batch
    path = torch.zeros(b, t_max, l_max, dtype=similarity.dtype, device=device)
    feasible = (frame_lengths >= token_lengths) & (token_lengths > 0)
    index = (token_lengths - 1).clamp(min=0)
    rows = torch.arange(b, device=device)
    for t in range(t_max - 1, -1, -1):
        active = feasible & (t < frame_lengths)
        path[rows, t, index] = active.to(path.dtype)
        index = index - (advanced[rows, t, index] & active).long()
    return path


class FrameCompressor(nn.Module):
    """Encoder frames (B, T, D) -> (B, ceil(T / factor), D_plm): strided conv, GELU, linear."""

    def __init__(self, input_size: int, output_size: int, factor: int = 2):
        super().__init__()
        if factor < 1:
            raise ValueError(f"comat_conf.compress_factor must be >= 1, got {factor}")
        self.factor = factor
        self.conv = nn.Conv1d(input_size, input_size, kernel_size=factor, stride=factor)
        self.proj = nn.Linear(input_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        valid = torch.arange(x.size(1), device=x.device)[None] < lengths[:, None]
        x = x.masked_fill(~valid[..., None], 0.0)  # padding must not leak into the last window
        pad = (-x.size(1)) % self.factor
        x = F.pad(x, (0, 0, 0, pad))
        y = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.proj(y), torch.div(lengths + self.factor - 1, self.factor, rounding_mode="floor")


def aligned_cosine_distance(
    compressed: torch.Tensor, compressed_lengths: torch.Tensor, plm: torch.Tensor, plm_lengths: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """MAS-aligned ``1 - cos`` per utterance (mean over tokens of each token's frame mean).

    Returns:
        ``(distance (B,), feasible (B,) bool)``; infeasible rows (fewer frames than tokens,
        or no token) have distance 0 and ``feasible`` false.
    """
    cos = torch.bmm(F.normalize(compressed, dim=-1), F.normalize(plm, dim=-1).transpose(1, 2))  # (B, T, L)
    path = monotonic_alignment_search(cos, compressed_lengths, plm_lengths)
    frames_per_token = path.sum(1)  # (B, L)
    per_token = ((1.0 - cos) * path).sum(1) / frames_per_token.clamp(min=1.0)
    feasible = (compressed_lengths.to(plm_lengths.device) >= plm_lengths) & (plm_lengths > 0)
    per_utt = per_token.sum(1) / plm_lengths.clamp(min=1).to(per_token.dtype)
    return per_utt * feasible.to(per_utt.dtype), feasible


class COMATLoss(nn.Module):
    """The COMAT term of one modality's labelled loss (see the module docstring).

    Args:
        encoder_output_size: D of the encoder frames.
        plm: the frozen PLM (:func:`~espnet_usr2.model.comat_plm.build_frozen_plm`).
        weight: factor of the COMAT term in each modality's labelled loss.
        compress_factor: frames per compressed frame.
        modalities: the modalities that get the term (None: all the model trains).
        pseudo_labels: also on unlabelled data, the PLM reading the CTC pseudo-label.
    """

    def __init__(
        self,
        encoder_output_size: int,
        plm: FrozenPLM,
        weight: float = 1.0,
        compress_factor: int = 2,
        modalities: Optional[Sequence[str]] = None,
        pseudo_labels: bool = False,
    ):
        super().__init__()
        if weight < 0:
            raise ValueError(f"comat_conf.weight must be >= 0, got {weight}")
        self.weight = weight
        self.modalities = None if modalities is None else tuple(modalities)
        self.pseudo_labels = bool(pseudo_labels)
        self.compressor = FrameCompressor(encoder_output_size, plm.output_size, compress_factor)
        self.plm = plm

    def unused_zero(self) -> torch.Tensor:
        """0, through every trainable parameter: a step without the COMAT term still gives the
        compressor a (zero) gradient, as DDP without find_unused_parameters requires."""
        return sum(p.sum() for p in self.compressor.parameters()) * 0.0

    def applies_to(self, modality: str) -> bool:
        return self.modalities is None or modality in self.modalities

    def forward(
        self, enc: torch.Tensor, enc_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``(loss, {"loss_comat": ..., "comat_skipped": ...})``; the loss is the mean over
        feasible utterances (0, with the statistic NaN, when there is none)."""
        target, target_lengths = self.plm(text, text_lengths)
        compressed, compressed_lengths = self.compressor(enc, enc_lengths)
        distance, feasible = aligned_cosine_distance(
            compressed, compressed_lengths, target.to(compressed.dtype), target_lengths.to(compressed_lengths.device)
        )
        n = feasible.sum()
        loss = distance.sum() / n.clamp(min=1)
        stats = {
            "loss_comat": loss.detach() if bool(n > 0) else torch.tensor(float("nan")),
            "comat_skipped": 1.0 - feasible.float().mean().detach(),
        }
        return loss, stats


def build_comat(comat_conf: dict, token_list: Sequence[str], encoder_output_size: int) -> COMATLoss:
    """:class:`COMATLoss` from the training config's ``comat_conf`` (keys: ``COMAT_CONF_KEYS``)."""
    unknown = sorted(set(comat_conf) - set(COMAT_CONF_KEYS))
    if unknown:
        raise ValueError(f"comat_conf: unknown keys {unknown}; known: {list(COMAT_CONF_KEYS)}")
    conf = dict(comat_conf)
    plm = build_frozen_plm(
        conf.pop("plm", "espnet_lm"),
        token_list,
        lm_train_config=conf.pop("lm_train_config", None),
        lm_file=conf.pop("lm_file", None),
        hf_dir=conf.pop("hf_dir", None),
        output_size=conf.pop("plm_dim", None),
    )
    return COMATLoss(encoder_output_size, plm, **conf)
