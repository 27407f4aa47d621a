"""Unlabelled losses of USR 2.0 (eqs. 5, 6, 16) and USR v1 (eqs. 14-15): weights, masks,
label smoothing and normalisation -- through the functions the objectives call
(``*_loss_terms``, then eq. 16 in ``unlabelled_loss``)."""

import pytest
import torch
import torch.nn.functional as F
from espnet.nets.pytorch_backend.transformer.label_smoothing_loss import LabelSmoothingLoss
from espnet2.asr.ctc import CTC

from espnet_usr2.semi.ctc_pseudo_labels import CTCPseudoLabels, FramePseudoLabels
from espnet_usr2.semi.pl_losses import (
    PLLossConfig,
    ar_decoder_input,
    ar_mode_loss_terms,
    ctc_driven_decoder_input,
    ctc_driven_loss_terms,
    ctc_logits_of,
    masked_cross_entropy,
    masked_ctc_loss,
    strip_special,
    unlabelled_loss,
    usr_v1_loss_terms,
)
from espnet_usr2.semi.teacher_forcing import AttentionPseudoLabels
from espnet_usr2.tasks.config import build_model_from_config

V, SOS, EOS = 8, 7, 7


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _mixed(cfg, terms):
    """Eq. 16 over (L_ctc, L_att, details), as the objectives do: (loss, all statistics)."""
    loss_ctc, loss_att, details = terms
    loss, stats = unlabelled_loss(cfg, loss_ctc, loss_att)
    return loss, {**stats, **details}


def ctc_driven_total(ctc_logits, enc_lengths, dec_logits, ctc_pl, att_pl, eos, cfg):
    return _mixed(cfg, ctc_driven_loss_terms(ctc_logits, enc_lengths, dec_logits, ctc_pl, att_pl, eos, cfg))


def ar_mode_total(ctc_logits, enc_lengths, dec_logits, ctc_pl, att_pl, sos, eos, cfg):
    return _mixed(cfg, ar_mode_loss_terms(ctc_logits, enc_lengths, dec_logits, ctc_pl, att_pl, sos, eos, cfg))


@pytest.fixture
def pls():
    """A batch of 3: CTC PLs (row 1 fails its sequence mask), TF attention PLs (L+1)."""
    ctc = CTCPseudoLabels(
        tokens=torch.tensor([[3, 4, 5], [2, 3, -1], [-1, -1, -1]]),
        lengths=torch.tensor([3, 2, 0]),
        confidence=torch.tensor([0.9, 0.5, 0.95]),
        mask=torch.tensor([True, False, True]),
    )
    att_tokens = torch.tensor([[3, 4, 6, EOS], [2, 3, EOS, -1], [EOS, -1, -1, -1]])
    conf = torch.tensor([[0.9, 0.7, 0.95, 0.99], [0.9, 0.9, 0.9, 0.0], [0.85, 0, 0, 0]])
    att = AttentionPseudoLabels(att_tokens, torch.tensor([4, 3, 1]), conf, (conf >= 0.8) & (att_tokens != -1))
    return ctc, att


def _ctc_driven(pls, cfg, seed=0):
    ctc, att = pls
    ctc_logits = _rand(3, 10, V, seed=seed)
    dec_logits = _rand(3, 4, V, seed=seed + 1)
    return ctc_driven_total(ctc_logits, torch.tensor([10, 8, 6]), dec_logits, ctc, att, EOS, cfg)


def test_ctc_target_label_smoothing_is_espnets_on_the_y_ctc_term_only(pls):
    plain = _ctc_driven(pls, PLLossConfig())[1]
    smoothed = _ctc_driven(pls, PLLossConfig(ctc_target_lsm_weight=0.1))[1]
    # y_ctc + [eos] as targets, rows failing the sequence mask ignored, sum / B
    targets = torch.tensor([[3, 4, 5, EOS], [-1, -1, -1, -1], [EOS, -1, -1, -1]])
    dec_logits = _rand(3, 4, V, seed=1)
    for smoothing, stats in ((0.0, plain), (0.1, smoothed)):
        expected = LabelSmoothingLoss(V, -1, smoothing, normalize_length=False)(dec_logits, targets)
        torch.testing.assert_close(stats["loss_unl_att_yctc"], expected)
    assert smoothed["loss_unl_att_yctc"] != plain["loss_unl_att_yctc"]
    torch.testing.assert_close(smoothed["loss_unl_att_yatt"], plain["loss_unl_att_yatt"])
    torch.testing.assert_close(smoothed["loss_unl_ctc"], plain["loss_unl_ctc"])


def test_ctc_driven_beta_changes_only_its_term(pls):
    _, s1 = _ctc_driven(pls, PLLossConfig(beta=0.5))
    _, s2 = _ctc_driven(pls, PLLossConfig(beta=0.2))
    for key in ("loss_unl_ctc", "loss_unl_att_yatt", "loss_unl_att_yctc"):
        torch.testing.assert_close(s1[key], s2[key])
    for beta, s in ((0.5, s1), (0.2, s2)):
        expected = (1 - beta) * s["loss_unl_att_yatt"] + beta * s["loss_unl_att_yctc"]
        torch.testing.assert_close(s["loss_unl_att"], expected)
    assert not torch.allclose(s1["loss_unl_att"], s2["loss_unl_att"])


@pytest.mark.parametrize("lam", [0.1, 0.7])
def test_lambda_mixes_ctc_and_attention(pls, lam):
    loss, s = _ctc_driven(pls, PLLossConfig(ctc_weight=lam))
    torch.testing.assert_close(loss, lam * s["loss_unl_ctc"] + (1 - lam) * s["loss_unl_att"])
    _, s_other = _ctc_driven(pls, PLLossConfig(ctc_weight=0.5))
    torch.testing.assert_close(s["loss_unl_ctc"], s_other["loss_unl_ctc"])
    torch.testing.assert_close(s["loss_unl_att"], s_other["loss_unl_att"])


def test_ctc_driven_terms_by_hand(pls):
    """y_att term = ESPnet label smoothing under the token mask; y_ctc + [eos] term = plain CE
    under the sequence mask; CTC = ESPnet's CTC (sum / B) over kept sequences; all / B."""
    ctc, att = pls
    ctc_logits, dec_logits = _rand(3, 10, V), _rand(3, 4, V, seed=1)
    _, s = ctc_driven_total(ctc_logits, torch.tensor([10, 8, 6]), dec_logits, ctc, att, EOS, PLLossConfig())
    att_targets = att.tokens.masked_fill(~att.mask, -1)
    expected_att = LabelSmoothingLoss(V, -1, 0.1)(dec_logits, att_targets)
    torch.testing.assert_close(s["loss_unl_att_yatt"], expected_att)
    # y_ctc + [eos]; row 1 is masked out, row 2 (empty) only has <eos>
    ctc_targets = torch.tensor([[3, 4, 5, EOS], [-1, -1, -1, -1], [EOS, -1, -1, -1]])
    expected_ctc_ce = (
        F.cross_entropy(dec_logits.reshape(-1, V), ctc_targets.reshape(-1), ignore_index=-1, reduction="sum") / 3
    )
    torch.testing.assert_close(s["loss_unl_att_yctc"], expected_ctc_ce)
    # CTC: rows 0 and 2 kept; ESPnet's CTC on those rows gives their sum / 2
    head = CTC(V, 4)
    kept = [0, 2]
    ref_sum = (
        head.loss_fn(
            ctc_logits[kept].log_softmax(-1).transpose(0, 1),
            torch.tensor([3, 4, 5]),
            torch.tensor([10, 6]),
            torch.tensor([3, 0]),
        )
        * 2
    )
    torch.testing.assert_close(s["loss_unl_ctc"], ref_sum / 3)


def test_label_smoothing_applies_to_y_att_term_only(pls):
    _, s_ls = _ctc_driven(pls, PLLossConfig(lsm_weight=0.1))
    _, s_plain = _ctc_driven(pls, PLLossConfig(lsm_weight=0.0))
    torch.testing.assert_close(s_ls["loss_unl_att_yctc"], s_plain["loss_unl_att_yctc"])
    assert not torch.allclose(s_ls["loss_unl_att_yatt"], s_plain["loss_unl_att_yatt"])


def test_masked_token_contributes_nothing():
    logits = _rand(2, 3, V)
    targets = torch.tensor([[1, 2, 3], [4, 5, -1]])
    keep = torch.tensor([[True, False, True], [True, True, True]])
    a = masked_cross_entropy(logits, targets, keep, 0.1)
    b = masked_cross_entropy(logits, torch.tensor([[1, -1, 3], [4, 5, -1]]), torch.ones(2, 3, dtype=torch.bool), 0.1)
    c = masked_cross_entropy(logits, torch.tensor([[1, 6, 3], [4, 5, -1]]), keep, 0.1)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)  # the masked target's value is irrelevant
    per_token = masked_cross_entropy(logits, targets, keep, 0.1, normalize_length=True)
    torch.testing.assert_close(per_token, a * 2 / 4)  # sum / B -> sum / kept tokens


def test_masked_ctc_loss_all_dropped_is_zero_and_empty_targets_work():
    logits = _rand(2, 6, V, seed=3).requires_grad_()
    lens = torch.tensor([6, 4])
    zero = masked_ctc_loss(
        logits, lens, torch.tensor([[1, 2], [3, -1]]), torch.tensor([2, 1]), torch.tensor([False, False])
    )
    assert zero.item() == 0.0
    empty = masked_ctc_loss(
        logits, lens, torch.zeros(2, 0, dtype=torch.long), torch.tensor([0, 0]), torch.tensor([True, True])
    )
    blank_nll = -(logits.log_softmax(-1)[0, :6, 0].sum() + logits.log_softmax(-1)[1, :4, 0].sum()) / 2
    torch.testing.assert_close(empty, blank_nll)
    empty.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.fixture
def ar_pls():
    ctc = CTCPseudoLabels(
        tokens=torch.tensor([[3, 4], [2, -1]]),
        lengths=torch.tensor([2, 1]),
        confidence=torch.tensor([0.9, 0.9]),
        mask=torch.tensor([True, True]),
    )
    tokens = torch.tensor([[3, 4, 5, EOS], [2, 0, 6, -1]])  # row 1: no eos (step limit), a stray blank id
    conf = torch.tensor([[0.9, 0.9, 0.9, 0.9], [0.9, 0.5, 0.6, 0.0]])
    att = AttentionPseudoLabels(tokens, torch.tensor([4, 3]), conf, (conf >= 0.8) & (tokens != -1))
    return ctc, att


def _ar(ar_pls, cfg):
    ctc, att = ar_pls
    ys_in, ys_lens = ar_decoder_input(att, SOS, EOS)
    return ar_mode_total(
        _rand(2, 9, V), torch.tensor([9, 7]), _rand(2, ys_in.size(1), V, seed=1), ctc, att, SOS, EOS, cfg
    )


def test_ar_decoder_input_is_sos_plus_y_att_without_last(ar_pls):
    ys_in, lens = ar_decoder_input(ar_pls[1], SOS, EOS)
    assert ys_in.tolist() == [[SOS, 3, 4, 5], [SOS, 2, 0, EOS]] and lens.tolist() == [4, 3]
    ys_in, lens = ctc_driven_decoder_input(ar_pls[0], SOS, EOS)
    assert ys_in.tolist() == [[SOS, 3, 4], [SOS, 2, EOS]] and lens.tolist() == [3, 2]


def test_ar_alpha_changes_only_its_term(ar_pls):
    _, s1 = _ar(ar_pls, PLLossConfig(alpha=0.5))
    _, s2 = _ar(ar_pls, PLLossConfig(alpha=0.9))
    for key in ("loss_unl_att", "loss_unl_ctc_yctc", "loss_unl_ctc_yatt"):
        torch.testing.assert_close(s1[key], s2[key])
    for alpha, s in ((0.5, s1), (0.9, s2)):
        expected = (1 - alpha) * s["loss_unl_ctc_yctc"] + alpha * s["loss_unl_ctc_yatt"]
        torch.testing.assert_close(s["loss_unl_ctc"], expected)


def test_ar_ctc_on_y_att_strips_eos_and_blank_and_uses_a_sequence_mask(ar_pls):
    ctc, att = ar_pls
    stripped, lens = strip_special(att.tokens, att.lengths, (EOS, SOS, 0))
    assert stripped.tolist() == [[3, 4, 5], [2, 6, -1]] and lens.tolist() == [3, 2]
    ctc_logits, enc_lens = _rand(2, 9, V), torch.tensor([9, 7])
    ys_in, _ = ar_decoder_input(att, SOS, EOS)
    dec = _rand(2, ys_in.size(1), V, seed=1)
    # "mean": row 1's geometric mean (0.9 * 0.5 * 0.6)^(1/3) < 0.8 -> only row 0 supervises CTC(y_att)
    _, s = ar_mode_total(ctc_logits, enc_lens, dec, ctc, att, SOS, EOS, PLLossConfig(att_ctc_mask="mean"))
    only_row0 = masked_ctc_loss(ctc_logits, enc_lens, stripped, lens, torch.tensor([True, False]))
    torch.testing.assert_close(s["loss_unl_ctc_yatt"], only_row0)
    _, s_none = ar_mode_total(ctc_logits, enc_lens, dec, ctc, att, SOS, EOS, PLLossConfig(att_ctc_mask="none"))
    both = masked_ctc_loss(ctc_logits, enc_lens, stripped, lens, torch.tensor([True, True]))
    torch.testing.assert_close(s_none["loss_unl_ctc_yatt"], both)
    _, s_all = ar_mode_total(ctc_logits, enc_lens, dec, ctc, att, SOS, EOS, PLLossConfig(att_ctc_mask="all"))
    torch.testing.assert_close(s_all["loss_unl_ctc_yatt"], only_row0)
    # decoder: CE_ls on y_att under the token mask
    expected = LabelSmoothingLoss(V, -1, 0.1)(dec, att.tokens.masked_fill(~att.mask, -1))
    torch.testing.assert_close(s["loss_unl_att"], expected)


def test_usr_v1_frame_ce_and_decoupled_attention():
    frame = FramePseudoLabels(
        labels=torch.tensor([[0, 3, 3, 0], [2, 0, -1, -1]]),
        confidence=torch.tensor([[0.9, 0.9, 0.5, 0.9], [0.9, 0.9, 0, 0]]),
        mask=torch.tensor([[True, True, False, True], [True, True, False, False]]),
    )
    att = AttentionPseudoLabels(
        torch.tensor([[3, EOS], [2, EOS]]), torch.tensor([2, 2]), torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool)
    )
    ctc_logits, dec = _rand(2, 4, V), _rand(2, 2, V, seed=1)
    cfg = PLLossConfig(ctc_weight=0.3)
    loss, s = _mixed(cfg, usr_v1_loss_terms(ctc_logits, frame, dec, att, cfg))
    targets = frame.labels.masked_fill(~frame.mask, -1)
    expected_frame = (
        F.cross_entropy(ctc_logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1, reduction="sum") / 2
    )
    torch.testing.assert_close(s["loss_unl_ctc"], expected_frame)  # no collapse, plain CE, sum / B
    torch.testing.assert_close(loss, 0.3 * s["loss_unl_ctc"] + 0.7 * s["loss_unl_att"])


@pytest.fixture(scope="module")
def tiny(tiny_config, token_list):
    torch.manual_seed(0)
    return build_model_from_config(tiny_config, token_list).eval()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(beta=1.5), "beta"),
        (dict(alpha=-0.1), "alpha"),
        (dict(ctc_weight=2.0), "ctc_weight"),
        (dict(lsm_weight=1.0), "lsm_weight"),
        (dict(att_ctc_mask="some"), "att_ctc_mask"),
    ],
)
def test_config_validation_names_the_option(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PLLossConfig(**kwargs)


@pytest.mark.parametrize("all_empty", [False, True])
def test_pipeline_from_teacher_posteriors_to_student_gradients(tiny, all_empty):
    """ctc PLs -> teacher forcing / AR PLs -> both modes' losses for every modality: finite, with gradient."""
    from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
    from espnet_usr2.semi.confidence import ConfidenceConfig
    from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels
    from espnet_usr2.semi.teacher_forcing import ctc_driven_teacher_forcing

    d = tiny.encoder.output_size()
    teacher_enc, lens = _rand(2, 15, d, seed=5), torch.tensor([15, 10])
    log_probs = tiny.ctc_head("av").log_softmax(teacher_enc)
    if all_empty:
        log_probs = torch.zeros_like(log_probs).index_fill(-1, torch.tensor([0]), 10.0).log_softmax(-1)
    ctc = ctc_pseudo_labels(log_probs, lens, ConfidenceConfig(threshold=0.0))
    assert (ctc.lengths == 0).all() == all_empty
    tf = ctc_driven_teacher_forcing(
        tiny.decoder, teacher_enc, lens, ctc.tokens, ctc.lengths, tiny.sos, tiny.eos, threshold=0.0
    )
    ar = ar_greedy_pseudo_labels(tiny.decoder, teacher_enc, lens, tiny.sos, tiny.eos, ARDecodingConfig(), 0.0)
    student = _rand(2, 15, d, seed=6).requires_grad_()
    encoded = {m: (student, lens) for m in ("v", "a", "av")}
    cfg = PLLossConfig()
    for mode, att in (("ctc_driven", tf), ("ar", ar)):
        # as USR2Objective: one stacked decoder pass for all modalities, then eqs. 5 / 6 and 16 per modality
        if mode == "ar":
            ys_in, ys_lens = ar_decoder_input(att, tiny.sos, tiny.eos)
        else:
            ys_in, ys_lens = ctc_driven_decoder_input(ctc, tiny.sos, tiny.eos)
        dec_logits = tiny.decoder.forward_modalities(encoded, ys_in, ys_lens)
        for m, dec in zip(encoded, dec_logits):
            ctc_logits = ctc_logits_of(tiny.ctc_head(m), student)
            if mode == "ar":
                terms = ar_mode_loss_terms(ctc_logits, lens, dec, ctc, att, tiny.sos, tiny.eos, cfg)
            else:
                terms = ctc_driven_loss_terms(ctc_logits, lens, dec, ctc, att, tiny.eos, cfg)
            loss, _ = _mixed(cfg, terms)
            assert torch.isfinite(loss) and loss.item() > 0
            (grad,) = torch.autograd.grad(loss, student, retain_graph=True)
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0
