"""ESPnetUSR2Model: one network for visual, auditory and audio-visual speech recognition.

USR 2.0 paper, Sec. 4.3 "Architecture" and Appendix A.4. Frontends (video ResNet-18 with
a 3-D stem, audio 1-D ResNet-18) feed three projections (v, a, concat-av) into one shared
encoder; CTC heads and one attention decoder (heads per modality, or shared) sit on top.
On labelled data the loss is joint CTC / attention (Appendix B.1, eq. 9; Sec. 4.3 "Loss
weights")

    L_lab = sum_m w_m * (lambda * CTC_m(y) + (1 - lambda) * CE_ls_m([sos] + y -> y + [eos]))

with lambda = ``ctc_weight`` (0.1), label smoothing 0.1 and w_v = 0.3, w_a = w_av = 0.7.
The three streams are stacked along the batch dimension and go through the encoder and
the decoder in one pass each.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from espnet.nets.e2e_asr_common import ErrorCalculator
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch import nn

from espnet_usr2.model import mixed_batch
from espnet_usr2.model.augmentation import StudentAugmentation, TimeMasks
from espnet_usr2.model.comat import COMATLoss
from espnet_usr2.model.decoder import USR2TransformerDecoder
from espnet_usr2.model.encoder_stack import Encoded, EncoderStack
from espnet_usr2.model.frontends import AbsModalityFrontend
from espnet_usr2.model.fusion import ConcatProjectionFusion
from espnet_usr2.model.mixed_batch import MixedBatch, labelled_mask, read_layout
from espnet_usr2.model.padded_ctc import PaddedTargetsCTC
from espnet_usr2.model.token_losses import LabelSmoothingCrossEntropy, decoder_targets, token_accuracy
from espnet_usr2.semi.teacher import EMATeacher, EMATeacherMixin
from espnet_usr2.utils.modalities import (
    AUDIO,
    AUDIOVISUAL,
    MODALITIES,
    VIDEO,
    canonical_modalities,
    canonical_modality,
    merge_modality_values,
)

DEFAULT_MODALITY_WEIGHTS = {VIDEO: 0.3, AUDIO: 0.7, AUDIOVISUAL: 0.7}
SHARED_CTC = "shared"
SUPERVISED_STATS = ("loss_ctc", "loss_att", "acc")
COMAT_STATS = ("loss_comat", "comat_skipped")


class ESPnetUSR2Model(EncoderStack, EMATeacherMixin, AbsESPnetModel):
    """The unified A / V / AV recogniser, trained on labelled and (optionally) unlabelled data.

    ``USR2Task.build_model`` builds the parts from their ``ClassChoices`` and passes the
    keys of ``model_conf`` as the keyword arguments after ``augmentation``.

    Args:
        vocab_size: number of tokens; ``<blank>`` is id 0, ``<sos/eos>`` the last id.
        token_list: the tokens, for the validation CER / WER.
        audio_frontend: raw waveform (B, S) -> features (B, T, D_a), one frame per
            ``samples_per_frame`` samples (640 = one 25 fps video frame at 16 kHz).
        video_frontend: mouth crops (B, T, H, W) -> features (B, T, D_v).
        fusion: the projections into the encoder space: v, a, and concat(v, a) for av.
        encoder: the shared encoder; the modalities are stacked along the batch.
        decoder: the shared attention decoder (output head per modality or shared).
        augmentation: the student's view while training (crop, flip, time masks).
        modalities: what ``forward`` trains and evaluates, a subset of ``("v", "a", "av")``.
        modality_weights: w_m of the total loss (eq. 17), ``{v: 0.3, a: 0.7, av: 0.7}``
            (eq. 18); keys missing here keep these defaults.
        ctc_weight: lambda of the joint CTC / attention loss (eq. 9) on labelled data.
        lsm_weight: label smoothing of the decoder's cross-entropy.
        length_normalized_loss: decoder loss as sum / tokens instead of sum / batch size
            (ESPnet's ``LabelSmoothingLoss`` option).
        per_modality_ctc: one CTC head per modality (USR's layout) or one shared head.
        ctc_conf: keyword arguments of ESPnet's ``CTC`` (e.g. ``dropout_rate``).
        av_length_tolerance: largest audio / video length difference, in video frames,
            that is trimmed away (set from the task option of the same name).
        ignore_id: padding id of the targets.
        sym_space: the word-boundary token for the validation WER (None: ``<space>`` for
            character lists, ``▁`` for SentencePiece pieces).
        sym_blank: the blank token for the validation CER.
        report_cer: compute the validation CER (CTC greedy and decoder argmax).
        report_wer: compute the validation WER (decoder argmax).
    """

    def __init__(
        self,
        vocab_size: int,
        token_list: Union[Tuple[str, ...], List[str]],
        audio_frontend: AbsModalityFrontend,
        video_frontend: AbsModalityFrontend,
        fusion: ConcatProjectionFusion,
        encoder: AbsEncoder,
        decoder: USR2TransformerDecoder,
        augmentation: StudentAugmentation,
        modalities: Sequence[str] = MODALITIES,
        modality_weights: Optional[Mapping[str, float]] = None,
        ctc_weight: float = 0.1,
        lsm_weight: float = 0.1,
        length_normalized_loss: bool = False,
        per_modality_ctc: bool = True,
        ctc_conf: Optional[dict] = None,
        av_length_tolerance: float = 2.0,
        ignore_id: int = -1,
        sym_space: Optional[str] = None,
        sym_blank: str = "<blank>",
        report_cer: bool = True,
        report_wer: bool = True,
    ):
        super().__init__(audio_frontend, video_frontend, fusion, encoder, augmentation, av_length_tolerance)
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if not 0.0 <= lsm_weight < 1.0:
            raise ValueError(f"lsm_weight must be in [0, 1), got {lsm_weight}")
        self.vocab_size = vocab_size
        self.token_list = list(token_list)
        self.blank_id = 0
        self.sos = self.eos = vocab_size - 1  # ESPnet convention: <sos/eos> is the last token
        self.ignore_id = ignore_id
        self.modalities = canonical_modalities(modalities)
        self.modality_weights = _modality_weights(modality_weights, self.modalities)
        self.ctc_weight = ctc_weight
        self.decoder = decoder
        d_model = encoder.output_size()
        ctc_names = MODALITIES if per_modality_ctc else (SHARED_CTC,)
        self.per_modality_ctc = per_modality_ctc
        self.ctc = nn.ModuleDict({m: PaddedTargetsCTC(vocab_size, d_model, **(ctc_conf or {})) for m in ctc_names})
        self.criterion_att = LabelSmoothingCrossEntropy(vocab_size, ignore_id, lsm_weight, length_normalized_loss)
        self.error_calculator = (
            ErrorCalculator(
                self.token_list, sym_space or word_boundary_symbol(self.token_list), sym_blank, report_cer, report_wer
            )
            if report_cer or report_wer
            else None
        )
        # semi-supervised training (paper Sec. 3-4): set by attach_semi_supervised()
        self.teacher: Optional[EMATeacher] = None
        self.unlabelled_objective: Optional[nn.Module] = None
        # COMAT distillation of a PLM into the CTC branch: set by attach_comat()
        self.comat: Optional[COMATLoss] = None

    # ------------------------------------------------------------------ COMAT
    def attach_comat(self, comat: COMATLoss) -> None:
        """Add the COMAT term to the labelled loss (``comat_conf`` of the training config).

        ``comat_conf`` (read by ``USR2Task.build_model``; absent = off, training unchanged):
        ``plm`` (``espnet_lm`` with ``lm_train_config`` / ``lm_file`` of usr2.sh stage 7, or
        ``hf`` with ``hf_dir``, a local Hugging Face directory), ``weight`` (1.0),
        ``compress_factor`` (2), ``modalities`` (default: all), ``plm_dim`` (the PLM's width,
        written by training into config.yaml; when given the PLM is not read until the first
        training step, so decoding needs no PLM), ``pseudo_labels`` (false; true:
        also on unlabelled data with the CTC pseudo-label, ``semi: usr2`` only, statistics
        ``loss_comat_unl_<m>``, ``comat_skipped_unl_<m>``). Each such modality's labelled
        loss becomes ``L_lab^m + weight * L_comat^m`` and the statistics gain ``loss_comat_<m>``
        and ``comat_skipped_<m>`` (NaN in a step without labelled utterances). Nothing of it is
        used at inference; see :mod:`espnet_usr2.model.comat`.
        """
        if self.comat is not None:
            raise RuntimeError("COMAT is already attached")
        if self.teacher is not None:
            raise RuntimeError("attach COMAT before the teacher, so the teacher's copy has the same parameters")
        self.comat = comat

    # ------------------------------------------------------------------ semi-supervised
    def attach_semi_supervised(self, objective: nn.Module, teacher_conf: Optional[dict] = None) -> None:
        """Add the EMA teacher (a copy of this student) and the unlabelled-data objective.

        Args:
            objective: ``USR2Objective`` or ``USR1Objective`` (``--semi``, ``--semi_conf``).
            teacher_conf: ``--teacher_conf``, the keyword arguments of ``EMATeacher``:
                ``momentum_start`` (0.998) and ``momentum_end`` (1.0) of the cosine EMA
                momentum (paper Sec. 3); ``total_steps`` (0: the trainer sets the whole
                run, max_epoch x optimiser steps per epoch); ``validate`` (true: validation
                also reports the teacher's statistics as ``<stat>_teacher``); ``batch_norm``
                (``batch``: the teacher normalises with its own batch's statistics, USR's
                code; ``running``: eval mode with the student's copied running statistics).
        """
        if self.teacher is not None:
            raise RuntimeError("a teacher is already attached")
        if self.comat is not None and self.comat.pseudo_labels and not getattr(objective, "supports_comat", False):
            raise ValueError(
                f"comat_conf.pseudo_labels needs collapsed CTC pseudo-labels (semi: usr2); "
                f"{type(objective).__name__} has none"
            )
        teacher = EMATeacher(self, **(teacher_conf or {}))
        self.unlabelled_objective = objective
        self.teacher = teacher

    def comat_pseudo_label_loss(
        self, m: str, enc: torch.Tensor, enc_lengths: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """``weight * L_comat^m`` with the PLM reading pseudo-labels (rows with length 0 are left
        out), and its statistics; ``(None, {})`` unless ``comat_conf.pseudo_labels`` is on for ``m``.
        Called by the unlabelled objective (``USR2Objective``)."""
        if self.comat is None or not self.comat.pseudo_labels or not self.comat.applies_to(m):
            return None, {}
        loss, stats = self.comat(enc, enc_lengths, tokens, lengths)
        return self.comat.weight * loss, {f"{k}_unl_{m}": v for k, v in stats.items()}

    # ------------------------------------------------------------------ heads
    def ctc_head(self, modality: str) -> CTC:
        """The CTC module (linear + loss) of ``modality``."""
        return self.ctc[canonical_modality(modality) if self.per_modality_ctc else SHARED_CTC]

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        modalities: Optional[Sequence[str]] = None,
        augment: Optional[bool] = None,
        time_masking: bool = True,
        masks: Optional[TimeMasks] = None,
    ) -> Encoded:
        """:meth:`EncoderStack.encode` with this model's defaults: ``modalities`` the ones it
        trains (``self.modalities``), ``augment`` (the student view) while training."""
        return super().encode(
            speech,
            speech_lengths,
            video,
            video_lengths,
            modalities or self.modalities,
            self.training if augment is None else augment,
            time_masking,
            masks,
        )

    # ------------------------------------------------------------------ losses
    def forward(
        self,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        video: Optional[torch.Tensor] = None,
        video_lengths: Optional[torch.Tensor] = None,
        labelled: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Training / validation loss of one batch.

        Without ``labelled`` flags (or when all are 1) this is the supervised joint CTC /
        attention loss (module docstring). A batch mixing labelled and unlabelled
        utterances (``labelled`` from the semi-supervised sampler) gives the total loss of
        the paper's eq. 17: ``sum_m w_m [gamma_m L_unl^m + (1 - gamma_m) L_lab^m]``.

        Args:
            text: (B, L) token ids padded with -1; rows of unlabelled utterances are empty.
            text_lengths: (B,) tokens per utterance.
            speech: (B, S) waveforms and speech_lengths (B,), as in :meth:`encode`.
            video: (B, T, H, W) mouth crops and video_lengths (B,), as in :meth:`encode`.
            labelled: (B,) or (B, 1) flags, 1 for labelled utterances (None: all labelled).

        Returns:
            ``(loss, stats, weight)``: the scalar loss, the logged statistics (per modality
            ``loss_ctc_<m>``, ``loss_att_<m>``, ``acc_<m>``; in validation also CER / WER and
            the teacher's ``<stat>_teacher``; pseudo-label statistics in semi-supervised
            steps), and the batch size B, gathered for ESPnet's trainer.
        """
        if text is None or text_lengths is None:
            raise ValueError(
                "training needs 'text' (the transcripts; empty for unlabelled utterances): add "
                "--train_data_path_and_name_and_type <dir>/text,text,text"
            )
        batch = dict(speech=speech, speech_lengths=speech_lengths, video=video, video_lengths=video_lengths)
        is_labelled = labelled_mask(labelled, text_lengths)
        layout = read_layout(batch, is_labelled, text_lengths)  # the one wait for the device to split it
        if layout.all_labelled:
            losses, stats = self._labelled_losses(batch, text, text_lengths, layout.longest_labelled["text"])
            loss = self._weighted_sum(losses)
            if not self.training:
                stats.update(self._teacher_validation_stats(batch, text, text_lengths))
        else:
            if self.unlabelled_objective is None:
                raise ValueError(
                    "the batch has unlabelled utterances but the model has no semi-supervised objective; "
                    "set 'semi: usr2' (or usr1) in the training config"
                )
            loss, stats = self._semi_supervised_loss(batch, text, text_lengths, is_labelled, layout)
        stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, text.size(0)), loss.device)

    def _labelled_losses(self, batch, text, text_lengths, longest_text: Optional[int] = None):
        """``longest_text``: the longest transcript when the caller knows it (no device read)."""
        longest = int(text_lengths.max()) if longest_text is None else longest_text
        text = text[:, : max(1, longest)]
        encoded = self.encode(**batch)
        return self.supervised_losses(encoded, text, text_lengths)

    def _teacher_validation_stats(self, batch, text, text_lengths) -> Dict[str, torch.Tensor]:
        """The EMA teacher's validation loss and error rates, as ``<stat>_teacher``.

        The teacher is the network that makes the pseudo-labels and is usually the better
        one to decode (``--model_role teacher``); seeing both curves tells whether it is, and
        ``best_model_criterion`` can select on them (e.g. ``valid acc_av_teacher max``).
        Off with ``teacher_conf.validate: false``; absent until the teacher is initialised.
        """
        teacher = self.teacher
        if teacher is None or not teacher.validate or not teacher.is_initialized:
            return {}
        with torch.no_grad():
            losses, stats = teacher.model._labelled_losses(batch, text, text_lengths)
            stats["loss"] = teacher.model._weighted_sum(losses)
        return {f"{name}_teacher": value.detach() for name, value in stats.items()}

    def _semi_supervised_loss(self, batch, text, text_lengths, is_labelled, layout: MixedBatch):
        if layout.any_labelled:
            sup_losses, stats = self._labelled_losses(
                mixed_batch.select(batch, layout, is_labelled, labelled=True),
                mixed_batch.rows(text, layout, is_labelled, labelled=True),
                mixed_batch.rows(text_lengths, layout, is_labelled, labelled=True),
                layout.longest_labelled["text"],
            )
        else:  # a step without labelled utterances: only the unlabelled term (stats as NaN)
            sup_losses = {m: torch.zeros((), device=text.device) for m in self.modalities}
            unused = self._labelled_heads_zero()  # DDP: parameters only labelled losses reach get a gradient
            if self.comat is not None and not self.comat.pseudo_labels:
                unused = unused + self.comat.unused_zero()
            sup_losses = {m: loss + unused for m, loss in sup_losses.items()}
            stats = {
                f"{k}_{m}": torch.tensor(float("nan")) for m in self.modalities for k in self._supervised_stat_names(m)
            }
        if not self.teacher.is_initialized:  # the first semi-supervised step
            self.unlabelled_objective.start_from(self)
        self.ensure_teacher_initialized()
        unl_losses, unl_stats = self.unlabelled_objective(
            student=self,
            teacher=self.teacher.model,
            step=self.teacher.steps_done,
            total_steps=self.teacher.schedule_steps,
            **mixed_batch.select(batch, layout, is_labelled, labelled=False),
        )
        stats.update(unl_stats)
        stats["ema_momentum"] = torch.tensor(self.teacher.current_momentum())
        total = 0.0
        for m in self.modalities:
            gamma = self.unlabelled_objective.unlabelled_weight(m)
            term = gamma * unl_losses[m] + (1.0 - gamma) * sup_losses[m]
            stats[f"loss_total_{m}"] = term.detach()
            total = total + self.modality_weights[m] * term
        return total, stats

    def _labelled_heads_zero(self) -> torch.Tensor:
        """0 through the CTC heads and the decoder's output layers: with unlabelled heads, a step
        without labelled utterances reaches them with no loss, and DDP (without
        find_unused_parameters) needs every parameter to get a gradient."""
        heads = list(self.ctc.parameters()) + list(self.decoder.output_layers.parameters())
        return sum(p.sum() for p in heads) * 0.0

    def _supervised_stat_names(self, m: str) -> Tuple[str, ...]:
        """Names of the labelled statistics of modality ``m`` (the same keys every step: DDP)."""
        if self.comat is not None and self.comat.applies_to(m):
            return SUPERVISED_STATS + COMAT_STATS
        return SUPERVISED_STATS

    def _weighted_sum(self, losses: Dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.modality_weights[m] * losses[m] for m in losses)

    def supervised_losses(
        self, encoded: Encoded, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """L_lab^m = lambda CTC_m + (1 - lambda) CE_m per modality, and statistics."""
        modalities = list(encoded)
        ys_in, ys_out = decoder_targets(text, text_lengths, self.sos, self.eos, self.ignore_id)
        att_logits = self.decoder.forward_modalities(encoded, ys_in, text_lengths + 1)
        losses: Dict[str, torch.Tensor] = {}
        stats: Dict[str, torch.Tensor] = {}
        for m, logits in zip(modalities, att_logits):
            enc, enc_lens = encoded[m]
            loss_ctc = self.ctc_head(m)(enc, enc_lens, text, text_lengths)
            loss_att = self.criterion_att(logits, ys_out)
            losses[m] = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att
            if self.comat is not None and self.comat.applies_to(m):
                loss_comat, comat_stats = self.comat(enc, enc_lens, text, text_lengths)
                losses[m] = losses[m] + self.comat.weight * loss_comat
                stats.update({f"{k}_{m}": v for k, v in comat_stats.items()})
            stats[f"loss_ctc_{m}"] = loss_ctc.detach()
            stats[f"loss_att_{m}"] = loss_att.detach()
            stats[f"acc_{m}"] = token_accuracy(logits.detach(), ys_out, self.ignore_id)
            if not self.training and self.error_calculator is not None:
                stats.update(self._error_rates(m, enc, logits, text))
        return losses, stats

    def _error_rates(
        self, m: str, enc: torch.Tensor, logits: torch.Tensor, text: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Greedy CER of the CTC head and CER / WER of the decoder argmax (validation only)."""
        ctc_hyp = self.ctc_head(m).argmax(enc).cpu()
        cer_ctc = self.error_calculator(ctc_hyp, text.cpu(), is_ctc=True)
        cer, wer = self.error_calculator(logits.argmax(-1).cpu(), text.cpu())
        out = {}
        for name, value in ((f"cer_ctc_{m}", cer_ctc), (f"cer_{m}", cer), (f"wer_{m}", wer)):
            if value is not None:
                out[name] = torch.tensor(float(value))
        return out

    def collect_feats(self, **kwargs) -> Dict[str, torch.Tensor]:
        """Nothing to collect: both frontends normalise their input themselves.

        ``--collect_stats`` still writes the shape files (speech, video, text) that the
        batch samplers use.
        """
        return {}

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def using_modalities(self, modalities: Sequence[str]):
        """Temporarily restrict the modalities that :meth:`forward` trains/evaluates."""
        saved = self.modalities
        self.modalities = canonical_modalities(modalities)
        try:
            yield self
        finally:
            self.modalities = saved


def _modality_weights(weights: Optional[Mapping[str, float]], modalities: Sequence[str]) -> Dict[str, float]:
    merged = merge_modality_values(DEFAULT_MODALITY_WEIGHTS, weights)
    for m in modalities:
        if merged[m] < 0:
            raise ValueError(f"modality weight of {m!r} must be >= 0, got {merged[m]}")
    return {m: merged[m] for m in modalities}


SENTENCEPIECE_BOUNDARY = "\u2581"


def word_boundary_symbol(token_list: Sequence[str]) -> str:
    """The token text that marks word boundaries, for the validation WER.

    Character token lists have ``<space>``; SentencePiece pieces carry the boundary as a
    leading ``▁``, which ESPnet's ErrorCalculator must replace by a space -- with
    ``<space>`` there, every hypothesis would be one long "word" and the WER always 1.
    """
    if "<space>" in token_list:
        return "<space>"
    if any(t.startswith(SENTENCEPIECE_BOUNDARY) for t in token_list):
        return SENTENCEPIECE_BOUNDARY
    return "<space>"
