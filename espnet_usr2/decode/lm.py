"""Shallow fusion with an ESPnet language model (``espnet2.bin.lm_train``, stage 7 of ``usr2.sh``).

The LM (loaded and checked by :func:`espnet_usr2.utils.espnet_lm.load_lm`) implements ESPnet's
``BatchScorerInterface``, so the reference search (:mod:`.espnet_beam`) adds it as a scorer
exactly as ``asr_inference`` does, and the fast search (:mod:`.fast_beam`) calls the same
``batch_score`` on all utterances x hypotheses at once through :class:`BatchLMState`.
"""

from __future__ import annotations

from typing import Any, List

import torch


class BatchLMState:
    """LM scores and states of ``N = utterances x hypotheses`` prefixes, reordered with the beam.

    The states are those ESPnet's ``batch_score`` returns (one entry per prefix), so any
    ESPnet LM works; ``xs`` is not used by LMs and is given as ``None``.
    """

    def __init__(self, lm: torch.nn.Module, n_rows: int):
        self.lm = lm
        self.states: List[Any] = [None] * n_rows

    @torch.no_grad()
    def score(self, yseq: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V) of the next token after each prefix ``yseq`` (N, L), ``<sos>`` first."""
        logp, self.states = self.lm.batch_score(yseq, self.states, None)
        return logp

    def select(self, rows: torch.Tensor) -> None:
        """New row ``k`` continues old row ``rows[k]`` (beam selection, dropped utterances)."""
        self.states = [self.states[i] for i in rows.tolist()]
