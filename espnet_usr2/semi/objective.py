"""The unlabelled-data objectives: USR 2.0 (mixed sampling, eqs. 5-6) and USR v1.

One call handles the unlabelled half of a training step:

1. the EMA teacher encodes the audio-visual view (no gradient; ``teacher_view``
   ``augmented``, USR's: its own random crop and flip, never masked; ``clean``: the centre
   crop) and makes the PLs:
   greedy collapsed CTC PLs (eq. 3) with their sequence confidence (eqs. 12-13), and
   attention PLs -- by CTC-driven teacher forcing (eq. 4) or, in AR mode, by greedy
   autoregressive decoding. Mixed sampling (Sec. 4.2) picks the mode of the step with
   probability p_AR from a generator seeded by (seed, step), so every DDP rank agrees;
2. the student encodes the augmented views of all modalities, and each modality learns
   the *same* PLs: eq. 5 (CTC-driven mode) or eq. 6 (AR mode), mixed by eq. 16:
   ``L_unl^m = lambda L_ctc^m + (1 - lambda) L_att^m``;
3. optionally the CTC branch is CTC knowledge distillation with blank selection
   (Hilmes et al., "Analyzing the Importance of Blank for CTC-Based Knowledge
   Distillation"; see ``semi/ctc_kd.py``): ``L_ctc^m <- s KD(p_teacher || p_student^m) + (1 - s) L_ctc^m``.

The model combines the result with the labelled loss as
``sum_m w_m [gamma_m L_unl^m + (1 - gamma_m) L_lab^m]`` (eq. 17); ``unlabelled_weight(m)`` is
gamma_m (0.97 for video, 0.75 for audio and audio-visual, eq. 18).

Both objectives are built by ``USR2Task`` from ``--semi usr2|usr1`` and the keys of
``--semi_conf``; each constructor argument below is one such key.

:class:`USR1Objective` is the USR baseline on equal terms: AR PLs every step, frame-level
CTC PLs with frame-wise cross-entropy (no collapse), CTC head and decoder supervised by
their own PLs, through separate output heads used only for unlabelled data (both objectives
have them by default, as USR's code: ``unlabelled_heads``).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
from espnet_usr2.semi.confidence import CTC_AVERAGES, ConfidenceConfig, check_choice, check_unit_interval
from espnet_usr2.semi.ctc_kd import CTCKDConfig, ctc_kd_objective
from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels, frame_pseudo_labels
from espnet_usr2.semi.mixed_sampling import AR_MODE, MixedSamplingConfig, ar_probability, sample_mode, step_generator
from espnet_usr2.semi.pl_losses import (
    PLLossConfig,
    ar_decoder_input,
    ar_mode_loss_terms,
    ctc_driven_decoder_input,
    ctc_driven_loss_terms,
    ctc_logits_of,
    ctc_projection,
    unlabelled_loss,
    usr_v1_loss_terms,
)
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels, ctc_driven_teacher_forcing
from espnet_usr2.utils.modalities import (
    AUDIO,
    AUDIOVISUAL,
    MODALITIES,
    VIDEO,
    canonical_modality,
    merge_modality_values,
)

DEFAULT_UNLABELLED_WEIGHTS = {VIDEO: 0.97, AUDIO: 0.75, AUDIOVISUAL: 0.75}
DETAIL_TERMS = ("loss_unl_att_yatt", "loss_unl_att_yctc", "loss_unl_ctc_yctc", "loss_unl_ctc_yatt")
NAN = float("nan")
TEACHER_VIEWS = ("clean", "augmented")
HEAD_INITS = ("random", "labelled")
Stats = Dict[str, torch.Tensor]


class _UnlabelledObjective(nn.Module):
    """What both objectives share: gamma_m, the teacher's AV encoding, the unlabelled heads.

    Unlabelled heads (``unlabelled_heads``, USR's ``out_layer_unlabelled_{v,a,av}`` and
    ``out_layer_unlabelled_ctc_{v,a,av}``): every unlabelled loss goes through output layers
    of its own -- a linear d -> V per modality after the decoder (``dec_heads``) and one on the
    encoder output for the CTC branch (``ctc_heads``, no dropout before it, as USR's) -- so the
    model's own heads, which the EMA teacher mirrors and which make the pseudo-labels, learn
    from labels only. They live in this objective: the teacher (a copy of the model taken
    before the objective is attached) has none, and decoding never uses them.
    ``unlabelled_heads_init``: ``random`` (PyTorch's default, USR's) or ``labelled`` (copies of
    the model's heads when semi-supervised training starts: for a run that starts from a
    supervised model, so the heads do not start as noise).
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        unlabelled_weights: Optional[Mapping[str, float]],
        pl_modality: str,
        teacher_view: str = "augmented",
        unlabelled_heads: bool = True,
        unlabelled_heads_init: str = "random",
    ):
        super().__init__()
        weights = merge_modality_values(DEFAULT_UNLABELLED_WEIGHTS, unlabelled_weights)
        for m, value in weights.items():
            check_unit_interval(f"unlabelled_weights[{m}]", value)
        check_choice("teacher_view", teacher_view, TEACHER_VIEWS)
        check_choice("unlabelled_heads_init", unlabelled_heads_init, HEAD_INITS)
        self.unlabelled_weights = weights
        self.pl_modality = canonical_modality(pl_modality)
        self.teacher_view_kind = teacher_view
        self.unlabelled_heads_init = unlabelled_heads_init
        self.ctc_heads = self.dec_heads = None
        if unlabelled_heads:
            self.ctc_heads = nn.ModuleDict({m: nn.Linear(encoder_output_size, vocab_size) for m in MODALITIES})
            self.dec_heads = nn.ModuleDict({m: nn.Linear(encoder_output_size, vocab_size) for m in MODALITIES})

    @classmethod
    def build(cls, semi_conf: Mapping, vocab_size: int, encoder_output_size: int) -> "_UnlabelledObjective":
        """The objective of ``--semi_conf`` for a model of these sizes (how ``USR2Task`` builds it)."""
        return cls(vocab_size=vocab_size, encoder_output_size=encoder_output_size, **semi_conf)

    @torch.no_grad()
    def start_from(self, student) -> None:
        """At the first semi-supervised step: with ``unlabelled_heads_init: labelled`` the
        unlabelled heads become copies of the student's own heads."""
        if self.ctc_heads is None or self.unlabelled_heads_init != "labelled":
            return
        for m in MODALITIES:
            for mine, theirs in (
                (self.ctc_heads[m], ctc_projection(student.ctc_head(m))),
                (self.dec_heads[m], student.decoder.output_head(m)),
            ):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)

    def ctc_head(self, student, m: str) -> nn.Module:
        """The CTC output layer of modality ``m``'s unlabelled losses."""
        return self.ctc_heads[m] if self.ctc_heads is not None else student.ctc_head(m)

    def unlabelled_weight(self, modality: str) -> float:
        """gamma_m of the total loss."""
        return self.unlabelled_weights[canonical_modality(modality)]

    @torch.no_grad()
    def teacher_view(self, teacher, speech, speech_lengths, video, video_lengths) -> Tuple[torch.Tensor, torch.Tensor]:
        """The teacher's encoding of the PL modality's view (``teacher_view``).

        ``clean``: centre crop, no flip, no masking. ``augmented``: a random crop and flip
        of its own (drawn apart from the student's), as USR's code feeds its teacher; never
        time-masked, so audio stays clean either way (audio augmentation is masking only).
        """
        encoded = teacher.encode(
            speech,
            speech_lengths,
            video,
            video_lengths,
            modalities=[self.pl_modality],
            augment=self.teacher_view_kind == "augmented",
            time_masking=False,
        )
        return encoded[self.pl_modality]


class USR2Objective(_UnlabelledObjective):
    """USR 2.0 on unlabelled data: CTC-driven teacher forcing with mixed sampling (Sec. 4).

    ``--semi usr2``; ``vocab_size`` and ``encoder_output_size`` come from the model (they size
    the unlabelled heads), every other argument is a ``--semi_conf`` key. Defaults are the
    paper's, and USR's code where the paper is silent.

    Args:
        vocab_size: output size of the unlabelled heads.
        encoder_output_size: input size of the unlabelled heads.
        p_ar: probability that a step uses AR mode (eq. 6) instead of CTC-driven mode
            (eq. 5); mixed sampling, Sec. 4.2. Used by the ``"constant"`` schedule.
        p_ar_schedule: ``"constant"`` (the paper), or ``"linear"`` / ``"cosine"``: p_AR moves
            from ``p_ar_start`` to ``p_ar_end`` over the run (the adaptive schedule of
            Appendix C.2; the run length comes from the trainer).
        p_ar_start: p_AR at the first step of a linear / cosine schedule.
        p_ar_end: p_AR at the last step of a linear / cosine schedule.
        threshold: confidence threshold tau of eqs. 11-13: token mask of the attention PLs,
            sequence mask of the collapsed CTC PLs.
        ctc_confidence_average: what the eq. 12 average runs over: ``"all"`` valid frames
            or only the ``"emitting"`` (non-blank) ones (``semi/confidence.py``).
        all_blank: confidence of an empty CTC PL: ``"mask"`` (always dropped) or
            ``"frames"`` (the mean over its blank frames).
        ctc_weight: lambda of eq. 16, ``L_unl = lambda L_ctc + (1 - lambda) L_att``.
        alpha: weight of ``CTC(y_att)`` in the CTC loss of AR mode (eq. 6).
        beta: weight of ``CE(dec, y_ctc + [eos])`` in the decoder loss of CTC-driven mode (eq. 5).
        lsm_weight: label smoothing of the ``CE_ls`` terms.
        normalize_length: cross-entropy terms as sum / kept tokens instead of sum / batch size.
        att_ctc_mask: how the token mask of ``y_att`` masks ``CTC(y_att)`` in AR mode:
            ``"mean"`` (eq. 12 on the attention tokens), ``"all"`` or ``"none"`` (``semi/pl_losses.py``).
        ar_max_len_ratio: AR pseudo-labels stop after ``floor(T * ar_max_len_ratio)`` steps
            for T teacher frames (0.2 = USR's T // 5), or at ``<eos>``.
        ar_max_len: an absolute cap on those steps (None: none).
        ar_max_len_over: ``utterance`` (T of each clip, the default) or ``batch`` (T of the
            batch's longest clip for every clip, as USR's code).
        unlabelled_weights: gamma_m of eq. 17 per modality, ``{v: 0.97, a: 0.75, av: 0.75}``
            (eq. 18); keys missing here keep these defaults.
        ctc_branch: ``"pseudo_label"`` (eqs. 5-6) or ``"kd"``: the CTC loss becomes
            ``s KD + (1 - s) L_ctc``, CTC distillation with blank selection (``semi/ctc_kd.py``).
        ctc_kd_conf: options of ``"kd"`` (``CTCKDConfig``): ``selection``, ``scale`` (s),
            ``symmetric_n``, ``blank_threshold``, ``random_ratio``.
        pl_modality: the teacher's view that makes the pseudo-labels (``av``, unmasked).
        teacher_view: the teacher's input: ``"augmented"`` (its own random crop and flip, as
            USR's code, the default; never masked) or ``"clean"`` (centre crop, no flip).
        ctc_target_lsm_weight: label smoothing of ``CE(dec, y_ctc + [eos])`` in eq. 5.
            0.0 (default): plain CE, as eq. 5 writes it; 0.1 smooths it like ``lsm_weight``
            smooths every other attention loss (an open reading, issue 12).
        unlabelled_heads: every unlabelled loss through output layers of its own (USR's code;
            see :class:`_UnlabelledObjective`); false: through the model's own heads, which
            then learn from pseudo-labels too.
        unlabelled_heads_init: ``random`` (USR's) or ``labelled`` (copies of the model's heads
            at the first semi-supervised step).
        seed: seed of the per-step draws (AR or CTC-driven mode; KD's random frames),
            combined with the step number so that every DDP rank draws the same.
    """

    supports_comat = True  # collapsed CTC pseudo-labels for comat_conf.pseudo_labels

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        p_ar: float = 0.5,
        p_ar_schedule: str = "constant",
        p_ar_start: float = 0.0,
        p_ar_end: float = 1.0,
        threshold: float = 0.8,
        ctc_confidence_average: str = "all",
        all_blank: str = "mask",
        ctc_weight: float = 0.1,
        alpha: float = 0.5,
        beta: float = 0.5,
        lsm_weight: float = 0.1,
        normalize_length: bool = False,
        att_ctc_mask: str = "mean",
        ar_max_len_ratio: float = 0.2,
        ar_max_len: Optional[int] = None,
        ar_max_len_over: str = "utterance",
        unlabelled_weights: Optional[Mapping[str, float]] = None,
        ctc_branch: str = "pseudo_label",
        ctc_kd_conf: Optional[dict] = None,
        pl_modality: str = AUDIOVISUAL,
        teacher_view: str = "augmented",
        ctc_target_lsm_weight: float = 0.0,
        unlabelled_heads: bool = True,
        unlabelled_heads_init: str = "random",
        seed: int = 42,
    ):
        super().__init__(
            vocab_size,
            encoder_output_size,
            unlabelled_weights,
            pl_modality,
            teacher_view,
            unlabelled_heads,
            unlabelled_heads_init,
        )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self.mixing = MixedSamplingConfig(p_ar=p_ar, schedule=p_ar_schedule, p_ar_start=p_ar_start, p_ar_end=p_ar_end)
        self.threshold = threshold
        self.confidence = ConfidenceConfig(threshold=threshold, ctc_average=ctc_confidence_average, all_blank=all_blank)
        self.losses = PLLossConfig(
            ctc_weight=ctc_weight,
            beta=beta,
            alpha=alpha,
            lsm_weight=lsm_weight,
            normalize_length=normalize_length,
            att_ctc_mask=att_ctc_mask,
            att_ctc_threshold=threshold,
            ctc_target_lsm_weight=ctc_target_lsm_weight,
        )
        self.ar_decoding = ARDecodingConfig(
            max_len_ratio=ar_max_len_ratio, max_len=ar_max_len, limit_over=ar_max_len_over
        )
        if ctc_branch not in ("pseudo_label", "kd"):
            raise ValueError(f"ctc_branch must be 'pseudo_label' or 'kd', got {ctc_branch!r}")
        self.ctc_branch = ctc_branch
        self.ctc_kd = CTCKDConfig(**(ctc_kd_conf or {})) if ctc_branch == "kd" else None

    def forward(
        self,
        student,
        teacher,
        step: int,
        total_steps: int = 0,
        speech=None,
        speech_lengths=None,
        video=None,
        video_lengths=None,
    ) -> Tuple[Dict[str, torch.Tensor], Stats]:
        """Per-modality L_unl^m of the unlabelled batch, and statistics (same keys every step)."""
        mode = sample_mode(self.mixing, self.seed, step, total_steps)
        t_enc, t_lens = self.teacher_view(teacher, speech, speech_lengths, video, video_lengths)
        ctc_pl, att_pl, teacher_logp = self._pseudo_labels(teacher, t_enc, t_lens, mode, student.sos, student.eos)
        encoded = student.encode(
            speech, speech_lengths, video, video_lengths, modalities=student.modalities, augment=True
        )
        if mode == AR_MODE:
            ys_in, ys_in_lens = ar_decoder_input(att_pl, student.sos, student.eos)
        else:
            ys_in, ys_in_lens = ctc_driven_decoder_input(ctc_pl, student.sos, student.eos)
        dec_logits = student.decoder.forward_modalities(encoded, ys_in, ys_in_lens, self.dec_heads)
        losses: Dict[str, torch.Tensor] = {}
        stats = _pl_stats(ctc_pl, att_pl, mode, ar_probability(self.mixing, step, max(total_steps, 1)))
        for m, logits in zip(encoded, dec_logits):
            enc, lens = encoded[m]
            losses[m], modality_stats = self._modality_loss(
                student, m, enc, lens, logits, ctc_pl, att_pl, mode, teacher_logp, step
            )
            stats.update({f"{k}_{m}": v for k, v in modality_stats.items()})
            # COMAT on the CTC pseudo-label (comat_conf.pseudo_labels); masked-out PLs count as empty
            comat, comat_stats = student.comat_pseudo_label_loss(
                m, enc, lens, ctc_pl.tokens, torch.where(ctc_pl.mask, ctc_pl.lengths, 0)
            )
            if comat is not None:
                losses[m] = losses[m] + comat
                stats.update(comat_stats)
        return losses, stats

    @torch.no_grad()
    def _pseudo_labels(self, teacher, t_enc, t_lens, mode: str, sos: int, eos: int):
        teacher_logp = teacher.ctc_head(self.pl_modality).log_softmax(t_enc)
        ctc_pl = ctc_pseudo_labels(teacher_logp, t_lens, self.confidence)
        if mode == AR_MODE:
            att_pl = ar_greedy_pseudo_labels(
                teacher.decoder, t_enc, t_lens, sos, eos, self.ar_decoding, self.threshold, modality=self.pl_modality
            )
        else:
            att_pl = ctc_driven_teacher_forcing(
                teacher.decoder,
                t_enc,
                t_lens,
                ctc_pl.tokens,
                ctc_pl.lengths,
                sos,
                eos,
                self.threshold,
                modality=self.pl_modality,
            )
        return ctc_pl, att_pl, teacher_logp

    def _modality_loss(self, student, m, enc, lens, dec_logits, ctc_pl, att_pl, mode, teacher_logp, step):
        ctc_logits = ctc_logits_of(self.ctc_head(student, m), enc)
        if mode == AR_MODE:
            loss_ctc, loss_att, details = ar_mode_loss_terms(
                ctc_logits, lens, dec_logits, ctc_pl, att_pl, student.sos, student.eos, self.losses
            )
        else:
            loss_ctc, loss_att, details = ctc_driven_loss_terms(
                ctc_logits, lens, dec_logits, ctc_pl, att_pl, student.eos, self.losses
            )
        stats = {k: details[k].detach() if k in details else torch.tensor(NAN) for k in DETAIL_TERMS}
        if self.ctc_kd is not None:
            generator = step_generator(self.seed, step)
            mixed = ctc_kd_objective(
                torch.log_softmax(ctc_logits, dim=-1),
                teacher_logp,
                lens,
                self.ctc_kd,
                ctc_loss=loss_ctc,
                generator=generator,
            )
            stats["loss_unl_ctc_pl"] = loss_ctc.detach()
            loss_ctc = mixed
        loss, mix_stats = unlabelled_loss(self.losses, loss_ctc, loss_att)
        stats.update(mix_stats)
        return loss, stats


class USR1Objective(_UnlabelledObjective):
    """USR (v1): AR PLs every step, frame-level CTC PLs, decoupled supervision (eqs. 14-15).

    ``--semi usr1``; ``vocab_size`` and ``encoder_output_size`` come from the model (they
    size the separate heads), every other argument is a ``--semi_conf`` key.

    Args:
        vocab_size: output size of the unlabelled heads.
        encoder_output_size: input size of the unlabelled heads.
        threshold: confidence threshold tau of eq. 11 (frame mask of the CTC PLs, token
            mask of the AR PLs).
        ctc_weight: lambda of eq. 16.
        lsm_weight: label smoothing of the decoder's cross-entropy on AR PLs.
        frame_lsm_weight: label smoothing of the CTC head's frame-wise cross-entropy.
        normalize_length: cross-entropy terms as sum / kept units instead of sum / batch size.
        ar_max_len_ratio: AR pseudo-labels stop after ``floor(T * ar_max_len_ratio)`` steps.
        ar_max_len: an absolute cap on those steps (None: none).
        ar_max_len_over: ``utterance`` (T of each clip, the default) or ``batch`` (T of the
            batch's longest clip for every clip, as USR's code).
        unlabelled_heads: USR's extra CTC and decoder output layers used only for unlabelled
            losses (the model's own heads then learn from labelled data only); the default,
            as USR's code.
        unlabelled_heads_init: ``random`` (USR's) or ``labelled`` (copies of the model's heads).
        unlabelled_weights: gamma_m of eq. 17 per modality (defaults as USR 2.0, eq. 18).
        pl_modality: the teacher's view that makes the pseudo-labels (``av``).
        teacher_view: the teacher's input: ``"augmented"`` (its own random crop and flip, as
            USR's code, the default; never masked) or ``"clean"`` (centre crop, no flip).
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        threshold: float = 0.8,
        ctc_weight: float = 0.1,
        lsm_weight: float = 0.1,
        frame_lsm_weight: float = 0.0,
        normalize_length: bool = False,
        ar_max_len_ratio: float = 0.2,
        ar_max_len: Optional[int] = None,
        ar_max_len_over: str = "utterance",
        unlabelled_heads: bool = True,
        unlabelled_heads_init: str = "random",
        unlabelled_weights: Optional[Mapping[str, float]] = None,
        pl_modality: str = AUDIOVISUAL,
        teacher_view: str = "augmented",
    ):
        super().__init__(
            vocab_size,
            encoder_output_size,
            unlabelled_weights,
            pl_modality,
            teacher_view,
            unlabelled_heads,
            unlabelled_heads_init,
        )
        check_unit_interval("threshold", threshold)
        self.threshold = threshold
        self.losses = PLLossConfig(
            ctc_weight=ctc_weight,
            lsm_weight=lsm_weight,
            frame_lsm_weight=frame_lsm_weight,
            normalize_length=normalize_length,
        )
        self.ar_decoding = ARDecodingConfig(
            max_len_ratio=ar_max_len_ratio, max_len=ar_max_len, limit_over=ar_max_len_over
        )

    def forward(
        self,
        student,
        teacher,
        step: int,
        total_steps: int = 0,
        speech=None,
        speech_lengths=None,
        video=None,
        video_lengths=None,
    ) -> Tuple[Dict[str, torch.Tensor], Stats]:
        t_enc, t_lens = self.teacher_view(teacher, speech, speech_lengths, video, video_lengths)
        with torch.no_grad():
            frame_pl = frame_pseudo_labels(
                teacher.ctc_head(self.pl_modality).log_softmax(t_enc), t_lens, self.threshold
            )
            att_pl = ar_greedy_pseudo_labels(
                teacher.decoder,
                t_enc,
                t_lens,
                student.sos,
                student.eos,
                self.ar_decoding,
                self.threshold,
                modality=self.pl_modality,
            )
        encoded = student.encode(
            speech, speech_lengths, video, video_lengths, modalities=student.modalities, augment=True
        )
        ys_in, ys_in_lens = ar_decoder_input(att_pl, student.sos, student.eos)
        dec_logits = student.decoder.forward_modalities(encoded, ys_in, ys_in_lens, self.dec_heads)
        valid = frame_pl.labels >= 0
        stats: Stats = {
            "pl_frame_keep": (frame_pl.mask.sum() / valid.sum().clamp(min=1)).float(),
            "pl_att_len": att_pl.lengths.float().mean(),
            "pl_att_keep": _token_keep_fraction(att_pl),
        }
        losses: Dict[str, torch.Tensor] = {}
        for m, logits in zip(encoded, dec_logits):
            enc, _ = encoded[m]
            ctc_logits = ctc_logits_of(self.ctc_head(student, m), enc)
            loss_ctc, loss_att, _ = usr_v1_loss_terms(ctc_logits, frame_pl, logits, att_pl, self.losses)
            losses[m], modality_stats = unlabelled_loss(self.losses, loss_ctc, loss_att)
            stats.update({f"{k}_{m}": v for k, v in modality_stats.items()})
        return losses, stats


def _token_keep_fraction(att_pl: AttentionPseudoLabels) -> torch.Tensor:
    total = att_pl.lengths.sum().clamp(min=1)
    return (att_pl.mask.sum() / total).float()


def _pl_stats(ctc_pl, att_pl: AttentionPseudoLabels, mode: str, p_ar: float) -> Stats:
    """Statistics of the teacher's PLs, logged every step.

    ``pl_ctc_keep`` is the fraction of CTC PLs the configured eq. 12 average keeps;
    ``pl_ctc_keep_all`` / ``pl_ctc_keep_emitting`` what each reading would keep on the same
    PLs (same threshold and all-blank policy), whichever is configured.
    """
    keep_by_average = {
        f"pl_ctc_keep_{average}": ctc_pl.mask_by_average[average].float().mean() for average in CTC_AVERAGES
    }
    return {
        **keep_by_average,
        "pl_mode_ar": torch.tensor(float(mode == AR_MODE)),
        "p_ar": torch.tensor(p_ar),
        "pl_ctc_len": ctc_pl.lengths.float().mean(),
        "pl_att_len": att_pl.lengths.float().mean(),
        "pl_ctc_keep": ctc_pl.mask.float().mean(),
        "pl_ctc_conf": ctc_pl.confidence.float().mean(),
        "pl_att_keep": _token_keep_fraction(att_pl),
    }
