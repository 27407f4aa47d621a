"""The unlabelled objectives wired into the model: mixed sampling, views, weights, stats."""

import pytest
import torch

from espnet_usr2.tasks.config import build_model_from_config

FRAMES = [20, 16, 12, 18]
TOKENS = [4, 3, 2, 1]


def _semi_model(tiny_config, token_list, *extra, semi="usr2"):
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, token_list, ["--semi", semi, *extra])
    model.ensure_teacher_initialized()
    return model


@pytest.fixture
def mixed_batch(make_av_batch, token_list):
    """``mixed_batch(n_labelled=2)``: a batch of 4, the first ``n_labelled`` with transcripts."""

    def make(n_labelled: int = 2):
        batch = make_av_batch(FRAMES, TOKENS, len(token_list))
        labelled = torch.tensor([1] * n_labelled + [0] * (len(FRAMES) - n_labelled)).unsqueeze(1)
        batch["text_lengths"] = torch.where(labelled[:, 0].bool(), batch["text_lengths"], 0)
        batch["text"] = batch["text"].masked_fill(~labelled.bool(), -1)
        return dict(batch, labelled=labelled)

    return make


def _forward(model, batch, seed=1):
    torch.manual_seed(seed)  # the student's random crops
    return model(**batch)


@pytest.mark.parametrize("p_ar, ar", [("0.0", 0.0), ("1.0", 1.0)])
def test_mode_follows_p_ar_and_stats_keys_do_not_depend_on_it(mixed_batch, tiny_config, token_list, p_ar, ar):
    model = _semi_model(tiny_config, token_list, "--semi_conf", f"p_ar={p_ar}", "--semi_conf", "threshold=0.0")
    loss, stats, _ = _forward(model, mixed_batch())
    assert stats["pl_mode_ar"].item() == ar
    assert torch.isfinite(loss).all()
    other = _semi_model(tiny_config, token_list, "--semi_conf", f"p_ar={1.0 - float(p_ar)}")
    _, other_stats, _ = _forward(other, mixed_batch())
    assert sorted(stats) == sorted(other_stats)


@pytest.mark.parametrize("schedule, step, expected_p", [("linear", 5, 0.5), ("cosine", 10, 1.0), ("linear", 0, 0.0)])
def test_p_ar_schedule_follows_training_progress(mixed_batch, tiny_config, token_list, schedule, step, expected_p):
    model = _semi_model(
        tiny_config, token_list, "--semi_conf", f"p_ar_schedule={schedule}", "--teacher_conf", "total_steps=10"
    )
    model.teacher.num_updates.fill_(step)
    _, stats, _ = _forward(model, mixed_batch())
    assert stats["p_ar"].item() == pytest.approx(expected_p)
    if expected_p in (0.0, 1.0):
        assert stats["pl_mode_ar"].item() == expected_p


@pytest.mark.parametrize("view, augment", [("augmented", True), ("clean", False)])
def test_teacher_sees_its_own_unmasked_audio_visual_view(mixed_batch, tiny_config, token_list, view, augment):
    """USR's teacher (the default): its own random crop and flip, never time-masked."""
    extra = [] if view == "augmented" else ["--semi_conf", "teacher_view=clean"]
    model = _semi_model(tiny_config, token_list, *extra)
    calls = []
    original = model.teacher.model.encode

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    model.teacher.model.encode = spy
    model.train()
    _forward(model, mixed_batch())
    assert len(calls) == 1
    assert calls[0]["modalities"] == ["av"] and calls[0]["augment"] is augment and calls[0]["time_masking"] is False


def test_keep_fraction_is_logged_under_both_confidence_averages(mixed_batch, tiny_config, token_list):
    """Mostly-blank PLs pass the all-frames average and fail the emitting-frames one; both
    fractions are logged whichever is configured (the configured one also as pl_ctc_keep)."""
    configured = "emitting"
    model = _semi_model(
        tiny_config, token_list, "--semi_conf", "p_ar=0.0", "--semi_conf", f"ctc_confidence_average={configured}"
    )
    probs = torch.full((len(FRAMES), max(FRAMES), len(token_list)), 0.01 / (len(token_list) - 1))
    probs[:, :, 0] = 0.99  # confident blanks ...
    probs[1:, 1, 0], probs[1:, 1, 3] = 0.5 / (len(token_list) - 1), 0.5  # ... and one unsure token
    probs[0, :, 0], probs[0, :, 2] = probs[0, :, 1], 0.99  # row 0: a confident token everywhere
    model.teacher.model.ctc_head("av").log_softmax = lambda enc: probs[:, : enc.size(1)].log()
    _, stats, _ = _forward(model, mixed_batch(n_labelled=0))
    assert stats["pl_ctc_keep_all"].item() == 1.0
    assert stats["pl_ctc_keep_emitting"].item() == 0.25
    assert stats["pl_ctc_keep"].item() == stats[f"pl_ctc_keep_{configured}"].item()


def _frontend_inputs(model) -> dict:
    """Record the (video, speech) each frontend of the student and of the teacher receives, and
    the video frames each is told to mask (``masked_frames``, zeroed after normalisation)."""
    seen = {}

    def recorder(key):
        def hook(_module, args, kwargs):
            seen.setdefault(key, args[0])  # the first call (the unlabelled step has one per network)
            seen.setdefault(key + ("masked",), kwargs.get("masked_frames"))

        return hook

    for who, net in (("student", model), ("teacher", model.teacher.model)):
        for kind, frontend in (("video", net.video_frontend), ("speech", net.audio_frontend)):
            frontend.register_forward_pre_hook(recorder((who, kind)), with_kwargs=True)
    return seen


@pytest.mark.parametrize(
    "semi, view, image_size", [("usr2", "clean", 96), ("usr2", "augmented", 88), ("usr1", "augmented", 88)]
)
def test_teacher_view_is_clean_or_its_own_crop_and_flip_and_never_masked(
    make_av_batch, tiny_config, token_list, semi, view, image_size
):
    masking = [
        f"--augmentation_conf={k}={v}"
        for k, v in (
            ("video_mask_max_s", 0.4),
            ("video_mask_every_s", 0.2),
            ("audio_mask_max_s", 0.2),
            ("audio_mask_every_s", 0.2),
        )
    ]
    model = _semi_model(
        tiny_config,
        token_list,
        "--semi_conf",
        f"teacher_view={view}",
        "--augmentation_conf",
        "flip_prob=1.0",
        *masking,
        semi=semi,
    )
    batch = make_av_batch(FRAMES, TOKENS, len(token_list), image_size=image_size)
    batch = dict(
        batch,
        text_lengths=torch.zeros(len(FRAMES), dtype=torch.long),
        text=torch.full_like(batch["text"], -1),
        labelled=torch.zeros(len(FRAMES), 1),
    )
    seen = _frontend_inputs(model)
    model.train()
    _forward(model, batch)
    # 88x88 frames: the random crop is the whole frame, so the augmented view is the flip
    expected = batch["video"].flip(-1) if view == "augmented" else batch["video"][..., 4:92, 4:92]
    torch.testing.assert_close(seen["teacher", "video"], expected)
    torch.testing.assert_close(seen["teacher", "speech"], batch["speech"])
    assert seen["teacher", "video", "masked"] is None
    # the student's view of the same clips is masked (so masking was on, and not for the teacher)
    assert not torch.equal(seen["student", "speech"], batch["speech"])
    assert seen["student", "video"].shape == expected.shape and seen["student", "video", "masked"].any()


def test_unlabelled_weight_gamma_changes_only_its_modality(mixed_batch, tiny_config, token_list):
    batch = mixed_batch()
    results = {}
    for gamma_v in (0.97, 0.5):
        model = _semi_model(
            tiny_config,
            token_list,
            "--semi_conf",
            "threshold=0.0",
            "--semi_conf",
            f"unlabelled_weights={{v: {gamma_v}}}",
        )
        results[gamma_v] = _forward(model, batch)[:2]
    (loss_a, stats_a), (loss_b, stats_b) = results[0.97], results[0.5]
    for m in ("a", "av"):
        torch.testing.assert_close(stats_a[f"loss_total_{m}"], stats_b[f"loss_total_{m}"])
    lab_v, unl_v = 0.1 * stats_a["loss_ctc_v"] + 0.9 * stats_a["loss_att_v"], stats_a["loss_unl_v"]
    expected = 0.3 * (0.97 - 0.5) * (unl_v - lab_v)
    torch.testing.assert_close((loss_a - loss_b).reshape(()), expected.reshape(()), rtol=1e-4, atol=1e-5)


def test_unlabelled_rows_are_excluded_from_the_labelled_loss(mixed_batch, tiny_config, token_list):
    """Adding unlabelled utterances leaves the labelled statistics untouched."""
    model = _semi_model(tiny_config, token_list)
    model.eval()
    batch = mixed_batch()
    with torch.no_grad():
        _, semi_stats, _ = model(**batch)
        labelled_only = {k: (v[:2] if torch.is_tensor(v) else v) for k, v in batch.items() if k != "labelled"}
        labelled_only["video"] = labelled_only["video"][:, : max(FRAMES[:2])]
        labelled_only["speech"] = labelled_only["speech"][:, : max(FRAMES[:2]) * 640]
        labelled_only["text"] = labelled_only["text"][:, : max(TOKENS[:2])]
        _, sup_stats, _ = model(**labelled_only)
    for key in ("loss_att_av", "loss_ctc_v", "acc_a"):
        torch.testing.assert_close(semi_stats[key], sup_stats[key], rtol=1e-5, atol=1e-5)


def test_confident_pseudo_labels_give_nonzero_unlabelled_loss_and_masks_remove_it(mixed_batch, tiny_config, token_list):
    permissive = _semi_model(tiny_config, token_list, "--semi_conf", "threshold=0.0")
    _, stats, _ = _forward(permissive, mixed_batch())
    assert stats["pl_ctc_keep"].item() == 1.0 and stats["pl_att_keep"].item() == 1.0
    assert all(stats[f"loss_unl_{m}"].item() > 0 for m in ("v", "a", "av"))
    strict = _semi_model(tiny_config, token_list, "--semi_conf", "threshold=1.0")
    _, stats, _ = _forward(strict, mixed_batch())
    assert stats["pl_ctc_keep"].item() == 0.0
    assert all(stats[f"loss_unl_{m}"].item() == 0 for m in ("v", "a", "av"))


def test_ctc_knowledge_distillation_branch(mixed_batch, tiny_config, token_list):
    model = _semi_model(
        tiny_config,
        token_list,
        "--semi_conf",
        "ctc_branch=kd",
        "--semi_conf",
        "ctc_kd_conf={selection: symmetric, symmetric_n: 1, scale: 1.0}",
    )
    loss, stats, _ = _forward(model, mixed_batch())
    assert torch.isfinite(loss).all()
    # teacher == student at the start, but the student sees augmented input: KL > 0
    assert stats["loss_unl_ctc_av"].item() >= 0 and "loss_unl_ctc_pl_av" in stats


@pytest.mark.parametrize("semi", ["usr1", "usr2"])
def test_unlabelled_heads_learn_from_pseudo_labels_and_the_models_heads_do_not(
    mixed_batch, tiny_config, token_list, semi
):
    """USR's out_layer_unlabelled_*: on by default, trained by the unlabelled losses only,
    absent from the teacher (so pseudo-labels come from heads trained on labels)."""
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, token_list, ["--semi", semi, "--semi_conf", "threshold=0.0"])
    loss, stats, _ = _forward(model, mixed_batch())
    loss.sum().backward()
    heads = model.unlabelled_objective
    assert heads.ctc_heads["v"].weight.grad.abs().sum() > 0 and heads.dec_heads["av"].weight.grad.abs().sum() > 0
    # unlabelled data alone reaches the separate heads, never the model's own output layers
    # (they get an exact zero gradient, so DDP sees every parameter used)
    model.zero_grad(set_to_none=True)
    loss, _, _ = _forward(model, mixed_batch(n_labelled=0))
    loss.sum().backward()
    assert heads.ctc_heads["a"].weight.grad.abs().sum() > 0 and heads.dec_heads["v"].weight.grad.abs().sum() > 0
    assert not model.ctc_head("a").ctc_lo.weight.grad.any() and not model.decoder.output_head("a").weight.grad.any()
    assert any(p.grad is not None and p.grad.any() for p in model.decoder.decoders.parameters())
    assert not any(k.startswith("unlabelled_objective.") for k, _ in model.teacher.model.named_parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


def test_unlabelled_heads_start_random_or_as_copies_of_the_labelled_heads(mixed_batch, tiny_config, token_list):
    copies = _semi_model(tiny_config, token_list, "--semi_conf", "unlabelled_heads_init=labelled")
    copies.teacher.initialized.fill_(False)  # as at the first semi-supervised step
    _forward(copies, mixed_batch())
    heads = copies.unlabelled_objective
    assert torch.equal(heads.ctc_heads["v"].weight, copies.ctc_head("v").ctc_lo.weight)
    assert torch.equal(heads.dec_heads["av"].bias, copies.decoder.output_head("av").bias)
    fresh = _semi_model(tiny_config, token_list)
    assert not torch.equal(fresh.unlabelled_objective.ctc_heads["v"].weight, fresh.ctc_head("v").ctc_lo.weight)


@pytest.mark.parametrize(
    "option",
    [
        "p_ar=1.5",
        "threshold=-0.1",
        "alpha=2",
        "ctc_branch=magic",
        "unlabelled_weights={v: 1.5}",
        "teacher_view=noisy",
        "ctc_target_lsm_weight=1.0",
    ],
)
def test_out_of_range_options_fail_at_start_up(tiny_config, token_list, option):
    with pytest.raises(ValueError):
        build_model_from_config(tiny_config, token_list, ["--semi", "usr2", "--semi_conf", option])


def test_unlabelled_batch_without_objective_is_a_clear_error(mixed_batch, tiny_config, token_list):
    model = build_model_from_config(tiny_config, token_list)
    with pytest.raises(ValueError, match="no semi-supervised objective"):
        model(**mixed_batch())
