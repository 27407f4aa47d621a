"""The encoder stack: frontends -> audio / video length agreement -> projections -> encoder.

USR 2.0 paper, Sec. 4.3 "Architecture": a video ResNet-18 and an audio ResNet-18 feed three
projections (v, a, concat-av) into one shared encoder; the three streams are stacked along
the batch and go through the encoder in one pass.

One implementation serves every network that encodes: recognition
(:class:`~espnet_usr2.model.espnet_model.ESPnetUSR2Model`), self-supervised pre-training
(:class:`~espnet_usr2.model.pretrain.USR2PretrainModel`) and, as deep copies, their EMA
teachers. Both models *are* an ``EncoderStack`` (they inherit it), so the parameter names
stay ``audio_frontend.*``, ``video_frontend.*``, ``fusion.*`` and ``encoder.*`` -- the
names of released-checkpoint imports, ``encoder.pth`` files and existing checkpoints.

The input view is chosen per call: ``augment`` (random crop and flip instead of the centre
crop) and the time masks -- drawn by the augmentation (``time_masking``: the student's view
of fine-tuning), given by the caller (pre-training's span masks), or none. Masked video
frames are zero *after* the frontend's pixel normalisation (the mean grey), as USR masks
them; masked audio samples are zero.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from torch import nn

from espnet_usr2.data.av_sync import check_batch_frame_agreement
from espnet_usr2.model.augmentation import StudentAugmentation, TimeMasks
from espnet_usr2.model.frontends import AbsModalityFrontend
from espnet_usr2.model.fusion import ConcatProjectionFusion
from espnet_usr2.utils.modalities import canonical_modalities, needs_audio, needs_video

Encoded = Dict[str, Tuple[torch.Tensor, torch.Tensor]]


class EncoderStack(nn.Module):
    """Frontends, projections and the shared encoder, with the input view per call.

    Args:
        audio_frontend: raw waveform (B, S) -> (B, T, D_a), ``samples_per_frame`` samples a frame.
        video_frontend: mouth crops (B, T, H, W) -> (B, T, D_v); takes the masked frames too.
        fusion: the projections into the encoder space: v, a and concat(v, a) for av.
        encoder: the shared encoder (``block_outputs`` gives every block's output).
        augmentation: the random crop / flip and the student's time masks.
        av_length_tolerance: largest audio / video length difference, in video frames, that
            is trimmed away; a larger one is an error naming the batch position.
    """

    def __init__(
        self,
        audio_frontend: AbsModalityFrontend,
        video_frontend: AbsModalityFrontend,
        fusion: ConcatProjectionFusion,
        encoder: AbsEncoder,
        augmentation: StudentAugmentation,
        av_length_tolerance: float = 2.0,
    ):
        super().__init__()
        self.audio_frontend = audio_frontend
        self.video_frontend = video_frontend
        self.fusion = fusion
        self.encoder = encoder
        self.augmentation = augmentation
        self.av_length_tolerance = av_length_tolerance

    @property
    def samples_per_frame(self) -> int:
        return self.audio_frontend.samples_per_frame

    def encoder_stack(self) -> "EncoderStack":
        """A plain stack sharing this network's frontends, projections and encoder (what a
        pre-training teacher copies: the stack without anything the subclass adds)."""
        return EncoderStack(
            self.audio_frontend,
            self.video_frontend,
            self.fusion,
            self.encoder,
            self.augmentation,
            self.av_length_tolerance,
        )

    def project(
        self,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        modalities: Sequence[str] = ("av",),
        augment: bool = False,
        time_masking: bool = True,
        masks: Optional[TimeMasks] = None,
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """The projected input of each requested stream ``{m: (B, T, d)}`` and the lengths (B,).

        Args:
            speech: (B, S) 16 kHz waveforms, zero-padded; needed for ``a`` and ``av``.
            video: (B, T, H, W) grayscale mouth crops, 0..255, zero-padded; needed for ``v``, ``av``.
            modalities: subset of ``("v", "a", "av")``.
            augment: random crop and flip (the same for all frames of a clip) instead of the
                centre crop; with ``time_masking`` also the augmentation's time masks.
            time_masking: draw the augmentation's time masks when augmenting (``False``: the
                crop and flip alone, the EMA teacher's own view).
            masks: time masks given by the caller (pre-training's span masks), used instead
                of drawn ones, augmenting or not.
        """
        modalities = canonical_modalities(modalities)
        draw = masks is None and augment and time_masking
        masks = masks or TimeMasks()
        video_feats = audio_feats = None
        if needs_video(modalities):
            _require(video, video_lengths, "video", modalities)
            video = self.augmentation.crop_and_flip(video, augment)
            if draw:  # after the crop, before the audio mask: the order of the random draws
                masks.video = self.augmentation.video_time_mask(video_lengths, video.size(1))
            video_feats, lengths = self.video_frontend(video, video_lengths, masked_frames=masks.video)
        if needs_audio(modalities):
            _require(speech, speech_lengths, "speech", modalities)
            if draw:
                masks.audio = self.augmentation.audio_time_mask(speech_lengths, speech.size(1))
            if masks.audio is not None:
                speech = speech.masked_fill(masks.audio, 0.0)
            audio_feats, lengths = self.audio_frontend(speech, speech_lengths)
        if video_feats is not None and audio_feats is not None:
            lengths = check_batch_frame_agreement(lengths, video_lengths, self.av_length_tolerance)
            n_frames = min(video_feats.size(1), audio_feats.size(1))
            video_feats, audio_feats = video_feats[:, :n_frames], audio_feats[:, :n_frames]
        return self.fusion(video_feats, audio_feats, modalities), lengths

    def encode(
        self,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        modalities: Sequence[str] = ("v", "a", "av"),
        augment: bool = False,
        time_masking: bool = True,
        masks: Optional[TimeMasks] = None,
    ) -> Encoded:
        """``{m: (enc (B, T', d), enc_lengths (B,))}`` from one stacked encoder pass; arguments
        as :meth:`project`. T' is the video frame count (audio and video trimmed to agree)."""
        modalities = canonical_modalities(modalities)
        projected, lengths = self.project(
            speech, speech_lengths, video, video_lengths, modalities, augment, time_masking, masks
        )
        stacked = torch.cat([projected[m] for m in modalities], dim=0)
        enc, _, _ = self.encoder(stacked, lengths.repeat(len(modalities)))
        return {m: (chunk, lengths) for m, chunk in zip(modalities, enc.chunk(len(modalities), dim=0))}

    def block_outputs(
        self,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        modality: str = "av",
        augment: bool = False,
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """The output of every encoder block (before the final norm) for one unmasked stream."""
        projected, lengths = self.project(
            speech, speech_lengths, video, video_lengths, (modality,), augment, time_masking=False
        )
        return self.encoder.block_outputs(projected[modality], lengths), lengths


def _require(x, lengths, name: str, modalities) -> None:
    if x is None or lengths is None:
        raise ValueError(
            f"modalities {list(modalities)} need '{name}' input, but the batch has none; "
            f"add a {name} file to the data (e.g. --train_data_path_and_name_and_type ...,{name},...) "
            f"or restrict model_conf.modalities"
        )
