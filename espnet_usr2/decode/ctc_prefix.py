"""Vectorised CTC prefix scoring for B utterances x W hypotheses x S candidate tokens.

The prefix probability recursion is the one of Watanabe et al. (2017, Algorithm 2) in its
vectorised form (Seki et al., Interspeech 2019), with the conventions of ESPnet's
``CTCPrefixScoreTH`` so that scores -- and therefore beam decisions -- are the same as in
ESPnet's ``BatchBeamSearch``:

* only the ``S`` pre-beam tokens of each hypothesis are scored, the others get ``logzero``;
* ``<eos>`` is always scored (the probability of the prefix over the whole utterance);
* blank is never a candidate;
* the returned score is ``log psi(prefix + c) - log psi(prefix)``.

Unlike ``CTCPrefixScoreTH`` there is no Python loop over hypotheses (gathers and scatters
instead), and finished utterances can be dropped from the state (:meth:`keep_utts`).
Frames past an utterance's end are padded so they change nothing: blank log-prob 0,
every other token ``logzero``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

LOGZERO = -10000000000.0  # ESPnet's logzero: finite, so that logzero - logzero is not NaN


class BatchCTCPrefixScorer:
    """CTC prefix scores of ``W`` hypotheses per utterance; state per hypothesis row."""

    def __init__(self, logp: torch.Tensor, lengths: torch.Tensor, blank: int, eos: int, hyps_per_utt: int):
        """``logp``: CTC log-posteriors (B, T, V); ``lengths``: frames per utterance (B,)."""
        self.blank, self.eos, self.W = blank, eos, hyps_per_utt
        logp = logp.clone()
        n_frames = logp.size(1)
        lengths = lengths.to(logp.device)
        pad = torch.arange(n_frames, device=logp.device)[None, :] >= lengths[:, None]  # (B, T)
        logp.masked_fill_(pad[:, :, None], LOGZERO)
        logp[:, :, blank].masked_fill_(pad, 0.0)
        self.x = logp.transpose(0, 1).contiguous()  # (T, B, V)
        self.end_frames = lengths - 1
        n_rows = logp.size(0) * hyps_per_utt
        # initial state of every row: the empty prefix (r^n = logzero, r^b = cumulative blank)
        r = torch.full((n_frames, 2, n_rows), LOGZERO, dtype=logp.dtype, device=logp.device)
        r[:, 1] = torch.cumsum(self.x[:, :, blank], 0).repeat_interleave(hyps_per_utt, dim=1)
        self.r = r  # (T, 2, N)
        self.s = torch.zeros(n_rows, dtype=logp.dtype, device=logp.device)  # log psi of each prefix
        self._pending: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None

    @property
    def num_utts(self) -> int:
        return self.x.size(1)

    def _utt_of_row(self) -> torch.Tensor:
        return torch.arange(self.num_utts, device=self.x.device).repeat_interleave(self.W)

    def score(self, last_tokens: torch.Tensor, output_length: int, ids: torch.Tensor) -> torch.Tensor:
        """Scores (N, V) of extending each row's prefix by each token.

        ``last_tokens``: last token of each prefix (N,); ``output_length``: tokens in the
        prefixes, ``<sos>`` excluded; ``ids``: the S pre-beam tokens of each row (N, S).
        """
        n_frames, n_rows, n_ids = self.x.size(0), ids.size(0), ids.size(1)
        utt = self._utt_of_row()
        # x_[0]: log p(c) of the candidate tokens, x_[1]: log p(blank); (2, T, N, S)
        x_c = self.x[:, utt[:, None], ids]
        x_b = self.x[:, utt, self.blank][:, :, None].expand(-1, -1, n_ids)
        x_ = torch.stack([x_c, x_b])
        r = torch.full((n_frames, 2, n_rows, n_ids), LOGZERO, dtype=self.x.dtype, device=self.x.device)
        if output_length == 0:
            r[0, 0] = x_[0, 0]
        r_sum = torch.logsumexp(self.r, 1)  # (T, N)
        # a repeated token needs a blank in between: phi uses r^b for c == last token
        repeat = ids == last_tokens[:, None]
        log_phi = torch.where(repeat[None], self.r[:, 1, :, None], r_sum[:, :, None])  # (T, N, S)
        start = min(max(output_length, 1), n_frames)
        for t in range(start, n_frames):
            # r^n_t = (r^n_{t-1} + phi_{t-1}) x_t(c), r^b_t = (r^n_{t-1} + r^b_{t-1}) x_t(blank), in log space;
            # two-term logaddexp into the state in place: a third of the time of stack + logsumexp
            # (the loop is most of a CPU search step), equal to it up to rounding
            rp, rt = r[t - 1], r[t]
            torch.logaddexp(rp[0], log_phi[t - 1], out=rt[0])
            torch.logaddexp(rp[0], rp[1], out=rt[1])
            rt += x_[:, t]
        log_phi_x = torch.cat((log_phi[0].unsqueeze(0), log_phi[:-1]), dim=0) + x_[0]
        psi_ids = torch.logsumexp(torch.cat((log_phi_x[start:], r[start - 1, 0].unsqueeze(0)), dim=0), dim=0)
        log_psi = torch.full((n_rows, self.x.size(2)), LOGZERO, dtype=self.x.dtype, device=self.x.device)
        log_psi.scatter_(1, ids, psi_ids)
        log_psi[:, self.eos] = r_sum[self.end_frames[utt], torch.arange(n_rows, device=utt.device)]
        if self.eos != self.blank:
            log_psi[:, self.blank] = LOGZERO
        self._pending = (r, log_psi, ids)
        return log_psi - self.s[:, None]

    def select(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        """New state: row ``k`` is old row ``rows[k]`` extended by ``tokens[k]`` (after :meth:`score`)."""
        r, log_psi, ids = self._pending
        match = ids.index_select(0, rows) == tokens[:, None]
        # a token outside the pre-beam keeps ESPnet's choice of the last column; only <eos>
        # can get there in practice, and an ended hypothesis' state is never used again
        pos = torch.where(match.any(1), match.int().argmax(1), torch.full_like(tokens, ids.size(1) - 1))
        self.r = r[:, :, rows, pos]
        self.s = log_psi[rows, tokens]
        self._pending = None

    def keep_utts(self, utt_index: torch.Tensor) -> None:
        """Drop every utterance not in ``utt_index``; frames beyond the longest kept one too."""
        rows = (utt_index[:, None] * self.W + torch.arange(self.W, device=utt_index.device)).reshape(-1)
        self.end_frames = self.end_frames.index_select(0, utt_index)
        n_frames = int(self.end_frames.max()) + 1
        self.x = self.x[:n_frames].index_select(1, utt_index)
        self.r = self.r[:n_frames].index_select(2, rows)
        self.s = self.s.index_select(0, rows)
