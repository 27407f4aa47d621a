#!/usr/bin/env python3
"""Precomputed landmarks -> the ``uttid path`` list usr2_prepare_roi reads (``--landmarks``).

    scripts/make_landmark_scp.py --corpus ROOT --landmarks_dir LM --out data/lm.scp \
        [--slice_dir data/lm_segments] data/set1 [data/set2 ...]

The landmark releases of LRS2/LRS3 mirror the corpus tree: the file of
``ROOT/<a>/<b>/<clip>.mp4`` is ``LM/<a>/<b>/<clip>.pkl`` (``.npz`` / ``.npy`` accepted
too). For every data directory (``recordings.scp``, optional ``segments``, ``utt2spk``):

* an utterance that is a whole recording maps to its landmark file as it is;
* a segment ``<uttid> <rec> <start> <end>`` (cut out by scripts/cut_segments.sh) gets the
  frames ``[round(start*fps), round(end*fps))`` of the recording's landmarks, written as a
  pickle in the release layout under ``--slice_dir`` (the segment times are on the
  25 fps grid, so these are exactly the cut's frames).

Utterances whose landmark file does not exist are left out of the list and counted on
stderr; usr2_prepare_roi then runs the face detector for them (listed in
``landmark_fallback.list``; ``--missing_landmarks skip`` skips them instead). All sets go to one list:
stage 2 passes the same ``--roi_opts`` to every set, and uttids are unique across sets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUFFIXES = (".pkl", ".npz", ".npy")


def read_map(path: Path) -> dict[str, str]:
    out = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                out[parts[0]] = parts[1].strip()
    return out


def landmark_file(media: str, corpus: Path, lm_dir: Path) -> Path | None:
    try:
        rel = Path(media).resolve().relative_to(corpus)
    except ValueError:
        return None
    for suffix in SUFFIXES:
        cand = lm_dir / rel.with_suffix(suffix)
        if cand.is_file():
            return cand
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, type=Path, help="corpus root the clip paths are under")
    p.add_argument("--landmarks_dir", required=True, type=Path, help="landmark tree mirroring the corpus")
    p.add_argument("--out", required=True, type=Path, help="landmark list to write (uttid path)")
    p.add_argument("--slice_dir", type=Path, help="where segment landmarks are written (default: <out>.d)")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("datadirs", nargs="+", type=Path)
    args = p.parse_args(argv)

    corpus = args.corpus.resolve()
    lm_dir = args.landmarks_dir.resolve()
    slice_dir = (args.slice_dir or args.out.with_name(args.out.name + ".d")).resolve()
    rows: dict[str, str] = {}
    missing = 0
    for d in args.datadirs:
        recs = read_map(d / "recordings.scp")
        segs = {}
        if (d / "segments").is_file():
            for line in (d / "segments").read_text(encoding="utf-8").splitlines():
                f = line.split()
                if len(f) == 4:
                    segs[f[0]] = (f[1], float(f[2]), float(f[3]))
        cache: dict[str, object] = {}
        for utt in read_map(d / "utt2spk"):
            if utt in segs:
                rec, start, end = segs[utt]
                src = landmark_file(recs.get(rec, ""), corpus, lm_dir)
                if src is None:
                    missing += 1
                    continue
                from espnet_usr2.prep.landmarks import load_landmarks, save_landmarks_pickle

                if rec not in cache:  # one recording has many segments, in order
                    cache.clear()
                    cache[rec] = load_landmarks(src)
                track = cache[rec]
                lo, hi = round(start * args.fps), round(end * args.fps)
                out = slice_dir / f"{utt}.pkl"
                save_landmarks_pickle(out, track[lo:hi])
                rows[utt] = str(out)
            else:
                src = landmark_file(recs.get(utt, ""), corpus, lm_dir)
                if src is None:
                    missing += 1
                    continue
                rows[utt] = str(src)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{k} {rows[k]}\n" for k in sorted(rows)), encoding="utf-8")
    print(
        f"make_landmark_scp.py: {len(rows)} utterances with landmarks -> {args.out}"
        f" ({missing} without a landmark file under {lm_dir})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
