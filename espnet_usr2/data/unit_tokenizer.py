"""Text in the released vocabulary: a SentencePiece model written from a units list.

The released USR / USR 2.0 models predict the 1047 units of ``unigram1000_units.txt``
(``PIECE ID`` per line, ids 1..1047, ``<unk>`` first); with ``<blank>`` (0) in front and
``<sos/eos>`` (1048) behind, that is the model's 1049-entry output vocabulary. The
SentencePiece model that made those units was never published, so new transcripts (a
user's own labelled data, references for scoring) cannot be tokenised the release's way.

:func:`write_sentencepiece_model` writes a real SentencePiece unigram model whose pieces are
exactly the units, so every ESPnet path that takes ``--bpemodel`` works unchanged and the
pieces map onto the released ids through the token list (:func:`release_token_list`).
What is not the release's:

* **piece scores.** The unigram log-probabilities were not published. Every piece scores
  ``-1`` (:data:`PIECE_SCORE`), so SentencePiece's Viterbi segmentation is the one with the
  *fewest pieces* (a word that is a unit stays whole), plus ``1e-4 * len(piece)**2``
  (:data:`LENGTH_TIE_BREAK`), which among equally short segmentations prefers the one with
  the longest piece (``STARTED`` -> ``▁START ED`` rather than ``▁STAR TED``). The bonus
  of a whole word stays below one piece's score for words under 100 characters, so it
  never buys an extra piece. Segmentations may therefore differ from the release's for
  words that are not single units; the ids, and the text they decode to, are the release's.
* **normalisation.** The units are upper case (LRS3 transcripts), so the model maps ``a-z``
  to ``A-Z`` (a SentencePiece normalisation rule, compiled by SentencePiece itself) and
  collapses runs of white space; any other character no unit covers becomes ``<unk>``.

SentencePiece ids are the released ids minus one (``<blank>`` is not a piece).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import List, Sequence, Union

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

PathLike = Union[str, Path]
BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"
PIECE_SCORE = -1.0
LENGTH_TIE_BREAK = 1e-4
#: characters folded by the normaliser (the units hold upper-case letters only)
FOLDED_TO_UPPER = "abcdefghijklmnopqrstuvwxyz"


class UnitsFileError(ValueError):
    """The units file is not a ``PIECE ID`` list with ids 1, 2, ... and ``<unk>`` first."""


def read_units(path: PathLike) -> List[str]:
    """The pieces of a units file (``PIECE ID`` per line), in id order; checks the numbering."""
    units: List[str] = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            expected = len(units) + 1
            if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) != expected:
                raise UnitsFileError(f"{path}:{lineno}: expected 'PIECE {expected}', got {line.rstrip()!r}")
            piece = fields[0]
            if piece in seen:
                raise UnitsFileError(f"{path}:{lineno}: piece {piece!r} appears twice")
            if piece in (BLANK, SOS_EOS):
                raise UnitsFileError(
                    f"{path}:{lineno}: {piece} is added by the token list; the units file must not contain it"
                )
            seen.add(piece)
            units.append(piece)
    if not units:
        raise UnitsFileError(f"{path}: no units")
    if units[0] != UNK:
        raise UnitsFileError(f"{path}: the first unit (id 1) must be {UNK}, got {units[0]!r}")
    return units


def release_token_list(units: Sequence[str]) -> List[str]:
    """The model's output vocabulary: ``<blank>`` (0), the units (1..), ``<sos/eos>`` (last)."""
    return [BLANK, *units, SOS_EOS]


def write_token_list(tokens: Sequence[str], path: PathLike) -> None:
    """ESPnet's ``tokens.txt``: one token per line, the line number is the id."""
    Path(path).write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")


def piece_score(piece: str) -> float:
    """Score of a unit in the written model (see the module docstring)."""
    return PIECE_SCORE + LENGTH_TIE_BREAK * len(piece) ** 2


def sentencepiece_model_from_units(units: Sequence[str]) -> bytes:
    """A serialised SentencePiece unigram model whose pieces are ``units`` (``<unk>`` first)."""
    if not units or units[0] != UNK:
        raise UnitsFileError(f"the units must start with {UNK}")
    model = sp_pb2.ModelProto()
    for unit in units:
        piece = model.pieces.add()
        piece.piece = unit
        if unit == UNK:
            piece.type = sp_pb2.ModelProto.SentencePiece.UNKNOWN
            piece.score = 0.0
        else:
            piece.type = sp_pb2.ModelProto.SentencePiece.NORMAL
            piece.score = piece_score(unit)
    spec = model.trainer_spec
    spec.model_type = sp_pb2.TrainerSpec.UNIGRAM
    spec.vocab_size = len(units)
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, -1, -1, -1
    model.normalizer_spec.CopyFrom(_upper_case_normalizer())
    data = model.SerializeToString()
    spm.SentencePieceProcessor(model_proto=data)  # refuses a malformed model here, not at first use
    return data


def write_sentencepiece_model(units: Sequence[str], path: PathLike) -> None:
    """Write :func:`sentencepiece_model_from_units` to ``path`` (ESPnet's ``bpe.model``)."""
    Path(path).write_bytes(sentencepiece_model_from_units(units))


def _upper_case_normalizer() -> "sp_pb2.NormalizerSpec":
    """A normaliser folding ``a-z`` to upper case; white space handled as SentencePiece does.

    SentencePiece stores normalisation rules only in compiled form (a character map built by
    its trainer), so a throw-away character model is trained on a few letters with the rule
    table, and its normaliser is taken.
    """
    with tempfile.TemporaryDirectory(prefix="usr2_spm_") as tmp:
        rules = Path(tmp) / "upper.tsv"
        rules.write_text("".join(f"{ord(c):X}\t{ord(c.upper()):X}\n" for c in FOLDED_TO_UPPER), encoding="utf-8")
        scratch = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["ABC DEF"] * 4),
            model_writer=scratch,
            model_type="char",
            vocab_size=10,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    trained = sp_pb2.ModelProto()
    trained.ParseFromString(scratch.getvalue())
    spec = trained.normalizer_spec  # name "user_defined": the compiled map is used as is
    spec.add_dummy_prefix = True
    spec.remove_extra_whitespaces = True
    spec.escape_whitespaces = True
    return spec
