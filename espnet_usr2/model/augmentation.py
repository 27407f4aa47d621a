"""Input views of the unified model: the augmented student view and the clean view.

Paper Appendix A.5 ("Augmentations"): video is randomly cropped to 88x88 from the stored
96x96 mouth ROI and flipped horizontally with probability 0.5 (the same crop and flip for
every frame of a clip); both modalities get temporal zero-masking -- USR's recipe is one
video mask of up to 0.4 s per second of video and one audio mask of up to 0.6 s per 2 s of
audio. The clean view (evaluation, and the EMA teacher's input) is the centre crop with no
flip and no masking.

Augmentation runs inside the model (on the training device) rather than in the data
loader, because the semi-supervised step needs both views of the same unlabelled clip.
"""
from __future__ import annotations

import torch
from torch import nn


class StudentAugmentation(nn.Module):
    def __init__(
        self,
        crop_size: int = 88,
        flip_prob: float = 0.5,
        video_mask_max_s: float = 0.4,
        video_mask_every_s: float = 1.0,
        audio_mask_max_s: float = 0.6,
        audio_mask_every_s: float = 2.0,
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
        self.crop_size = crop_size
        self.flip_prob = flip_prob
        self.video_mask = (round(video_mask_max_s * video_fps), round(video_mask_every_s * video_fps))
        self.audio_mask = (round(audio_mask_max_s * sample_rate), round(audio_mask_every_s * sample_rate))

    # ------------------------------------------------------------------ video
    def video_view(self, video: torch.Tensor, lengths: torch.Tensor, augment: bool,
                   time_masking: bool = True) -> torch.Tensor:
        """(B, T, H, W) -> (B, T, crop, crop): random crop + flip + masking (no masking with
        ``time_masking=False``), or the centre crop."""
        video = self.crop_and_flip(video, augment)
        return time_mask(video, lengths, *self.video_mask) if augment and time_masking else video

    def crop_and_flip(self, video: torch.Tensor, augment: bool) -> torch.Tensor:
        """(B, T, H, W) -> (B, T, crop, crop): random crop + flip per clip, or the centre crop.

        Pre-training gives this view to the teacher and, span-masked, to the student.
        """
        height, width = video.shape[-2:]
        if height < self.crop_size or width < self.crop_size:
            raise ValueError(f"video frames of {height}x{width} are smaller than the crop size {self.crop_size}")
        if not augment:
            top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
            return video[..., top: top + self.crop_size, left: left + self.crop_size]
        crops = []
        for clip in video:
            top = int(torch.randint(0, height - self.crop_size + 1, ()))
            left = int(torch.randint(0, width - self.crop_size + 1, ()))
            clip = clip[..., top: top + self.crop_size, left: left + self.crop_size]
            if float(torch.rand(())) < self.flip_prob:
                clip = clip.flip(-1)
            crops.append(clip)
        return torch.stack(crops)

    # ------------------------------------------------------------------ audio
    def audio_view(self, speech: torch.Tensor, lengths: torch.Tensor, augment: bool,
                   time_masking: bool = True) -> torch.Tensor:
        """(B, S) -> (B, S): temporal zero-masking when augmenting (audio augmentation is
        masking only), unchanged otherwise or with ``time_masking=False``."""
        if not (augment and time_masking):
            return speech
        return time_mask(speech, lengths, *self.audio_mask)


def time_mask(x: torch.Tensor, lengths: torch.Tensor, max_width: int, every: int) -> torch.Tensor:
    """Zero ``length // every`` random spans of up to ``max_width`` steps along dim 1, per sample."""
    if max_width <= 0:
        return x
    keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    steps = torch.arange(x.size(1), device=x.device)
    for i, length in enumerate(lengths.tolist()):
        for _ in range(length // every):
            width = int(torch.randint(0, max_width + 1, ()))
            if width == 0 or width >= length:
                continue
            start = int(torch.randint(0, length - width + 1, ()))
            keep[i] &= (steps < start) | (steps >= start + width)
    return x * keep.view(keep.shape + (1,) * (x.dim() - 2)).to(x.dtype)
