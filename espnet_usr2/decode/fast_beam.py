"""Joint CTC/attention beam search vectorised over utterances and hypotheses.

Same search as ESPnet's ``BatchBeamSearch`` with the scorers ``Speech2Text`` builds
(decoder weight ``1 - c``, ``CTCPrefixScorer`` weight ``c`` on a pre-beam of
``int(1.5 * beam)`` tokens ranked by the weighted full scores, ``LengthBonus`` weight
``penalty``, and with shallow fusion the LM weight ``lm_weight``), step for step:

1. full scores ``(1 - c) * log p_att + penalty (+ lm_weight * log p_lm)``; pre-beam = their top-k per hypothesis;
2. ``+ c * CTC prefix score`` (pre-beam tokens and ``<eos>``), ``+`` running score;
3. the best ``beam`` (hypothesis, token) pairs of each utterance become the new beam;
4. pairs ending in ``<eos>`` leave the beam (kept if at least ``minlen`` tokens); at the
   utterance's last step every hypothesis gets an ``<eos>``; with ``maxlenratio == 0``
   ESPnet's ``end_detect`` stops an utterance early;
5. n-best = ended hypotheses by score (stable sort); none ended -> retry with
   ``minlenratio - 0.1``, as ESPnet does.

What is different is only how it is computed: all utterances of a batch and all their
hypotheses are one tensor (row ``b * beam + w``), a hypothesis that left the beam is a row
with score ``-inf``, the decoder caches keys/values (:mod:`espnet_usr2.model.incremental`),
the CTC prefix scorer has no per-hypothesis Python loop (:mod:`.ctc_prefix`), the LM scores
every row at once with its ``batch_score`` (:class:`.lm.BatchLMState`), and finished
utterances are dropped from the batch.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from espnet.nets.e2e_asr_common import end_detect

from espnet_usr2.decode.ctc_prefix import BatchCTCPrefixScorer
from espnet_usr2.decode.hyps import DecodeOptions, Hyp, length_bounds
from espnet_usr2.decode.lm import BatchLMState
from espnet_usr2.model.incremental import IncrementalDecoder


class _UttState:
    """Per-utterance bookkeeping: length limits and the hypotheses that ended."""

    def __init__(self, n_frames: int, opts: DecodeOptions, minlenratio: float):
        self.maxlen, self.minlen = length_bounds(n_frames, opts.maxlenratio, minlenratio)
        self.ended: List[Hyp] = []
        self.done = False


@torch.no_grad()
def fast_beam_search(
    net,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    modality: str,
    opts: DecodeOptions,
    sos: int,
    eos: int,
    blank: int = 0,
    lm: Optional[torch.nn.Module] = None,
) -> List[List[Hyp]]:
    """N-best lists (best first, up to ``opts.nbest``) of each utterance of ``enc`` (B, T, d).

    ``lm``: an ESPnet LM (:func:`.lm.load_lm`) fused with weight ``opts.lm_weight``.
    """
    if lm is not None and opts.lm_weight == 0:
        lm = None  # as ESPnet's BeamSearch drops a scorer of weight 0
    if lm is None and opts.lm_weight > 0:
        raise ValueError(f"lm_weight {opts.lm_weight} needs a language model (lm_train_config)")
    return _search(net, enc, enc_lens, modality, opts, sos, eos, blank, opts.minlenratio, lm)


def _search(net, enc, enc_lens, modality, opts, sos, eos, blank, minlenratio, lm) -> List[List[Hyp]]:
    ended = _run(net, enc, enc_lens, modality, opts, sos, eos, blank, minlenratio, lm)
    retry = [b for b, hyps in enumerate(ended) if not hyps]
    if retry and minlenratio >= 0.1:  # ESPnet: "perform recognition again with smaller minlenratio"
        idx = torch.tensor(retry, device=enc.device)
        again = _search(
            net,
            enc.index_select(0, idx),
            enc_lens.index_select(0, idx.to(enc_lens.device)),
            modality,
            opts,
            sos,
            eos,
            blank,
            max(0.0, minlenratio - 0.1),
            lm,
        )
        for b, hyps in zip(retry, again):
            ended[b] = hyps
    return [sorted(h, key=lambda x: x.score, reverse=True)[: opts.nbest] for h in ended]


def _run(
    net,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    modality: str,
    opts: DecodeOptions,
    sos: int,
    eos: int,
    blank: int,
    minlenratio: float,
    lm: Optional[torch.nn.Module],
) -> List[List[Hyp]]:
    """One pass of the search; returns the ended hypotheses of each utterance (unsorted)."""
    n_utts, W, device = enc.size(0), opts.beam_size, enc.device
    lens = enc_lens.to(device)
    utts = [_UttState(int(n), opts, minlenratio) for n in lens.tolist()]
    w_ctc, w_dec = opts.ctc_weight, 1.0 - opts.ctc_weight
    decoder = IncrementalDecoder(net.decoder, enc, lens, modality, W)
    ctc = None
    if w_ctc > 0:
        ctc = BatchCTCPrefixScorer(net.ctc_head(modality).log_softmax(enc), lens, blank, eos, W)
    lm_state = BatchLMState(lm, n_utts * W) if lm is not None else None
    active = torch.arange(n_utts, device=device)  # original index of each utterance in the batch
    yseq = torch.full((n_utts * W, 1), sos, dtype=torch.long, device=device)
    # one live hypothesis (<sos>) per utterance; the other rows are empty slots
    score = torch.full((n_utts, W), -math.inf, device=device, dtype=enc.dtype)
    score[:, 0] = 0.0
    score = score.view(-1)
    step = 0
    while active.numel() > 0:
        weighted = _weighted_scores(decoder, ctc, lm_state, yseq, score, step, opts, w_dec, w_ctc)
        n_vocab = weighted.size(1)
        top_scores, top_ids = weighted.view(active.numel(), W * n_vocab).topk(W, dim=1)
        rows = (
            torch.div(top_ids, n_vocab, rounding_mode="trunc")
            + torch.arange(active.numel(), device=device)[:, None] * W
        ).view(-1)
        tokens = (top_ids % n_vocab).view(-1)
        yseq = torch.cat([yseq.index_select(0, rows), tokens[:, None]], dim=1)
        score = top_scores.view(-1).clone()
        decoder.reorder(rows)
        if ctc is not None:
            ctc.select(rows, tokens)
        if lm_state is not None:
            lm_state.select(rows)
        score = _retire_ended(utts, active, yseq, score, tokens, step, W, eos, opts)
        keep = [k for k, b in enumerate(active.tolist()) if not utts[b].done]
        if len(keep) < active.numel():
            keep_t = torch.tensor(keep, dtype=torch.long, device=device)
            rows_kept = (keep_t[:, None] * W + torch.arange(W, device=device)).view(-1)
            active = active.index_select(0, keep_t)
            if keep:
                decoder.keep_utts(keep_t)
                if ctc is not None:
                    ctc.keep_utts(keep_t)
                if lm_state is not None:
                    lm_state.select(rows_kept)
            yseq, score = yseq.index_select(0, rows_kept), score.index_select(0, rows_kept)
        step += 1
    return [u.ended for u in utts]


def _weighted_scores(
    decoder: IncrementalDecoder,
    ctc,
    lm_state: Optional[BatchLMState],
    yseq: torch.Tensor,
    score: torch.Tensor,
    step: int,
    opts: DecodeOptions,
    w_dec: float,
    w_ctc: float,
) -> torch.Tensor:
    """(N, V) total scores of every one-token extension, added in ESPnet's order (full scorers
    decoder, length bonus, LM as ``asr_inference`` registers them; then CTC; then the running score)."""
    last = yseq[:, -1]
    dec_logp = decoder.step(last)
    weighted = torch.zeros_like(dec_logp)
    weighted += w_dec * dec_logp
    if opts.penalty != 0:
        weighted += opts.penalty * torch.ones_like(dec_logp)
    if lm_state is not None:
        weighted += opts.lm_weight * lm_state.score(yseq)
    if ctc is not None:
        n_vocab = dec_logp.size(1)
        pre_beam = opts.pre_beam_size
        if pre_beam < n_vocab:
            ids = torch.topk(weighted, pre_beam, dim=-1)[1]
        else:  # ESPnet scores every token when the pre-beam would not be smaller than the vocabulary
            ids = torch.arange(n_vocab, device=weighted.device).expand(weighted.size(0), -1)
        weighted += w_ctc * ctc.score(last, step, ids)
    weighted += score[:, None]
    return weighted


def _retire_ended(
    utts: Sequence[_UttState],
    active: torch.Tensor,
    yseq: torch.Tensor,
    score: torch.Tensor,
    tokens: torch.Tensor,
    step: int,
    W: int,
    eos: int,
    opts: DecodeOptions,
) -> torch.Tensor:
    """Move hypotheses that end at this step out of the beam; mark finished utterances."""
    tokens_l, score_l = tokens.tolist(), score.tolist()
    for k, b in enumerate(active.tolist()):
        u = utts[b]
        last_step = step == u.maxlen - 1
        for w in range(W):
            row = k * W + w
            if score_l[row] == -math.inf:
                continue  # an empty slot (fewer live candidates than the beam)
            if tokens_l[row] != eos and not last_step:
                continue
            seq = yseq[row].tolist() + ([eos] if last_step else [])
            if step >= u.minlen:
                u.ended.append(Hyp(yseq=seq, score=score_l[row]))
            score[row] = -math.inf
        if last_step or not torch.isfinite(score[k * W : (k + 1) * W]).any():
            u.done = True
        elif opts.maxlenratio == 0.0 and end_detect(_as_espnet(u.ended), step):
            u.done = True
    return score


def _as_espnet(hyps: Sequence[Hyp]) -> List[dict]:
    """Ended hypotheses as ``end_detect`` sees them in ESPnet: float32 scores (its arithmetic)."""
    return [{"yseq": h.yseq, "score": torch.tensor(h.score, dtype=torch.float32)} for h in hyps]
