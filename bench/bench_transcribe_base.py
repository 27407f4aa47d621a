"""Real-time factor of ``usr2_transcribe`` per stage with a Base-sized model, on CPU.

Issue 24: "with the Base config (random weights) on 2 CPU cores, the whole transcription of a
10-minute recording runs faster than real time (RTF < 1), measured per stage".

The recording: a generated talking-face clip (``espnet_usr2.testing.roi_synth``: a jittered
face, 25 fps, a tone track) of ``--clip_seconds``, repeated to ``--minutes`` by stream copy.
The model: ``--config`` (the Base paper config) with random weights and a ``--vocab``-token
word list, written as a model directory. The file goes through ``usr2_transcribe``'s own path
(:func:`espnet_usr2.bin.usr2_transcribe.transcribe_file`): mouth-ROI extraction (face
landmarks, crop), segmentation, encoding and the search of ``--inference_config``.

A model with random weights never ends a hypothesis, so its search would run to the frame
count; ``--tokens_per_frame`` bounds every segment's hypotheses to a real token rate instead
(maxlenratio; 0.15 tokens per 40 ms frame is ~3.75 tokens/s, above LRS3's rate with
unigram-1000 pieces), which makes the search figure an upper bound for a trained model that
stops at its end of sentence.

Printed: seconds and RTF (seconds per second of recording) of each stage and in all, the
segment count, and the peak resident memory of the process.

    python bench/bench_transcribe_base.py --minutes 10
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict

import soundfile
import torch
import yaml
from bench_common import token_list

from espnet_usr2.bin.usr2_transcribe import BEST, Segmenting, modality_choice, transcribe_file
from espnet_usr2.inference.model_dir import resolve_model_dir
from espnet_usr2.inference.speech2text import USR2Speech2Text
from espnet_usr2.prep.roi_pipeline import RoiConfig
from espnet_usr2.tasks.config import write_untrained_model_dir
from espnet_usr2.testing.recipes import TEMPLATE
from espnet_usr2.testing.roi_synth import make_clip, tone


def long_recording(root: Path, minutes: float, clip_seconds: float, size: int) -> Path:
    """A talking-face video of ``minutes``: one generated clip's frames repeated by stream copy,
    with one continuous audio track of the whole length (joining clips with their own AAC
    tracks drifts by each track's priming samples, and the audio would no longer match)."""
    clip = make_clip(root / "clip.mp4", seconds=clip_seconds, size=size, seed=3, with_audio=False).path
    repeats = max(1, round(minutes * 60 / clip_seconds))
    listing = root / "concat.txt"
    listing.write_text("".join(f"file '{clip}'\n" for _ in range(repeats)))
    soundfile.write(root / "tone.wav", tone(repeats * clip_seconds, 16000, 1)[0], 16000)
    out = root / "recording.mp4"
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-i",
        str(root / "tone.wav"),
    ]
    subprocess.run([*cmd, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(out)], check=True)
    return out


def base_model_dir(root: Path, config: Path, vocab: int) -> Path:
    """``config`` with random weights and a word list of ``vocab`` tokens, as training leaves it."""
    return write_untrained_model_dir(root / "model", config, token_list(vocab), "word")


def bounded_search(root: Path, inference_config: Path, tokens_per_frame: float) -> Path:
    conf = yaml.safe_load(inference_config.read_text())
    conf["maxlenratio"] = tokens_per_frame
    out = root / "decode_bounded.yaml"
    out.write_text(yaml.safe_dump(conf))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip_seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=224, help="video frame size (LRS3's face tracks are 224)")
    parser.add_argument("--config", type=Path, default=TEMPLATE / "conf" / "train_usr2_base.yaml")
    parser.add_argument("--vocab", type=int, default=1000, help="the paper's unigram-1000 vocabulary size")
    parser.add_argument("--inference_config", type=Path, default=TEMPLATE / "conf" / "decode_transcribe.yaml")
    parser.add_argument("--tokens_per_frame", type=float, default=0.15)
    parser.add_argument(
        "--modalities", nargs="+", default=[BEST], help="as usr2_transcribe's (default: best, here AV; or all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_transcribe_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        video = long_recording(root, args.minutes, args.clip_seconds, args.size)
        model_dir = base_model_dir(root, args.config, args.vocab)
        search = bounded_search(root, args.inference_config, args.tokens_per_frame)
        files = resolve_model_dir(str(model_dir))
        modalities, best_only = modality_choice(args.modalities)
        s2t = USR2Speech2Text.from_model_files(files, str(search), modalities=modalities)
        params = sum(p.numel() for p in s2t.model.parameters()) / 1e6
        print(f"prepared in {time.perf_counter() - start:.0f} s: {video.name}, model {params:.1f} M parameters")
        start = time.perf_counter()
        outcome = transcribe_file(s2t, str(video), "recording", RoiConfig(), None, 60.0, Segmenting(), best_only)
        total = time.perf_counter() - start
        if outcome.skipped:
            raise SystemExit(f"transcription skipped the recording: {outcome.skipped}")
        report(args, outcome.records, total)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, records, total: float) -> None:
    """Per-stage seconds from the records usr2_transcribe writes (ROI and encoder shared)."""
    first = records[0]
    duration = first["duration_s"]
    stages: Dict[str, float] = {
        "mouth ROIs (decode, landmarks, crop)": first["timings"]["roi_s"],
        f"encoder ({' + '.join(r['modality'] for r in records)})": first["timings"]["encode_s"],
    }
    for r in records:
        stages[f"search {r['modality']}"] = r["timings"]["search_s"]
    stages["the rest (segmenting, batching, joining)"] = total - sum(stages.values())
    print(
        f"\n# usr2_transcribe, {args.config.name} (random weights), {duration / 60:.1f} min recording, "
        f"{args.size}x{args.size} video, {args.threads} threads, search {args.inference_config.name} "
        f"bounded at {args.tokens_per_frame} tokens/frame; {len(first['segments'])} segments\n"
    )
    print("| stage | seconds | RTF |\n|---|---:|---:|")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds:.1f} | {seconds / duration:.3f} |")
    print(f"| **whole transcription** | {total:.1f} | **{total / duration:.3f}** |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
