#!/usr/bin/env python3
"""Throughput of mouth-ROI preparation, in frames per second per CPU core.

Makes an LRS3-like clip (224x224 H.264 at 25 fps, AAC audio; the jittered astronaut
face of ``espnet_usr2.testing.roi_synth``) and times, on one core, the whole per-file work
of data prep (``prepare_utterance``: audio, decoding, landmarks, alignment, warps,
FFV1 + wav writing) with MediaPipe and with precomputed landmarks, then each part alone
to show where the time goes.

"per core" = frames / CPU seconds of this process (all its threads): the figure neither
flatters multi-threaded stages nor suffers from other load on the machine. Usage::

    python bench/bench_roi.py [--seconds 10] [--size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Tuple

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _measure(fn: Callable[[], int], repeats: int) -> Tuple[int, float, float]:
    """Best of ``repeats``: (frames, wall seconds, CPU seconds)."""
    best = None
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        frames = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if best is None or cpu < best[2]:
            best = (frames, wall, cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip duration")
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels (LRS3: 224)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage; the fastest counts")
    args = parser.parse_args()

    import cv2
    import numpy as np

    from espnet_usr2.data.roi_io import save_roi
    from espnet_usr2.prep.align import crop_transforms, fill_gaps, smooth, warp_crop
    from espnet_usr2.prep.landmark_sets import MEDIAPIPE468
    from espnet_usr2.prep.landmarks import MediaPipeFaceMesh
    from espnet_usr2.prep.media import VideoReader, align_audio_to_video, read_audio, write_wav
    from espnet_usr2.prep.roi_pipeline import RoiConfig, UttInput, extract_roi, prepare_utterance
    from espnet_usr2.testing.roi_synth import make_clip

    cv2.setNumThreads(1)  # one core per job is how data prep runs (parallelism = --nj)
    cfg = RoiConfig()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", seconds=args.seconds, size=args.size)
        roi = extract_roi(clip.path, cfg)
        lm_path = Path(tmp) / "clip.npy"
        np.save(lm_path, roi.landmarks)  # 25 fps clip: source frames = output frames
        gray, rgb = zip(*(images for _, _, images in VideoReader(clip.path, ("gray", "rgb24")).frames()))

        def utterance(lm: Optional[str]) -> Callable[[], int]:
            return lambda: prepare_utterance(UttInput("u", str(clip.path), lm), Path(tmp) / "out", cfg).num_frames

        def mesh_only() -> int:
            with MediaPipeFaceMesh() as mesh:
                return sum(mesh(img) is not None for img in rgb)

        def align_warp() -> int:
            points = smooth(fill_gaps(roi.landmarks, cfg.max_gap), cfg.smooth_window)
            mats = crop_transforms(points, MEDIAPIPE468, cfg.crop_size, cfg.eye_span_px, cfg.center_window)
            return len([warp_crop(g, m, cfg.crop_size) for g, m in zip(gray, mats)])

        def audio() -> int:
            samples = align_audio_to_video(read_audio(clip.path), roi.video_start, len(roi.frames), 0.2)
            return len(samples) // 640

        def write() -> int:
            save_roi(Path(tmp) / "w.mkv", roi.frames)
            write_wav(Path(tmp) / "w.wav", np.zeros(len(roi.frames) * 640, np.float32))
            return len(roi.frames)

        whole = {"utterance, MediaPipe": utterance(None), "utterance, given landmarks": utterance(str(lm_path))}
        parts = {
            "video decoding (gray+RGB)": lambda: sum(1 for _ in VideoReader(clip.path, ("gray", "rgb24")).frames()),
            "MediaPipe face mesh": mesh_only,
            "align + warp": align_warp,
            "audio decode + resample": audio,
            "FFV1 ROI + wav writing": write,
        }
        print(
            f"clip: {clip.num_frames} frames, {args.size}x{args.size}, {args.seconds:g} s at 25 fps; "
            f"best of {args.repeats}; {os.cpu_count()} cores visible"
        )
        print(f"{'':28s} {'frames':>6s} {'wall s':>8s} {'cpu s':>8s} {'frames/s/core':>14s} {'ms/frame':>9s}")
        results = {}
        for name, fn in {**whole, **parts}.items():
            frames, wall, cpu = _measure(fn, args.repeats)
            results[name] = cpu / frames
            print(f"{name:28s} {frames:6d} {wall:8.3f} {cpu:8.3f} {frames / cpu:14.1f} {1000 * cpu / frames:9.2f}")
        parts_total = sum(results[name] for name in parts)
        print(
            f"\nROI extraction throughput: {1 / results['utterance, MediaPipe']:.0f} frames/s/core with MediaPipe, "
            f"{1 / results['utterance, given landmarks']:.0f} frames/s/core with given landmarks"
        )
        print("share of the parts (MediaPipe path):")
        for name in parts:
            print(f"  {name:26s} {100 * results[name] / parts_total:5.1f} %")


if __name__ == "__main__":
    main()
