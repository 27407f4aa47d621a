"""Semi-supervised pieces of USR 2.0: pseudo-labels, confidence masks, unlabelled losses,
mixed sampling and CTC knowledge distillation (one paper concept per module)."""

from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
from espnet_usr2.semi.confidence import (
    ConfidenceConfig,
    ctc_sequence_confidence,
    frame_confidence_mask,
    sequence_confidence_mask,
    token_confidence_mask,
    token_sequence_confidence,
)
from espnet_usr2.semi.ctc_kd import CTCKDConfig, ctc_kd_loss, ctc_kd_objective, select_frames
from espnet_usr2.semi.ctc_pseudo_labels import (
    CTCPseudoLabels,
    FramePseudoLabels,
    ctc_collapse,
    ctc_pseudo_labels,
    frame_pseudo_labels,
    greedy_ctc_frames,
)
from espnet_usr2.semi.mixed_sampling import MixedSamplingConfig, ar_probability, sample_mode, use_ar_mode
from espnet_usr2.semi.pl_losses import (
    PLLossConfig,
    ar_decoder_input,
    ar_mode_loss_terms,
    ctc_driven_decoder_input,
    ctc_driven_loss_terms,
    unlabelled_loss,
    usr_v1_loss_terms,
)
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels, ctc_driven_teacher_forcing

__all__ = [
    "ARDecodingConfig",
    "ar_greedy_pseudo_labels",
    "ConfidenceConfig",
    "ctc_sequence_confidence",
    "frame_confidence_mask",
    "sequence_confidence_mask",
    "token_confidence_mask",
    "token_sequence_confidence",
    "CTCKDConfig",
    "ctc_kd_loss",
    "ctc_kd_objective",
    "select_frames",
    "CTCPseudoLabels",
    "FramePseudoLabels",
    "ctc_collapse",
    "ctc_pseudo_labels",
    "frame_pseudo_labels",
    "greedy_ctc_frames",
    "MixedSamplingConfig",
    "ar_probability",
    "sample_mode",
    "use_ar_mode",
    "PLLossConfig",
    "ar_decoder_input",
    "ar_mode_loss_terms",
    "ctc_driven_decoder_input",
    "ctc_driven_loss_terms",
    "unlabelled_loss",
    "usr_v1_loss_terms",
    "AttentionPseudoLabels",
    "ctc_driven_teacher_forcing",
]
