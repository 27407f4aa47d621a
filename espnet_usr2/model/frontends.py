"""Modality frontends of the unified model (paper Sec. 4.3, "Architecture"; Appendix A.4).

* audio: 1-D ResNet-18 on the raw 16 kHz waveform. Stem conv k=80 / stride 4, four stages
  (strides 1, 2, 2, 2), average pooling over 20 -> total stride 640 samples, i.e. one
  feature vector per 25 fps video frame.
* audio, light alternative (``logmel``): log-mel filterbanks at 100 Hz, two 1-D
  convolutions, then a stride-4 convolution to 25 fps. Not the paper's frontend: it learns
  from far less data, which is what a CPU-sized recipe (the mini corpus) needs.
* video: grayscale 88x88 mouth crops. A 3-D convolutional stem (k=(5,7,7), s=(1,2,2)) with
  max pooling, then a 2-D ResNet-18 trunk applied to every frame, global average pooling.

Both map a padded batch to ``(B, T, 512)`` features at 25 fps plus lengths.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Sequence, Tuple

import torch
import torchaudio
from torch import nn

from espnet_usr2.model.resnet import ResNetTrunk, ceil_div, make_activation, zero_padding
from espnet_usr2.utils.masks import pad_mask, valid_mask


class AbsModalityFrontend(nn.Module, ABC):
    """Maps raw input of one modality to (B, T, D) features at the video frame rate."""

    @abstractmethod
    def output_size(self) -> int:
        raise NotImplementedError

    @abstractmethod
    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def standardize_over_time(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance along dim 1 over each utterance's valid steps; padding 0.

    ``x`` is (B, T) or (B, T, F) (then per feature). Shared by both audio frontends:
    recordings differ in gain by orders of magnitude, and per-utterance normalisation makes
    a frontend insensitive to that. USR and USR 2.0 do *not* normalise the waveform (their
    audio transform is the identity on the [-1, 1] signal), so the paper configs and
    imported releases set ``normalize_waveform: false``.
    """
    valid = valid_mask(lengths.to(x.device), x.size(1)).to(x.dtype)
    valid = valid.view(*valid.shape, *([1] * (x.dim() - 2)))
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (x * valid).sum(dim=1, keepdim=True) / count
    var = (((x - mean) * valid) ** 2).sum(dim=1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps) * valid


class ResNet1DAudioFrontend(AbsModalityFrontend):
    """1-D ResNet-18 over the raw waveform; ``samples_per_frame`` samples -> one frame.

    ``normalize_waveform``: standardise each utterance first (:func:`standardize_over_time`).
    USR / USR 2.0 feed the raw waveform (``false``, the paper configs' setting, required for
    released weights: their batch-norm statistics were collected on the raw signal); ``true``
    makes a model trained from scratch insensitive to recording gain.

    ``zero_padding``: zero the steps past each utterance's end after the stem and after every
    block, so a clip's features do not depend on what it is batched with (``true``). USR's
    code does not (``false``, the paper configs): padded steps then carry activations that
    enter the training batch's batch-norm statistics, and the last frames of a short clip see
    them through the convolutions. Measured against USR's code on a padded batch (lengths
    25, 25, 20, 15; identical weights, batch statistics): teacher AV encoder outputs differ by
    up to 0.21 with ``true`` and agree to 5e-6 with ``false``.
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 512),
        stem_kernel: int = 80,
        stem_stride: int = 4,
        pool_size: int = 20,
        activation: str = "swish",
        normalize_waveform: bool = True,
        zero_padding: bool = True,
    ):
        super().__init__()
        self.zero_padding = zero_padding
        # padding (k - s) / 2 keeps exactly len / stride outputs for len divisible by stride
        if (stem_kernel - stem_stride) % 2:
            raise ValueError("stem_kernel - stem_stride must be even")
        self.stem = nn.Sequential(
            nn.Conv1d(
                1, channels[0], stem_kernel, stride=stem_stride, padding=(stem_kernel - stem_stride) // 2, bias=False
            ),
            nn.BatchNorm1d(channels[0]),
            make_activation(activation, channels[0]),
        )
        self.trunk = ResNetTrunk(dims=1, in_channels=channels[0], channels=channels, act=activation)
        self.pool = nn.AvgPool1d(pool_size, stride=pool_size)
        self.stem_stride = stem_stride
        self.samples_per_frame = stem_stride * self.trunk.total_stride * pool_size
        self.normalize_waveform = normalize_waveform
        self._output_size = channels[-1]

    def output_size(self) -> int:
        return self._output_size

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """speech: (B, S) float waveform -> (B, S // samples_per_frame, D)."""
        if speech.dim() != 2:
            raise ValueError(f"audio frontend expects (batch, samples), got shape {tuple(speech.shape)}")
        n_frames = speech.size(1) // self.samples_per_frame
        speech = speech[:, : n_frames * self.samples_per_frame]
        speech_lengths = speech_lengths.clamp(max=speech.size(1))
        if self.normalize_waveform:
            speech = standardize_over_time(speech, speech_lengths)
        if self.zero_padding:
            stem_lengths = ceil_div(speech_lengths, self.stem_stride)
            x = self.pool(self.trunk(zero_padding(self.stem(speech.unsqueeze(1)), stem_lengths), stem_lengths))
        else:  # USR's: padded steps keep whatever the convolutions give them
            x = self.pool(self.trunk(self.stem(speech.unsqueeze(1))))
        return x.transpose(1, 2), torch.div(speech_lengths, self.samples_per_frame, rounding_mode="floor")


class LogMelAudioFrontend(AbsModalityFrontend):
    """Log-mel filterbanks + small 1-D convolution stack; one vector per video frame.

    ``samples_per_frame / hop_length`` filterbank frames (4 at 16 kHz, hop 10 ms) are
    merged into one 25 fps frame by a strided convolution, so the output has exactly
    ``len // samples_per_frame`` frames, like the raw-waveform frontend.
    """

    def __init__(
        self,
        n_mels: int = 80,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        samples_per_frame: int = 640,
        sample_rate: int = 16000,
        channels: int = 256,
        num_conv_layers: int = 2,
        output_size: int = 256,
        activation: str = "swish",
    ):
        super().__init__()
        if samples_per_frame % hop_length:
            raise ValueError(f"samples_per_frame ({samples_per_frame}) must be a multiple of hop_length ({hop_length})")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.samples_per_frame = samples_per_frame
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        with torch.device("cpu"):  # a fixed matrix; computed for real even when the model is built on "meta"
            mel = torchaudio.functional.melscale_fbanks(
                n_freqs=n_fft // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels, sample_rate=sample_rate
            )
        self.register_buffer("mel_filters", mel, persistent=False)  # (freqs, mels)
        self.convs = nn.ModuleList()
        self.acts = nn.ModuleList()
        ch_in = n_mels
        for _ in range(num_conv_layers):
            self.convs.append(
                nn.Sequential(nn.Conv1d(ch_in, channels, 3, padding=1, bias=False), nn.BatchNorm1d(channels))
            )
            self.acts.append(make_activation(activation, channels))
            ch_in = channels
        merge = samples_per_frame // hop_length
        self.merge = nn.Conv1d(ch_in, output_size, merge, stride=merge)
        self._output_size = output_size

    def output_size(self) -> int:
        return self._output_size

    def log_mel(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, S) waveform -> normalised (B, S // hop, n_mels) log-mel features and lengths."""
        n_feats = speech.size(1) // self.hop_length
        # unit variance per utterance (recording gain does not reach the log floor) and
        # zero padding, so a padded utterance gets the same spectrum as alone
        speech = standardize_over_time(speech.float(), speech_lengths)
        spec = torch.stft(
            speech,
            self.n_fft,
            self.hop_length,
            self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )[..., :n_feats]
        power = spec.real**2 + spec.imag**2  # (B, freqs, T)
        feats = torch.log(torch.matmul(power.transpose(1, 2), self.mel_filters) + 1e-6)
        lengths = torch.div(speech_lengths, self.hop_length, rounding_mode="floor")
        return standardize_over_time(feats, lengths), lengths

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """speech: (B, S) float waveform -> (B, S // samples_per_frame, D)."""
        if speech.dim() != 2:
            raise ValueError(f"audio frontend expects (batch, samples), got shape {tuple(speech.shape)}")
        n_frames = speech.size(1) // self.samples_per_frame
        speech = speech[:, : n_frames * self.samples_per_frame]
        # only whole frames: a trailing partial frame would shift the last spectra
        frame_lengths = torch.div(speech_lengths, self.samples_per_frame, rounding_mode="floor").clamp(max=n_frames)
        feats, feat_lengths = self.log_mel(speech, frame_lengths * self.samples_per_frame)
        x = feats.transpose(1, 2)
        for conv, act in zip(self.convs, self.acts):
            x = zero_padding(act(conv(x)), feat_lengths)
        x = zero_padding(self.merge(x), frame_lengths)
        return x.transpose(1, 2), frame_lengths


class ResNet3DVideoFrontend(AbsModalityFrontend):
    """3-D conv stem + per-frame 2-D ResNet-18 over grayscale mouth crops (B, T, H, W)."""

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 512),
        activation: str = "swish",
        pixel_mean: float = 0.421,
        pixel_std: float = 0.165,
        channels_last: bool = False,
    ):
        """channels_last: on a GPU, run the stem and the 2-D trunk on channels-last tensors
        (cuDNN's native layout: no NCHW <-> NHWC conversion around each convolution). Same
        parameters and the same function; only the memory layout, hence the kernels, differ.
        Ignored on CPU: there PyTorch 2.11's channels-last backward corrupted the heap in a
        2-thread training step (``malloc(): invalid next size``, reproduced)."""
        super().__init__()
        self.channels_last = channels_last
        self.stem = nn.Sequential(
            nn.Conv3d(1, channels[0], (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(channels[0]),
            make_activation(activation, channels[0]),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = ResNetTrunk(dims=2, in_channels=channels[0], channels=channels, act=activation)
        # pixels arrive as 0..255; statistics of grayscale mouth crops (LRW/LRS convention)
        self.pixel_mean = pixel_mean
        self.pixel_std = pixel_std
        self._output_size = channels[-1]

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self, video: torch.Tensor, video_lengths: torch.Tensor, masked_frames: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """video: (B, T, H, W) pixels in [0, 255] -> (B, T, D).

        ``masked_frames`` (B, T) bool: time-masked frames, set to 0 *after* the pixel
        normalisation -- the mean grey, as USR masks them (a black frame would be -2.55).
        """
        if video.dim() != 4:
            raise ValueError(f"video frontend expects (batch, frames, height, width), got {tuple(video.shape)}")
        batch, frames = video.shape[:2]
        x = (video / 255.0 - self.pixel_mean) / self.pixel_std
        # zero the padded frames so the temporal kernel of the stem sees silence, not noise
        zeroed = pad_mask(video_lengths.to(x.device), frames)
        if masked_frames is not None:
            zeroed = zeroed | masked_frames[:, :frames].to(x.device)
        x = x.masked_fill(zeroed[:, :, None, None], 0.0)
        x = self.encode_frames(x, channels_last=self.channels_last and x.is_cuda)
        return x.view(batch, frames, -1), video_lengths

    def encode_frames(self, pixels: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """Normalised frames (B, T, H, W) -> (B * T, D): the 3-D stem, then the 2-D trunk per
        frame, on channels-last tensors when ``channels_last`` (same function, other kernels)."""
        x = pixels.unsqueeze(1)  # (B, 1, T, H, W)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.stem(x)  # (B, C, T, H', W')
        x = x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H', W')
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x).mean(dim=(2, 3))
