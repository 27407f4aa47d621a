"""Greedy decoding, batched over utterances (paper Sec. 5.1 / 5.3 and Table 12: long and OOD inputs).

* CTC-only: the best token of every frame, repeats merged, blanks removed; the score is
  the log-probability of that best path.
* Attention-only: the decoder's argmax token after token (with the key/value cache of
  :mod:`espnet_usr2.model.incremental`) until ``<eos>``; ``<eos>`` is not allowed before
  ``minlen`` tokens and is forced after ``maxlen`` tokens (ESPnet's length rules,
  :func:`.hyps.length_bounds`).
"""

from __future__ import annotations

import math
from typing import List

import torch

from espnet_usr2.decode.hyps import DecodeOptions, Hyp, length_bounds
from espnet_usr2.model.incremental import IncrementalDecoder


@torch.no_grad()
def greedy_ctc(
    net, enc: torch.Tensor, enc_lens: torch.Tensor, modality: str, sos: int, eos: int, blank: int = 0
) -> List[List[Hyp]]:
    """Best-path CTC decoding of each utterance: a 1-best list each."""
    logp = net.ctc_head(modality).log_softmax(enc)
    best_logp, best_ids = logp.max(dim=-1)
    results = []
    for b, n in enumerate(enc_lens.tolist()):
        path = best_ids[b, :n]
        # merge repeats: keep a frame's token when it differs from the previous frame's
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]
        tokens = [t for t in path[keep].tolist() if t != blank]
        results.append([Hyp(yseq=[sos, *tokens, eos], score=float(best_logp[b, :n].sum()))])
    return results


@torch.no_grad()
def greedy_attention(
    net, enc: torch.Tensor, enc_lens: torch.Tensor, modality: str, opts: DecodeOptions, sos: int, eos: int
) -> List[List[Hyp]]:
    """Argmax decoding with the attention decoder of ``modality``: a 1-best list each."""
    n_utts, device = enc.size(0), enc.device
    bounds = [length_bounds(int(n), opts.maxlenratio, opts.minlenratio) for n in enc_lens.tolist()]
    maxlen = torch.tensor([b[0] for b in bounds], device=device)
    minlen = torch.tensor([b[1] for b in bounds], device=device)
    decoder = IncrementalDecoder(net.decoder, enc, enc_lens.to(device), modality, hyps_per_utt=1)
    tokens = torch.full((n_utts,), sos, dtype=torch.long, device=device)
    outputs: List[List[int]] = [[] for _ in range(n_utts)]
    scores = torch.zeros(n_utts, dtype=enc.dtype, device=device)
    running = torch.ones(n_utts, dtype=torch.bool, device=device)
    step = 0
    while bool(running.any()):
        logp = decoder.step(tokens)
        too_short = step < minlen
        logp[too_short, eos] = -math.inf
        tokens = logp.argmax(dim=-1)
        scores += torch.where(running, logp.gather(1, tokens[:, None]).squeeze(1), torch.zeros_like(scores))
        for b in torch.nonzero(running).view(-1).tolist():
            if int(tokens[b]) != eos:
                outputs[b].append(int(tokens[b]))
        # the last allowed step ends the hypothesis (ESPnet appends <eos> there)
        running &= (tokens != eos) & (step < maxlen - 1)
        step += 1
    return [[Hyp(yseq=[sos, *out, eos], score=float(s))] for out, s in zip(outputs, scores.tolist())]
