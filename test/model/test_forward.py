"""Forward / backward of the unified model for A, V and AV on padded batches."""

import pytest
import torch

from espnet_usr2.data.av_sync import AVLengthMismatchError
from espnet_usr2.tasks.config import build_model_from_config

FRAMES = [30, 22, 17]
TOKENS = [6, 3, 4]


@pytest.fixture(scope="module")
def tiny_model(tiny_config, token_list):
    torch.manual_seed(0)
    return build_model_from_config(tiny_config, token_list)


@pytest.mark.parametrize("modalities", [["v"], ["a"], ["av"], ["v", "a", "av"]])
def test_forward_backward_each_modality(make_av_batch, tiny_model, token_list, modalities):
    batch = make_av_batch(FRAMES, TOKENS, len(token_list))
    tiny_model.train()
    tiny_model.zero_grad()
    with tiny_model.using_modalities(modalities):
        loss, stats, weight = tiny_model(**batch)
    assert torch.isfinite(loss).all() and loss.item() > 0
    assert int(weight) == len(FRAMES)
    loss.sum().backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    for m in ("v", "a", "av"):
        assert (f"loss_ctc_{m}" in stats) == (m in modalities)
    # only the frontends a modality needs receive gradient
    video_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.video_frontend.parameters())
    audio_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.audio_frontend.parameters())
    assert video_grad == any(m in ("v", "av") for m in modalities)
    assert audio_grad == any(m in ("a", "av") for m in modalities)


def test_padding_does_not_change_outputs(make_av_batch, tiny_model, token_list):
    """An utterance encodes and decodes the same alone or padded in a batch (eval mode)."""
    batch = make_av_batch(FRAMES, TOKENS, len(token_list), seed=3)
    tiny_model.eval()
    with torch.no_grad():
        together = tiny_model.encode(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
        i, n = 2, FRAMES[2]
        alone = tiny_model.encode(
            batch["speech"][i : i + 1, : n * 640],
            batch["speech_lengths"][i : i + 1],
            batch["video"][i : i + 1, :n],
            batch["video_lengths"][i : i + 1],
        )
    for m in ("v", "a", "av"):
        torch.testing.assert_close(together[m][0][i, :n], alone[m][0][0], atol=2e-4, rtol=1e-4)


def test_validation_reports_error_rates_per_modality(make_av_batch, tiny_model, token_list):
    batch = make_av_batch(FRAMES, TOKENS, len(token_list))
    tiny_model.eval()
    with torch.no_grad():
        _, stats, _ = tiny_model(**batch)
    for m in ("v", "a", "av"):
        for key in ("loss_att", "loss_ctc", "acc", "cer", "cer_ctc", "wer"):
            assert f"{key}_{m}" in stats


def test_modality_weight_scales_only_its_term(make_av_batch, tiny_config, token_list):
    batch = make_av_batch(FRAMES, TOKENS, len(token_list))
    losses = {}
    for w_v in (0.3, 0.0):
        torch.manual_seed(0)
        model = build_model_from_config(
            tiny_config, token_list, ["--model_conf", f"modality_weights={{v: {w_v}, a: 0.7, av: 0.7}}"]
        )
        model.eval()
        with torch.no_grad():
            losses[w_v] = model(**batch)[:2]
    loss_full, stats = losses[0.3]
    loss_no_v, _ = losses[0.0]
    term_v = 0.1 * stats["loss_ctc_v"] + 0.9 * stats["loss_att_v"]
    torch.testing.assert_close(loss_full - loss_no_v, 0.3 * term_v.reshape(1), rtol=1e-4, atol=1e-4)


def test_audio_video_length_disagreement_is_a_clear_error(make_av_batch, tiny_model, token_list):
    batch = make_av_batch([20, 20], [3, 3], len(token_list))
    tiny_model.eval()
    # within tolerance (2 frames): trimmed to the shorter stream
    ok = dict(batch, speech_lengths=torch.tensor([20 * 640, 19 * 640]))
    with torch.no_grad():
        encoded = tiny_model.encode(ok["speech"], ok["speech_lengths"], ok["video"], ok["video_lengths"])
    assert encoded["av"][1].tolist() == [20, 19]
    bad = dict(batch, speech_lengths=torch.tensor([20 * 640, 12 * 640]))
    with pytest.raises(AVLengthMismatchError, match="#1: audio 12 vs video 20"):
        tiny_model(**bad)


def test_missing_input_names_the_modality(make_av_batch, tiny_model, token_list):
    batch = make_av_batch([10], [2], len(token_list))
    del batch["video"], batch["video_lengths"]
    with pytest.raises(ValueError, match="need 'video' input"):
        tiny_model(**batch)
    with tiny_model.using_modalities(["a"]):
        tiny_model(**batch)  # audio-only training needs no video


def test_shared_heads_option(tiny_config, token_list):
    shared = build_model_from_config(
        tiny_config,
        token_list,
        ["--model_conf", "per_modality_ctc=false", "--decoder_conf", "per_modality_output=false"],
    )
    per_modality = build_model_from_config(tiny_config, token_list)
    assert len(shared.ctc) == 1 and len(shared.decoder.output_layers) == 1
    assert len(per_modality.ctc) == 3 and len(per_modality.decoder.output_layers) == 3
    assert shared.ctc_head("v") is shared.ctc_head("a")
    assert per_modality.ctc_head("v") is not per_modality.ctc_head("a")


def test_validation_wer_splits_words_of_sentencepiece_tokens(tiny_config):
    """With SentencePiece pieces ('▁the', 'cat') the WER must count words, not whole sentences."""
    tokens = ["<blank>", "<unk>", "\u2581the", "\u2581cat", "s", "\u2581sat", "<sos/eos>"]
    model = build_model_from_config(tiny_config, tokens, ["--token_type", "bpe"])
    ref = torch.tensor([[2, 3, 4, 5]])  # "the cats sat"
    hyp = torch.tensor([[2, 3, 0, 5]])  # "the cat sat" (blank dropped): one substituted word of three
    _, wer = model.error_calculator(hyp, ref)
    assert wer == pytest.approx(1 / 3)


def test_usrs_audio_padding_enters_the_training_batch_statistics():
    """zero_padding false (USR's code, the paper configs): padded steps keep what the
    convolutions give them, and with batch statistics that changes every clip of a padded
    batch, full-length ones too; without padding the two settings are the same function."""
    import copy

    from espnet_usr2.model.frontends import ResNet1DAudioFrontend

    torch.manual_seed(0)
    ours = ResNet1DAudioFrontend(channels=(8, 8, 8, 8), zero_padding=True).train()
    usr = copy.deepcopy(ours)
    usr.zero_padding = False
    speech = torch.randn(2, 20 * 640)
    full = torch.tensor([20 * 640, 20 * 640])
    padded = torch.tensor([20 * 640, 12 * 640])
    speech_padded = speech.clone()
    speech_padded[1, 12 * 640 :] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(ours(speech, full)[0], usr(speech, full)[0])
        assert (ours(speech_padded, padded)[0][0] - usr(speech_padded, padded)[0][0]).abs().max() > 1e-3
