"""Long-form transcription: a recording cut into segments the model was trained for, decoded in
batches, joined into one transcript with segment times.

The models are trained on clips of a few seconds (LRS3) to ~20 s; one encoder pass over a
minutes-long recording is out of distribution and quadratic in memory, and attention decoding
degrades with length (USR 2.0, Sec. 5, long utterances). As Whisper's CLI and ESPnet's
long-form ``Speech2Text`` do, the recording is cut first:

* **with audio**, at pauses: the energy of each 40 ms frame (one video frame) against a
  threshold between the recording's quiet floor and its speech level; a pause is a run of at
  least ``min_silence`` seconds below it. Each stretch of speech between pauses is a segment,
  its times those of the speech (pauses trimmed, 0.2 s kept on either side). Speech longer
  than ``max_segment`` without a pause is cut into overlapping windows, as video is.
* **video only**, into windows of ``max_segment`` seconds overlapping by ``overlap`` seconds;
  the transcripts of neighbouring windows are joined where their words agree
  (:func:`join_overlapping`).

Memory and time per segment do not grow with the recording: peak memory is set by
``max_segment`` and the batch size.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

FPS = 25
SILENT_DBFS = -55.0  # a recording (90th percentile of its frame levels) below this has no speech


@dataclass(frozen=True)
class Segment:
    """Video frames ``[start, end)`` (25 fps) of the recording; ``overlap_*`` frames at either end
    are shared with the neighbouring window (0 for segments cut at pauses)."""

    start: int
    end: int
    overlap_before: int = 0
    overlap_after: int = 0

    @property
    def start_s(self) -> float:
        return (self.start + self.overlap_before / 2) / FPS

    @property
    def end_s(self) -> float:
        return (self.end - self.overlap_after / 2) / FPS

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class SegmentText:
    """One segment's transcript, times in seconds (overlaps split in the middle)."""

    segment: Segment
    text: str
    tokens: Tuple[str, ...] = ()

    @property
    def start_s(self) -> float:
        return self.segment.start_s

    @property
    def end_s(self) -> float:
        return self.segment.end_s


def frame_energy_db(audio: np.ndarray, samples_per_frame: int, num_frames: int) -> np.ndarray:
    """RMS level (dB) of each video frame's audio; frames past the audio's end are -inf."""
    audio = np.asarray(audio)
    scale = 1.0 / float(np.iinfo(audio.dtype).max) if audio.dtype.kind in "iu" else 1.0
    usable = min(num_frames, len(audio) // samples_per_frame)
    frames = audio[: usable * samples_per_frame].reshape(usable, samples_per_frame)  # a view
    power = np.empty(usable)
    for start in range(0, usable, 1500):  # a minute at a time: no float64 copy of a long recording
        chunk = frames[start : start + 1500].astype(np.float64) * scale
        power[start : start + 1500] = np.mean(chunk * chunk, axis=1)
    db = 10.0 * np.log10(power + 1e-12)
    return np.concatenate([db, np.full(num_frames - usable, -np.inf)])


def silent_frames(energy_db: np.ndarray, relative_threshold: float = 0.3) -> np.ndarray:
    """Frames below ``floor + relative_threshold x (speech level - floor)``.

    The floor is the 10th percentile of the levels, the speech level the 90th: the threshold
    adapts to the recording's gain and noise, as an energy VAD must for recordings it has never
    seen. A recording whose level stays under -55 dBFS is silent; one without a clear
    difference (a level range under 6 dB) is speech throughout.
    """
    finite = energy_db[np.isfinite(energy_db)]
    if finite.size == 0:
        return np.ones_like(energy_db, dtype=bool)
    floor, speech = np.percentile(finite, 10), np.percentile(finite, 90)
    if speech < SILENT_DBFS:
        return np.ones_like(energy_db, dtype=bool)
    if speech - floor < 6.0:
        return ~np.isfinite(energy_db)
    return energy_db < floor + relative_threshold * (speech - floor)


def _runs(mask: np.ndarray) -> List[tuple]:
    """``[start, end)`` of the runs of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def windows(start: int, end: int, max_frames: int, overlap_frames: int) -> List[Segment]:
    """``[start, end)`` as windows of at most ``max_frames`` overlapping by ``overlap_frames``."""
    if end - start <= max_frames:
        return [Segment(start, end)]
    step = max_frames - overlap_frames
    out = []
    s = start
    while True:
        e = min(s + max_frames, end)
        out.append(Segment(s, e, overlap_frames if out else 0, 0))
        if e >= end:
            break
        s += step
    # the window after each one shares overlap_frames with it
    return [
        Segment(w.start, w.end, w.overlap_before, overlap_frames if i + 1 < len(out) else 0) for i, w in enumerate(out)
    ]


def plan_segments(
    num_frames: int,
    audio: Optional[np.ndarray] = None,
    samples_per_frame: int = 640,
    max_segment: float = 20.0,
    min_silence: float = 0.5,
    overlap: float = 2.0,
    min_speech: float = 0.2,
) -> List[Segment]:
    """Segments of a recording of ``num_frames`` video frames (see the module docstring).

    Args:
        audio: the 16 kHz waveform on the video's clock; None (video only): overlapping windows.
        max_segment: longest segment (s); longer speech without a pause becomes windows.
        min_silence: shortest pause (s) that separates segments.
        overlap: seconds shared by neighbouring windows where there is no pause to cut at.
        min_speech: speech runs shorter than this (s) between pauses are noise, not segments.
    """
    max_frames = max(1, int(round(max_segment * FPS)))
    overlap_frames = min(int(round(overlap * FPS)), max_frames // 2)
    if num_frames <= 0:
        return []
    if audio is None:
        return windows(0, num_frames, max_frames, overlap_frames)
    silence_frames = max(1, int(round(min_silence * FPS)))
    silent = silent_frames(frame_energy_db(audio, samples_per_frame, num_frames))
    # silence at either end of the recording is trimmed whatever its length
    pauses = [(s, e) for s, e in _runs(silent) if e - s >= silence_frames or s == 0 or e == num_frames]
    # speech regions: between the pauses (shorter silences inside them belong to the speech),
    # widened by up to 0.2 s into each pause so that soft onsets and endings are not clipped
    pad = min(int(round(0.2 * FPS)), silence_frames // 2)
    regions, last = [], 0
    for s, e in pauses + [(num_frames, num_frames)]:
        if s > last:
            regions.append((max(0, last - pad), min(num_frames, s + pad)))
        last = e
    regions = [(s, e) for s, e in regions if e - s - 2 * pad >= max(1, int(round(min_speech * FPS)))]
    return _split_long(regions, max_frames, overlap_frames)


def _split_long(regions: Sequence[tuple], max_frames: int, overlap_frames: int) -> List[Segment]:
    """One segment per speech region; a region over ``max_frames`` becomes overlapping windows.

    Regions are not grouped into longer segments: measured with the mini model on a 10-minute
    recording of its test clips (``bench/bench_long_form.py``), segments grouped up to 10 s
    doubled the WER of decoding the clips one by one -- a model decodes best what is as long
    as what it was trained on, and a stretch of speech between pauses is close to that.
    """
    out: List[Segment] = []
    for s, e in regions:
        out.extend(windows(s, e, max_frames, overlap_frames))
    return out


def join_overlapping(before: str, after: str, min_match: int = 1) -> str:
    """The transcripts of two windows that share their edges, joined once.

    The longest run of words that the end of ``before`` and the start of ``after`` agree on
    marks the shared audio: ``before`` up to that run, then ``after`` from it. Without such a run
    the two are concatenated (nothing lost, maybe a word twice).
    """
    a, b = before.split(), after.split()
    if not a or not b:
        return " ".join(a + b)
    tail, head = a[-len(b) :] if len(a) > len(b) else a, b[: len(a)]
    offset = len(a) - len(tail)
    match = difflib.SequenceMatcher(None, tail, head, autojunk=False).find_longest_match(0, len(tail), 0, len(head))
    if match.size < min_match:
        return " ".join(a + b)
    return " ".join(a[: offset + match.a] + b[match.b :])


def join_texts(texts: Sequence[SegmentText]) -> str:
    """One transcript: segments cut at pauses are concatenated, overlapping windows joined."""
    joined = ""
    for i, piece in enumerate(texts):
        if i and texts[i - 1].segment.overlap_after and piece.segment.overlap_before:
            joined = join_overlapping(joined, piece.text)
        else:
            joined = " ".join(t for t in (joined, piece.text) if t)
    return joined


def segment_batches(segments: Sequence[Segment], batch_frames: int) -> Iterable[List[int]]:
    """Indices of segments in batches of at most ``batch_frames`` padded frames (longest first,
    so padding stays small), each batch at least one segment."""
    order = sorted(range(len(segments)), key=lambda i: -segments[i].frames)
    batch: List[int] = []
    for i in order:
        if batch and segments[batch[0]].frames * (len(batch) + 1) > batch_frames:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def pad_segments(
    segments: Sequence[Segment], video: Optional[np.ndarray], audio: Optional[np.ndarray], samples_per_frame: int
) -> Dict[str, torch.Tensor]:
    """A padded batch (``video``/``speech`` with ``*_lengths``) of the segments' slices."""
    batch: Dict[str, torch.Tensor] = {}
    lengths = torch.tensor([s.frames for s in segments])
    longest = int(lengths.max())
    if video is not None:
        v = torch.zeros((len(segments), longest, *video.shape[1:]), dtype=torch.float32)
        for i, s in enumerate(segments):
            v[i, : s.frames] = torch.from_numpy(np.asarray(video[s.start : s.end], dtype=np.float32))
        batch["video"], batch["video_lengths"] = v, lengths
    if audio is not None:
        a = torch.zeros((len(segments), longest * samples_per_frame), dtype=torch.float32)
        sample_lengths = []
        for i, s in enumerate(segments):
            piece = np.asarray(audio[s.start * samples_per_frame : s.end * samples_per_frame], dtype=np.float32)
            a[i, : len(piece)] = torch.from_numpy(piece)
            sample_lengths.append(len(piece))
        batch["speech"], batch["speech_lengths"] = a, torch.tensor(sample_lengths)
    return batch


def transcribe_segments(
    decode: Callable[[Dict[str, torch.Tensor]], Dict[str, List[Tuple[str, Sequence[str]]]]],
    segments: Sequence[Segment],
    video: Optional[np.ndarray],
    audio: Optional[np.ndarray],
    samples_per_frame: int,
    batch_frames: int = 1500,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict[str, List[SegmentText]]:
    """Every segment decoded (``decode``: padded batch -> (text, tokens) per segment and modality,
    batch order), the results per modality in time order. ``progress(n)`` is told how many
    segments each batch did."""
    results: Dict[str, List[Tuple[str, Sequence[str]]]] = {}
    for indices in segment_batches(segments, batch_frames):
        decoded = decode(pad_segments([segments[i] for i in indices], video, audio, samples_per_frame))
        for modality, batch_results in decoded.items():
            slots = results.setdefault(modality, [("", ())] * len(segments))
            for i, result in zip(indices, batch_results):
                slots[i] = result
        if progress is not None:
            progress(len(indices))
    return {
        m: [SegmentText(s, text, tuple(tokens)) for s, (text, tokens) in zip(segments, slots)]
        for m, slots in results.items()
    }
