"""Input views of the unified model: the augmented student view and the clean view.

Paper Appendix A.5 ("Augmentations"): video is randomly cropped to 88x88 from the stored
96x96 mouth ROI and flipped horizontally with probability 0.5 (the same crop and flip for
every frame of a clip); both modalities get temporal zero-masking, up to 0.4 s of video and
0.6 s of audio. The clean view (evaluation) is the centre crop with no flip and no masking.

The time masks follow USR's code (``ahaliassos/usr`` ``data/transforms.py``
``AdaptiveLengthTimeMask``, method.md Sec. 10): a clip of length L gets ``ceil(L / stride)``
masks (strides 1 s of video, 2 s of audio: 25 frames, 32,000 samples). For each, USR draws two
numbers from ``0 .. window - 1`` (window 0.4 s of video, 0.6 s of audio: 10 frames, 9,600
samples): the first, t, places the start uniformly in ``0 .. L - t - 1`` and skips the mask
when it is 0 (or not below L); the second is the width, clipped at the clip's end. Masks may
overlap. ``mask_rule: floor`` is this project's earlier rule: ``floor(L / stride)`` masks (so
none in a clip shorter than one stride) of width ``0 .. window`` starting where they fit.

The masks are returned, not applied: :class:`~espnet_usr2.model.encoder_stack.EncoderStack`
zeroes masked audio samples and hands the masked video frames to the video frontend, which
zeroes them *after* its pixel normalisation -- a masked frame is the mean grey, as in USR.

Augmentation runs inside the model (on the training device) rather than in the data
loader, because the semi-supervised step needs both views of the same unlabelled clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

MASK_RULES = ("usr", "floor")


@dataclass
class TimeMasks:
    """Time masks of one batch (True: masked); None leaves that stream unmasked.

    video: (B, T) masked frames, zero after the video frontend's normalisation.
    audio: (B, S) masked samples, zeroed in the waveform.
    """

    video: Optional[torch.Tensor] = None
    audio: Optional[torch.Tensor] = None


class StudentAugmentation(nn.Module):
    """Random crop and flip of the video, and the student's time masks (``augmentation: usr``).

    Args:
        crop_size: side of the square crop (88 of the stored 96).
        flip_prob: probability of a horizontal flip of a clip.
        video_mask_max_s, audio_mask_max_s: the widest mask (0.4 s, 0.6 s; 0 turns masking off).
        video_mask_every_s, audio_mask_every_s: the stride, one mask per stride of input (1 s, 2 s).
        mask_rule: ``usr`` (USR's code) or ``floor`` (this project's earlier rule); see the
            module docstring.
        video_fps, sample_rate: convert the seconds above to frames and samples.
    """

    def __init__(
        self,
        crop_size: int = 88,
        flip_prob: float = 0.5,
        video_mask_max_s: float = 0.4,
        video_mask_every_s: float = 1.0,
        audio_mask_max_s: float = 0.6,
        audio_mask_every_s: float = 2.0,
        mask_rule: str = "usr",
        video_fps: float = 25.0,
        sample_rate: int = 16000,
    ):
        super().__init__()
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        for name, value in (("video_mask_max_s", video_mask_max_s), ("audio_mask_max_s", audio_mask_max_s)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (("video_mask_every_s", video_mask_every_s), ("audio_mask_every_s", audio_mask_every_s)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {mask_rule!r}")
        self.crop_size = crop_size
        self.flip_prob = flip_prob
        self.mask_rule = mask_rule
        self.video_mask = (round(video_mask_max_s * video_fps), round(video_mask_every_s * video_fps))
        self.audio_mask = (round(audio_mask_max_s * sample_rate), round(audio_mask_every_s * sample_rate))

    # ------------------------------------------------------------------ crop and flip
    def crop_and_flip(self, video: torch.Tensor, augment: bool) -> torch.Tensor:
        """(B, T, H, W) -> (B, T, crop, crop): random crop + flip per clip, or the centre crop.

        A video already of the crop size passes the centre crop unchanged (pre-training crops
        once and gives the same view to its teacher and, span-masked, to its student).
        """
        height, width = video.shape[-2:]
        if height < self.crop_size or width < self.crop_size:
            raise ValueError(f"video frames of {height}x{width} are smaller than the crop size {self.crop_size}")
        if not augment:
            top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
            return video[..., top : top + self.crop_size, left : left + self.crop_size]
        crops = []
        for clip in video:
            top = int(torch.randint(0, height - self.crop_size + 1, ()))
            left = int(torch.randint(0, width - self.crop_size + 1, ()))
            clip = clip[..., top : top + self.crop_size, left : left + self.crop_size]
            if float(torch.rand(())) < self.flip_prob:
                clip = clip.flip(-1)
            crops.append(clip)
        return torch.stack(crops)

    # ------------------------------------------------------------------ time masks
    def video_time_mask(self, lengths: torch.Tensor, max_frames: int) -> Optional[torch.Tensor]:
        """(B, max_frames) masked video frames of the student's view (None: masking off)."""
        return time_mask(lengths, max_frames, *self.video_mask, self.mask_rule)

    def audio_time_mask(self, lengths: torch.Tensor, max_samples: int) -> Optional[torch.Tensor]:
        """(B, max_samples) masked audio samples of the student's view (None: masking off)."""
        return time_mask(lengths, max_samples, *self.audio_mask, self.mask_rule)


def time_mask(
    lengths: torch.Tensor, max_len: int, window: int, stride: int, rule: str = "usr"
) -> Optional[torch.Tensor]:
    """(B, max_len) bool, True at masked steps (never at padding); None when ``window`` is 0.

    ``rule`` ``"usr"`` or ``"floor"``, as the module docstring says; lengths are the true ones.
    """
    if window <= 0:
        return None
    masked = torch.zeros(len(lengths), max_len, dtype=torch.bool)
    for i, length in enumerate(lengths.tolist()):
        spans = _usr_spans(length, window, stride) if rule == "usr" else _floor_spans(length, window, stride)
        for start, width in spans:
            masked[i, start : min(start + width, length)] = True
    return masked.to(lengths.device)


def _usr_spans(length: int, window: int, stride: int):
    for _ in range(math.ceil(length / stride)):
        offset, width = torch.randint(0, window, (2,)).tolist()
        if offset == 0 or offset >= length:
            continue
        yield int(torch.randint(0, length - offset, ())), width


def _floor_spans(length: int, window: int, stride: int):
    for _ in range(length // stride):
        width = int(torch.randint(0, window + 1, ()))
        if width == 0 or width >= length:
            continue
        yield int(torch.randint(0, length - width + 1, ())), width
