"""Self-supervised pre-training (model: usr2_pretrain): masks, targets, teacher, predictor."""

from math import comb, floor
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from espnet_usr2.model.pretrain import instance_normalise, layer_averaged_targets
from espnet_usr2.model.pretrain_masking import frames_to_samples, span_mask
from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.tasks.usr2 import USR2Task

SAMPLES_PER_FRAME = 640


def expected_masked_fraction(length: int, mask_prob: float, span: int, min_spans: int = 1) -> float:
    """Exact expectation under fairseq's scheme: k = int(p L / span + U) >= min_spans distinct starts
    from n = L - span positions (k + 1 when that leaves too few); frame t stays unmasked with
    probability C(n - c_t, k) / C(n, k), c_t the starts whose span covers it."""
    x = mask_prob * length / span
    total = 0.0
    for k_raw, weight in ((floor(x), 1.0 - (x - floor(x))), (floor(x) + 1, x - floor(x))):
        k = max(min_spans, k_raw)
        n = length - span if length - span > k else k + 1
        covering = [max(0, min(t, n - 1) - max(0, t - span + 1) + 1) for t in range(length)]
        total += weight * sum(1.0 - comb(n - c, k) / comb(n, k) for c in covering) / length
    return total


@pytest.fixture(scope="module")
def pretrain_config(conf_dir):
    return conf_dir / "pretrain_usr2_tiny.yaml"


def _model(pretrain_config, *extra):
    torch.manual_seed(0)
    args = USR2Task.get_parser().parse_args(["--config", str(pretrain_config), *extra])
    return USR2Task.build_model(args)


@pytest.mark.parametrize("mask_prob", [0.2, 0.4])
@pytest.mark.parametrize("length", [7, 50])
def test_masked_fraction_matches_the_fairseq_expectation(mask_prob, length):
    torch.manual_seed(1)
    draws = 4000
    lengths = torch.full((draws,), length)
    mask = span_mask(lengths, length + 5, mask_prob, 3, min_spans=1)
    assert not mask[:, length:].any()  # never in padding
    assert (mask[:, :length].sum(1) >= 1).all()  # at least one span
    fraction = mask[:, :length].float().mean().item()
    assert abs(fraction - expected_masked_fraction(length, mask_prob, 3)) < 0.01, fraction


def test_masks_come_in_spans_of_the_configured_length():
    torch.manual_seed(2)
    mask = span_mask(torch.tensor([60] * 200), 60, 0.2, 4)
    for row in mask:
        runs, run = [], 0
        for flag in row.tolist() + [False]:
            if flag:
                run += 1
            elif run:
                runs.append(run)
                run = 0
        # overlapping spans merge into longer runs; a run shorter than a span only at the end
        assert all(r >= 4 for r in runs[:-1]) and runs


def test_bad_mask_settings_are_named():
    with pytest.raises(ValueError, match="mask_prob"):
        span_mask(torch.tensor([10]), 10, 1.5, 3)
    with pytest.raises(ValueError, match="span_length"):
        span_mask(torch.tensor([10]), 10, 0.4, 0)


def test_audio_mask_covers_the_samples_of_each_masked_frame():
    frames = torch.tensor([[True, False, True, False]])
    samples = frames_to_samples(frames, SAMPLES_PER_FRAME, 4 * SAMPLES_PER_FRAME + 7)
    assert samples.shape == (1, 4 * SAMPLES_PER_FRAME + 7)
    expected = torch.zeros_like(samples)
    expected[0, :640] = expected[0, 1280:1920] = True
    assert torch.equal(samples, expected)


def test_student_inputs_are_masked_exactly_at_the_masked_frames(pretrain_config, make_av_batch):
    model = _model(pretrain_config, "--model_conf", "shared_mask=false")
    batch = make_av_batch([12, 9], [1, 1], 5)
    seen, drawn = {}, {}
    original_draw = model.draw_masks

    def record_masks(*args):
        drawn.update(original_draw(*args))
        return drawn

    model.draw_masks = record_masks

    def keep_input(name):
        def hook(module, args, kwargs):
            seen[name] = args[0].clone()
            seen[name + "_masked"] = kwargs.get("masked_frames")

        return hook

    model.audio_frontend.register_forward_pre_hook(keep_input("speech"), with_kwargs=True)  # the student's
    model.video_frontend.register_forward_pre_hook(keep_input("video"), with_kwargs=True)
    model.eval()  # centre crop: the student's video is the cropped input
    with torch.no_grad():
        model(**batch)
    audio_zero = (seen["speech"] == 0).view(2, -1, SAMPLES_PER_FRAME).all(-1)
    speech_nonzero = (batch["speech"] != 0).view(2, -1, SAMPLES_PER_FRAME).any(-1)
    assert torch.equal(audio_zero & speech_nonzero, drawn["a"] & speech_nonzero)
    # video: the pixels arrive unmasked; the frontend zeroes the masked frames after normalising
    torch.testing.assert_close(seen["video"], batch["video"][..., 4:92, 4:92])
    assert torch.equal(seen["video_masked"], drawn["v"])
    assert not torch.equal(drawn["v"], drawn["a"])  # independent masks when not shared


@pytest.mark.parametrize("same_count", [True, False])
def test_batch_rule_and_no_span_starts_in_the_last_frames(same_count):
    """USR (fairseq's require_same_masks): every utterance keeps the batch's smallest number of
    masked frames; spans start at most span_length + 1 frames before the end (the last frame
    is never masked)."""
    torch.manual_seed(4)
    lengths = torch.tensor([40, 25, 60, 33] * 50)
    mask = span_mask(lengths, 60, 0.4, 3, min_spans=1, same_count=same_count)
    counts = mask.view(50, 4, 60).sum(-1)
    if same_count:
        assert (counts == counts[:, :1]).all()
    else:
        assert (counts != counts[:, :1]).any()
    last = mask[torch.arange(len(lengths)), lengths - 1]
    assert not last.any()


def test_instance_norm_ignores_padding():
    torch.manual_seed(3)
    x = torch.randn(2, 6, 4) * 3 + 5
    lengths = torch.tensor([6, 4])
    out = instance_normalise(x, lengths, eps=1e-5)
    for i, n in enumerate(lengths.tolist()):
        ref = F.instance_norm(x[i : i + 1, :n].transpose(1, 2), eps=1e-5).transpose(1, 2)[0]
        assert torch.allclose(out[i, :n], ref, atol=1e-5)
    assert torch.equal(out[1, 4:], torch.zeros(2, 4))


def test_targets_are_the_normalised_mean_of_the_teachers_block_outputs(pretrain_config, make_av_batch):
    model = _model(pretrain_config)
    model.ensure_teacher_initialized()
    with torch.no_grad():  # make the teacher differ from the student: targets must come from the teacher
        for p in model.teacher.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    outputs = []
    for block in model.teacher.model.encoder.blocks:
        block.register_forward_hook(lambda m, inp, out: outputs.append(out))
    batch = make_av_batch([10, 7], [1, 1], 5)
    view = model.augmentation.crop_and_flip(batch["video"], augment=False)
    targets, raw, lengths = model.targets(view, batch["video_lengths"], batch["speech"], batch["speech_lengths"])
    assert len(outputs) == 2  # the tiny encoder's blocks, AV stream only
    mean = (outputs[0] + outputs[1]) / 2
    assert torch.allclose(raw, mean, atol=1e-6)
    for i, n in enumerate(lengths.tolist()):
        ref = F.instance_norm(mean[i : i + 1, :n].transpose(1, 2), eps=model.target_eps).transpose(1, 2)[0]
        assert torch.allclose(targets[i, :n], ref, atol=1e-4)
    normalised, average = layer_averaged_targets(outputs, lengths, model.target_eps)
    assert torch.equal(normalised, targets) and torch.equal(average, raw)


def test_teacher_is_an_ema_of_the_encoder_and_gets_no_gradients(pretrain_config, make_av_batch):
    model = _model(pretrain_config, "--teacher_conf", "momentum_start=0.9", "--teacher_conf", "total_steps=10")
    encoder_names = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("audio_frontend.", "video_frontend.", "fusion.", "encoder."))
    }
    assert {n for n, _ in model.teacher.model.named_parameters()} == encoder_names  # no predictor
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    optimizer.register_step_post_hook(lambda *a: model.update_teacher())
    model.train()
    loss, _, _ = model(**make_av_batch([10, 8], [1, 1], 5))
    before = {n: p.detach().clone() for n, p in model.teacher.model.named_parameters()}
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    mu = model.teacher.current_momentum()
    optimizer.step()
    student = dict(model.named_parameters())
    for name, p in model.teacher.model.named_parameters():
        assert torch.allclose(p, mu * before[name] + (1 - mu) * student[name].detach(), atol=1e-6), name
    assert int(model.teacher.num_updates) == 1


def test_predictor_sees_the_mask_token_exactly_at_masked_frames(pretrain_config, make_av_batch):
    model = _model(pretrain_config)
    seen = {}
    model.predictor.blocks.register_forward_pre_hook(lambda m, inp: seen.update(h=inp[0], lengths=inp[1]))
    drawn = {}
    original_draw = model.draw_masks
    model.draw_masks = lambda *a: drawn.update(original_draw(*a)) or drawn
    batch = make_av_batch([11, 11], [1, 1], 5)
    model.train()
    model(**batch)
    h = seen["h"]  # (3B, T, hidden): v, a, av streams
    is_token = (h == model.predictor.mask_token).all(-1)
    v, a = drawn["v"][:, : h.size(1)], drawn["a"][:, : h.size(1)]
    assert torch.equal(is_token, torch.cat([v, a, v | a]))
    assert is_token.any() and not is_token.all()


def test_pretraining_needs_audio_and_video_and_no_semi(pretrain_config, make_av_batch):
    model = _model(pretrain_config)
    batch = make_av_batch([8], [1], 5)
    with pytest.raises(ValueError, match="needs 'speech'"):
        model(video=batch["video"], video_lengths=batch["video_lengths"])
    with pytest.raises(ValueError, match="remove 'semi"):
        _model(pretrain_config, "--semi", "usr2")


def test_recognition_needs_a_token_list(tiny_config):
    args = USR2Task.get_parser().parse_args(["--config", str(tiny_config)])
    with pytest.raises(ValueError, match="needs --token_list"):
        USR2Task.build_model(args)


def test_collapse_check_warns_when_targets_stop_varying(pretrain_config, caplog):
    model = _model(pretrain_config)
    model._epoch_target_std = [0.01, 0.02]
    with caplog.at_level("WARNING"):
        assert model.end_of_epoch_check() == pytest.approx(0.015)
    assert "COLLAPSING" in caplog.text
    caplog.clear()
    model._epoch_target_std = [0.98]
    model.end_of_epoch_check()
    assert "COLLAPSING" not in caplog.text
    assert model.end_of_epoch_check() is None  # nothing since the last check


MINI_CONF = Path(__file__).resolve().parents[2] / "egs2" / "mini_lrs3" / "usr2" / "conf"


@pytest.mark.parametrize(
    "pretrain, train",
    [(f"pretrain_usr2_{s}", f"train_usr2_{s}") for s in ("tiny", "base", "base_plus", "large", "huge")]
    + [("mini:pretrain_usr2_mini", "mini:train_usr2_mini_sup")],
)
def test_pretraining_configs_train_the_encoder_of_their_recognition_config(pretrain, train, conf_dir, token_list):
    """Every tensor the encoder file holds exists with the same shape in the recognition model."""

    def path(name):
        return MINI_CONF / f"{name[5:]}.yaml" if name.startswith("mini:") else conf_dir / f"{name}.yaml"

    parts = ("audio_frontend.", "video_frontend.", "fusion.", "encoder.blocks.")
    with torch.device("meta"):
        pretrain = USR2Task.build_model(USR2Task.get_parser().parse_args(["--config", str(path(pretrain))]))
        recognition = USR2Task.build_model(parse_training_args(path(train), token_list))
    ours = {n: t.shape for n, t in pretrain.state_dict().items() if n.startswith(parts)}
    theirs = {n: t.shape for n, t in recognition.state_dict().items() if n.startswith(parts)}
    assert ours == theirs and ours


def test_warmup_in_epochs_or_steps_not_both():
    from espnet_usr2.train.scheduler import WarmupCosineLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="give one of"):
        WarmupCosineLR(optimizer, warmup_steps=5, warmup_epochs=1)
    assert WarmupCosineLR(optimizer, warmup_epochs=2).warmup_epochs == 2.0


PROBE_OPTS = [
    "--probe_conf",
    "weight=1.0",
    "--decoder_conf",
    "num_blocks=1",
    "--decoder_conf",
    "linear_units=32",
    "--decoder_conf",
    "attention_heads=2",
]


def test_supervised_probes_learn_from_transcripts_without_touching_the_encoder(
    pretrain_config, make_av_batch, token_list, tmp_path
):
    """USR's pre-training probes: CTC heads and a decoder on the detached features."""
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(token_list) + "\n")
    model = _model(pretrain_config, "--token_list", str(tokens), *PROBE_OPTS)
    batch = make_av_batch([12, 9, 10], [3, 2, 2], len(token_list))
    batch["text_lengths"][2] = 0  # a clip without a transcript
    model.train()
    loss, stats, _ = model(**batch)
    for m in ("v", "a", "av"):
        assert torch.isfinite(stats[f"loss_probe_ctc_{m}"]) and torch.isfinite(stats[f"loss_probe_att_{m}"])
    encoded = model.encode(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
    probe_loss, _ = model.probes(encoded, batch["text"], batch["text_lengths"])
    encoder_params = list(model.encoder.parameters()) + list(model.video_frontend.parameters())
    assert all(g is None for g in torch.autograd.grad(probe_loss, encoder_params, allow_unused=True))
    probe_grads = torch.autograd.grad(probe_loss, list(model.probes.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in probe_grads)
    assert not any(k.startswith("probes.") for k, _ in model.teacher.model.named_parameters())
    batch.pop("text"), batch.pop("text_lengths")  # no transcripts at all: NaN statistics, same keys
    _, no_text, _ = model(**batch)
    assert set(no_text) == set(stats) and torch.isnan(no_text["loss_probe_att_av"])


def test_probes_need_a_token_list_and_are_for_pre_training_only(pretrain_config, tiny_config, token_list):
    with pytest.raises(ValueError, match="need --token_list"):
        _model(pretrain_config, *PROBE_OPTS)
    from espnet_usr2.tasks.config import build_model_from_config

    with pytest.raises(ValueError, match="probe_conf is for self-supervised pre-training"):
        build_model_from_config(tiny_config, token_list, ["--probe_conf", "weight=1.0"])
