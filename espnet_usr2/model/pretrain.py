"""Self-supervised pre-training of the unified A / V / AV encoder (``model: usr2_pretrain``).

USR 2.0 paper, Appendix A: "All models are initialised from the same self-supervised
checkpoints as USR. For Huge, we pre-train using the Large USR hyperparameters". This is
USR's pre-training (Haliassos et al., 2024a; the RAVEn / BRAVEn family): masked prediction
of an EMA teacher's audio-visual features.

* **Student**: the recognition model's frontends, projections (v, a, av) and encoder, under
  the same parameter names, so the pre-trained encoder initialises recognition training
  with a plain ``--init_param`` (``usr2_import --encoder_only`` writes that file).
* **Masking**: span masks over video frames (:mod:`~espnet_usr2.model.pretrain_masking`;
  start probability 0.2 video / 0.4 audio, spans of 3 frames, at least one span, the same
  number of masked frames for every utterance of a batch); a masked video frame is 0 after
  the frontend's normalisation (the mean grey), a masked audio frame zeroes its 640 samples.
* **Teacher**: an EMA copy of the encoder stack only (frontends + projections + encoder; the
  project's :class:`~espnet_usr2.semi.teacher.EMATeacher`, batch norm on its own batch's
  statistics as USR's, stepped by ``USR2Trainer`` after
  every optimiser step), momentum on a cosine to 1. It sees the unmasked clip.
* **Targets**: the teacher's audio-visual stream averaged over the outputs of all encoder
  blocks, instance-normalised (per utterance and channel over its frames).
* **Predictor**: a 2-block transformer with a learned mask token, shared by the three
  streams: student features -> linear -> mask token at the masked frames -> blocks ->
  linear to the target dimension.
* **Loss**: negative cosine similarity on the masked frames, per stream,
  ``0.3 L_v + 0.7 L_a + 0.7 L_av``.

No text is read: the model trains on audio-visual data alone.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch import nn

from espnet_usr2.model.augmentation import StudentAugmentation, TimeMasks
from espnet_usr2.model.encoder import RelPosTransformerEncoder
from espnet_usr2.model.encoder_stack import EncoderStack
from espnet_usr2.model.frontends import AbsModalityFrontend
from espnet_usr2.model.fusion import ConcatProjectionFusion
from espnet_usr2.model.pretrain_masking import frames_to_samples, span_mask
from espnet_usr2.model.pretrain_probes import SupervisedProbes
from espnet_usr2.semi.teacher import EMATeacher, EMATeacherMixin
from espnet_usr2.utils.masks import valid_mask
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, MODALITIES, VIDEO, merge_modality_values

log = logging.getLogger(__name__)

#: the loss weights of USR's pre-training (``v_rel_weight`` 0.3 for video, 0.7 for a and av)
DEFAULT_PRETRAIN_WEIGHTS = {VIDEO: 0.3, AUDIO: 0.7, AUDIOVISUAL: 0.7}


class MaskedPredictor(nn.Module):
    """Student features -> teacher targets: linear, mask token, transformer blocks, linear.

    The blocks are the encoder's own (relative positions, pre-LN), without LayerScale or
    drop path, as USR's predictor.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 512,
        attention_heads: int = 8,
        linear_units: int = 2048,
        num_blocks: int = 2,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.1,
        mask_token_init_std: float = 0.02,
    ):
        super().__init__()
        self.embed = nn.Linear(input_size, hidden_size)
        self.mask_token = nn.Parameter(torch.randn(hidden_size) * mask_token_init_std)
        self.blocks = RelPosTransformerEncoder(
            output_size=hidden_size,
            attention_heads=attention_heads,
            linear_units=linear_units,
            num_blocks=num_blocks,
            dropout_rate=dropout_rate,
            positional_dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            drop_path_rate=0.0,
            layer_scale_init=0.0,
        )
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """(N, T, input_size), (N,), (N, T) bool -> (N, T, output_size); the mask token replaces
        the embedded student feature wherever ``token_mask`` is true."""
        h = self.embed(x)
        h = torch.where(token_mask[..., None], self.mask_token.to(h.dtype), h)
        h, _, _ = self.blocks(h, lengths)
        return self.out(h)


def instance_normalise(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(B, T, D) -> zero mean, unit variance per utterance and channel over its valid frames.

    Padding does not enter the statistics and is zero in the output.
    """
    valid = valid_mask(lengths, x.size(1))[..., None].to(x.dtype)
    count = valid.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * valid).sum(1, keepdim=True) / count
    var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / count
    return (x - mean) * torch.rsqrt(var + eps) * valid


def layer_averaged_targets(
    block_outputs: List[torch.Tensor], lengths: torch.Tensor, eps: float = 1e-5
) -> Tuple[torch.Tensor, torch.Tensor]:
    """USR's targets: the mean of the blocks' outputs, instance-normalised; also the raw mean."""
    average = torch.stack(block_outputs).mean(0)
    return instance_normalise(average, lengths, eps), average


class USR2PretrainModel(EncoderStack, EMATeacherMixin, AbsESPnetModel):
    """Masked prediction of an EMA encoder teacher's layer-averaged audio-visual features.

    ``USR2Task.build_model`` builds the parts from the same ``ClassChoices`` as the
    recognition model (``audio_frontend``, ``video_frontend``, ``fusion``, ``encoder``,
    ``augmentation``: only its crop and flip are used; no decoder) and passes ``model_conf``
    as the keyword arguments after ``augmentation``; ``teacher_conf`` configures the EMA.

    Args:
        mask_prob_video, mask_prob_audio: span start probability (fairseq's ``mask_prob``)
            of the video and audio masks (USR: 0.2, 0.4).
        mask_length: span length in video frames (3).
        min_masks: spans per utterance at least (1).
        require_same_masks: every utterance of a batch gets as many masked frames as the one
            with the fewest (fairseq's ``require_same_masks``, on in USR's pre-training);
            false: each keeps its own count (:mod:`~espnet_usr2.model.pretrain_masking`).
        shared_mask: one mask (drawn with ``mask_prob_audio``) for both streams, as USR's
            pre-training code does; false: independent masks with their own probability.
        modality_weights: loss weights of the v, a and av streams (0.3, 0.7, 0.7).
        predictor_conf: keyword arguments of :class:`MaskedPredictor` (hidden_size 512,
            attention_heads 8, linear_units 2048, num_blocks 2, dropout 0.1).
        target_eps: epsilon of the targets' instance norm.
        collapse_threshold: the end-of-epoch collapse check warns when the standard deviation
            of the targets over time and batch (``target_std``, 1 while healthy) is below this.
        av_length_tolerance: largest audio / video length difference in video frames.
        probes: supervised probes on the detached features (``--probe_conf``, built by the
            task; :mod:`~espnet_usr2.model.pretrain_probes`), trained on the batches' transcripts.
    """

    def __init__(
        self,
        audio_frontend: AbsModalityFrontend,
        video_frontend: AbsModalityFrontend,
        fusion: ConcatProjectionFusion,
        encoder: AbsEncoder,
        augmentation: StudentAugmentation,
        mask_prob_video: float = 0.2,
        mask_prob_audio: float = 0.4,
        mask_length: int = 3,
        min_masks: int = 1,
        require_same_masks: bool = True,
        shared_mask: bool = True,
        modality_weights: Optional[Mapping[str, float]] = None,
        predictor_conf: Optional[dict] = None,
        target_eps: float = 1e-5,
        collapse_threshold: float = 0.1,
        av_length_tolerance: float = 2.0,
        probes: Optional[SupervisedProbes] = None,
    ):
        super().__init__(audio_frontend, video_frontend, fusion, encoder, augmentation, av_length_tolerance)
        for name, value in (("mask_prob_video", mask_prob_video), ("mask_prob_audio", mask_prob_audio)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if mask_length < 1 or min_masks < 0:
            raise ValueError(f"mask_length must be >= 1 and min_masks >= 0, got {mask_length}, {min_masks}")
        self.mask_prob = {VIDEO: float(mask_prob_video), AUDIO: float(mask_prob_audio)}
        self.mask_length = int(mask_length)
        self.min_masks = int(min_masks)
        self.require_same_masks = bool(require_same_masks)
        self.shared_mask = bool(shared_mask)
        self.modality_weights = merge_modality_values(DEFAULT_PRETRAIN_WEIGHTS, modality_weights)
        if any(w < 0 for w in self.modality_weights.values()):
            raise ValueError(f"modality weights must be >= 0, got {self.modality_weights}")
        d_model = encoder.output_size()
        self.predictor = MaskedPredictor(d_model, d_model, **(predictor_conf or {}))
        self.target_eps = target_eps
        self.collapse_threshold = collapse_threshold
        self.probes = probes
        self.teacher: Optional[EMATeacher] = None
        self._epoch_target_std: List[float] = []

    # ------------------------------------------------------------------ teacher
    def teacher_mirror(self) -> EncoderStack:
        """What the teacher copies: the frontends, projections and encoder (not the predictor)."""
        return self.encoder_stack()

    def attach_teacher(self, teacher_conf: Optional[dict] = None) -> None:
        """Add the EMA teacher of the encoder stack (``--teacher_conf``: EMATeacher's arguments)."""
        if self.teacher is not None:
            raise RuntimeError("a teacher is already attached")
        self.teacher = EMATeacher(self.teacher_mirror(), **(teacher_conf or {}))

    # ------------------------------------------------------------------ masks and targets
    def draw_masks(self, lengths: torch.Tensor, max_len: int) -> Dict[str, torch.Tensor]:
        """(B, T) bool masks of the video and audio streams (True: masked)."""
        audio = span_mask(
            lengths, max_len, self.mask_prob[AUDIO], self.mask_length, self.min_masks, self.require_same_masks
        )
        video = (
            audio
            if self.shared_mask
            else span_mask(
                lengths, max_len, self.mask_prob[VIDEO], self.mask_length, self.min_masks, self.require_same_masks
            )
        )
        return {VIDEO: video, AUDIO: audio}

    @torch.no_grad()
    def targets(self, video, video_lengths, speech, speech_lengths) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The teacher's layer-averaged, instance-normalised AV features, the raw average, lengths."""
        blocks, lengths = self.teacher.model.block_outputs(speech, speech_lengths, video, video_lengths, AUDIOVISUAL)
        normalised, raw = layer_averaged_targets(blocks, lengths, self.target_eps)
        return normalised, raw, lengths

    # ------------------------------------------------------------------ loss
    def forward(
        self,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Pre-training loss of one batch; text is read only by the supervised probes.

        Returns ``(loss, stats, B)``; stats: ``loss`` and per stream ``loss_<m>``,
        ``cos_masked_<m>``, ``cos_unmasked_<m>``; ``mask_frac_v`` / ``mask_frac_a`` (masked
        share of the valid frames), ``ema_momentum``, ``target_std`` and ``target_raw_std``
        (std of the normalised / raw targets over time and batch, see :func:`target_spread`);
        with probes ``loss_probe_ctc_<m>``, ``loss_probe_att_<m>``, ``acc_probe_<m>``.
        """
        for name, x, lengths in (("video", video, video_lengths), ("speech", speech, speech_lengths)):
            if x is None or lengths is None:
                raise ValueError(
                    f"pre-training needs '{name}' (audio-visual data): add a {name} file to "
                    f"--train_data_path_and_name_and_type / --valid_data_path_and_name_and_type"
                )
        self.ensure_teacher_initialized()
        view = self.augmentation.crop_and_flip(video, augment=self.training)
        targets, raw, lengths = self.targets(view, video_lengths, speech, speech_lengths)
        masks = self.draw_masks(video_lengths, view.size(1))
        student_masks = TimeMasks(
            video=masks[VIDEO],  # zero after the frontend's normalisation, as USR
            audio=frames_to_samples(masks[AUDIO], self.samples_per_frame, speech.size(1)),
        )
        encoded = self.encode(speech, speech_lengths, view, video_lengths, MODALITIES, masks=student_masks)
        n_frames = targets.size(1)
        valid = valid_mask(lengths, n_frames)
        loss_masks = {VIDEO: masks[VIDEO][:, :n_frames] & valid, AUDIO: masks[AUDIO][:, :n_frames] & valid}
        loss_masks[AUDIOVISUAL] = loss_masks[VIDEO] | loss_masks[AUDIO]

        token_mask = torch.cat([loss_masks[m] for m in MODALITIES])
        predictions = self.predictor(
            torch.cat([encoded[m][0] for m in MODALITIES]), lengths.repeat(len(MODALITIES)), token_mask
        ).chunk(len(MODALITIES), dim=0)
        loss = 0.0
        stats: Dict[str, torch.Tensor] = {}
        for m, prediction in zip(MODALITIES, predictions):
            cos = F.cosine_similarity(prediction.float(), targets.float(), dim=-1)
            loss_m = -_masked_mean(cos, loss_masks[m])
            loss = loss + self.modality_weights[m] * loss_m
            stats[f"loss_{m}"] = loss_m.detach()
            stats[f"cos_masked_{m}"] = -loss_m.detach()
            stats[f"cos_unmasked_{m}"] = _masked_mean(cos.detach(), valid & ~loss_masks[m])
        n_valid = valid.sum().clamp_min(1)
        stats["mask_frac_v"] = loss_masks[VIDEO].sum() / n_valid
        stats["mask_frac_a"] = loss_masks[AUDIO].sum() / n_valid
        stats["ema_momentum"] = torch.tensor(self.teacher.current_momentum())
        stats.update(target_spread(targets, raw, valid))
        if self.probes is not None:
            if text is None or text_lengths is None:  # data without transcripts: nothing to probe
                text_lengths = torch.zeros(video.size(0), dtype=torch.long, device=video.device)
                text = text_lengths[:, None]
            probe_loss, probe_stats = self.probes(encoded, text, text_lengths)
            loss = loss + probe_loss
            stats.update(probe_stats)
        if self.training:
            self._epoch_target_std.append(float(stats["target_std"]))
        stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, video.size(0)), loss.device)

    # ------------------------------------------------------------------ diagnostics
    def end_of_epoch_check(self) -> Optional[float]:
        """Collapse check (called by USR2Trainer after each training epoch).

        Logs the epoch's mean ``target_std`` -- the standard deviation of the normalised
        targets over time and batch, averaged over channels -- and warns when it is below
        ``collapse_threshold``. Instance normalisation keeps it at 1 as long as the teacher's
        features vary over time; it falls towards 0 as channels become constant (variance
        under the norm's epsilon): the teacher then gives the same target for every frame
        and the student learns nothing from matching it. Returns the value (None when no
        training step ran).
        """
        values, self._epoch_target_std = self._epoch_target_std, []
        if not values:
            return None
        target_std = sum(values) / len(values)
        if not math.isfinite(target_std) or target_std < self.collapse_threshold:
            log.warning(
                f"pre-training targets are COLLAPSING: target_std {target_std:.4g} < "
                f"{self.collapse_threshold} (std of the teacher's normalised layer-averaged features over "
                "time and batch; 1 when healthy): the teacher gives nearly constant targets -- lower the "
                "lr, raise the teacher momentum or check the data"
            )
        else:
            log.info(
                f"pre-training collapse check: target_std {target_std:.4g} (warns below {self.collapse_threshold})"
            )
        return target_std

    def collect_feats(self, **kwargs) -> Dict[str, torch.Tensor]:
        """Nothing to collect (the frontends normalise their input); shape files only."""
        return {}


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (NaN when the mask is empty, so an empty set is visible)."""
    count = mask.sum()
    if int(count) == 0:
        return torch.tensor(float("nan"), device=x.device)
    return (x * mask).sum() / count


def target_spread(targets: torch.Tensor, raw: torch.Tensor, valid: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Standard deviation over time and batch (all valid frames), per channel, averaged over channels.

    ``target_std``: of the normalised targets (1 while every channel varies over time, lower
    as channels fall under the norm's epsilon). ``target_raw_std``: of the teacher's raw
    layer average, on the scale of its features.
    """
    if int(valid.sum()) < 2:
        nan = torch.tensor(float("nan"))
        return {"target_std": nan, "target_raw_std": nan}
    return {
        "target_std": targets[valid].float().std(0).mean().detach(),
        "target_raw_std": raw[valid].float().std(0).mean().detach(),
    }
