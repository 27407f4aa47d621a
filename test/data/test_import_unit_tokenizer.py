"""Text in the released vocabulary: the SentencePiece model written from a units list."""

from __future__ import annotations

from pathlib import Path

import pytest
from espnet2.text.build_tokenizer import build_tokenizer
from espnet2.text.token_id_converter import TokenIDConverter

from espnet_usr2.data.unit_tokenizer import (
    UnitsFileError,
    read_units,
    release_token_list,
    write_sentencepiece_model,
    write_token_list,
)

# a units list shaped like the release's: <unk> first, then pieces in sorted order, every
# character on its own so that any upper-case word is covered
WORDS = [
    "\u2581THE",
    "\u2581HELLO",
    "\u2581WORLD",
    "\u2581START",
    "\u2581STAR",
    "\u2581YOU",
    "\u2581DON",
    "ED",
    "TED",
    "ING",
    "\u2581A",
    "\u2581I",
]
CHARS = ["'", "\u2581", *"0123456789", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
UNITS = ["<unk>", *sorted(set(WORDS + CHARS))]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    units_file = root / "units.txt"
    units_file.write_text("".join(f"{u} {i}\n" for i, u in enumerate(UNITS, 1)), encoding="utf-8")
    units = read_units(units_file)
    tokens = release_token_list(units)
    write_token_list(tokens, root / "tokens.txt")
    write_sentencepiece_model(units, root / "bpe.model")
    # exactly as ESPnet's preprocessor and Speech2Text build them from --token_list / --bpemodel
    return (
        build_tokenizer("bpe", bpemodel=str(root / "bpe.model")),
        TokenIDConverter(str(root / "tokens.txt"), unk_symbol="<unk>"),
        tokens,
    )


def _encode(tokenizer, text):
    tok, conv, _ = tokenizer
    pieces = tok.text2tokens(text)
    return pieces, conv.tokens2ids(pieces)


@pytest.mark.parametrize(
    "text",
    [
        "HELLO WORLD",
        "I DON'T KNOW WHAT YOU STARTED",
        "THE 1990S AND 2000S",
        "A",
        "QUIZZICAL JUXTAPOSITION",
    ],
)
def test_round_trip_through_released_ids(tokenizer, text):
    tok, conv, tokens = tokenizer
    pieces, ids = _encode(tokenizer, text)
    assert all(0 < i < len(tokens) - 1 for i in ids)  # units only: no <blank>, <sos/eos> or <unk>
    assert ids != [1] * len(ids)
    assert tok.tokens2text(conv.ids2tokens(ids)) == text


def test_ids_are_the_released_numbering(tokenizer):
    _, _, tokens = tokenizer
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert len(tokens) == len(UNITS) + 2
    pieces, ids = _encode(tokenizer, "THE WORLD")
    assert pieces == ["\u2581THE", "\u2581WORLD"]
    assert ids == [UNITS.index("\u2581THE") + 1, UNITS.index("\u2581WORLD") + 1]  # units file id = token id


def test_segmentation_fewest_pieces_then_longest(tokenizer):
    assert _encode(tokenizer, "HELLO")[0] == ["\u2581HELLO"]  # a unit stays whole
    # STARTED: two pieces either way (START+ED, STAR+TED); the longer first piece wins
    assert _encode(tokenizer, "STARTED")[0] == ["\u2581START", "ED"]
    assert _encode(tokenizer, "SINGING")[0] == ["\u2581", "S", "ING", "ING"]


def test_lower_case_and_spacing_are_normalised(tokenizer):
    assert _encode(tokenizer, "  hello   World ") == _encode(tokenizer, "HELLO WORLD")


def test_characters_no_unit_covers_become_unk(tokenizer):
    tok, conv, _ = tokenizer
    pieces, ids = _encode(tokenizer, "CAF\u00c9 HELLO")
    assert ids.count(1) == 1  # <unk> is id 1
    assert ids[-1] == UNITS.index("\u2581HELLO") + 1
    assert tok.tokens2text(conv.ids2tokens(ids)).endswith("HELLO")


@pytest.mark.parametrize(
    "content, message",
    [
        ("<unk> 1\nA 3\n", "expected 'PIECE 2'"),
        ("A 1\n<unk> 2\n", "must be <unk>"),
        ("<unk> 1\nA 2\nA 3\n", "appears twice"),
        ("<unk> 1\n<blank> 2\n", "added by the token list"),
        ("<unk>\n", "expected 'PIECE 1'"),
        ("", "no units"),
    ],
)
def test_bad_units_files_are_refused(tmp_path: Path, content, message):
    path = tmp_path / "units.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UnitsFileError, match=message):
        read_units(path)
