"""The paper's two long-utterance failure types: repetition loops and omissions."""

from __future__ import annotations

import pytest

from espnet_usr2.analysis import failures as fl
from espnet_usr2.scoring.sclite import ScoringInputError


@pytest.mark.parametrize(
    "hyp,expected",
    [
        ("the cat the cat the cat sat", (("the", "cat"), 3)),
        ("so so so so", (("so",), 4)),
        ("a b c d a b c d a b c d", (("a", "b", "c", "d"), 3)),
        ("I think I think so", None),  # twice is not a loop
        ("one two three four five", None),
        ("a b c d e a b c d e a b c d e", None),  # 5-grams are longer than MAX_NGRAM
    ],
)
def test_repetition_loop_in_hypothesis(hyp, expected):
    loop = fl.repetition_failure("some unrelated reference words", hyp)
    assert (None if loop is None else (loop.ngram, loop.repeats)) == expected


def test_loops_are_maximal_and_primitive():
    # "a a a a a a" is one loop of "a" x 6: not also "a a" x 3, not a second run from word 1
    assert fl.repetition_loops("a a a a a a".split()) == [fl.Loop(("a",), 6, 0)]


def test_repetition_in_the_reference_is_not_a_failure():
    assert fl.repetition_failure("no no no he said", "no no no he said") is None
    assert fl.repetition_failure("No no NO", "no no no") is None  # case-folded like sclite
    # running past what was said is a loop again
    loop = fl.repetition_failure("no no no he said", "no no no no no he said")
    assert loop is not None and loop.repeats == 5


@pytest.mark.parametrize(
    "n_ref,n_hyp,omitted",
    [
        (9, 5, True),
        (9, 6, False),
        (10, 6, True),
        (10, 7, False),
        (3, 1, True),
        (3, 2, False),
        (0, 0, False),
        (1, 0, True),
    ],
)
def test_omission_is_more_than_a_third_missing(n_ref, n_hyp, omitted):
    ref = " ".join(f"r{i}" for i in range(n_ref))
    hyp = " ".join(f"h{i}" for i in range(n_hyp))
    assert fl.is_omission(ref, hyp) is omitted


def test_count_failures_over_a_set():
    ref = {"u1": "the cat sat on the mat", "u2": "no no no", "u3": "a b c d e f"}
    hyp = {"u1": "the cat the cat the cat", "u2": "no no no", "u3": "a b"}
    counts = fl.count_failures(ref, hyp)
    assert (counts.n_utts, counts.repetition, counts.omission) == (3, 1, 1)
    assert counts.repetition_ids == ["u1"] and counts.omission_ids == ["u3"]
    with pytest.raises(ScoringInputError, match="no hypothesis"):
        fl.count_failures(ref, {"u1": "x"})
