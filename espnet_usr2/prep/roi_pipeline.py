"""Mouth-ROI preparation: talking-face videos -> 96x96 gray mouth crops at 25 fps + 16 kHz audio.

Per utterance (:func:`prepare_utterance`):

1. check the transcript (when a ``text`` file is given) and decode the audio (16 kHz mono);
2. decode the video at 25 fps, running MediaPipe face mesh on each frame unless
   precomputed landmarks are given (then they are mapped through the same frame-rate
   conversion); an utterance missing from a given landmark list falls back to the
   detector (``missing_landmarks="detect"``, listed in ``landmark_fallback.list``); with
   a face hint (``x y`` of the speaker's face in the first frame) several faces are
   detected and the hinted one is tracked (:mod:`espnet_usr2.prep.face_select`);
3. fill short face gaps, smooth the landmarks over time, align the stable points to the
   canonical face and cut the crop around the mouth (:mod:`espnet_usr2.prep.align`);
4. put the audio on the video clock, check the lengths agree, trim/pad to 640 samples
   per frame, and write the ROI (``roi_io.save_roi``) and the wav.

Damaged packets or frames do not lose the utterance: :mod:`espnet_usr2.prep.media`
conceals them (audio: silence, video: the previous frame) at their timestamps; the
utterance is kept, and listed in ``damaged.tsv``, unless a stream's concealed time
exceeds ``max_damaged_fraction`` of the clip (then ``damaged_stream``).

Over a list (:func:`run_shard`, :func:`prepare_all`, :func:`merge`): every input line is
processed or skipped with a reason; a bad file never stops the run. :func:`extract_clip`
is steps 2-4 in memory, with the audio optional (``usr2_transcribe`` on a silent video).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep import roi_lists as L
from espnet_usr2.prep.align import crop_transforms, fill_gaps, smooth, warp_crop
from espnet_usr2.prep.face_select import FaceHint, hint_to_pixels, read_face_hints, select_track
from espnet_usr2.prep.landmark_sets import landmark_set_for
from espnet_usr2.prep.landmarks import MediaPipeFaceMesh, load_landmarks
from espnet_usr2.prep.media import (
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    TARGET_FPS,
    Damage,
    VideoReader,
    align_audio_to_video,
    check_damage,
    check_not_truncated,
    probe_streams,
    read_audio,
    require_streams,
    write_wav,
)
from espnet_usr2.prep.roi_errors import SkipUtterance
from espnet_usr2.prep.roi_journal import JOURNAL, Journal, fsync_file
from espnet_usr2.prep.roi_progress import ProgressWriter

PathLike = Union[str, Path]
logger = logging.getLogger(__name__)


@dataclass
class RoiConfig:
    """Settings of ROI extraction (CLI flags of the same names)."""

    crop_size: int = 96  # output crop side in pixels
    eye_span_px: float = 80.0  # outer-eye-corner distance of the canonical face, in crop pixels
    smooth_window: int = 5  # frames in the centred moving average over landmarks
    center_window: int = 25  # frames over which the crop centre (mouth centre) is averaged
    max_gap: int = 12  # longest run of frames without a face that is interpolated
    max_av_mismatch: float = 0.2  # seconds audio and video may differ before a skip
    max_truncation: float = 0.2  # seconds of the declared video duration that may fail to decode
    # Concealed (damaged) time a stream may have, as a fraction of the clip: 5% lets
    # isolated glitches through (one lost AAC / AC3 packet is 21-32 ms, 1-2% of a 2 s
    # clip) and costs at most ~0.2 s of a 4 s LRS3-length utterance -- the same 0.2 s
    # max_av_mismatch and max_truncation accept -- while a stream damaged all along goes.
    max_damaged_fraction: float = 0.05
    landmark_tolerance: int = 2  # precomputed landmark frames may differ from the video by this
    roi_format: str = "mkv"  # mkv (lossless FFV1), npz or npy -- see espnet_usr2.data.roi_io
    min_detection_confidence: float = 0.5  # MediaPipe face detection threshold
    decoder_threads: int = 1  # video decoder threads per job
    frame_cache_mb: float = 1024.0  # decoded gray frames kept in memory; above it, decode twice
    max_faces: int = 4  # faces detected per frame for utterances with a face hint
    max_face_jump: float = 1.0  # face widths the tracked face may move between frames
    hint_frames: int = 25  # frames in which a face near the hint is waited for
    missing_landmarks: str = "detect"  # no entry in the landmark list: detect or skip
    # Off by default: training needs both streams, and the format stage expects them. On,
    # a video without an audio track is kept video-only, an audio file audio-only (the
    # paper's VSR / ASR out-of-distribution test sets, unpaired material).
    allow_single_stream: bool = False
    no_face: str = "skip"  # a video whose face is never found: skip, or audio_only (keep its audio)

    def validate(self) -> "RoiConfig":
        if self.crop_size < 8 or self.eye_span_px <= 0:
            raise ValueError("crop_size must be >= 8 and eye_span_px > 0")
        if self.max_faces < 1 or self.max_face_jump <= 0 or self.hint_frames < 0:
            raise ValueError("max_faces must be >= 1, max_face_jump > 0 and hint_frames >= 0")
        if self.missing_landmarks not in ("detect", "skip"):
            raise ValueError(f"missing_landmarks must be detect or skip, got {self.missing_landmarks!r}")
        if self.smooth_window < 1 or self.center_window < 1 or self.max_gap < 0:
            raise ValueError("smooth_window and center_window must be >= 1, max_gap >= 0")
        if self.roi_format not in ("mkv", "npz", "npy"):
            raise ValueError(f"roi_format must be mkv, npz or npy, got {self.roi_format!r}")
        if self.no_face not in ("skip", "audio_only"):
            raise ValueError(f"no_face must be skip or audio_only, got {self.no_face!r}")
        if not 0.0 <= self.max_damaged_fraction <= 1.0:
            raise ValueError(f"max_damaged_fraction must be in [0, 1], got {self.max_damaged_fraction}")
        return self


@dataclass
class RoiResult:
    """Crops of one clip and what produced them."""

    frames: np.ndarray  # uint8 (T, crop, crop)
    video_start: Fraction  # container time of the first video frame (s)
    landmarks: np.ndarray  # (T, K, 2) gap-filled, smoothed landmarks used for the crops
    transforms: np.ndarray  # (T, 2, 3) affines from source-frame pixels to crop pixels
    faces_found: int  # frames with a detected / given face before gap filling
    damage: Damage = field(default_factory=Damage)  # concealed video packets / frames


# ----------------------------------------------------------------------------- one clip


def _frames_and_landmarks(
    video_path: PathLike,
    cfg: RoiConfig,
    landmarks: Optional[np.ndarray],
    face_hint: Optional[FaceHint] = None,
    progress_interval: Optional[float] = None,
) -> Tuple[Optional[List[np.ndarray]], np.ndarray, VideoReader]:
    """First decoding pass: 25 fps gray frames (if they fit the cache) and per-frame landmarks.

    With a face hint (and no precomputed landmarks) every face of a frame is kept and
    the hinted one is selected afterwards, once the whole track is known. With
    ``progress_interval`` a log line reports the frames done every that many seconds
    (long single files; a corpus job reports per utterance instead).
    """
    detect = landmarks is None
    reader = VideoReader(video_path, ("gray", "rgb24") if detect else ("gray",), threads=cfg.decoder_threads)
    budget = cfg.frame_cache_mb * 2**20
    cache: Optional[List[np.ndarray]] = []
    cached_bytes = 0
    per_frame: List[List[np.ndarray]] = []
    sources: List[int] = []
    frame_size = (0, 0)
    detector = None
    if detect:
        max_faces = cfg.max_faces if face_hint is not None else 1
        detector = MediaPipeFaceMesh(cfg.min_detection_confidence, max_faces=max_faces)
    start = last_report = time.monotonic()
    try:
        for k, src_index, images in reader.frames():
            if progress_interval is not None and time.monotonic() - last_report >= progress_interval:
                last_report = time.monotonic()
                logger.info(
                    "%s: %d frames (%.1f s of video) read in %.0f s",
                    Path(video_path).name,
                    k,
                    k / reader.fps,
                    last_report - start,
                )
            sources.append(src_index)
            if detector is not None:
                per_frame.append(detector.detect_all(images[1]))
                frame_size = images[1].shape[1::-1]  # (width, height)
            if cache is not None:
                cache.append(images[0])
                cached_bytes += images[0].nbytes
                if cached_bytes > budget:  # long/high-resolution clip: decode again later
                    cache = None
    finally:
        if detector is not None:
            detector.close()
    if detect and face_hint is not None:
        hint_px = hint_to_pixels(face_hint, *frame_size)
        points = _stack_detections(select_track(per_frame, hint_px, cfg.max_face_jump, cfg.hint_frames))
    elif detect:
        points = _stack_detections([faces[0] if faces else None for faces in per_frame])
    else:
        points = _landmarks_at(landmarks, sources, reader.info.num_source_frames, cfg.landmark_tolerance)
    return cache, points, reader


def _stack_detections(per_frame: Sequence[Optional[np.ndarray]]) -> np.ndarray:
    found = next((p for p in per_frame if p is not None), None)
    if found is None:
        raise SkipUtterance(E.NO_FACE, f"no face detected in any of {len(per_frame)} frames")
    empty = np.full_like(found, np.nan)
    return np.stack([empty if p is None else p for p in per_frame])


def _landmarks_at(landmarks: np.ndarray, sources: Sequence[int], num_source: int, tolerance: int) -> np.ndarray:
    """Precomputed per-source-frame landmarks -> landmarks of the 25 fps frames."""
    if abs(len(landmarks) - num_source) > tolerance:
        raise SkipUtterance(
            E.LANDMARK_COUNT_MISMATCH,
            f"{len(landmarks)} landmark frames for {num_source} video frames (tolerance {tolerance})",
        )
    index = np.asarray(sources)
    out = np.full((len(index),) + landmarks.shape[1:], np.nan)
    inside = index < len(landmarks)  # a few missing trailing frames count as "no face"
    out[inside] = landmarks[index[inside]]
    return out


def _warp_all(
    video_path: PathLike, cache: Optional[List[np.ndarray]], transforms: np.ndarray, cfg: RoiConfig
) -> np.ndarray:
    """Second step: one affine warp per frame, from the cache or a fresh decoding pass."""
    out = np.empty((len(transforms), cfg.crop_size, cfg.crop_size), np.uint8)
    if cache is not None:
        for k, gray in enumerate(cache):
            out[k] = warp_crop(gray, transforms[k], cfg.crop_size)
        return out
    count = 0
    for k, _, (gray,) in VideoReader(video_path, ("gray",), threads=cfg.decoder_threads).frames():
        if k < len(out):
            out[k] = warp_crop(gray, transforms[k], cfg.crop_size)
        count = k + 1
    if count != len(out):
        raise SkipUtterance(E.DECODE_ERROR, f"second decoding pass gave {count} frames, first {len(out)}")
    return out


def extract_roi(
    video_path: PathLike,
    cfg: Optional[RoiConfig] = None,
    landmarks: Optional[np.ndarray] = None,
    face_hint: Optional[FaceHint] = None,
    progress_interval: Optional[float] = None,
) -> RoiResult:
    """Mouth crops of one video at 25 fps.

    Args:
        video_path: any video PyAV decodes.
        cfg: extraction settings (defaults when None).
        landmarks: precomputed ``(S, K, 2)`` landmarks per *source* frame (NaN rows = no
            face), 68 or 468 points; None runs MediaPipe face mesh.
        face_hint: ``(x, y)`` in 0..1, the speaker's face centre in the first frame:
            with several faces in view, that one is tracked (ignored with ``landmarks``).
        progress_interval: seconds between progress log lines (None: no lines).
    Raises:
        SkipUtterance: unreadable, truncated or too damaged video, no / too little face.
    """
    cfg = (cfg or RoiConfig()).validate()
    cache, points, reader = _frames_and_landmarks(video_path, cfg, landmarks, face_hint, progress_interval)
    check_not_truncated(reader.info, cfg.max_truncation)
    check_damage(reader.info.damage, "video", reader.info.num_frames / reader.fps, cfg.max_damaged_fraction)
    faces_found = int((~np.isnan(points).any(axis=(1, 2))).sum())
    landmark_set = landmark_set_for(points.shape[1])
    points = smooth(fill_gaps(points, cfg.max_gap), cfg.smooth_window)
    transforms = crop_transforms(points, landmark_set, cfg.crop_size, cfg.eye_span_px, cfg.center_window)
    frames = _warp_all(video_path, cache, transforms, cfg)
    return RoiResult(
        frames=frames,
        video_start=reader.info.start_time,
        landmarks=points,
        transforms=transforms,
        faces_found=faces_found,
        damage=reader.info.damage,
    )


@dataclass
class ClipMedia:
    """The mouth crops of a clip and its audio on their clock."""

    roi: RoiResult
    audio: Optional[np.ndarray]  # float32, 640 samples per ROI frame; None: no usable audio
    audio_problem: Optional[SkipUtterance] = None  # why ``audio`` is None
    audio_damage: Damage = field(default_factory=Damage)  # concealed audio packets / frames

    def damage_rows(self) -> Tuple[L.DamageRow, ...]:
        """The streams with concealed damage, as ``damaged.tsv`` lists them."""
        streams = (("video", self.roi.damage), ("audio", self.audio_damage))
        return tuple(L.DamageRow(name, d.packets, d.seconds) for name, d in streams if d.packets)


def extract_clip(
    video_path: PathLike,
    cfg: RoiConfig,
    landmarks: Optional[np.ndarray] = None,
    face_hint: Optional[FaceHint] = None,
    audio_optional: bool = False,
    progress_interval: Optional[float] = None,
) -> ClipMedia:
    """Mouth crops (:func:`extract_roi`) and the audio trimmed / padded to them.

    Audio is required for training data: a missing or unusable track raises
    :class:`SkipUtterance`. With ``audio_optional`` (transcribing a video) the clip is
    returned without audio instead, and ``audio_problem`` says why.
    """
    has_audio = require_streams(video_path, audio=not audio_optional)  # fail fast, before face tracking
    roi = extract_roi(video_path, cfg, landmarks, face_hint, progress_interval)
    if not has_audio:
        return ClipMedia(roi, None, SkipUtterance(E.NO_AUDIO_STREAM, "the file has no audio track"))
    try:
        audio = read_audio(video_path)
        check_damage(audio.damage, "audio", len(roi.frames) / TARGET_FPS, cfg.max_damaged_fraction)
        samples = align_audio_to_video(audio, roi.video_start, len(roi.frames), cfg.max_av_mismatch)
    except SkipUtterance as problem:
        if not audio_optional:
            raise
        return ClipMedia(roi, None, problem)
    return ClipMedia(roi, samples, audio_damage=audio.damage)


# ----------------------------------------------------------------------------- one utterance


@dataclass(frozen=True)
class UttInput:
    """What is known about one utterance before processing."""

    uttid: str
    video_path: str
    landmark_path: Optional[str] = None
    transcript: Optional[str] = None  # None: no text file given (unlabelled data is fine)
    has_text_file: bool = False
    face_hint: Optional[FaceHint] = None  # the speaker's face centre (0..1) in the first frame
    landmark_fallback: bool = False  # detect although a landmark list was given


def media_paths(media_dir: PathLike, uttid: str, roi_format: str) -> Tuple[Path, Path]:
    """Where an utterance's ROI and wav go.

    Files are spread over 256 sub-folders by a hash of the id: a million files in one
    folder (VoxCeleb2) make listing and some file systems slow.
    """
    bucket = hashlib.md5(uttid.encode("utf-8")).hexdigest()[:2]
    media_dir = Path(media_dir)
    return media_dir / "roi" / bucket / f"{uttid}.{roi_format}", media_dir / "wav" / bucket / f"{uttid}.wav"


def _check_transcript(utt: UttInput) -> None:
    if not utt.has_text_file:
        return
    if utt.transcript is None:
        raise SkipUtterance(E.MISSING_TRANSCRIPT, "the utterance is not in the text file")
    if not utt.transcript.strip():
        raise SkipUtterance(E.EMPTY_TRANSCRIPT, "the transcript is empty")


def _save(
    roi_path: Optional[Path], wav_path: Optional[Path], frames: Optional[np.ndarray], samples: Optional[np.ndarray]
) -> None:
    """Write the streams there are (a None path: that stream is absent)."""
    from espnet_usr2.data.roi_io import save_roi

    try:
        # Write under a temporary name (same suffix: it selects the format) and rename,
        # so an interrupted job never leaves a half-written ROI behind a valid name.
        # fsync before the rename: the journal entry written next must never point at a
        # file a power cut could leave empty.
        if roi_path is not None:
            tmp = roi_path.with_name(f"{roi_path.stem}.partial{roi_path.suffix}")
            save_roi(tmp, frames)
            fsync_file(tmp)
            os.replace(tmp, roi_path)
        if wav_path is not None:
            write_wav(wav_path, samples)
            fsync_file(wav_path)
    except OSError as err:
        raise SkipUtterance(E.WRITE_ERROR, f"{type(err).__name__}: {err}") from err


def _audio_only(utt: UttInput, media_dir: PathLike, cfg: RoiConfig) -> L.Processed:
    """An audio-only utterance: the whole track, 16 kHz mono, damage concealed and checked."""
    audio = read_audio(utt.video_path)
    check_damage(audio.damage, "audio", len(audio.samples) / SAMPLE_RATE, cfg.max_damaged_fraction)
    _, wav_path = media_paths(media_dir, utt.uttid, cfg.roi_format)
    _save(None, wav_path, None, audio.samples)
    rows = (L.DamageRow("audio", audio.damage.packets, audio.damage.seconds),) if audio.damage.packets else ()
    num_frames = -(-len(audio.samples) // SAMPLES_PER_FRAME)  # 40 ms frames, the video clock
    return L.Processed(utt.uttid, None, str(wav_path), num_frames, utt.transcript, False, rows)


def _clip_single_stream(utt: UttInput, landmarks: Optional[np.ndarray], cfg: RoiConfig) -> Optional[ClipMedia]:
    """The clip with the single-stream rules (``allow_single_stream``, ``no_face``); None: the
    utterance is audio-only. A video without an audio track comes back without audio."""
    has_video, has_audio = probe_streams(utt.video_path)
    if not has_video:
        if has_audio and cfg.allow_single_stream:
            return None
        raise SkipUtterance(E.NO_VIDEO_STREAM, "the file has no video stream")
    if not has_audio and not cfg.allow_single_stream:
        raise SkipUtterance(E.NO_AUDIO_STREAM, "the file has no audio track")
    try:
        # audio_optional only for a file without a track: a damaged or mismatched track
        # of a video that has one is still a reason to skip, as for two-stream data.
        return extract_clip(utt.video_path, cfg, landmarks, utt.face_hint, audio_optional=not has_audio)
    except SkipUtterance as skip:
        if skip.reason == E.NO_FACE and has_audio and cfg.no_face == "audio_only":
            logger.info("%s: %s: keeping its audio only (--no_face audio_only)", utt.uttid, skip.detail)
            return None
        raise


def prepare_utterance(utt: UttInput, media_dir: PathLike, cfg: RoiConfig) -> L.Processed:
    """Run the whole chain for one utterance; raises :class:`SkipUtterance` on bad input."""
    _check_transcript(utt)
    landmarks = load_landmarks(utt.landmark_path) if utt.landmark_path is not None else None
    if cfg.allow_single_stream or cfg.no_face != "skip":
        clip = _clip_single_stream(utt, landmarks, cfg)
        if clip is None:
            return _audio_only(utt, media_dir, cfg)
    else:  # both streams required: the path every two-stream corpus takes, unchanged
        clip = extract_clip(utt.video_path, cfg, landmarks, utt.face_hint)
    roi_path, wav_path = media_paths(media_dir, utt.uttid, cfg.roi_format)
    wav_path = wav_path if clip.audio is not None else None
    _save(roi_path, wav_path, clip.roi.frames, clip.audio)
    return L.Processed(
        utt.uttid,
        str(roi_path),
        str(wav_path) if wav_path is not None else None,
        len(clip.roi.frames),
        utt.transcript,
        utt.landmark_fallback,
        clip.damage_rows(),
    )


# ----------------------------------------------------------------------------- a shard


@dataclass
class ShardInputs:
    """Side information shared by all utterances of a run."""

    landmarks: Optional[Dict[str, str]] = None  # uttid -> landmark file (None: detect)
    text: Optional[Dict[str, str]] = None  # uttid -> transcript (None: no text file)
    face_hints: Optional[Dict[str, FaceHint]] = None  # uttid -> (x, y) of the speaker's face


def _landmark_source(uttid: str, inputs: ShardInputs, cfg: RoiConfig) -> Tuple[Optional[str], bool]:
    """(landmark file or None for the detector, whether that is a fallback).

    A list that lacks an utterance is normal when landmark releases do not cover a
    whole corpus (or a recipe mixes corpora): the detector takes over for that file,
    and the file is listed, rather than losing the utterance.
    """
    if inputs.landmarks is None:
        return None, False
    if uttid in inputs.landmarks:
        return inputs.landmarks[uttid], False
    if cfg.missing_landmarks == "skip":
        raise SkipUtterance(E.MISSING_LANDMARKS, "the utterance is not in the landmark list")
    logger.info("%s: not in the landmark list: running face detection instead", uttid)
    return None, True


def _process_entry(
    entry: L.Entry, inputs: ShardInputs, media_dir: Path, cfg: RoiConfig
) -> Union[L.Processed, L.Skipped]:
    if entry.problem is not None:
        return L.Skipped(entry.uttid, entry.path, *entry.problem)
    try:
        landmark_path, fallback = _landmark_source(entry.uttid, inputs, cfg)
        utt = UttInput(
            entry.uttid,
            entry.path,
            landmark_path,
            inputs.text.get(entry.uttid) if inputs.text is not None else None,
            has_text_file=inputs.text is not None,
            face_hint=inputs.face_hints.get(entry.uttid) if inputs.face_hints is not None else None,
            landmark_fallback=fallback,
        )
        return prepare_utterance(utt, media_dir, cfg)
    except SkipUtterance as skip:
        return L.Skipped(entry.uttid, entry.path, skip.reason, skip.detail)
    except Exception as err:  # one bad file must never end the job: report it instead
        logger.warning("%s: unexpected error\n%s", entry.uttid, traceback.format_exc())
        return L.Skipped(entry.uttid, entry.path, E.INTERNAL_ERROR, f"{type(err).__name__}: {err}")


def _journal_key(entry: L.Entry, inputs: ShardInputs) -> Dict:
    """Everything about one utterance its result depends on, besides the shard's settings:
    an earlier result is reused only while none of it changed."""
    hint = inputs.face_hints.get(entry.uttid) if inputs.face_hints is not None else None
    return {
        "path": entry.path,
        "landmarks": inputs.landmarks.get(entry.uttid) if inputs.landmarks is not None else None,
        "has_landmark_list": inputs.landmarks is not None,
        "text": inputs.text.get(entry.uttid) if inputs.text is not None else None,
        "has_text_file": inputs.text is not None,
        "face_hint": list(hint) if hint is not None else None,
    }


def output_settings(cfg: RoiConfig) -> Dict:
    """The settings that change what is written (not how fast): a journal is valid under them."""
    settings = dataclasses.asdict(cfg)
    for speed_only in ("decoder_threads", "frame_cache_mb"):
        settings.pop(speed_only)
    return settings


def _other_journals(outdir: PathLike, shard_dir: PathLike) -> List[Path]:
    """The journals of every other shard of ``outdir`` (``split<nj>/<job>``, ``split_lists/<name>``)."""
    own = Path(shard_dir).resolve()
    found = sorted(Path(outdir).glob(f"split*/*/{JOURNAL}"))
    return [p for p in found if p.parent.resolve() != own]


def run_shard(
    entries: Sequence[L.Entry],
    shard_dir: PathLike,
    media_dir: PathLike,
    cfg: RoiConfig,
    inputs: ShardInputs,
    desc: str = "roi",
) -> Tuple[List[L.Processed], List[L.Skipped]]:
    """Process ``entries`` and write the shard's lists (video.scp, wav.scp, skip report, ...).

    Resumable: each finished utterance goes to the shard's journal (:mod:`roi_journal`);
    run again after a crash or a kill, the shard decodes only what the journal lacks and
    writes the same lists an uninterrupted run writes. Progress goes to
    ``progress.json`` for ``usr2_prepare_roi --progress`` (:mod:`roi_progress`).
    """
    cfg.validate()
    # A stale marker from an earlier run would let merge() take old results if this run dies.
    Path(shard_dir).mkdir(parents=True, exist_ok=True)
    (Path(shard_dir) / L.DONE_MARKER).unlink(missing_ok=True)
    processed: List[L.Processed] = []
    skipped: List[L.Skipped] = []
    progress = ProgressWriter(shard_dir, len(entries), desc)
    finished = False
    with Journal(
        shard_dir, output_settings(cfg), _other_journals(media_dir, shard_dir), (e.uttid for e in entries)
    ) as journal:
        keys = [_journal_key(e, inputs) for e in entries]
        earlier = [journal.lookup(e.uttid, k) if e.problem is None else None for e, k in zip(entries, keys)]
        resumable = sum(r is not None for r in earlier)
        if resumable:
            logger.info(
                "%s: %d of %d utterances done by an earlier run (journal): %d to go",
                desc,
                resumable,
                len(entries),
                len(entries) - resumable,
            )
        try:
            for entry, key, result in zip(entries, keys, earlier):
                resumed = result is not None
                if result is None:
                    result = _process_entry(entry, inputs, Path(media_dir), cfg)
                    if entry.problem is None:
                        journal.add(key, result)
                    if isinstance(result, L.Skipped):
                        logger.info("%s: skipped (%s) %s", result.uttid, result.reason, result.detail)
                if isinstance(result, L.Skipped):
                    skipped.append(result)
                else:
                    processed.append(result)
                progress.update(
                    result.num_frames if isinstance(result, L.Processed) else 0, isinstance(result, L.Skipped), resumed
                )
            finished = True
        finally:
            progress.close(finished)
    L.write_lists(shard_dir, processed, skipped, with_text=inputs.text is not None)
    return processed, skipped


# ----------------------------------------------------------------------------- a whole list


@dataclass
class Summary:
    """Counts of a merged run."""

    total: int
    processed: int
    frames: int
    reasons: Counter = field(default_factory=Counter)
    landmark_fallback: int = 0  # processed with the detector: no entry in the landmark list
    damaged: int = 0  # processed with concealed damage (listed in damaged.tsv)
    video_only: int = 0  # processed without audio (listed in video_only.list)
    audio_only: int = 0  # processed without video (listed in audio_only.list)

    @property
    def skipped(self) -> int:
        return sum(self.reasons.values())

    def format(self) -> str:
        hours = self.frames / 25 / 3600
        lines = [
            f"ROI preparation: {self.total} input utterances = {self.processed} processed "
            f"({self.frames} frames, {hours:.2f} h) + {self.skipped} skipped"
        ]
        lines += [f"  skipped {count:6d}  {reason}" for reason, count in sorted(self.reasons.items())]
        if self.landmark_fallback:
            lines.append(
                f"  {self.landmark_fallback} processed with face detection: not in the landmark list "
                f"(listed in {L.LANDMARK_FALLBACK})"
            )
        if self.damaged:
            lines.append(f"  {self.damaged} processed with damaged packets concealed (listed in {L.DAMAGE_REPORT})")
        if self.video_only:
            lines.append(f"  {self.video_only} processed video-only: no audio track (listed in {L.VIDEO_ONLY})")
        if self.audio_only:
            lines.append(f"  {self.audio_only} processed audio-only (listed in {L.AUDIO_ONLY})")
        return "\n".join(lines)


def job_dir(outdir: PathLike, nj: int, job: int) -> Path:
    return Path(outdir) / f"split{nj}" / str(job)


def list_dir(outdir: PathLike, shard_list: PathLike) -> Path:
    return Path(outdir) / "split_lists" / Path(shard_list).stem


def load_inputs(
    landmarks_scp: Optional[PathLike], text: Optional[PathLike], face_hint: Optional[PathLike] = None
) -> ShardInputs:
    return ShardInputs(
        landmarks=L.read_kaldi_map(landmarks_scp) if landmarks_scp else None,
        text=L.read_kaldi_map(text) if text else None,
        face_hints=read_face_hints(face_hint) if face_hint else None,
    )


def run_job(
    input_list: PathLike,
    outdir: PathLike,
    cfg: RoiConfig,
    nj: int,
    job: int,
    landmarks_scp: Optional[PathLike] = None,
    text: Optional[PathLike] = None,
    face_hint: Optional[PathLike] = None,
) -> Tuple[List[L.Processed], List[L.Skipped]]:
    """Process block ``job`` (1-based) of ``nj`` of the sorted input list."""
    entries = L.shard(L.read_entries(input_list), nj, job)
    inputs = load_inputs(landmarks_scp, text, face_hint)
    return run_shard(entries, job_dir(outdir, nj, job), outdir, cfg, inputs, f"job {job}/{nj}")


def run_shard_list(
    input_list: PathLike,
    outdir: PathLike,
    cfg: RoiConfig,
    shard_list: PathLike,
    landmarks_scp: Optional[PathLike] = None,
    text: Optional[PathLike] = None,
    face_hint: Optional[PathLike] = None,
) -> Tuple[List[L.Processed], List[L.Skipped]]:
    """Process the utterances named in ``shard_list`` (one uttid per line)."""
    entries = L.select(L.read_entries(input_list), L.read_uttid_list(shard_list))
    desc = f"shard {Path(shard_list).stem}"
    inputs = load_inputs(landmarks_scp, text, face_hint)
    return run_shard(entries, list_dir(outdir, shard_list), outdir, cfg, inputs, desc)


def merge(
    input_list: PathLike,
    outdir: PathLike,
    nj: Optional[int] = None,
    shard_lists: Optional[Sequence[PathLike]] = None,
) -> Summary:
    """Merge shard outputs into ``outdir`` and check every input line is accounted for.

    Shards are the ``nj`` jobs, or the given shard lists. Entries of an unfinished shard
    are reported as ``shard_missing``, entries of no shard list as ``not_in_any_shard``.
    """
    entries = L.read_entries(input_list)
    shards: List[Tuple[List[L.Entry], Path]] = []
    if shard_lists:
        shards = [(L.select(entries, L.read_uttid_list(s)), list_dir(outdir, s)) for s in shard_lists]
    else:
        nj = nj or 1
        shards = [(L.shard(entries, nj, j), job_dir(outdir, nj, j)) for j in range(1, nj + 1)]
    results = [(expected, L.read_lists(d) if L.is_done(d) else None) for expected, d in shards]
    processed, skipped = L.reconcile(entries, results)
    if len(processed) + len(skipped) != len(entries):  # reconcile guarantees it; never hide a bug
        raise RuntimeError(f"{len(processed)} processed + {len(skipped)} skipped != {len(entries)} inputs")
    with_text = any((d / "text").exists() for _, d in shards if L.is_done(d))
    L.write_lists(outdir, processed, skipped, with_text=with_text)
    frames = sum(p.num_frames for p in processed)
    fallback = sum(p.landmark_fallback for p in processed)
    damaged = sum(bool(p.damage) for p in processed)
    video_only = sum(p.wav_path is None for p in processed)
    audio_only = sum(p.roi_path is None for p in processed)
    return Summary(
        len(entries),
        len(processed),
        frames,
        Counter(s.reason for s in skipped),
        fallback,
        damaged,
        video_only,
        audio_only,
    )


def _run_job_logged(args: tuple) -> int:
    """Process-pool entry point: a crashing job is logged; merge then reports its entries."""
    if not logging.getLogger().handlers:  # a spawned worker starts without logging set up
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        processed, _ = run_job(*args)
        return len(processed)
    except Exception:
        logger.error("job %s/%s failed\n%s", args[4], args[3], traceback.format_exc())
        return -1


def prepare_all(
    input_list: PathLike,
    outdir: PathLike,
    cfg: RoiConfig,
    nj: int = 1,
    nproc: int = 1,
    landmarks_scp: Optional[PathLike] = None,
    text: Optional[PathLike] = None,
    face_hint: Optional[PathLike] = None,
) -> Summary:
    """Run all ``nj`` jobs here (``nproc`` at a time), then merge."""
    jobs = [(input_list, outdir, cfg, nj, j, landmarks_scp, text, face_hint) for j in range(1, nj + 1)]
    if nproc <= 1:
        for args in jobs:
            _run_job_logged(args)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: MediaPipe's graph threads do not survive fork.
        with ProcessPoolExecutor(max_workers=nproc, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_run_job_logged, jobs))
    return merge(input_list, outdir, nj=nj)
