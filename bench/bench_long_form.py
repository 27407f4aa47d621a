#!/usr/bin/env python3
"""Long-form transcription against clip-by-clip decoding, on a long recording built from clips.

    python bench/bench_long_form.py --model_dir egs2/mini_lrs3/usr2/exp/<tag> \\
        --data_dir egs2/mini_lrs3/usr2/dump/extract/test --minutes 10

The recording: the data directory's clips (mouth ROIs + 16 kHz audio, shuffled, repeated until
``--minutes``) joined by pauses of 0.4-1.2 s (quiet noise at -60 dBFS; the video holds the
clip's last frame). Its reference is every clip's transcript and its start / end time.

Decoded:

* **clip by clip**, each clip alone, with every search in ``--search_configs`` (decoding YAMLs;
  ``released`` = the released evaluation search, beam 40 / CTC 0.1 without end detection):
  WER and the search's real-time factor per modality -- the measurement behind
  ``usr2_transcribe``'s default search;
* **long form** (``usr2_transcribe``'s path, :func:`decode_recording`) with the first search,
  for every ``--max_segments`` x ``--min_silences``: A and AV cut at pauses in the audio, V
  into overlapping windows (the video-only path).

Printed per setting and modality: WER of the joined transcript against the joined references
(and the clip-by-clip WER beside it), the segment count, how far each segment's start / end
lies from the nearest clip start / end (mean, max, share within 0.5 s; A/AV only), the
search's real-time factor, and the peak memory of decoding the first third of the recording
and the whole of it (flat when segments, not the recording, set it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import Measured  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # ESPnet's flash_attn notice
    from espnet_usr2.bin.usr2_transcribe import Media, Segmenting, decode_recording  # noqa: E402
    from espnet_usr2.data.roi_io import load_roi  # noqa: E402
    from espnet_usr2.decode.hyps import DecodeOptions  # noqa: E402
    from espnet_usr2.inference.long_form import FPS  # noqa: E402
    from espnet_usr2.inference.model_dir import resolve_model_dir  # noqa: E402
    from espnet_usr2.inference.speech2text import USR2Speech2Text  # noqa: E402
    from espnet_usr2.scoring.sclite import count_errors  # noqa: E402

SPF = 640
NAMES = {"v": "V", "a": "A", "av": "AV"}


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (%) of one long hypothesis against one long reference (sclite's alignment)."""
    counts = count_errors(reference.split(), hypothesis.split())
    return 100.0 * counts.errors / max(1, counts.n_ref)


def read_scp(path: Path, recipe_dir: Path) -> Dict[str, str]:
    """uttid -> path; relative paths are relative to the recipe directory, as the recipes write them."""
    out = {}
    for line in path.read_text().splitlines():
        key, value = line.split(maxsplit=1)
        out[key] = str(value if Path(value).is_absolute() else recipe_dir / value)
    return out


def load_clips(data_dir: Path, recipe_dir: Path) -> List[Tuple[str, np.ndarray, np.ndarray, str]]:
    """(uttid, ROI frames, audio cut to the frames, transcript) of every clip."""
    texts = dict(line.split(maxsplit=1) for line in (data_dir / "text").read_text().splitlines())
    videos, wavs = (read_scp(data_dir / name, recipe_dir) for name in ("video.scp", "wav.scp"))
    clips = []
    for uid in sorted(texts):
        if uid not in videos or uid not in wavs:
            continue
        frames = load_roi(videos[uid])
        audio, rate = soundfile.read(wavs[uid], dtype="float32")
        assert rate == 16000, (uid, rate)
        n = min(len(frames), len(audio) // SPF)
        clips.append((uid, frames[:n], audio[: n * SPF], texts[uid].strip()))
    return clips


def build_recording(clips, minutes: float, seed: int):
    """Frames, audio, reference texts and (start, end) seconds of each clip in the recording."""
    rng = np.random.default_rng(seed)
    frames, audio, refs, spans = [], [], [], []
    t = 0
    order: List[int] = []
    total = 0
    while total < minutes * 60 * FPS:
        for i in rng.permutation(len(clips)):
            order.append(int(i))
            total += len(clips[i][1]) + int(0.8 * FPS)
            if total >= minutes * 60 * FPS:
                break
    for i in order:
        uid, f, a, text = clips[i]
        pause = int(rng.uniform(0.4, 1.2) * FPS)
        frames.append(np.repeat(f[-1:], pause, axis=0))
        audio.append((0.001 * rng.standard_normal(pause * SPF)).astype(np.float32))
        t += pause
        frames.append(f)
        audio.append(a)
        spans.append((t / FPS, (t + len(f)) / FPS))
        refs.append(text)
        t += len(f)
    tail = int(0.8 * FPS)
    frames.append(np.repeat(frames[-1][-1:], tail, axis=0))
    audio.append((0.001 * rng.standard_normal(tail * SPF)).astype(np.float32))
    return np.concatenate(frames), np.concatenate(audio), refs, spans, order


def clip_by_clip(s2t: USR2Speech2Text, clips, order) -> Dict[str, List[str]]:
    """Each distinct clip decoded alone (once), hypotheses in recording order."""
    hyps: Dict[str, Dict[int, str]] = {}
    for i in sorted(set(order)):
        _, f, a, _ = clips[i]
        result = s2t.transcribe(speech=a, video=f)
        for m, nbest in result.nbest.items():
            hyps.setdefault(m, {})[i] = nbest[0].text
    return {m: [by_clip[i] for i in order] for m, by_clip in hyps.items()}


def edge_errors(segments: Sequence[dict], spans: Sequence[Tuple[float, float]]) -> Tuple[float, float, float]:
    """Mean / max distance (s) of segment starts (ends) to the nearest clip start (end), and the
    share of edges within 0.5 s."""
    starts, ends = np.array([s for s, _ in spans]), np.array([e for _, e in spans])
    d = [float(np.min(np.abs(starts - seg["start"]))) for seg in segments]
    d += [float(np.min(np.abs(ends - seg["end"]))) for seg in segments]
    d = np.array(d)
    return float(d.mean()), float(d.max()), float(np.mean(d <= 0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_file", default=None)
    parser.add_argument(
        "--search_configs",
        nargs="+",
        default=["released"],
        help="decoding YAMLs compared clip by clip (released: the released search); the "
        "first also decodes the long recording",
    )
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--recipe_dir", type=Path, default=None, help="paths in the scp files are relative to it")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--max_segments",
        type=float,
        nargs="*",
        default=[5.0, 20.0],
        help="long-form settings (none: the clip-by-clip comparison only)",
    )
    parser.add_argument("--min_silences", type=float, nargs="+", default=[0.2, 0.3, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    files = resolve_model_dir(args.model_dir, args.model_file)
    recipe_dir = args.recipe_dir or Path(args.model_dir).resolve().parents[1]
    clips = load_clips(args.data_dir, recipe_dir)
    frames, audio, refs, spans, order = build_recording(clips, args.minutes, args.seed)
    seconds = len(frames) / FPS
    reference = " ".join(refs)
    print(
        f"recording: {seconds / 60:.1f} min, {len(order)} clips ({len(clips)} distinct) of {args.data_dir}, "
        f"{len(reference.split())} words; model {files.model_file}\n"
    )

    print(
        "Clip by clip (each distinct clip once; WER over the recording's clips; RTF = search + encoder "
        "seconds per second of speech, all three modalities):\n"
    )
    print("| search | WER V | WER A | WER AV | RTF |")
    print("|---|---:|---:|---:|---:|")
    distinct_seconds = sum(len(clips[i][1]) for i in set(order)) / FPS
    single_wer: Dict[str, float] = {}
    s2t = None
    for config in args.search_configs:
        s2t_config = (
            USR2Speech2Text.from_model_files(files, opts=DecodeOptions())
            if config == "released"
            else USR2Speech2Text.from_model_files(files, config)
        )
        start = time.perf_counter()
        single = clip_by_clip(s2t_config, clips, order)
        rtf = (time.perf_counter() - start) / distinct_seconds
        wers = {m: wer(reference, " ".join(h)) for m, h in single.items()}
        print(f"| {config} | {wers['v']:.1f} | {wers['a']:.1f} | {wers['av']:.1f} | {rtf:.3f} |", flush=True)
        if s2t is None:
            s2t, single_wer = s2t_config, wers
    if not args.max_segments:
        return
    print(f"\nLong form with {args.search_configs[0]}:\n")
    print(
        "| modality | max_segment (s) | min_silence (s) | segments | WER long-form | WER clip by clip "
        "| edge error mean / max (s) | edges within 0.5 s | search RTF |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for max_segment in args.max_segments:
        for min_silence in args.min_silences:
            segmenting = Segmenting(max_segment, min_silence, min(2.0, max_segment / 4))
            for modalities, media in ((("a", "av"), Media(frames, audio, "")), (("v",), Media(frames, None, ""))):
                if modalities == ("v",) and min_silence != args.min_silences[0]:
                    continue  # windows do not depend on pauses
                s2t.modalities = modalities
                start = time.perf_counter()
                decoded = decode_recording(s2t, media, segmenting)
                rtf = (time.perf_counter() - start) / seconds
                for m in modalities:
                    long_wer = wer(reference, decoded.texts[m])
                    segs = [dict(start=p.start_s, end=p.end_s) for p in decoded.segments[m]]
                    edges = "-" if m == "v" else "{:.2f} / {:.2f} | {:.0%}".format(*edge_errors(segs, spans))
                    if m == "v":
                        edges += " | -"
                    print(
                        f"| {NAMES[m]} | {max_segment:g} | {min_silence if m != 'v' else '-'} | {len(segs)} "
                        f"| {long_wer:.1f} | {single_wer[m]:.1f} | {edges} | {rtf:.3f} |",
                        flush=True,
                    )
    # memory: greedy CTC (the search's own memory is per segment whatever it is; this is quick)
    s2t = USR2Speech2Text.from_model_files(files, opts=DecodeOptions(method="greedy_ctc"), modalities=("a", "av"))
    third = len(frames) // 3
    segmenting = Segmenting(args.max_segments[0], args.min_silences[0], 2.0)
    part = Measured(lambda: decode_recording(s2t, Media(frames[:third], audio[: third * SPF], ""), segmenting))
    whole = Measured(lambda: decode_recording(s2t, Media(frames, audio, ""), segmenting))
    print(
        f"\npeak memory while decoding (A + AV, greedy CTC, max_segment {args.max_segments[0]:g}): "
        f"first third {part.peak_mb:.0f} MB, whole recording {whole.peak_mb:.0f} MB "
        f"(extra over the loaded model: {part.extra_mb:.0f} / {whole.extra_mb:.0f} MB)"
    )


if __name__ == "__main__":
    main()
