#!/usr/bin/env python3
"""Talking-face videos -> 96x96 gray mouth ROIs (25 fps) + 16 kHz wavs, Kaldi-style lists.

Examples::

    # everything here, 4 jobs at 2 processes, then merge:
    python -m espnet_usr2.bin.usr2_prepare_roi --input data/train/video_src.scp \\
        --outdir dump/roi/train --text data/train/text --nj 4 --nproc 2

    # one job of a cluster array (JOB = 1..N), then merge once all are done:
    python -m espnet_usr2.bin.usr2_prepare_roi --input list --outdir D --nj N --job JOB
    python -m espnet_usr2.bin.usr2_prepare_roi --input list --outdir D --nj N --merge
    # meanwhile, one progress line for all N jobs every 10 s:
    python -m espnet_usr2.bin.usr2_prepare_roi --input list --outdir D --nj N --progress

    # precomputed landmarks where the list has them (face detection for the others), and
    # face hints (AVSpeech: the speaker's face centre in the first frame, 0..1):
    python -m espnet_usr2.bin.usr2_prepare_roi --input list --outdir D \\
        --landmarks data/lm.scp --face_hint data/face_hint.scp

Outputs in ``--outdir``: ``video.scp``, ``wav.scp``, ``utt2num_frames``, ``text`` (with
``--text``) and ``skipped.tsv`` (uttid, path, reason, detail), all sorted by uttid, and
``landmark_fallback.list`` (utterances that were not in ``--landmarks`` and went through
face detection instead; ``--missing_landmarks skip`` skips them), and ``damaged.tsv``
(uttid, stream, packets, seconds): kept utterances with damaged packets or frames, which
were concealed in place (audio: silence, video: the previous frame). A stream damaged over
``--max_damaged_fraction`` of the clip is skipped as ``damaged_stream``.

With ``--allow_single_stream true`` a video without an audio track is kept video-only
(``video.scp`` only, ``video_only.list``) and an audio file audio-only (``wav.scp`` only,
``audio_only.list``); ``--no_face audio_only`` keeps the audio of a video with no face.
``utt2num_frames`` then counts 40 ms frames of the audio for audio-only utterances.

Resumable: a job killed at any point and run again decodes only the utterances its
journal (``split<nj>/<job>/journal.jsonl``) does not list as finished, and the lists come
out as those of an uninterrupted run; a rerun with another ``--nj`` takes the finished
results over from the other split's journals.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import List, Optional

from espnet2.utils.types import str2bool

from espnet_usr2.prep.roi_lists import read_entries
from espnet_usr2.prep.roi_pipeline import (
    RoiConfig,
    job_dir,
    list_dir,
    merge,
    prepare_all,
    run_job,
    run_shard_list,
)
from espnet_usr2.prep.roi_progress import watch


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`RoiConfig` field, with its default and documented meaning."""
    group = parser.add_argument_group("extraction")
    helps = {
        "crop_size": "side of the square mouth crop (pixels)",
        "eye_span_px": "outer-eye-corner distance of the canonical face in crop pixels (sets the zoom)",
        "smooth_window": "frames in the centred moving average over landmarks",
        "center_window": "frames over which the crop centre is averaged",
        "max_gap": "longest run of frames without a face that is interpolated; longer runs skip the file",
        "max_av_mismatch": "seconds audio and video lengths may differ before the file is skipped",
        "max_truncation": "seconds of the declared video duration that may fail to decode",
        "max_damaged_fraction": "fraction of the clip a stream's damaged packets/frames may cover (they are "
        "concealed and listed in damaged.tsv); above it the file is skipped as "
        "damaged_stream",
        "landmark_tolerance": "frames precomputed landmarks may differ from the video by",
        "roi_format": "ROI file format: mkv (lossless FFV1), npz or npy",
        "min_detection_confidence": "MediaPipe face detection threshold",
        "decoder_threads": "video decoder threads per job",
        "frame_cache_mb": "decoded frames kept in memory per job; longer clips are decoded twice",
        "max_faces": "faces detected per frame for an utterance with a face hint (the hinted one is tracked)",
        "max_face_jump": "face widths the tracked face may move between frames before a detection is "
        "taken to be another person",
        "hint_frames": "first frames in which only a face near the hint is accepted",
        "missing_landmarks": "an utterance not in --landmarks: 'detect' (face detection, listed in "
        "landmark_fallback.list) or 'skip' (reason missing_landmarks)",
        "allow_single_stream": "keep utterances with one stream: a video without an audio track becomes "
        "video-only (video.scp, video_only.list), an audio file (wav, flac, mp3, m4a, ...) "
        "audio-only (16 kHz mono in wav.scp, audio_only.list); off: both are skipped, as "
        "training needs both streams",
        "no_face": "a video whose face is never found: 'skip' (reason no_face) or 'audio_only' (keep its audio, "
        "listed in audio_only.list)",
    }
    for field in dataclasses.fields(RoiConfig):
        kind = str2bool if isinstance(field.default, bool) else type(field.default)
        group.add_argument(f"--{field.name}", type=kind, default=field.default, help=helps[field.name])


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="Kaldi-style list: 'uttid path-to-video' per line")
    parser.add_argument("--outdir", required=True, help="output directory (lists, roi/, wav/, split*/)")
    parser.add_argument(
        "--landmarks",
        default=None,
        help="optional 'uttid path-to-landmarks' list (pickle/npy/npz); "
        "without it (or for an utterance it lacks) MediaPipe face mesh runs on every frame",
    )
    parser.add_argument(
        "--face_hint",
        default=None,
        help="optional 'uttid x y' list: the speaker's face centre in "
        "the first frame, normalised 0..1; with several faces in view that one is tracked",
    )
    parser.add_argument(
        "--text",
        default=None,
        help="optional Kaldi text; utterances missing from it or with an empty transcript are skipped",
    )
    parser.add_argument("--nj", type=int, default=1, help="number of jobs the sorted input is split into")
    parser.add_argument("--job", type=int, default=None, help="run only this job (1-based) and do not merge")
    parser.add_argument(
        "--shard_list",
        nargs="+",
        default=None,
        help="explicit shard(s): files of uttids; "
        "each is processed into outdir/split_lists/<name> (or merged with --merge)",
    )
    parser.add_argument("--merge", action="store_true", help="only merge finished jobs / shard lists into outdir")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="only watch: print the progress of the "
        "running jobs (--nj or --shard_list) every --progress_interval seconds until all have "
        "finished or the parent process (usr2.sh) is gone",
    )
    parser.add_argument("--progress_interval", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--nproc", type=int, default=1, help="processes when running all jobs here")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _config_arguments(parser)
    return parser


def _watch(args: argparse.Namespace) -> None:
    if args.shard_list:
        dirs = [list_dir(args.outdir, s) for s in args.shard_list]
    else:
        dirs = [job_dir(args.outdir, args.nj, j) for j in range(1, args.nj + 1)]
    parent = os.getppid()
    watch(
        args.outdir,
        len(read_entries(args.input)),
        dirs,
        args.progress_interval,
        keep_going=lambda: os.getppid() == parent,
    )


def main(cmd: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = RoiConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RoiConfig)}).validate()
    if args.job is not None and not 1 <= args.job <= args.nj:
        raise SystemExit(f"--job must be in 1..{args.nj}")
    if args.progress:
        _watch(args)
        return 0
    if args.merge:
        summary = merge(args.input, args.outdir, nj=args.nj, shard_lists=args.shard_list)
    elif args.shard_list:
        for shard_list in args.shard_list:
            processed, skipped = run_shard_list(
                args.input, args.outdir, cfg, shard_list, args.landmarks, args.text, args.face_hint
            )
            print(f"shard {shard_list}: {len(processed)} processed, {len(skipped)} skipped")
        return 0
    elif args.job is not None:
        processed, skipped = run_job(
            args.input, args.outdir, cfg, args.nj, args.job, args.landmarks, args.text, args.face_hint
        )
        print(f"job {args.job}/{args.nj}: {len(processed)} processed, {len(skipped)} skipped")
        return 0
    else:
        summary = prepare_all(
            args.input, args.outdir, cfg, args.nj, args.nproc, args.landmarks, args.text, args.face_hint
        )
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
