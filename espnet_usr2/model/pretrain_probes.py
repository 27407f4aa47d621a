"""Supervised probes of self-supervised pre-training (USR's ``pre_learner.py``).

With transcripts available, USR's pre-training also trains CTC heads and an attention
decoder on the *detached* encoder features of each masked stream (v, a, av), each loss with
weight 1.0 added to the masked-prediction loss. No gradient reaches the encoder: the probes
only read how linearly / attentively decodable the features are becoming, which shows
during pre-training whether it is learning anything useful -- a cheap early signal, in
miniature too.

Parts (as recognition's heads): a CTC head per stream (ESPnet's ``CTC``, dropout before its
projection) and one transformer decoder with an output layer per stream, label smoothing on
its cross-entropy. Utterances without a transcript (length 0) are left out; a batch without
any gives NaN statistics and a zero loss that still reaches every probe parameter (DDP).
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

import torch
from torch import nn

from espnet_usr2.model.decoder import USR2TransformerDecoder
from espnet_usr2.model.padded_ctc import PaddedTargetsCTC
from espnet_usr2.model.token_losses import LabelSmoothingCrossEntropy, decoder_targets, token_accuracy
from espnet_usr2.utils.modalities import MODALITIES

Encoded = Mapping[str, Tuple[torch.Tensor, torch.Tensor]]
PROBE_STATS = ("loss_probe_ctc", "loss_probe_att", "acc_probe")


class SupervisedProbes(nn.Module):
    """CTC heads and an attention decoder on detached encoder features (``--probe_conf``).

    Args:
        vocab_size: tokens (``<blank>`` 0, ``<sos/eos>`` last).
        decoder: the probe decoder (built from ``decoder`` / ``decoder_conf`` of the config).
        encoder_output_size: width of the encoder features.
        weight: weight of each probe loss in the total (USR: 1.0).
        ctc_dropout: dropout before each CTC projection (USR: 0.1).
        lsm_weight: label smoothing of the decoder's cross-entropy (USR: 0.1).
    """

    def __init__(
        self,
        vocab_size: int,
        decoder: USR2TransformerDecoder,
        encoder_output_size: int,
        weight: float = 1.0,
        ctc_dropout: float = 0.1,
        lsm_weight: float = 0.1,
    ):
        super().__init__()
        if weight < 0:
            raise ValueError(f"probe_conf.weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.sos = self.eos = vocab_size - 1
        self.ctc = nn.ModuleDict(
            {m: PaddedTargetsCTC(vocab_size, encoder_output_size, dropout_rate=ctc_dropout) for m in MODALITIES}
        )
        self.decoder = decoder
        self.criterion = LabelSmoothingCrossEntropy(vocab_size, -1, lsm_weight, normalize_length=False)

    def forward(
        self, encoded: Encoded, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``weight * sum_m (CTC_m + CE_m)`` on the detached features, and per-stream statistics."""
        has_text = text_lengths > 0
        if not bool(has_text.any()):
            nan = torch.tensor(float("nan"))
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return zero, {f"{k}_{m}": nan for m in encoded for k in PROBE_STATS}
        text, text_lengths = text[has_text], text_lengths[has_text]
        text = text[:, : int(text_lengths.max())]
        feats = {m: (enc[has_text].detach(), lens[has_text]) for m, (enc, lens) in encoded.items()}
        ys_in, ys_out = decoder_targets(text, text_lengths, self.sos, self.eos, -1)
        logits = self.decoder.forward_modalities(feats, ys_in, text_lengths + 1)
        loss, stats = 0.0, {}
        for (m, (enc, lens)), m_logits in zip(feats.items(), logits):
            loss_ctc = self.ctc[m](enc, lens, text, text_lengths)
            loss_att = self.criterion(m_logits, ys_out)
            loss = loss + loss_ctc + loss_att
            stats[f"loss_probe_ctc_{m}"] = loss_ctc.detach()
            stats[f"loss_probe_att_{m}"] = loss_att.detach()
            stats[f"acc_probe_{m}"] = token_accuracy(m_logits.detach(), ys_out, -1)
        return self.weight * loss, stats
