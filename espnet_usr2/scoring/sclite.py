"""Score hypotheses the way ESPnet's ``asr.sh`` stage 13 does.

For one decode directory (one test set, one modality) this module

1. reads the reference ``text``, the hypothesis ``text`` and ``utt2spk`` (Kaldi style,
   ``uttid WORDS...``), checks that they cover the same utterances;
2. writes ``score_wer/ref.trn`` + ``hyp.trn`` (word tokens) and ``score_cer/ref.trn`` +
   ``hyp.trn`` (character tokens, a space becomes ``<space>``), each line being
   ``tokens<TAB>(spk-uttid)`` -- the same bytes ``asr.sh`` writes with
   ``espnet2.bin.tokenize_text`` and ``paste``;
3. runs ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout > result.txt``.

sclite is taken from ``$SCLITE``, then ``PATH``, then Debian's ``/usr/lib/sctk/bin`` (the
``sctk`` package puts it there, off ``PATH``), then ``$ESPNET_ROOT/tools/sctk/bin``.  sclite
is run inside the score directory with relative file names, so the report's title is
``hyp.trn`` whatever the directory is called.

Where sclite is absent, a pure-Python re-implementation (:func:`python_sclite_report`) writes
``result.txt`` instead: the same dynamic-programming alignment (costs 0/3/3/4, sclite's
tie-breaking, case-insensitive for ASCII like sclite's default), the same two summary tables
(percentages and counts) laid out by the same column-sizing rules, and the alignment dump.
Its ``Sum/Avg`` line is tested byte for byte against sclite.  It refuses inputs that use
sclite's special transcript syntax (``@`` null words, ``{ a / b }`` alternations), which it
does not implement.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: metric name -> ESPnet token type used to write the trn files.
METRIC_TOKEN_TYPES: Dict[str, str] = {"wer": "word", "cer": "char"}
SPACE_SYMBOL = "<space>"

DEBIAN_SCLITE = Path("/usr/lib/sctk/bin/sclite")
SCLITE_INSTALL_HINT = (
    "sclite (NIST SCTK) was not found. Install it with `sudo apt-get install sctk` "
    "(Debian/Ubuntu put it in /usr/lib/sctk/bin, which is not on PATH and is searched "
    "automatically), or point $SCLITE at an sclite binary, or build ESPnet's "
    "tools/installers/install_sctk.sh and set $ESPNET_ROOT. Do NOT `pip install sctk`: "
    "that PyPI package is an unrelated genomics tool."
)

# sclite's word-to-word distances (sctk word.c): correct 0, insertion/deletion 3, substitution 4.
_INS_DEL_COST = 3
_SUB_COST = 4
# sclite's alignment display breaks lines once they reach this many bytes (its default).
_ALIGN_LINE_WIDTH = 1000
_PAGE_WIDTH = 80


class ScoringInputError(ValueError):
    """The reference / hypothesis / utt2spk files cannot be scored as they are."""


class ScliteNotFoundError(RuntimeError):
    """No sclite binary could be located."""


class ScliteFailedError(RuntimeError):
    """sclite ran but did not produce a usable report."""


class FallbackUnsupportedError(ValueError):
    """The transcripts use sclite syntax that the Python re-implementation does not cover."""


# --------------------------------------------------------------------------- input files


def ids_excerpt(ids: Sequence[str], limit: int = 10) -> str:
    """``'a', 'b' ... (and N more)`` -- enough ids to find the problem, not a wall of text."""
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    rest = len(ids) - limit
    return shown + (f" ... (and {rest} more)" if rest > 0 else "")


def read_kaldi_text(path: PathLike, what: str = "text") -> Dict[str, str]:
    """Read ``uttid value...`` lines into an insertion-ordered dict.

    The value is the rest of the line with runs of whitespace collapsed to one space, which
    is what ``espnet2.bin.tokenize_text -f 2-`` hands to the tokenizer.  An utterance with
    no words maps to ``""``.  Blank lines are skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoringInputError(f"{what} file {str(p)!r} does not exist")
    entries: Dict[str, str] = {}
    duplicates: List[str] = []
    with p.open(encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if fields[0] in entries:
                duplicates.append(fields[0])
                continue
            entries[fields[0]] = " ".join(fields[1:])
    if not entries:
        raise ScoringInputError(f"{what} file {str(p)!r} is empty: it lists no utterances")
    if duplicates:
        raise ScoringInputError(
            f"{what} file {str(p)!r} lists these utterance ids more than once: {ids_excerpt(duplicates)}"
        )
    return entries


def read_utt2spk(path: PathLike) -> Dict[str, str]:
    """Read ``utt2spk``; every line must be exactly ``uttid speaker``."""
    mapping = read_kaldi_text(path, what="utt2spk")
    bad = [u for u, s in mapping.items() if len(s.split()) != 1]
    if bad:
        raise ScoringInputError(
            f"utt2spk {str(path)!r}: these lines do not have exactly one speaker: {ids_excerpt(bad)}"
        )
    return mapping


@dataclass
class MatchedTexts:
    """Reference and hypothesis texts over the same utterance ids, in reference order."""

    ids: List[str]
    ref: Dict[str, str]
    hyp: Dict[str, str]
    notes: List[str] = field(default_factory=list)


def match_hypotheses(
    ref: Mapping[str, str], hyp: Mapping[str, str], missing_hyp: str = "error", extra_hyp: str = "error"
) -> MatchedTexts:
    """Pair hypotheses with references by utterance id.

    ``missing_hyp``: ``"error"`` (default) refuses references without a hypothesis;
    ``"empty"`` scores them as empty hypotheses (all deletions) and says so in ``notes``.
    ``extra_hyp``: ``"error"`` (default) refuses hypotheses without a reference;
    ``"ignore"`` drops them and says so.
    """
    if missing_hyp not in ("error", "empty"):
        raise ValueError(f"missing_hyp must be 'error' or 'empty', not {missing_hyp!r}")
    if extra_hyp not in ("error", "ignore"):
        raise ValueError(f"extra_hyp must be 'error' or 'ignore', not {extra_hyp!r}")
    missing = [u for u in ref if u not in hyp]
    extra = [u for u in hyp if u not in ref]
    problems = []
    if missing and missing_hyp == "error":
        problems.append(
            f"{len(missing)} of {len(ref)} reference utterances have no hypothesis: "
            f"{ids_excerpt(missing)} (use missing_hyp='empty' / --missing_hyp empty "
            f"to score them as empty hypotheses)"
        )
    if extra and extra_hyp == "error":
        problems.append(
            f"{len(extra)} hypothesis utterances are not in the reference: "
            f"{ids_excerpt(extra)} (use extra_hyp='ignore' / --extra_hyp ignore to drop them)"
        )
    if problems:
        raise ScoringInputError("; ".join(problems))
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} utterances had no hypothesis and were scored as empty hypotheses: {ids_excerpt(missing)}"
        )
    if extra:
        notes.append(f"{len(extra)} hypotheses without a reference were ignored: {ids_excerpt(extra)}")
    ids = list(ref)
    return MatchedTexts(ids=ids, ref=dict(ref), hyp={u: hyp.get(u, "") for u in ids}, notes=notes)


def _check_trn_ids(ids: Iterable[str], utt2spk: Mapping[str, str]) -> None:
    """Every id needs a speaker, and neither may contain parentheses (they delimit trn ids)."""
    ids = list(ids)
    no_spk = [u for u in ids if u not in utt2spk]
    if no_spk:
        raise ScoringInputError(f"utt2spk has no speaker for these utterances: {ids_excerpt(no_spk)}")
    bad = [u for u in ids if any(c in u + utt2spk[u] for c in "()")]
    if bad:
        raise ScoringInputError(f"utterance or speaker ids contain '(' or ')', which break trn ids: {ids_excerpt(bad)}")


# --------------------------------------------------------------------------- trn files


def make_tokenizer(token_type: str, non_linguistic_symbols: Optional[Iterable[str]] = None):
    """ESPnet's own word or char tokenizer, configured as ``asr.sh`` stage 13 uses it
    (``tokenize_text --remove_non_linguistic_symbols true``).

    Using ``espnet2.text`` rather than a re-implementation keeps the trn bytes identical to
    what ``asr.sh`` writes, including ``<space>`` for character scoring.
    """
    nlsyms = list(non_linguistic_symbols) if non_linguistic_symbols else None
    if token_type == "word":
        from espnet2.text.word_tokenizer import WordTokenizer

        return WordTokenizer(non_linguistic_symbols=nlsyms, remove_non_linguistic_symbols=True)
    if token_type == "char":
        from espnet2.text.char_tokenizer import CharTokenizer

        return CharTokenizer(
            non_linguistic_symbols=nlsyms, space_symbol=SPACE_SYMBOL, remove_non_linguistic_symbols=True
        )
    raise ValueError(f"token_type must be 'word' or 'char', not {token_type!r}")


def trn_line(tokens: Sequence[str], speaker: str, uttid: str) -> str:
    """One trn line as ``asr.sh`` writes it with ``paste``: tokens, a tab, ``(spk-uttid)``."""
    return f"{' '.join(tokens)}\t({speaker}-{uttid})\n"


def write_trn_pair(
    matched: MatchedTexts,
    utt2spk: Mapping[str, str],
    score_dir: PathLike,
    token_type: str,
    non_linguistic_symbols: Optional[Iterable[str]] = None,
    cleaner: Optional[str] = None,
) -> Tuple[Path, Path]:
    """Write ``ref.trn`` and ``hyp.trn`` into ``score_dir``, both in reference order.

    As in ``asr.sh``, the text cleaner (if any) is applied to the reference only, and
    non-linguistic symbols are removed from both sides.
    """
    _check_trn_ids(matched.ids, utt2spk)
    clean = _make_cleaner(cleaner)
    score_dir = Path(score_dir)
    score_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(token_type, non_linguistic_symbols)
    ref_lines, hyp_lines = [], []
    for uid in matched.ids:
        spk = utt2spk[uid]
        ref_lines.append(trn_line(tokenizer.text2tokens(clean(matched.ref[uid])), spk, uid))
        hyp_lines.append(trn_line(tokenizer.text2tokens(matched.hyp[uid]), spk, uid))
    ref_trn, hyp_trn = score_dir / "ref.trn", score_dir / "hyp.trn"
    ref_trn.write_text("".join(ref_lines), encoding="utf-8")
    hyp_trn.write_text("".join(hyp_lines), encoding="utf-8")
    return ref_trn, hyp_trn


def _make_cleaner(cleaner: Optional[str]):
    """ESPnet's ``TextCleaner`` when one is named (imported only then: it pulls in extras)."""
    if cleaner in (None, "", "none"):
        return lambda text: text
    from espnet2.text.cleaner import TextCleaner

    return TextCleaner(cleaner)


# --------------------------------------------------------------------------- sclite


def find_sclite() -> Optional[Path]:
    """Locate sclite: ``$SCLITE``, ``PATH``, Debian's sctk dir, ``$ESPNET_ROOT/tools/sctk``.

    A ``$SCLITE`` that does not point at an executable is an error rather than silently
    skipped: the user asked for that binary.
    """
    env = os.environ.get("SCLITE")
    if env:
        p = Path(env)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise ScliteNotFoundError(f"$SCLITE={env!r} is not an executable file")
        return p
    on_path = shutil.which("sclite")
    if on_path:
        return Path(on_path)
    candidates = [DEBIAN_SCLITE]
    if os.environ.get("ESPNET_ROOT"):
        candidates.append(Path(os.environ["ESPNET_ROOT"]) / "tools" / "sctk" / "bin" / "sclite")
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def run_sclite(score_dir: PathLike, sclite: Optional[PathLike] = None) -> Path:
    """Run ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout > result.txt``.

    Runs inside ``score_dir`` so that the report title is ``hyp.trn``.  sclite exits 0 on
    some malformed inputs while printing no report, so the output is checked too.
    """
    exe = Path(sclite) if sclite else find_sclite()
    if exe is None:
        raise ScliteNotFoundError(SCLITE_INSTALL_HINT)
    score_dir = Path(score_dir)
    result = score_dir / "result.txt"
    cmd = [str(exe), "-r", "ref.trn", "trn", "-h", "hyp.trn", "trn", "-i", "rm", "-o", "all", "stdout"]
    with result.open("wb") as out:
        proc = subprocess.run(cmd, cwd=score_dir, stdout=out, stderr=subprocess.PIPE, check=False)
    text = result.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0 or "Sum/Avg" not in text:
        raise ScliteFailedError(
            f"sclite failed in {score_dir} (exit {proc.returncode}); stderr: "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]!r}; stdout tail: {text[-500:]!r}"
        )
    return result


# --------------------------------------------------------------------------- alignment


@dataclass
class ErrorCounts:
    """Word (or character) alignment counts."""

    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def n_ref(self) -> int:
        return self.corr + self.sub + self.dele

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.corr + other.corr, self.sub + other.sub, self.dele + other.dele, self.ins + other.ins)


AlignedPair = Tuple[str, Optional[str], Optional[str]]  # (op in C/S/D/I, ref token, hyp token)


def _fold(token: str) -> bytes:
    """sclite's default comparison: case-insensitive for ASCII letters only, on bytes."""
    return token.encode("utf-8").lower()


def align(ref: Sequence[str], hyp: Sequence[str]) -> List[AlignedPair]:
    """Minimum-cost alignment with sclite's costs and sclite's tie-breaking.

    Costs: correct 0, insertion 3, deletion 3, substitution 4.  At every cell sclite takes
    the diagonal move when it is no worse than both others, else the deletion when strictly
    cheaper than the insertion, else the insertion.  Equal-cost alignments can differ in
    their (C, S, D, I) split, so the tie-breaking matters for matching sclite's counts.
    """
    r = [_fold(t) for t in ref]
    h = [_fold(t) for t in hyp]
    n, m = len(r), len(h)
    # back[a][b]: 0 diagonal (correct/substitution), 1 deletion, 2 insertion
    back = [bytearray(m + 1) for _ in range(n + 1)]
    prev = [_INS_DEL_COST * b for b in range(m + 1)]
    for b in range(1, m + 1):
        back[0][b] = 2
    for a in range(1, n + 1):
        cur = [prev[0] + _INS_DEL_COST] + [0] * m
        row = back[a]
        row[0] = 1
        ra = r[a - 1]
        for b in range(1, m + 1):
            sub = prev[b - 1] + (0 if ra == h[b - 1] else _SUB_COST)
            dele = prev[b] + _INS_DEL_COST
            ins = cur[b - 1] + _INS_DEL_COST
            if sub <= dele and sub <= ins:
                cur[b] = sub
            elif dele < ins:
                cur[b] = dele
                row[b] = 1
            else:
                cur[b] = ins
                row[b] = 2
        prev = cur
    path: List[AlignedPair] = []
    a, b = n, m
    while a > 0 or b > 0:
        move = back[a][b]
        if move == 2:
            path.append(("I", None, hyp[b - 1]))
            b -= 1
        elif move == 1:
            path.append(("D", ref[a - 1], None))
            a -= 1
        else:
            path.append(("C" if r[a - 1] == h[b - 1] else "S", ref[a - 1], hyp[b - 1]))
            a -= 1
            b -= 1
    path.reverse()
    return path


def count_errors(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """(C, S, D, I) of :func:`align` -- the per-utterance edit counts sclite would report."""
    return count_errors_from_path(align(ref, hyp))


def count_errors_from_path(path: Sequence[AlignedPair]) -> ErrorCounts:
    """(C, S, D, I) of an alignment path."""
    counts = ErrorCounts()
    for op, _, _ in path:
        if op == "C":
            counts.corr += 1
        elif op == "S":
            counts.sub += 1
        elif op == "D":
            counts.dele += 1
        else:
            counts.ins += 1
    return counts


# --------------------------------------------------------------------------- trn reading


@dataclass
class TrnUtterance:
    """One trn line: tokens and the id between the final parentheses."""

    tokens: List[str]
    uttid: str

    @property
    def speaker(self) -> str:
        """sclite's ``-i rm`` speaker: the id up to its first ``-``, ASCII-lowercased."""
        return self.uttid.split("-", 1)[0].encode("utf-8").lower().decode("utf-8")


_UNSUPPORTED_HINT = (
    "the Python scorer does not implement sclite's special transcript syntax "
    "('@' null words, '{ a / b }' alternations); install sclite to score it"
)


def read_trn(path: PathLike) -> List[TrnUtterance]:
    """Parse a trn file; refuse tokens that carry sclite syntax the fallback cannot score."""
    utts = []
    # lines end at '\n' only and words are split at spaces and tabs only, as sclite reads them
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        line = line.rstrip(" \t\r")
        if not line:
            continue
        start = line.rfind("(")
        if not line.endswith(")") or start < 0:
            raise ScoringInputError(f"{path}:{lineno}: a trn line must end with '(spk-uttid)': {line!r}")
        uttid = line[start + 1 : -1]
        if "-" not in uttid:
            raise ScoringInputError(f"{path}:{lineno}: the id {uttid!r} has no '-' between speaker and utterance")
        tokens = [t for t in re.split(r"[ \t]+", line[:start]) if t]
        special = [t for t in tokens if t in ("@", "/") or "{" in t or "}" in t]
        if special:
            raise FallbackUnsupportedError(f"{path}:{lineno}: tokens {special}: {_UNSUPPORTED_HINT}")
        utts.append(TrnUtterance(tokens, uttid))
    return utts


# --------------------------------------------------------------------------- sclite report


def _f_round(x: float, prec: int) -> float:
    """sclite's ``F_ROUND``: round half away from zero, through a C ``int`` and a ``float``."""
    scale = math.pow(10.0, float(prec))
    truncated = int(x * scale + (0.5 if x > 0.0 else -0.5))  # C (int) truncates toward zero
    as_float32 = struct.unpack("f", struct.pack("f", float(truncated)))[0]
    return as_float32 / scale


def _pct(num: float, den: float) -> float:
    """sclite's ``pct`` macro (0 for an empty denominator)."""
    return 0.0 if den == 0 else float(num) / float(den) * 100.0


def _blen(s: str) -> int:
    """sclite lays out bytes, not characters."""
    return len(s.encode("utf-8"))


def _center(s: str, width: int) -> str:
    """sctk's ``center``: half the slack (rounded down) on the left, the rest on the right."""
    left = max(width - _blen(s), 0) // 2
    return " " * left + s + " " * max(width - _blen(s) - left, 0)


def _stats_int(values: Sequence[int]) -> Tuple[float, float, float]:
    """Mean, sample standard deviation (n-1) and median as sctk's statdist.c computes them."""
    n = len(values)
    mean = float(sum(values)) / n
    ordered = sorted(values)
    median = (ordered[n // 2] + ordered[n // 2 - 1]) / 2 if n % 2 == 0 else float(ordered[n // 2])
    ss = 0.0
    for v in values:
        ss += (v - mean) * (v - mean)
    sd = math.sqrt(ss / (n - 1)) if ss != 0.0 else 0.0
    return mean, sd, median


def _stats_double(values: Sequence[float]) -> Tuple[float, float, float]:
    """The double version: also defined (all zero) for an empty list."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    total = 0.0
    for v in values:
        total += v
    mean = total / n
    ordered = sorted(values)
    median = (ordered[n // 2] + ordered[n // 2 - 1]) / 2 if n % 2 == 0 else ordered[n // 2]
    ss = 0.0
    for v in values:
        ss += (v - mean) * (v - mean)
    sd = math.sqrt(ss / (n - 1)) if ss != 0.0 else 0.0
    return mean, sd, median


@dataclass
class _SpeakerScore:
    name: str
    nsent: int = 0
    serr: int = 0
    counts: ErrorCounts = field(default_factory=ErrorCounts)


def _parse_format(fmt: str) -> Tuple[List[str], List[str]]:
    """Column justifications and the separators after each column (sctk rpg format strings)."""
    justs, seps = [], []
    i = 0
    while i < len(fmt):
        justs.append(fmt[i])
        i += 1
        if i < len(fmt) and fmt[i] == "|":
            seps.append("|")
            i += 1
        else:
            seps.append(" ")
    return justs, seps


@dataclass
class _Row:
    fmt: str
    cells: List[str]
    before: str = ""  # separator lines drawn above the row ('-' or '=')


def _render_table(rows: List[_Row]) -> List[str]:
    """Lay out rows the way sctk's report generator does (rpg.c), page-centred on 80 columns.

    Column widths are shared by all rows with the same number of columns; the table is as
    wide as its widest row format, and narrower formats spread the difference over their
    columns (cumulative share rounded half up, as sctk 2.4.10 does; this only matters when
    the title is wider than the table).  Only what sclite's summary tables use is
    implemented (no spanning, locked columns or '=' separators).
    """
    parsed = [_parse_format(r.fmt) for r in rows]
    sizes: Dict[int, List[int]] = {}
    for row, (justs, _) in zip(rows, parsed):
        cols = sizes.setdefault(len(justs), [0] * len(justs))
        for c, cell in enumerate(row.cells):
            cols[c] = max(cols[c], _blen(cell))
    fmt_width = {n: 2 + sum(cols) + n - 1 for n, cols in sizes.items()}
    width = max(fmt_width.values())
    indent = " " * ((_PAGE_WIDTH - width) // 2) if width < _PAGE_WIDTH else ""

    lines = [indent + "," + "-" * (width - 2) + "."]
    prev_seps: List[str] = []
    for row, (justs, seps) in zip(rows, parsed):
        ncol = len(justs)
        text_w = sizes[ncol]
        underage = width - fmt_width[ncol]
        col_w, added = [], 0
        for c in range(ncol):
            if c != ncol - 1:
                adj = int(underage / ncol * (c + 1) + 0.5) - added
                added += adj
            else:
                adj = underage - added
            col_w.append(text_w[c] + adj)
        for sep_char in row.before:
            parts = []
            for c in range(ncol):
                parts.append(sep_char * col_w[c])
                if c != ncol - 1:
                    above = prev_seps[c] if c < len(prev_seps) else ""
                    if seps[c] == "|" and sep_char == "-" and above == "|":
                        parts.append("+")
                    else:
                        parts.append(sep_char)
            lines.append(indent + "|" + "".join(parts) + "|")
        parts = []
        for c in range(ncol):
            cell = row.cells[c] if c < len(row.cells) else ""
            if justs[c] == "c":
                text = _center(cell, text_w[c])
            elif justs[c] == "r":
                text = " " * max(text_w[c] - _blen(cell), 0) + cell
            else:
                text = cell + " " * max(text_w[c] - _blen(cell), 0)
            left = (col_w[c] - text_w[c]) // 2
            parts.append(" " * left + text + " " * (col_w[c] - text_w[c] - left))
            if c != ncol - 1:
                parts.append(seps[c])
        lines.append(indent + "|" + "".join(parts) + "|")
        prev_seps = seps
    lines.append(indent + "`" + "-" * (width - 2) + "'")
    return lines


def _summary_rows(title: str, speakers: List[_SpeakerScore], raw: bool) -> Tuple[List[_Row], bool]:
    """The rows of sclite's 'SYSTEM SUMMARY' table (percentages, or counts when ``raw``).

    Mirrors sctk's ``print_system_summary`` value by value, including its handling of
    speakers without reference words.  Returns the rows and whether such speakers exist.
    """
    fmt, fmt_stats = "l|cc|cccccc", "c|cc|cccccc"
    prec = 0 if raw else 1
    pct_fmt = "%5.0f " if raw else "%5.1f "
    tot_fmt = "%5.1f "
    n = len(speakers)
    arrays: Dict[str, List[float]] = {k: [] for k in ("corr", "sub", "del", "ins", "err", "serr")}
    rows = [
        _Row("c", [title]),
        _Row(fmt, [" SPKR", " # Snt", "# Wrd", "Corr", " Sub", " Del", " Ins", " Err", "S.Err"], before="-"),
    ]
    zero_spkr = 0
    for spk in speakers:
        c = spk.counts
        trefs = c.n_ref
        raw_values = (c.corr, c.sub, c.dele, c.ins, c.errors)
        if raw or trefs == 0:
            values = [float(v) for v in raw_values]
        else:
            values = [_pct(v, trefs) for v in raw_values]
        for key, v in zip(("corr", "sub", "del", "ins", "err"), values):
            arrays[key].append(v)
        arrays["serr"].append(float(spk.serr) if raw else _pct(spk.serr, spk.nsent))
        cells = [f" {spk.name} ", "%5d" % spk.nsent, "%5d" % trefs]
        if trefs > 0 or raw:
            cells += [pct_fmt % _f_round(v, prec) for v in values]
        else:
            cells += ["%5.0f*" % _f_round(v, 0) for v in values]
            zero_spkr += 1
        cells.append(pct_fmt % _f_round(arrays["serr"][-1], prec))
        rows.append(_Row(fmt, cells, before="-"))

    tot = sum((s.counts for s in speakers), ErrorCounts())
    tot_st = sum(s.nsent for s in speakers)
    tot_serr = sum(s.serr for s in speakers)
    totals = (tot.corr, tot.sub, tot.dele, tot.ins, tot.errors)
    if raw:
        cells = [" Sum", "%5d" % tot_st, "%5d" % tot.n_ref]
        cells += [pct_fmt % _f_round(float(v), prec) for v in totals + (tot_serr,)]
    else:
        cells = [" Sum/Avg", "%5d" % tot_st, "%5d" % tot.n_ref]
        cells += [tot_fmt % _f_round(_pct(v, tot.n_ref), 1) for v in totals]
        cells.append(tot_fmt % _f_round(_pct(tot_serr, tot_st), 1))
    rows.append(_Row(fmt, cells, before="="))

    if zero_spkr > 0:
        # sctk drops speakers without reference words from the mean/S.D./median by shifting
        # the later entries down (word counts are not shifted) -- reproduced as is.
        words = [s.counts.n_ref for s in speakers]
        for i in range(n):
            if words[i] == 0:
                for key in ("corr", "sub", "ins", "del", "err"):
                    arr = arrays[key]
                    arr[i : n - 1] = arr[i + 1 : n]
                    arr[n - 1] = -1000.0
    kept = n - zero_spkr
    stats = {key: _stats_double(arrays[key][:kept]) for key in ("corr", "sub", "del", "ins", "err")}
    stats["serr"] = _stats_double(arrays["serr"])
    sent_stats = _stats_int([s.nsent for s in speakers])
    word_stats = _stats_int([s.counts.n_ref for s in speakers])
    err_fmt = "%5.1f+" if zero_spkr > 0 else tot_fmt
    for label, k, before in ((" Mean ", 0, "="), (" S.D. ", 1, ""), ("Median", 2, "")):
        cells = [label, tot_fmt % _f_round(sent_stats[k], 1), tot_fmt % _f_round(word_stats[k], 1)]
        cells += [err_fmt % _f_round(stats[key][k], 1) for key in ("corr", "sub", "del", "ins", "err")]
        cells.append(tot_fmt % _f_round(stats["serr"][k], 1))
        rows.append(_Row(fmt_stats, cells, before=before))
    return rows, zero_spkr > 0


def _alignment_dump(
    title: str, speakers: List[_SpeakerScore], paths: Dict[str, List[Tuple[str, List[AlignedPair]]]]
) -> List[str]:
    """sclite's 'DUMP OF SYSTEM ALIGNMENT STRUCTURE' (the ``-o all`` per-utterance part)."""
    out = ["", "", "\t\tDUMP OF SYSTEM ALIGNMENT STRUCTURE", "", f"System name:   {title}", "", "Speakers: "]
    out += ["   %2d:  %s" % (i, s.name) for i, s in enumerate(speakers)]
    out.append("")
    for i, spk in enumerate(speakers):
        out.append("Speaker sentences%4d:  %s   #utts: %d" % (i, spk.name, spk.nsent))
        for uttid, path in paths[spk.name]:
            out += _format_path(uttid, path)
            out.append("")
    out.append("")
    return out


def _format_path(uttid: str, path: List[AlignedPair]) -> List[str]:
    """REF/HYP/Eval lines of one utterance, as sclite's ``PATH_print`` writes them.

    sclite lowercases words on reading (case-insensitive scoring) and uppercases the words
    of errors for display; a missing word shows as stars; lines wrap at 1000 bytes.
    """
    counts = count_errors_from_path(path)
    shown_id = _fold(uttid).decode("utf-8")  # sclite prints ids lowercased too
    lines = [
        f"id: ({shown_id})",
        "Scores: (#C #S #D #I) %d %d %d %d" % (counts.corr, counts.sub, counts.dele, counts.ins),
    ]
    cells = []  # (op, ref bytes or None, hyp bytes or None)
    for op, ref, hyp in path:
        r = _fold(ref) if ref is not None else None
        h = _fold(hyp) if hyp is not None else None
        if op != "C":
            r = r.upper() if r is not None else None
            h = h.upper() if h is not None else None
        cells.append((op, r, h))
    used = 0
    while used < len(cells):
        # how many words fit on this pass; a missing word counts as 1 byte here, as in sclite
        plen = 9 if used > 0 else 6
        i = used
        while plen < _ALIGN_LINE_WIDTH and i < len(cells):
            _, r, h = cells[i]
            plen += 1 + max(len(r) if r is not None else 1, len(h) if h is not None else 1)
            i += 1
        end = i - (1 if i < len(cells) else 0)
        if used > 0:
            lines.append("")
        prefix = ">> " if used > 0 else ""
        ref_line, hyp_line, eval_line = b"", b"", b""
        for op, r, h in cells[used:end]:
            r = r if r is not None else b"*" * len(h)
            h = h if h is not None else b"*" * len(r)
            width = max(len(r), len(h))
            ref_line += r.ljust(width) + b" "
            hyp_line += h.ljust(width) + b" "
            eval_line += (b"" if op == "C" else op.encode()).ljust(width) + b" "
        for label, text in (("REF:  ", ref_line), ("HYP:  ", hyp_line), ("Eval: ", eval_line)):
            lines.append(prefix + label + text.decode("utf-8", errors="replace"))
        used = end
    return lines


def python_sclite_report(ref_trn: PathLike, hyp_trn: PathLike, title: Optional[str] = None) -> str:
    """The text ``sclite -r ref trn -h hyp trn -i rm -o all stdout`` prints, in pure Python.

    ``title`` defaults to the hypothesis file name as given (sclite prints the path it was
    called with).  Speakers appear in hypothesis order, as in sclite.
    """
    ref_list, hyps = read_trn(ref_trn), read_trn(hyp_trn)
    if not hyps:
        raise ScoringInputError(f"{hyp_trn} holds no utterances")
    for name, utts in ((ref_trn, ref_list), (hyp_trn, hyps)):
        seen: Dict[str, int] = {}
        for u in utts:
            seen[u.uttid] = seen.get(u.uttid, 0) + 1
        repeated = [i for i, n in seen.items() if n > 1]
        if repeated:
            raise ScoringInputError(f"{name} lists these ids more than once: {ids_excerpt(repeated)}")
    refs = {u.uttid: u for u in ref_list}
    hyp_ids = {u.uttid for u in hyps}
    missing = [i for i in refs if i not in hyp_ids]
    extra = [u.uttid for u in hyps if u.uttid not in refs]
    if missing or extra:
        raise ScoringInputError(
            f"{ref_trn} and {hyp_trn} differ in utterances: only in ref: "
            f"{ids_excerpt(missing)}; only in hyp: {ids_excerpt(extra)}"
        )
    speakers: Dict[str, _SpeakerScore] = {}
    paths: Dict[str, List[Tuple[str, List[AlignedPair]]]] = {}
    for hyp in hyps:
        spk = speakers.setdefault(hyp.speaker, _SpeakerScore(hyp.speaker))
        path = align(refs[hyp.uttid].tokens, hyp.tokens)
        counts = count_errors_from_path(path)
        spk.counts = spk.counts + counts
        spk.nsent += 1
        spk.serr += 1 if counts.errors > 0 else 0
        paths.setdefault(spk.name, []).append((hyp.uttid, path))
    ordered = list(speakers.values())
    title = str(hyp_trn) if title is None else title
    heading = _center("SYSTEM SUMMARY PERCENTAGES by SPEAKER", _PAGE_WIDTH)
    out: List[str] = []
    for raw in (False, True):
        rows, has_zero = _summary_rows(title, ordered, raw)
        out += ["", "", "", heading, ""]
        out += _render_table(rows)
        if has_zero and not raw:
            out += [
                "",
                "* No Reference words for this/these speaker(s).  Word counts supplied",
                "  rather than percents.",
                "# No Reference words for this/these speaker(s).  NCE not computable.",
                "+ Speaker(s) with no reference data is ignored",
            ]
    out += _alignment_dump(title, ordered, paths)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- result.txt


@dataclass
class ResultSummary:
    """The ``Sum/Avg`` line of a result.txt (percentages as printed)."""

    line: str
    fields: List[str]  # Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err exactly as printed

    @property
    def snt(self) -> int:
        return int(self.fields[0])

    @property
    def wrd(self) -> int:
        return int(self.fields[1])

    @property
    def err(self) -> float:
        return float(self.fields[6])

    def values(self) -> Dict[str, float]:
        names = ("Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")
        return {k: float(v) for k, v in zip(names, self.fields)}

    def markdown_row(self, dataset: str) -> str:
        """``|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|`` as ``show_asr_result.sh`` prints it."""
        return "|" + dataset + "|" + "|".join(self.fields) + "|"


def sum_avg_line(report: str) -> str:
    """The first ``Sum/Avg`` line of a sclite report (the percentage table's)."""
    for line in report.splitlines():
        if "Sum/Avg" in line:
            return line
    raise ScliteFailedError("the report has no 'Sum/Avg' line")


def parse_result(path: PathLike) -> ResultSummary:
    """Read the ``Sum/Avg`` line of a result.txt into its eight numbers."""
    line = sum_avg_line(Path(path).read_text(encoding="utf-8", errors="replace"))
    fields = line.replace("Sum/Avg", " ").replace("|", " ").split()
    if len(fields) != 8:
        raise ScliteFailedError(f"{path}: unexpected Sum/Avg line {line!r}")
    return ResultSummary(line=line, fields=fields)


# --------------------------------------------------------------------------- top level


@dataclass
class ScoreOutcome:
    """What scoring one metric of one decode directory produced."""

    metric: str
    score_dir: Path
    result_txt: Path
    summary: ResultSummary
    backend: str  # "sclite:<path>" or "python"
    notes: List[str]


def choose_backend(backend: str = "auto") -> Tuple[str, Optional[Path]]:
    """Resolve ``auto`` / ``sclite`` / ``python`` to ``("sclite", path)`` or ``("python", None)``."""
    if backend not in ("auto", "sclite", "python"):
        raise ValueError(f"backend must be auto, sclite or python, not {backend!r}")
    if backend == "python":
        return "python", None
    exe = find_sclite()
    if exe is not None:
        return "sclite", exe
    if backend == "sclite":
        raise ScliteNotFoundError(SCLITE_INSTALL_HINT)
    log.warning("%s Falling back to the pure-Python scorer (its Sum/Avg lines match sclite's).", SCLITE_INSTALL_HINT)
    return "python", None


def score(
    ref_text: PathLike,
    hyp_text: PathLike,
    utt2spk: PathLike,
    out_dir: PathLike,
    metrics: Sequence[str] = ("wer",),
    backend: str = "auto",
    missing_hyp: str = "error",
    extra_hyp: str = "error",
    non_linguistic_symbols: Optional[PathLike] = None,
    cleaner: Optional[str] = None,
    utt_list: Optional[PathLike] = None,
) -> Dict[str, ScoreOutcome]:
    """Score one decode directory: ``out_dir/score_<metric>/{ref.trn,hyp.trn,result.txt}``.

    Writes ``scoring_info.txt`` next to each result.txt saying which scorer produced it and
    any notes (e.g. hypotheses scored as empty). ``utt_list`` (first column) scores only
    those reference utterances, e.g. the ones that have a modality's streams in a set that
    mixes audio-visual and single-stream utterances.
    """
    unknown = [m for m in metrics if m not in METRIC_TOKEN_TYPES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(METRIC_TOKEN_TYPES)}")
    ref = read_kaldi_text(ref_text, "reference text")
    subset_note = []
    if utt_list is not None:
        ref, subset_note = _select_utterances(ref, utt_list)
    matched = match_hypotheses(ref, read_kaldi_text(hyp_text, "hypothesis text"), missing_hyp, extra_hyp)
    matched.notes[:0] = subset_note
    spk = read_utt2spk(utt2spk)
    nlsyms = _read_nlsyms(non_linguistic_symbols)
    kind, exe = choose_backend(backend)
    outcomes = {}
    for metric in metrics:
        score_dir = Path(out_dir) / f"score_{metric}"
        write_trn_pair(matched, spk, score_dir, METRIC_TOKEN_TYPES[metric], nlsyms, cleaner)
        if kind == "sclite":
            result = run_sclite(score_dir, exe)
            used = f"sclite:{exe}"
        else:
            result = score_dir / "result.txt"
            result.write_text(
                python_sclite_report(score_dir / "ref.trn", score_dir / "hyp.trn", "hyp.trn"), encoding="utf-8"
            )
            used = "python"
        info = [f"scorer: {used}"] + [f"note: {n}" for n in matched.notes]
        (score_dir / "scoring_info.txt").write_text("\n".join(info) + "\n", encoding="utf-8")
        outcomes[metric] = ScoreOutcome(metric, score_dir, result, parse_result(result), used, matched.notes)
    return outcomes


def _select_utterances(ref: Dict[str, str], utt_list: PathLike) -> Tuple[Dict[str, str], List[str]]:
    """The references of the utterances ``utt_list`` names, and a note saying how many."""
    path = Path(utt_list)
    if not path.is_file():
        raise ScoringInputError(f"utterance list {str(path)!r} does not exist")
    wanted = [line.split(maxsplit=1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    unknown = [u for u in wanted if u not in ref]
    if unknown:
        raise ScoringInputError(f"{len(unknown)} utterances of {str(path)!r} have no reference: {ids_excerpt(unknown)}")
    keep = set(wanted)
    return (
        {u: t for u, t in ref.items() if u in keep},
        [f"scored {len(keep)} of {len(ref)} reference utterances (those listed in {path})"],
    )


def _read_nlsyms(path: Optional[PathLike]) -> Optional[List[str]]:
    """ESPnet's non-linguistic symbol list: one symbol per line."""
    if path is None:
        return None
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
