"""The reference search: ESPnet's own ``BatchBeamSearch``, one utterance at a time.

Built exactly as ``espnet2.bin.asr_inference.Speech2Text`` builds it -- scorers
``decoder`` (weight ``1 - ctc_weight``), ``ctc`` (:class:`CTCPrefixScorer`, weight
``ctc_weight``) and ``length_bonus`` (:class:`LengthBonus`, weight ``penalty``),
``pre_beam_score_key="full"``, and with shallow fusion ``lm`` (the ESPnet LM, weight
``lm_weight``) -- except that the decoder scorer is bound to one modality's
output head (:class:`ModalityDecoderScorer`) instead of ``decoder.default_modality``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
from espnet.nets.batch_beam_search import BatchBeamSearch
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask
from espnet.nets.scorer_interface import BatchScorerInterface
from espnet.nets.scorers.ctc import CTCPrefixScorer
from espnet.nets.scorers.length_bonus import LengthBonus

from espnet_usr2.decode.hyps import DecodeOptions, Hyp


class ModalityDecoderScorer(torch.nn.Module, BatchScorerInterface):
    """ESPnet scorer for ``USR2TransformerDecoder`` with the output head of one modality.

    The decoder's own ``score`` / ``batch_score`` use ``decoder.default_modality``; changing
    that attribute would affect every other user of the model, so the modality lives here.
    """

    def __init__(self, decoder: torch.nn.Module, modality: str):
        super().__init__()
        self.decoder = decoder
        self.modality = modality

    def init_state(self, x: torch.Tensor) -> Any:
        return None  # no cache before the first step

    def score(self, ys: torch.Tensor, state: Any, x: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        """Log-probabilities (V,) of the next token after prefix ``ys`` (L,)."""
        ys_mask = subsequent_mask(len(ys), device=x.device).unsqueeze(0)
        logp, cache = self.decoder.forward_one_step(
            ys.unsqueeze(0), ys_mask, x.unsqueeze(0), cache=state, modality=self.modality
        )
        return logp.squeeze(0), cache

    def batch_score(self, ys: torch.Tensor, states: List[Any], xs: torch.Tensor) -> Tuple[torch.Tensor, List[Any]]:
        """Log-probabilities (n, V) for ``n`` prefixes; states are per-hypothesis layer caches."""
        n_batch, n_layers = len(ys), len(self.decoder.decoders)
        if states[0] is None:
            cache = None
        else:  # [hyp][layer] -> [layer] stacked over hypotheses
            cache = [torch.stack([states[b][i] for b in range(n_batch)]) for i in range(n_layers)]
        ys_mask = subsequent_mask(ys.size(-1), device=xs.device).unsqueeze(0)
        logp, new_cache = self.decoder.forward_one_step(ys, ys_mask, xs, cache=cache, modality=self.modality)
        return logp, [[new_cache[i][b] for i in range(n_layers)] for b in range(n_batch)]


def build_espnet_beam_search(
    net, modality: str, opts: DecodeOptions, vocab_size: int, sos: int, eos: int, lm: Optional[torch.nn.Module] = None
) -> BatchBeamSearch:
    """ESPnet's vectorised beam search over the hypotheses of one utterance."""
    scorers = dict(
        decoder=ModalityDecoderScorer(net.decoder, modality),
        ctc=CTCPrefixScorer(ctc=net.ctc_head(modality), eos=eos),
        length_bonus=LengthBonus(vocab_size),
    )
    weights = dict(decoder=1.0 - opts.ctc_weight, ctc=opts.ctc_weight, length_bonus=opts.penalty)
    if lm is not None:  # registered last, as asr_inference does; weight 0 -> BeamSearch drops it
        scorers["lm"] = lm
        weights["lm"] = opts.lm_weight
    elif opts.lm_weight > 0:
        raise ValueError(f"lm_weight {opts.lm_weight} needs a language model (lm_train_config)")
    search = BatchBeamSearch(
        scorers=scorers,
        weights=weights,
        beam_size=opts.beam_size,
        vocab_size=vocab_size,
        sos=sos,
        eos=eos,
        token_list=None,
        pre_beam_ratio=opts.pre_beam_ratio,
        pre_beam_score_key="full",
    )
    return search.eval()


@torch.no_grad()
def espnet_beam_search(
    net,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    modality: str,
    opts: DecodeOptions,
    sos: int,
    eos: int,
    vocab_size: int,
    lm: Optional[torch.nn.Module] = None,
) -> List[List[Hyp]]:
    """N-best lists of each utterance of ``enc`` (B, T, d), decoded one by one by ESPnet
    (``lm``: an ESPnet LM fused with weight ``opts.lm_weight``)."""
    search = build_espnet_beam_search(net, modality, opts, vocab_size, sos, eos, lm)
    results = []
    for b in range(enc.size(0)):
        x = enc[b, : int(enc_lens[b])]
        nbest = search(x=x, maxlenratio=opts.maxlenratio, minlenratio=opts.minlenratio)
        results.append(
            [
                Hyp(yseq=h.yseq.tolist(), score=float(h.score), scores={k: float(v) for k, v in h.scores.items()})
                for h in nbest[: opts.nbest]
            ]
        )
    return results
