"""Kaldi-style lists for ROI preparation: input parsing, sharding, output and skip report.

Every non-blank line of the input list is one *entry*; an entry ends up either in
``video.scp`` / ``wav.scp`` (processed) or in ``skipped.tsv`` (with its reason), never in
both and never in neither. Malformed lines and duplicate utterance ids are entries too:
they are skipped with a reason rather than dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from espnet_usr2.prep import roi_errors as E

PathLike = Union[str, Path]
SKIP_REPORT = "skipped.tsv"
SKIP_HEADER = ("uttid", "path", "reason", "detail")
DONE_MARKER = ".done"
# Utterances prepared with the face detector although a landmark list was given (it had
# no entry for them): listed so that a mixed landmark source is visible, not silent.
LANDMARK_FALLBACK = "landmark_fallback.list"
# Processed utterances whose damaged packets / frames were concealed, one row per stream.
DAMAGE_REPORT = "damaged.tsv"
DAMAGE_HEADER = ("uttid", "stream", "packets", "seconds")
# Utterances with one stream (--allow_single_stream, --no_face audio_only): in video.scp
# only, or in wav.scp only. Written only when not empty, so runs without them look as before.
VIDEO_ONLY = "video_only.list"
AUDIO_ONLY = "audio_only.list"


@dataclass(frozen=True)
class Entry:
    """One line of the input list. ``problem`` is a skip reason found without decoding."""

    uttid: str
    path: str
    line_no: int
    problem: Optional[Tuple[str, str]] = None


@dataclass(frozen=True)
class DamageRow:
    """Concealed damage of one stream of a processed utterance."""

    stream: str  # video or audio
    packets: int  # damaged packets / frames
    seconds: float  # time they covered


@dataclass(frozen=True)
class Processed:
    """One prepared utterance: both streams, or one (the other path None)."""

    uttid: str
    roi_path: Optional[str]
    wav_path: Optional[str]
    num_frames: int  # ROI frames; for audio-only, the 40 ms frames the audio covers
    text: Optional[str] = None
    landmark_fallback: bool = False  # detector used: the landmark list had no entry
    damage: Tuple[DamageRow, ...] = ()  # streams with concealed damage


@dataclass(frozen=True)
class Skipped:
    """One skipped entry, as written to the skip report."""

    uttid: str
    path: str
    reason: str
    detail: str = ""


def _valid_uttid(uttid: str) -> bool:
    # The uttid names the output files, so it must be a plain file name.
    return uttid not in (".", "..") and "/" not in uttid and "\\" not in uttid and "\0" not in uttid


def read_entries(path: PathLike) -> List[Entry]:
    """Parse ``uttid path`` lines (the path may contain spaces), sorted by uttid.

    Sorting happens here so that every job sees the same order and sharding is
    reproducible; the second and later lines of an utterance id get ``duplicate_uttid``.
    """
    entries = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            uttid, media = parts[0], (parts[1].strip() if len(parts) > 1 else "")
            problem = None
            if not _valid_uttid(uttid):
                problem = (E.INVALID_UTTID, "an utterance id must be usable as a file name (no '/')")
            elif not media:
                problem = (E.MISSING_PATH, f"line {line_no} has no path")
            entries.append(Entry(uttid, media, line_no, problem))
    entries.sort(key=lambda e: (e.uttid, e.line_no))
    seen = set()
    for i, entry in enumerate(entries):
        if entry.uttid in seen and entry.problem is None:
            problem = (E.DUPLICATE_UTTID, f"line {entry.line_no} repeats the id")
            entries[i] = Entry(entry.uttid, entry.path, entry.line_no, problem)
        seen.add(entry.uttid)
    return entries


def read_kaldi_map(path: PathLike) -> Dict[str, str]:
    """``uttid value`` lines -> dict; the value may be empty (an empty transcript)."""
    mapping = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            mapping[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return mapping


def read_uttid_list(path: PathLike) -> List[str]:
    """First column of every non-blank line (an explicit shard list)."""
    with open(path, encoding="utf-8") as fh:
        return [line.split()[0] for line in fh if line.strip()]


def shard(entries: Sequence[Entry], nj: int, job: int) -> List[Entry]:
    """Contiguous block ``job`` (1-based) of ``nj`` near-equal blocks, like Kaldi's split_scp."""
    if not 1 <= job <= nj:
        raise ValueError(f"job must be in 1..{nj}, got {job}")
    start = (job - 1) * len(entries) // nj
    end = job * len(entries) // nj
    return list(entries[start:end])


def select(entries: Sequence[Entry], uttids: Iterable[str]) -> List[Entry]:
    """Entries whose uttid is listed (all lines of a duplicated id go together)."""
    wanted = set(uttids)
    return [e for e in entries if e.uttid in wanted]


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
    os.replace(tmp, path)


def _cell(value: str) -> str:
    # Tabs or newlines inside a cell would break the TSV.
    return " ".join(str(value).split())


def _write_if_any(path: Path, uttids: Sequence[str]) -> None:
    if uttids:
        _write_atomic(path, uttids)
    else:  # never leave the list of an earlier run behind
        path.unlink(missing_ok=True)


def write_lists(outdir: PathLike, processed: Sequence[Processed], skipped: Sequence[Skipped], with_text: bool) -> None:
    """Write ``video.scp``, ``wav.scp``, ``utt2num_frames``, [``text``], the skip report, the
    damage report and (when not empty) the landmark fallback, video-only and audio-only
    lists, sorted."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / DONE_MARKER).unlink(missing_ok=True)
    done = sorted(processed, key=lambda p: p.uttid)
    _write_atomic(outdir / "video.scp", (f"{p.uttid} {p.roi_path}" for p in done if p.roi_path is not None))
    _write_atomic(outdir / "wav.scp", (f"{p.uttid} {p.wav_path}" for p in done if p.wav_path is not None))
    _write_atomic(outdir / "utt2num_frames", (f"{p.uttid} {p.num_frames}" for p in done))
    if with_text:
        _write_atomic(outdir / "text", (f"{p.uttid} {p.text}" for p in done))
    _write_if_any(outdir / LANDMARK_FALLBACK, [p.uttid for p in done if p.landmark_fallback])
    _write_if_any(outdir / VIDEO_ONLY, [p.uttid for p in done if p.wav_path is None])
    _write_if_any(outdir / AUDIO_ONLY, [p.uttid for p in done if p.roi_path is None])
    _write_atomic(
        outdir / DAMAGE_REPORT,
        ["\t".join(DAMAGE_HEADER)]
        + [f"{p.uttid}\t{d.stream}\t{d.packets}\t{d.seconds:.3f}" for p in done for d in p.damage],
    )
    rows = sorted(skipped, key=lambda s: (s.uttid, s.path, s.reason))
    _write_atomic(
        outdir / SKIP_REPORT,
        ["\t".join(SKIP_HEADER)] + ["\t".join(_cell(v) for v in (s.uttid, s.path, s.reason, s.detail)) for s in rows],
    )
    (outdir / DONE_MARKER).write_text(f"{len(done)} processed, {len(rows)} skipped\n")


def read_lists(outdir: PathLike) -> Tuple[List[Processed], List[Skipped]]:
    """Read back what :func:`write_lists` wrote."""
    outdir = Path(outdir)
    videos = read_kaldi_map(outdir / "video.scp")
    wavs = read_kaldi_map(outdir / "wav.scp")
    frames = read_kaldi_map(outdir / "utt2num_frames")
    texts = read_kaldi_map(outdir / "text") if (outdir / "text").exists() else {}
    fallback = set(read_uttid_list(outdir / LANDMARK_FALLBACK)) if (outdir / LANDMARK_FALLBACK).exists() else set()
    damage = read_damage_report(outdir / DAMAGE_REPORT) if (outdir / DAMAGE_REPORT).exists() else {}
    processed = [
        Processed(u, videos.get(u), wavs.get(u), int(frames[u]), texts.get(u), u in fallback, damage.get(u, ()))
        for u in sorted(set(videos) | set(wavs))
    ]
    return processed, read_skip_report(outdir / SKIP_REPORT)


def read_damage_report(path: PathLike) -> Dict[str, Tuple[DamageRow, ...]]:
    """uttid -> the rows of a damage report (header excluded)."""
    rows: Dict[str, Tuple[DamageRow, ...]] = {}
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            cells = line.rstrip("\n").split("\t")
            if line_no == 0 and tuple(cells) == DAMAGE_HEADER:
                continue
            if len(cells) == 4:
                rows[cells[0]] = rows.get(cells[0], ()) + (DamageRow(cells[1], int(cells[2]), float(cells[3])),)
    return rows


def read_skip_report(path: PathLike) -> List[Skipped]:
    """Rows of a skip report (header excluded)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            cells = line.rstrip("\n").split("\t")
            if line_no == 0 and tuple(cells) == SKIP_HEADER:
                continue
            if len(cells) >= 3:
                rows.append(Skipped(cells[0], cells[1], cells[2], cells[3] if len(cells) > 3 else ""))
    return rows


def is_done(outdir: PathLike) -> bool:
    """Whether a shard finished writing its lists."""
    return (Path(outdir) / DONE_MARKER).is_file()


def reconcile(
    entries: Sequence[Entry],
    shard_results: Sequence[Tuple[Sequence[Entry], Optional[Tuple[List[Processed], List[Skipped]]]]],
) -> Tuple[List[Processed], List[Skipped]]:
    """Account for every input entry exactly once across shard outputs.

    ``shard_results`` pairs each shard's expected entries with what it wrote (None when
    the shard never finished). An expected entry a shard did not report, or an entry no
    shard was given, becomes a skip row, so processed + skipped always equals the input.
    """
    processed: List[Processed] = []
    skipped: List[Skipped] = []
    covered = set()
    for expected, result in shard_results:
        done_rows, skip_rows = result if result is not None else ([], [])
        by_uttid = {p.uttid: p for p in done_rows}
        skip_by_key: Dict[Tuple[str, str], List[Skipped]] = {}
        for s in skip_rows:
            skip_by_key.setdefault((s.uttid, _cell(s.path)), []).append(s)
        for entry in expected:
            if entry.line_no in covered:  # overlapping shard lists: count an entry once
                continue
            covered.add(entry.line_no)
            key = (entry.uttid, _cell(entry.path))
            if skip_by_key.get(key):
                skipped.append(skip_by_key[key].pop(0))
            elif entry.uttid in by_uttid:
                processed.append(by_uttid.pop(entry.uttid))
            else:
                why = "the shard did not finish" if result is None else "missing from the shard's output"
                skipped.append(Skipped(entry.uttid, entry.path, E.SHARD_MISSING, why))
    for entry in entries:
        if entry.line_no not in covered:
            skipped.append(Skipped(entry.uttid, entry.path, E.NOT_IN_ANY_SHARD, "no shard list contains this id"))
    return processed, skipped
