"""Parallel decoding over data splits, as ESPnet's ``asr.sh`` stage 12 does it.

``split`` writes ``keys.1.scp`` ... ``keys.N.scp`` (contiguous chunks of an scp's lines, like
``utils/split_scp.pl``; never more jobs than utterances), each job decodes with
``--key_file keys.n.scp --output_dir <logdir>/output.n``, and ``merge`` concatenates every
file of the job directories (``audio/text``, ``audio/1best_recog/score``, ...) sorted by
utterance id into the final decode directory::

    python -m espnet_usr2.bin.usr2_decode_splits split --scp dump/test/wav.scp --nj 8 --out_dir logdir
    python -m espnet_usr2.bin.usr2_decode_splits merge --out_dir decode/test logdir/output.*
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

PathLike = Union[str, Path]


class SplitMergeError(ValueError):
    """Inconsistent job outputs (missing file, duplicated utterance) or an empty scp."""


def split_key_file(scp: PathLike, nj: int, out_dir: PathLike, prefix: str = "keys") -> List[Path]:
    """Split ``scp``'s lines into ``min(nj, lines)`` contiguous, near-equal key files."""
    if nj < 1:
        raise ValueError(f"nj must be >= 1, got {nj}")
    lines = [line for line in Path(scp).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise SplitMergeError(f"{scp} lists no utterances")
    n = min(nj, len(lines))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    base, extra = divmod(len(lines), n)
    start = 0
    for job in range(n):
        size = base + (1 if job < extra else 0)  # the first `extra` jobs take one more line
        path = out_dir / f"{prefix}.{job + 1}.scp"
        path.write_text("".join(f"{line}\n" for line in lines[start : start + size]), encoding="utf-8")
        paths.append(path)
        start += size
    return paths


def _job_files(job_dir: Path) -> List[Path]:
    return sorted(p.relative_to(job_dir) for p in job_dir.rglob("*") if p.is_file())


def _sort_key(line: str) -> bytes:
    # LC_ALL=C sort -k1, as the recipes' shell sort does
    return line.split(maxsplit=1)[0].encode("utf-8") if line.strip() else b""


def merge_decode_dirs(
    job_dirs: Sequence[PathLike], out_dir: PathLike, only: Optional[Sequence[str]] = None
) -> Dict[str, Path]:
    """Concatenate same-named files of ``job_dirs`` into ``out_dir``, sorted by utterance id.

    Every job must hold the same files (a missing one means a job failed); an utterance id
    may appear in only one job. ``only`` restricts the merge to relative paths starting with
    one of its entries (e.g. ``["audio"]``). Returns ``{relative path: merged file}``.
    """
    dirs = [Path(d) for d in job_dirs]
    if not dirs:
        raise SplitMergeError("no job directories to merge")
    for d in dirs:
        if not d.is_dir():
            raise SplitMergeError(f"job output directory {str(d)!r} does not exist (did the job fail?)")
    reference = _job_files(dirs[0])
    if only:
        reference = [p for p in reference if any(str(p).startswith(o) for o in only)]
    merged: Dict[str, Path] = {}
    for rel in reference:
        lines: List[str] = []
        owner: Dict[str, Path] = {}
        for d in dirs:
            src = d / rel
            if not src.is_file():
                raise SplitMergeError(f"{src} is missing, but {dirs[0] / rel} exists: job {d} did not finish")
            for line in src.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                key = line.split(maxsplit=1)[0]
                if key in owner:
                    raise SplitMergeError(f"utterance {key!r} is in both {owner[key] / rel} and {src}")
                owner[key] = d
                lines.append(line)
        target = Path(out_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{line}\n" for line in sorted(lines, key=_sort_key)), encoding="utf-8")
        merged[str(rel)] = target
    return merged
