"""Decoding options and results shared by every search method.

The length rules are ESPnet's (``espnet.nets.beam_search.BeamSearch.forward``) so that the
fast search, the reference search and the greedy searches stop at the same place:

* ``maxlenratio == 0``: at most T output tokens (T = encoder frames) and end detection;
* ``maxlenratio < 0``: at most ``-maxlenratio`` tokens;
* ``maxlenratio > 0``: at most ``max(1, int(maxlenratio * T))`` tokens;
* ``minlenratio < 0``: at least ``-minlenratio`` tokens, else ``int(minlenratio * T)``.

The released USR 2.0 evaluation (``ahaliassos/usr2``: ``evaluator.py`` with its vendored
``espnet/nets/beam_search.py``) uses the same rules; its default is ``maxlenratio 1.0``
(T tokens, no end detection), its noise and long-input settings ``0.4``. The one
difference: it keeps hypotheses that end before ``minlen`` (it computes ``minlen`` but never
uses it), which only matters for ``minlenratio > 0`` (its settings all use 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Tuple

METHODS = ("beam", "greedy_att", "greedy_ctc")
BEAM_IMPLS = ("fast", "espnet")


@dataclass
class DecodeOptions:
    """Search settings (joint CTC/attention scoring: paper Appendix B.1, eq. 10); defaults are
    those of the released USR 2.0 decoding: beam 40, ctc_weight 0.1 (Sec. 5 uses beam 30),
    maxlenratio 1.0 without end detection (``maxlenratio=0.0``: ESPnet's end detection).

    ``lm_weight``: shallow fusion with an ESPnet LM (:mod:`.lm`; beam search only). At 0
    no LM is used and the search is exactly the one without an LM."""

    method: str = "beam"
    beam_impl: str = "fast"
    beam_size: int = 40
    ctc_weight: float = 0.1
    penalty: float = 0.0
    maxlenratio: float = 1.0
    minlenratio: float = 0.0
    nbest: int = 1
    pre_beam_ratio: float = 1.5
    lm_weight: float = 0.0

    @classmethod
    def field_names(cls) -> frozenset:
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "DecodeOptions":
        """The search options among ``options`` (a decoding YAML, a parsed command line's
        ``vars``); other keys are left to their readers, missing fields keep their defaults."""
        return cls(**{k: v for k, v in options.items() if k in cls.field_names()})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown decoding method {self.method!r}; expected one of {METHODS}")
        if self.beam_impl not in BEAM_IMPLS:
            raise ValueError(f"unknown beam_impl {self.beam_impl!r}; expected one of {BEAM_IMPLS}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.nbest < 1:
            raise ValueError(f"nbest must be >= 1, got {self.nbest}")
        if self.nbest > self.beam_size and self.method == "beam":
            raise ValueError(f"nbest ({self.nbest}) cannot exceed beam_size ({self.beam_size})")
        if self.lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {self.lm_weight}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.method == "beam" and self.ctc_weight == 1.0:
            # with the decoder weight at 0, ESPnet's pre-beam would rank tokens by a constant
            raise ValueError(
                "beam search needs ctc_weight < 1 (the attention decoder ranks the "
                "pre-beam); for CTC-only decoding use --method greedy_ctc"
            )

    @property
    def pre_beam_size(self) -> int:
        """ESPnet's ``int(pre_beam_ratio * beam_size)``: tokens per hypothesis the CTC scores."""
        return int(self.pre_beam_ratio * self.beam_size)


def transcription_search() -> DecodeOptions:
    """The search of ``usr2_transcribe`` and :class:`USR2Speech2Text` when nothing is chosen:
    joint CTC/attention beam search, beam 10, CTC weight 0.3, stopped by ESPnet's end detection
    (``maxlenratio 0``). Chosen by measurement (``bench/bench_long_form.py``, README "Transcribe
    a video"): near the tuned recipe search's WER at a fraction of the released search's time
    (beam 40 without end detection runs every utterance to its frame count and lets a weak model
    loop); greedy attention and greedy CTC are faster but fall apart with a weak decoder or CTC
    head. The released search stays a config away: ``conf/decode_beam40.yaml``."""
    return DecodeOptions(beam_size=10, ctc_weight=0.3, maxlenratio=0.0)


def length_bounds(n_frames: int, maxlenratio: float, minlenratio: float) -> Tuple[int, int]:
    """(maxlen, minlen) in output tokens for ``n_frames`` encoder frames, ESPnet's rules."""
    if maxlenratio == 0:
        maxlen = n_frames
    elif maxlenratio < 0:
        maxlen = -1 * int(maxlenratio)
    else:
        maxlen = max(1, int(maxlenratio * n_frames))
    minlen = -1 * int(minlenratio) if minlenratio < 0 else int(minlenratio * n_frames)
    return maxlen, minlen


@dataclass
class Hyp:
    """One decoded hypothesis: ``yseq`` as the search keeps it (``<sos>`` ... ``<eos>``)."""

    yseq: List[int]
    score: float
    scores: dict = field(default_factory=dict)

    def token_ids(self, sos: int, eos: int, blank: int = 0) -> List[int]:
        """Output tokens: without the leading ``<sos>``, any ``<eos>`` and blanks.

        ESPnet's search can end a hypothesis with two ``<eos>`` (a hypothesis that chose
        ``<eos>`` at the last allowed step gets another one appended); none is a token.
        """
        body = self.yseq[1:] if self.yseq and self.yseq[0] == sos else self.yseq
        return [t for t in body if t != eos and t != blank]


def empty_hyp(sos: int, eos: int) -> Hyp:
    """The hypothesis written for an utterance that cannot be decoded (no input frames)."""
    return Hyp(yseq=[sos, eos], score=0.0)
