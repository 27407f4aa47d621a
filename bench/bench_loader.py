"""How many video frames per second the semi-supervised data loader delivers, per worker.

Issue 23 point 5: the loader must keep up with the GPU step. This builds the training iterator
exactly as ``usr2_train`` does (``USR2Task.build_iter_factory`` with a training config, here the
Base paper config) over generated data laid out as stage 4 leaves it -- 96x96 mouth ROIs in
lossless FFV1 (.mkv), 16 kHz wav, transcripts for the labelled pool -- and times whole batches
(labelled + unlabelled frames, decoded, tokenised, collated) at several ``--num_workers``.

Printed per worker count: batches/s, video frames/s (both pools), frames/s per worker, and
the workers a GPU consuming ``--gpu_frames_per_s`` needs for the loader to deliver 2x that
(issue 23: "the loader delivers >= 2x what the optimised GPU step consumes").

The generated ROI frames are a smooth face-like pattern with sensor-like noise; their FFV1
size per frame is printed next to the figures so it can be set against a real corpus's ROIs
(``du`` over dump/<set>/ roi files / frames in utt2num_frames).

    python bench/bench_loader.py --workers 0 1 2 --clips 64 --batches 12
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile
import torch
from bench_common import SAMPLES_PER_FRAME
from espnet2.train.distributed_utils import DistributedOption

from espnet_usr2.data.roi_io import save_roi
from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.testing.recipes import TEMPLATE

ROI_SIZE = 96
H200_FRAMES_PER_S = 10_500  # bench/results/h200_2026-11-29: Base step, 16 + 16 clips x 150 frames in 0.455 s
CHARS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ '")


def roi_frames(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A mouth-ROI-like clip: smooth shading, a moving dark ellipse, camera noise (sigma 3)."""
    y, x = np.mgrid[0:ROI_SIZE, 0:ROI_SIZE].astype(np.float32)
    base = 110 + 40 * np.sin(x / 30 + rng.uniform(0, 6)) + 25 * np.cos(y / 25 + rng.uniform(0, 6))
    out = np.empty((frames, ROI_SIZE, ROI_SIZE), np.uint8)
    for t in range(frames):
        opening = 6 + 5 * np.sin(t / 3 + rng.uniform(0, 0.3))
        mouth = ((x - 48) / 22) ** 2 + ((y - 55) / opening) ** 2 < 1
        frame = base - 70 * mouth + rng.normal(0, 3, base.shape)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def write_pool(
    root: Path, name: str, clips: int, entries: int, frames: int, labelled: bool, seed: int
) -> Dict[str, Path]:
    """A stage-4-like data directory (wav.scp, video.scp, text) and its video shape file:
    ``clips`` distinct media files listed under ``entries`` utterance ids (a pool large enough
    for many batches without generating each one; every entry is decoded when read)."""
    rng = np.random.default_rng(seed)
    d = root / name
    (d / "media").mkdir(parents=True)
    media = []
    for i in range(clips):
        n = int(frames * rng.uniform(0.7, 1.3))
        roi, wav = d / "media" / f"{i:05d}.mkv", d / "media" / f"{i:05d}.wav"
        save_roi(roi, roi_frames(n, rng))
        soundfile.write(wav, rng.normal(0, 0.05, n * SAMPLES_PER_FRAME).astype(np.float32), 16000)
        media.append((roi, wav, n))
    scp: Dict[str, List[str]] = {"wav.scp": [], "video.scp": [], "text": [], "video_shape": []}
    for i in range(entries):
        roi, wav, n = media[i % clips]
        utt = f"{name}_{i:06d}"
        scp["video.scp"].append(f"{utt} {roi}")
        scp["wav.scp"].append(f"{utt} {wav}")
        scp["text"].append(f"{utt} " + "".join(rng.choice(CHARS[:-2], 4)) + " " + "".join(rng.choice(CHARS[:-2], 5)))
        scp["video_shape"].append(f"{utt} {n},{ROI_SIZE},{ROI_SIZE}")
    for key, lines in scp.items():
        if key != "text" or labelled:
            (d / key).write_text("\n".join(lines) + "\n")
    return {"dir": d, "shape": d / "video_shape", "media": d / "media"}


def build_factory(
    config: Path, lab: Dict[str, Path], unl: Dict[str, Path], workers: int, lab_frames: int, unl_frames: int
):
    tokens = ["<blank>", "<unk>", *[c if c != " " else "<space>" for c in CHARS], "<sos/eos>"]
    data = []
    for opt, pool, labelled in (
        ("--train_data_path_and_name_and_type", lab, True),
        ("--unlabelled_data_path_and_name_and_type", unl, False),
    ):
        data += [opt, f"{pool['dir']}/wav.scp,speech,sound", opt, f"{pool['dir']}/video.scp,video,roi_video"]
        if labelled:
            data += [opt, f"{pool['dir']}/text,text,text"]
    args = parse_training_args(
        config,
        tokens,
        [
            "--token_type",
            "char",
            "--batch_type",
            "semi_supervised",
            "--num_workers",
            str(workers),
            "--train_shape_file",
            str(lab["shape"]),
            "--unlabelled_shape_file",
            str(unl["shape"]),
            "--labelled_batch_frames",
            str(lab_frames),
            "--unlabelled_batch_frames",
            str(unl_frames),
            *data,
        ],
    )
    return USR2Task.build_iter_factory(args, DistributedOption(distributed=False), "train")


def time_loader(factory, batches: int, warmup: int) -> Dict[str, float]:
    """Batches/s and video frames/s over ``batches`` after ``warmup`` (workers start, first reads)."""
    loader = iter(factory.build_iter(1))
    for _ in range(warmup):
        next(loader)
    frames, start = 0, time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            _, batch = next(loader)
        except StopIteration:
            break
        frames += int(batch["video_lengths"].sum())
        done += 1
    seconds = time.perf_counter() - start
    return {"batches": done, "seconds": seconds, "frames_per_s": frames / seconds, "batches_per_s": done / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=TEMPLATE / "conf" / "train_usr2_base.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=32, help="distinct media files per pool")
    parser.add_argument("--entries", type=int, default=2000, help="utterances per pool (files repeated)")
    parser.add_argument("--frames", type=int, default=150, help="mean clip length in frames (0.7x-1.3x)")
    parser.add_argument("--labelled_batch_frames", type=int, default=600, help="usr2.sh's default")
    parser.add_argument("--unlabelled_batch_frames", type=int, default=4400, help="usr2.sh's default")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--gpu_frames_per_s",
        type=float,
        default=2 * H200_FRAMES_PER_S,
        help="what the GPU step consumes (default: 2x the measured H200 Base step)",
    )
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        lab = write_pool(root, "lab", args.clips, args.entries, args.frames, True, seed=1)
        unl = write_pool(root, "unl", args.clips, args.entries, args.frames, False, seed=2)
        roi_bytes = sum(p.stat().st_size for p in unl["media"].glob("*.mkv"))
        shapes = unl["shape"].read_text().splitlines()[: args.clips]
        roi_frames_total = sum(int(line.split()[1].split(",")[0]) for line in shapes)
        print(
            f"# loader: {args.config.name}, {args.entries} + {args.entries} clips of ~{args.frames} frames, "
            f"{args.labelled_batch_frames} + {args.unlabelled_batch_frames} frames a batch; "
            f"{os.cpu_count()} CPUs; FFV1 {roi_bytes / roi_frames_total / 1024:.1f} KiB per 96x96 frame"
        )
        print("| workers | batches/s | video frames/s | frames/s per worker |")
        print("|---|---|---|---|")
        per_worker: List[float] = []
        for workers in args.workers:
            factory = build_factory(
                args.config, lab, unl, workers, args.labelled_batch_frames, args.unlabelled_batch_frames
            )
            r = time_loader(factory, args.batches, args.warmup)
            rate = r["frames_per_s"] / max(workers, 1)
            per_worker.append(rate)
            print(f"| {workers} | {r['batches_per_s']:.2f} | {r['frames_per_s']:.0f} | {rate:.0f} |")
        best = max(per_worker)
        need = math.ceil(2 * args.gpu_frames_per_s / best)
        print(
            f"\nA GPU step consuming {args.gpu_frames_per_s:.0f} frames/s needs {need} workers per GPU for 2x that "
            f"(at {best:.0f} frames/s per worker, the best above)."
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
