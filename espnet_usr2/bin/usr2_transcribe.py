#!/usr/bin/env python3
"""Transcribe talking-face videos and audio files with a USR 2.0 model.

    python -m espnet_usr2.bin.usr2_transcribe talk.mp4 interview.mkv --model_dir exp/usr2_base \\
        --json transcripts.json

An audio file (wav, flac, mp3, m4a, ... anything PyAV reads without a video stream) is
transcribed in A; so is a video in which no face is ever found, with a warning.

For each video (any container and frame rate PyAV reads, with or without an audio track):
mouth ROIs at 25 fps (MediaPipe face mesh, or ``--landmarks``), the audio at 16 kHz on
the video's clock, one encoder pass, and one transcript in the best modality the file allows:
audio-visual (AV) when it has a usable audio track, else video (V). ``--modalities all`` (or
any of ``v a av``) decodes every modality asked for that the file allows -- one search each.
Printed one line per file and modality (``<uttid> <V|A|AV>: <text>``); ``--json`` also writes
the scores and timings. A file that cannot be used (unreadable, no face)
gets one line on stderr; the exit status is non-zero only when nothing was transcribed.

A recording longer than ``--max_segment`` seconds is cut into segments the model was trained
for -- at pauses in its audio, or into overlapping windows when there is only video -- decoded
in batches and joined (:mod:`espnet_usr2.inference.long_form`). ``--output_dir`` writes, per
file, the transcript (``.txt``), subtitles (``.srt``, ``.vtt``) with segment times, and a
``.json`` with every modality's segments; text and subtitles carry the best modality the file
allows (AV, else A, else V).

``--model_dir`` takes a model imported with ``usr2_import``, a recipe experiment directory
``exp/<tag>`` (the model its training config selects; ``--model_file`` overrides), or a
model packed by stage 14 (``.zip``). Decoding settings: ``--inference_config``, else the
``decode*.yaml`` shipped with the model, else joint CTC/attention beam search with end
detection (beam 10, CTC weight 0.3: fast and robust, measured); the released evaluation search
is ``--inference_config conf/decode_beam40.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# stdout carries the transcripts only, and offline nothing is printed on import: ESPnet prints a
# notice when flash_attn is missing (these models never use it); NLTK's download attempts are
# deferred by the package itself (espnet_usr2/__init__.py)
with open(os.devnull, "w") as _quiet, contextlib.redirect_stdout(_quiet):
    from espnet_usr2.data.av_sync import align_audio_to_video
    from espnet_usr2.inference import long_form, subtitles
    from espnet_usr2.inference.model_dir import ModelDirError, resolve_model_dir
    from espnet_usr2.inference.speech2text import MODEL_ROLES, USR2Speech2Text
    from espnet_usr2.prep import roi_errors as E
    from espnet_usr2.prep.landmarks import load_landmarks
    from espnet_usr2.prep.media import SAMPLE_RATE, check_damage, probe_streams, read_audio
    from espnet_usr2.prep.roi_errors import SkipUtterance
    from espnet_usr2.prep.roi_pipeline import RoiConfig, extract_clip
    from espnet_usr2.utils.modalities import MODALITIES, best_modality

log = logging.getLogger("usr2_transcribe")
PROG = "usr2_transcribe"
SHORT_NAMES = {"v": "V", "a": "A", "av": "AV"}
BEST, ALL = "best", "all"  # --modalities choices besides the modality names
FPS = 25


@dataclass
class FileOutcome:
    """What happened to one input file."""

    uttid: str
    path: str
    records: List[dict] = field(default_factory=list)  # one per decoded modality
    skipped: Optional[dict] = None  # reason and detail when nothing could be decoded


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m espnet_usr2.bin.{PROG}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "videos", nargs="+", metavar="FILE", help="talking-face videos (any container / rate), or audio files (A only)"
    )
    parser.add_argument(
        "--model_dir", required=True, help="usr2_import output, exp/<tag> of a recipe, or a packed model .zip"
    )
    parser.add_argument(
        "--model_file",
        default=None,
        help="model .pth (a path, or a file name in --model_dir) instead of the selected one",
    )
    parser.add_argument(
        "--inference_config",
        default=None,
        help="decoding YAML (conf/decode_*.yaml); default: the model's, else beam 10 / CTC 0.3 with end "
        "detection (the released search: conf/decode_beam40.yaml)",
    )
    parser.add_argument(
        "--modalities",
        nargs="+",
        default=[BEST],
        help=f"{BEST}: one transcript per file, in the best modality it allows (AV, else A, else V); "
        f"{ALL}: every modality it allows; or any of v a av (video audio audiovisual), those the file "
        "allows (one search per modality: all three cost 1.4x the time of one, bench/results/"
        "transcribe_base_2026-12-06.md)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--model_role",
        default="student",
        choices=MODEL_ROLES,
        help="the trained student or the EMA teacher of a semi-supervised run",
    )
    parser.add_argument(
        "--landmarks",
        nargs="+",
        default=None,
        metavar="FILE",
        help="precomputed landmarks, one file per VIDEO in the same order (LRS2/LRS3 .pkl, "
        ".npy / .npz (T, K, 2) per source frame); default: MediaPipe face mesh",
    )
    parser.add_argument(
        "--max_av_mismatch",
        type=float,
        default=1.0,
        help="seconds audio and video may differ; beyond it the audio is not used (V only)",
    )
    parser.add_argument(
        "--max_damaged_fraction",
        type=float,
        default=0.05,
        help="damaged packets are concealed (audio: silence, video: the previous frame); a stream "
        "damaged over this fraction of the clip is not used (audio: V only; video: skipped)",
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="OUT",
        help="write every file's uttid, modality, text, score, segments, timings to one JSON",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="write <uttid>.<format> per file (text and subtitles: the best modality decoded)",
    )
    parser.add_argument(
        "--output_format",
        default="all",
        choices=(*subtitles.FORMATS, "all"),
        help="what --output_dir gets: txt, srt, vtt, json or all of them",
    )
    group = parser.add_argument_group("long recordings")
    group.add_argument(
        "--max_segment",
        type=float,
        default=20.0,
        help="seconds: a longer recording is cut into segments of at most this",
    )
    group.add_argument(
        "--min_silence",
        type=float,
        default=0.5,
        help="seconds: the shortest pause in the audio at which a recording is cut",
    )
    group.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="seconds shared by neighbouring windows where there is no pause (video only); "
        "default 2, at most a quarter of --max_segment",
    )
    group.add_argument(
        "--segment_batch_frames",
        type=int,
        default=1500,
        help="padded video frames (25 fps) of segments decoded together",
    )
    parser.add_argument("--unpack_dir", default=None, help="where a .zip model is unpacked (default: beside it)")
    parser.add_argument(
        "--progress_interval",
        type=float,
        default=10.0,
        help="seconds between progress lines while reading a long video",
    )
    parser.add_argument("--log_level", default="INFO", choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def uttids_for(paths: Sequence[str]) -> List[str]:
    """File stems as utterance ids, made unique (``a/x.mp4``, ``b/x.mp4`` -> ``x``, ``x_2``)."""
    seen: Dict[str, int] = {}
    out = []
    for p in paths:
        stem = Path(p).stem or "video"
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out


@dataclass
class Media:
    """What a file gives the model: mouth ROIs and / or 16 kHz audio."""

    frames: Optional[np.ndarray]
    audio: Optional[np.ndarray]
    note: str


def read_media(path: str, cfg: RoiConfig, landmarks: Optional[str], progress_interval: float) -> Media:
    """Mouth ROIs and the audio on their clock; an audio file (or a video whose face is never
    found) gives its audio alone, transcribed in A. Unusable input raises SkipUtterance."""
    has_video, has_audio = probe_streams(path)
    if not has_video:
        if not has_audio:
            raise SkipUtterance(E.NO_VIDEO_STREAM, "the file has neither a video stream nor an audio track")
        return Media(None, _whole_audio(path, cfg), "an audio file: A only")
    points = load_landmarks(landmarks) if landmarks is not None else None
    try:
        clip = extract_clip(path, cfg, points, audio_optional=True, progress_interval=progress_interval)
    except SkipUtterance as skip:
        if skip.reason != E.NO_FACE or not has_audio:
            raise
        log.warning("%s: no face found (%s): transcribing its audio only", path, skip.detail)
        return Media(None, _whole_audio(path, cfg), "no face: A only")
    note = "with audio" if clip.audio is not None else f"video only ({clip.audio_problem})"
    return Media(clip.roi.frames, clip.audio, note)


def _whole_audio(path: str, cfg: RoiConfig) -> np.ndarray:
    audio = read_audio(path)
    check_damage(audio.damage, "audio", len(audio.samples) / SAMPLE_RATE, cfg.max_damaged_fraction)
    return audio.samples


def transcribe_file(
    s2t: USR2Speech2Text,
    path: str,
    uttid: str,
    cfg: RoiConfig,
    landmarks: Optional[str],
    progress_interval: float,
    segmenting: Optional[Segmenting] = None,
    best_only: bool = False,
) -> FileOutcome:
    """Mouth ROIs + audio of one file, then every modality it allows (``best_only``: the best of
    them); bad input -> ``skipped``."""
    outcome = FileOutcome(uttid, path)
    segmenting = segmenting or Segmenting()
    start = time.perf_counter()
    try:
        media = read_media(path, cfg, landmarks, progress_interval)
        roi_s = time.perf_counter() - start
        if media.frames is not None:
            log.info(
                "%s: %d frames (%.2f s) of mouth ROIs in %.1f s, %s",
                uttid,
                len(media.frames),
                len(media.frames) / FPS,
                roi_s,
                media.note,
            )
        else:
            log.info("%s: %.2f s of audio in %.1f s, %s", uttid, len(media.audio) / SAMPLE_RATE, roi_s, media.note)
        result = decode_recording(s2t, media, segmenting, best_only)
    except SkipUtterance as skip:
        outcome.skipped = dict(reason=skip.reason, detail=skip.detail)
        return outcome
    except Exception as err:  # one bad file must not end a run over many: report it, go on
        log.debug("%s failed", path, exc_info=True)
        outcome.skipped = dict(reason="error", detail=f"{type(err).__name__}: {err}")
        return outcome
    _log_decoding(uttid, result)
    outcome.records = _records(uttid, path, result, roi_s, media.audio is not None)
    return outcome


@dataclass
class Segmenting:
    """How a long recording is cut (the ``long recordings`` options)."""

    max_segment: float = 20.0
    min_silence: float = 0.5  # measured: bench/results/long_form_2026-12-06.md
    overlap: float = 2.0
    batch_frames: int = 1500


@dataclass
class Decoded:
    """A recording's transcript per modality: the best hypothesis's text, score and tokens (one
    segment), or the joined text of its segments (long-form: scores summed, tokens concatenated
    in time order -- overlapping windows' shared tokens appear twice there, not in the text)."""

    texts: Dict[str, str]
    scores: Dict[str, float]
    tokens: Dict[str, List[str]]
    segments: Dict[str, List[long_form.SegmentText]]
    seconds: Dict[str, float]
    num_frames: int


def decode_recording(s2t: USR2Speech2Text, media: Media, segmenting: Segmenting, best_only: bool = False) -> Decoded:
    """One pass for a recording within ``max_segment``; segments decoded in batches beyond it.

    Decodes the modalities ``s2t`` was built for that the recording allows; ``best_only``: only
    the best of those (AV, else A, else V), the one a person's transcript carries.
    """
    wanted = s2t.modalities_for(media.audio is not None, media.frames is not None)
    if best_only:
        wanted = (best_modality(wanted),)
    spf = s2t.samples_per_frame
    num_frames = len(media.frames) if media.frames is not None else len(media.audio) // spf
    if num_frames <= segmenting.max_segment * FPS:
        result = s2t.transcribe(speech=media.audio, video=media.frames, modalities=wanted)
        whole = long_form.Segment(0, result.num_frames)
        best = {m: nbest[0] for m, nbest in result.nbest.items()}
        return Decoded(
            {m: b.text for m, b in best.items()},
            {m: b.score for m, b in best.items()},
            {m: list(b.token) for m, b in best.items()},
            {m: [long_form.SegmentText(whole, b.text)] for m, b in best.items()},
            dict(result.seconds),
            result.num_frames,
        )
    audio = media.audio
    if audio is not None and media.frames is not None:  # the audio on the video's clock, as make_batch does
        audio = align_audio_to_video("input", np.asarray(audio), len(media.frames), spf, s2t.model.av_length_tolerance)
    segments = long_form.plan_segments(
        num_frames, audio, spf, segmenting.max_segment, segmenting.min_silence, segmenting.overlap
    )
    log.info(
        "%.1f s recording: %d segments (%s)",
        num_frames / FPS,
        len(segments),
        "cut at pauses" if audio is not None else f"{segmenting.overlap:g} s overlapping windows",
    )
    seconds: Dict[str, float] = {}
    scores: Dict[str, float] = {m: 0.0 for m in wanted}

    def decode(batch: Dict[str, Any]) -> Dict[str, List[tuple]]:
        batch = {k: v.to(s2t.device, dtype=s2t.dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}
        hyps = s2t.decode_batch(batch, wanted)
        for k, v in hyps.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        out = {}
        for m, per_utt in hyps.nbest.items():
            results = [s2t.result(nbest[0]) for nbest in per_utt]
            scores[m] += sum(r.score for r in results)
            out[m] = [(r.text, r.token) for r in results]
        return out

    with _progress(len(segments), "segments") as update:
        pieces = long_form.transcribe_segments(
            decode, segments, media.frames, audio, spf, segmenting.batch_frames, update
        )
    tokens = {m: [t for piece in texts for t in piece.tokens] for m, texts in pieces.items()}
    return Decoded(
        {m: long_form.join_texts(texts) for m, texts in pieces.items()}, scores, tokens, pieces, seconds, num_frames
    )


@contextlib.contextmanager
def _progress(total: int, unit: str):
    """A tqdm bar on a terminal (nothing when stderr is a file or pipe); yields ``update(n)``."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, disable=not sys.stderr.isatty(), leave=False) as bar:
        yield bar.update


def _log_decoding(uttid: str, result: Decoded) -> None:
    searched = ", ".join(f"{SHORT_NAMES[m]} {result.seconds.get(m, 0.0):.2f} s" for m in result.texts)
    log.info("%s: encoded in %.2f s, searched %s", uttid, result.seconds.get("encode", 0.0), searched)


def _records(uttid: str, path: str, result: Decoded, roi_s: float, has_audio: bool) -> List[dict]:
    """One JSON record per modality; ROI and encoder times are shared by the file's modalities."""
    encode_s = result.seconds.get("encode", 0.0)
    records = []
    for m, text in result.texts.items():
        search_s = result.seconds.get(m, 0.0)
        records.append(
            dict(
                uttid=uttid,
                path=path,
                modality=SHORT_NAMES[m],
                text=text,
                score=result.scores[m],
                tokens=result.tokens[m],
                num_frames=result.num_frames,
                duration_s=result.num_frames / FPS,
                has_audio=has_audio,
                segments=subtitles.segment_records(result.segments[m]),
                timings=dict(
                    roi_s=round(roi_s, 4),
                    encode_s=round(encode_s, 4),
                    search_s=round(search_s, 4),
                    total_s=round(roi_s + encode_s + search_s, 4),
                ),
            )
        )
    return records


def write_outputs(out_dir: str, outcome: FileOutcome, formats: Sequence[str]) -> List[Path]:
    """``<uttid>.<format>`` for each format: text and subtitles of the best modality decoded, JSON
    with every modality's text and segments. Returns the files written."""
    by_modality = {r["modality"]: r for r in outcome.records}
    decoded = [m for m, short in SHORT_NAMES.items() if short in by_modality]
    best = by_modality[SHORT_NAMES[best_modality(decoded)]]
    pieces = subtitles.cues_from_records(best["segments"])
    contents = {
        "txt": lambda: subtitles.to_txt(best["text"]),
        "srt": lambda: subtitles.to_srt(pieces),
        "vtt": lambda: subtitles.to_vtt(pieces),
        "json": lambda: subtitles.to_json(
            dict(uttid=outcome.uttid, path=outcome.path, best_modality=best["modality"], results=outcome.records)
        ),
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = Path(out_dir) / f"{outcome.uttid}.{fmt}"
        path.write_text(contents[fmt](), encoding="utf-8")
        written.append(path)
    return written


def skip_line(outcome: FileOutcome) -> str:
    """The one line a file that could not be transcribed gets."""
    detail = f": {outcome.skipped['detail']}" if outcome.skipped["detail"] else ""
    return f"{PROG}: {outcome.path}: not transcribed ({outcome.skipped['reason']}{detail})"


def write_json(out: str, outcomes: Sequence[FileOutcome], model: dict) -> None:
    doc = dict(
        model=model,
        results=[r for o in outcomes for r in o.records],
        skipped=[dict(uttid=o.uttid, path=o.path, **o.skipped) for o in outcomes if o.skipped],
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def modality_choice(choice: Sequence[str]) -> Tuple[Sequence[str], bool]:
    """``--modalities`` as (the modalities the model is asked to decode, whether each file gets
    only the best it allows): all of them for ``best`` and ``all``, else the names given."""
    if BEST in choice or ALL in choice:
        if len(choice) > 1:
            raise ValueError(f"--modalities {BEST} or {ALL} stands alone, got {' '.join(choice)}")
        return MODALITIES, choice[0] == BEST
    return choice, False


def load_model(args: argparse.Namespace, modalities: Sequence[str]) -> tuple:
    """(USR2Speech2Text, a description of what was loaded for the JSON)."""
    files = resolve_model_dir(args.model_dir, args.model_file, args.unpack_dir)
    start = time.perf_counter()
    s2t = USR2Speech2Text.from_model_files(
        files, args.inference_config, modalities=modalities, device=args.device, model_role=args.model_role
    )
    load_s = time.perf_counter() - start
    log.info(
        "model %s (%s) loaded in %.1f s; decoding %s",
        files.model_file,
        files.train_config,
        load_s,
        dataclasses.asdict(s2t.opts),
    )
    return s2t, dict(
        model_dir=str(args.model_dir),
        train_config=str(files.train_config),
        model_file=str(files.model_file),
        decode=dataclasses.asdict(s2t.opts),
        load_s=round(load_s, 4),
    )


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(
        level=args.log_level, format=f"{PROG} %(asctime)s %(levelname)s: %(message)s", stream=sys.stderr
    )
    if args.landmarks is not None and len(args.landmarks) != len(args.videos):
        print(
            f"{PROG}: error: --landmarks lists {len(args.landmarks)} file(s) for {len(args.videos)} video(s); "
            "give one per video, in the same order",
            file=sys.stderr,
        )
        return 2
    try:
        modalities, best_only = modality_choice(args.modalities)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    try:
        s2t, model_info = load_model(args, modalities)
    except (ModelDirError, FileNotFoundError, ValueError, RuntimeError) as e:  # incl. a model/config mismatch
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    if args.overlap is None:
        args.overlap = min(2.0, args.max_segment / 4)
    if args.max_segment <= 0 or args.min_silence <= 0 or not 0 <= args.overlap < args.max_segment / 2:
        print(
            f"{PROG}: error: need --max_segment > 0, --min_silence > 0 and 0 <= --overlap < --max_segment / 2",
            file=sys.stderr,
        )
        return 2
    cfg = RoiConfig(max_av_mismatch=args.max_av_mismatch, max_damaged_fraction=args.max_damaged_fraction)
    landmarks = args.landmarks or [None] * len(args.videos)
    segmenting = Segmenting(args.max_segment, args.min_silence, args.overlap, args.segment_batch_frames)
    formats = list(subtitles.FORMATS) if args.output_format == "all" else [args.output_format]
    outcomes = []
    for n, (path, uttid, lm) in enumerate(zip(args.videos, uttids_for(args.videos), landmarks), 1):
        log.info("[%d/%d] %s", n, len(args.videos), path)
        outcome = transcribe_file(s2t, path, uttid, cfg, lm, args.progress_interval, segmenting, best_only)
        outcomes.append(outcome)
        if outcome.skipped:
            print(skip_line(outcome), file=sys.stderr, flush=True)
        for r in outcome.records:
            print(f"{r['uttid']} {r['modality']}: {r['text']}", flush=True)
        if args.output_dir and outcome.records:
            written = write_outputs(args.output_dir, outcome, formats)
            log.info("%s: wrote %s", uttid, ", ".join(str(p) for p in written))
    if args.json:
        write_json(args.json, outcomes, model_info)
    done = sum(1 for o in outcomes if o.records)
    log.info("transcribed %d of %d file(s)", done, len(outcomes))
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
