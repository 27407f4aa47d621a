"""The paper's two failure types of long-utterance decoding (USR 2.0, Sec. 5.1 and Fig. 5).

Autoregressive pseudo-labels and decoding can drift on inputs longer than those seen in
training; the paper shows two ways this goes wrong, counted here per hypothesis:

* **Repetition loop** -- the hypothesis repeats an n-gram of ``n = 1..MAX_NGRAM`` (4) words
  at least ``MIN_REPEATS`` (3) times back to back ("the cat the cat the cat"), *and* the
  reference does not hold that n-gram repeated as many times in a row.  A reference "no no
  no" decoded as "no no no" is therefore correct, not a loop; decoded as "no no no no" it
  is one (the hypothesis runs past what was said).
* **Omission** -- the hypothesis has fewer than ``2/3`` of the reference's words, i.e. more
  than a third of the reference words are missing from it.  The test is on word *counts*
  (``3 * len(hyp) < 2 * len(ref)``, exact in integers), not on the alignment's deletions:
  a decoder that stops early produces a short hypothesis whatever words it got right, and
  substitutions of a too-short hypothesis are not what this failure is about.  An empty
  reference has nothing to omit.

Words are compared case-insensitively (sclite's default folding for ASCII); hypotheses and
references are whitespace-split Kaldi ``text`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet_usr2.scoring.sclite import match_hypotheses

MAX_NGRAM = 4  # longest repeated unit looked for, in words
MIN_REPEATS = 3  # back-to-back occurrences that make a loop
OMISSION_FRACTION = (1, 3)  # more than this fraction of the reference words missing


@dataclass(frozen=True)
class Loop:
    """``ngram`` occurring ``repeats`` times back to back from word ``start`` of a hypothesis."""

    ngram: Tuple[str, ...]
    repeats: int
    start: int


def _words(text: str) -> List[str]:
    return text.lower().split()


def run_length(words: Sequence[str], start: int, n: int) -> int:
    """How many times the n-gram at ``words[start:start+n]`` occurs back to back from ``start``."""
    unit = tuple(words[start : start + n])
    if len(unit) < n:
        return 0
    repeats = 1
    while tuple(words[start + repeats * n : start + (repeats + 1) * n]) == unit:
        repeats += 1
    return repeats


def _primitive(ngram: Tuple[str, ...]) -> bool:
    """False for an n-gram that is itself a repetition of a shorter one ("a a", "a b a b")."""
    n = len(ngram)
    return not any(n % p == 0 and ngram == ngram[:p] * (n // p) for p in range(1, n))


def repetition_loops(words: Sequence[str], max_ngram: int = MAX_NGRAM, min_repeats: int = MIN_REPEATS) -> List[Loop]:
    """Every maximal back-to-back run of a primitive n-gram (``n <= max_ngram``) of at least
    ``min_repeats`` occurrences.  "a a a a" is one loop of "a" x 4, not also "a a" x 2."""
    if max_ngram < 1 or min_repeats < 2:
        raise ValueError(f"need max_ngram >= 1 and min_repeats >= 2, got {max_ngram}, {min_repeats}")
    loops: List[Loop] = []
    for n in range(1, max_ngram + 1):
        start = 0
        while start + n <= len(words):
            repeats = run_length(words, start, n)
            unit = tuple(words[start : start + n])
            # a run starting one unit earlier already covers this start: report maximal runs only
            inside = start >= n and tuple(words[start - n : start]) == unit
            if repeats >= min_repeats and _primitive(unit) and not inside:
                loops.append(Loop(unit, repeats, start))
            start += 1
    return loops


def longest_run(words: Sequence[str], ngram: Tuple[str, ...]) -> int:
    """The most back-to-back occurrences of ``ngram`` anywhere in ``words`` (0 if absent)."""
    n = len(ngram)
    return max(
        (run_length(words, i, n) for i in range(len(words) - n + 1) if tuple(words[i : i + n]) == ngram), default=0
    )


def repetition_failure(
    ref: str, hyp: str, max_ngram: int = MAX_NGRAM, min_repeats: int = MIN_REPEATS
) -> Optional[Loop]:
    """The first loop of ``hyp`` that repeats more often than the reference does, else None."""
    ref_words = _words(ref)
    for loop in repetition_loops(_words(hyp), max_ngram, min_repeats):
        if loop.repeats > longest_run(ref_words, loop.ngram):
            return loop
    return None


def is_omission(ref: str, hyp: str, fraction: Tuple[int, int] = OMISSION_FRACTION) -> bool:
    """True when more than ``fraction`` (num, den) of the reference's word count is missing
    from the hypothesis: ``len(hyp) < (1 - num/den) * len(ref)``, in integers."""
    num, den = fraction
    if not 0 < num < den:
        raise ValueError(f"fraction must be num/den with 0 < num < den, got {num}/{den}")
    n_ref, n_hyp = len(ref.split()), len(hyp.split())
    return den * n_hyp < (den - num) * n_ref


@dataclass
class FailureCounts:
    """How many hypotheses of a set show each failure type (an utterance may show both)."""

    n_utts: int = 0
    repetition: int = 0
    omission: int = 0
    repetition_ids: List[str] = field(default_factory=list)
    omission_ids: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        return {
            "utterances": self.n_utts,
            "repetition": self.repetition,
            "omission": self.omission,
            "repetition_ids": self.repetition_ids,
            "omission_ids": self.omission_ids,
        }


def count_failures(
    ref: Mapping[str, str], hyp: Mapping[str, str], missing_hyp: str = "error", extra_hyp: str = "error"
) -> FailureCounts:
    """Count both failure types over a test set; hypotheses are matched to references by id
    exactly as in scoring (a missing hypothesis is an error unless ``missing_hyp="empty"``)."""
    matched = match_hypotheses(ref, hyp, missing_hyp, extra_hyp)
    out = FailureCounts(n_utts=len(matched.ids))
    for uid in matched.ids:
        if repetition_failure(matched.ref[uid], matched.hyp[uid]) is not None:
            out.repetition += 1
            out.repetition_ids.append(uid)
        if is_omission(matched.ref[uid], matched.hyp[uid]):
            out.omission += 1
            out.omission_ids.append(uid)
    return out
