#!/usr/bin/env python3
"""WildVSR's transcripts as a Kaldi-style data directory (called by local/data.sh).

Reads WildVSR as released -- ``<root>/videos/<clip>.mp4`` and ``<root>/labels.json``
mapping each clip's file name to its transcript (``{"0000.mp4": "WORDS ...", ...}``) -- or a
list of ``uttid path-to-mp4 WORDS...`` lines, and writes ``video_src.scp``, ``text`` and
``utt2spk`` (WildVSR has no speaker labels: each clip is its own speaker) sorted by uttid.
Transcripts are upper-cased (the LRS3 vocabulary's case); a listed clip whose video is
missing, or one with an empty transcript, is left out and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

Entry = Tuple[str, Path, str]  # uttid, video, transcript


def from_release(root: Path) -> List[Entry]:
    """``labels.json`` + ``videos/``: uttid ``wildvsr_<clip name without .mp4>``."""
    labels_path = root / "labels.json"
    try:
        labels: Dict[str, str] = json.loads(labels_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"wildvsr_lists: cannot read {labels_path}: {e}") from None
    if not isinstance(labels, dict):
        raise SystemExit(f"wildvsr_lists: {labels_path} must map clip file names to transcripts")
    return [(f"wildvsr_{Path(name).stem}", root / "videos" / name, str(text)) for name, text in labels.items()]


def from_list(path: Path) -> List[Entry]:
    """``uttid path WORDS...`` lines (relative paths are relative to the list's directory)."""
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split(maxsplit=2)
        if not fields:
            continue
        if len(fields) < 2:
            raise SystemExit(f"wildvsr_lists: {path}:{n}: expected 'uttid path WORDS', got {line!r}")
        video = Path(fields[1])
        entries.append(
            (fields[0], video if video.is_absolute() else path.parent / video, fields[2] if len(fields) > 2 else "")
        )
    return entries


def write_data_dir(entries: List[Entry], out: Path) -> Tuple[int, int]:
    """Writes the lists; returns (clips without a video, clips without a transcript)."""
    kept, no_video, no_text = {}, 0, 0
    for uttid, video, text in entries:
        words = " ".join(text.upper().split())
        if not video.is_file():
            no_video += 1
        elif not words:
            no_text += 1
        elif uttid in kept:
            raise SystemExit(f"wildvsr_lists: utterance id {uttid!r} appears twice")
        else:
            kept[uttid] = (video.resolve(), words)
    if not kept:
        raise SystemExit("wildvsr_lists: no clip with a video file and a transcript")
    out.mkdir(parents=True, exist_ok=True)
    ids = sorted(kept, key=lambda u: u.encode("utf-8"))  # LC_ALL=C order
    for name, value in (
        ("video_src.scp", lambda u: str(kept[u][0])),
        ("text", lambda u: kept[u][1]),
        ("utt2spk", lambda u: u),
    ):
        (out / name).write_text("".join(f"{u} {value(u)}\n" for u in ids), encoding="utf-8")
    return no_video, no_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", type=Path, help="WildVSR as released: videos/ and labels.json")
    source.add_argument("--list", type=Path, help="'uttid path WORDS' lines")
    parser.add_argument("--out", type=Path, required=True, help="data directory to write")
    args = parser.parse_args()
    entries = from_release(args.root) if args.root else from_list(args.list)
    no_video, no_text = write_data_dir(entries, args.out)
    if no_video or no_text:
        print(
            f"wildvsr_lists: left out {no_video} clips without a video file and {no_text} with an empty transcript",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
