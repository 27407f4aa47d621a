"""Agreement of audio and video lengths: N video frames <-> N * samples_per_frame samples.

At 16 kHz and 25 fps one video frame spans 640 samples. Data preparation cuts audio to
exactly that; small disagreements (a frame or two, from container rounding) are absorbed by
trimming or zero-padding the audio, larger ones mean the two streams do not belong
together and are reported with the utterance id.
"""

from __future__ import annotations

import numpy as np
import torch


class AVLengthMismatchError(ValueError):
    """Audio and video of one utterance differ in duration beyond the tolerance."""


def align_audio_to_video(
    uid: str, speech: np.ndarray, num_frames: int, samples_per_frame: int, tolerance_frames: float
) -> np.ndarray:
    """Trim or zero-pad ``speech`` to ``num_frames * samples_per_frame`` samples.

    Raises :class:`AVLengthMismatchError` naming ``uid`` when the durations differ by more
    than ``tolerance_frames`` video frames.
    """
    expected = num_frames * samples_per_frame
    diff_frames = abs(len(speech) - expected) / samples_per_frame
    if diff_frames > tolerance_frames:
        raise AVLengthMismatchError(
            f"utterance {uid!r}: audio has {len(speech)} samples (= {len(speech) / samples_per_frame:.2f} "
            f"video frames at {samples_per_frame} samples per frame) but the video has {num_frames} frames; "
            f"they differ by {diff_frames:.2f} frames, more than the tolerance of {tolerance_frames}. "
            "Re-extract this utterance or drop it from the data directory (stage 4 filters them)."
        )
    if len(speech) >= expected:
        return speech[:expected]
    return np.pad(speech, [(0, expected - len(speech))] + [(0, 0)] * (speech.ndim - 1))


def check_batch_frame_agreement(
    audio_frames: torch.Tensor, video_frames: torch.Tensor, tolerance_frames: float
) -> torch.Tensor:
    """Per-sample frame counts of the two frontends -> the common (shorter) count.

    Raises :class:`AVLengthMismatchError` naming the batch positions that disagree by more
    than ``tolerance_frames``.
    """
    beyond = (audio_frames - video_frames).abs() > tolerance_frames
    if beyond.any():  # one read on the host; the positions only when there is an error to name
        bad = beyond.nonzero().flatten().tolist()
        details = ", ".join(f"#{i}: audio {int(audio_frames[i])} vs video {int(video_frames[i])} frames" for i in bad)
        raise AVLengthMismatchError(
            f"audio and video lengths disagree beyond {tolerance_frames} frames in batch positions {details}"
        )
    return torch.minimum(audio_frames, video_frames)
