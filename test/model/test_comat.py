"""COMAT (espnet_usr2/model/comat.py): MAS against brute force, the transfer loss, the PLM readers,
the model wiring (off = unchanged), clear errors for a missing PLM / absent transformers."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch

from espnet_usr2.model.comat import (
    FrameCompressor,
    aligned_cosine_distance,
    build_comat,
    monotonic_alignment_search,
)
from espnet_usr2.model.comat_plm import (
    build_frozen_plm,
    load_hf_encoder,
    pack_rows,
    tokens_to_words,
    words_to_pieces,
)
from espnet_usr2.tasks.config import build_model_from_config
from espnet_usr2.tasks.usr2 import USR2Task


def _brute_force(sim: torch.Tensor) -> tuple:
    """Best score and path over every monotonic path of a (T, L) matrix (each token >= 1 frame)."""
    t_len, l_len = sim.shape
    best, best_path = float("-inf"), None
    for cuts in itertools.combinations(range(1, t_len), l_len - 1):
        bounds = (0, *cuts, t_len)
        path = torch.zeros(t_len, l_len)
        for token, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            path[start:end, token] = 1
        score = float((sim * path).sum())
        if score > best:
            best, best_path = score, path
    return best, best_path


@pytest.mark.parametrize("seed", range(6))
def test_mas_matches_brute_force_on_a_padded_batch(seed):
    gen = torch.Generator().manual_seed(seed)
    b = 4
    token_lengths = torch.randint(1, 5, (b,), generator=gen)
    frame_lengths = token_lengths + torch.randint(0, 5, (b,), generator=gen)
    sim = torch.randn(b, int(frame_lengths.max()) + 1, int(token_lengths.max()) + 2, generator=gen)
    path = monotonic_alignment_search(sim, frame_lengths, token_lengths)
    for i in range(b):
        t, n = int(frame_lengths[i]), int(token_lengths[i])
        best, best_path = _brute_force(sim[i, :t, :n])
        assert torch.equal(path[i, :t, :n], best_path), (seed, i)
        assert float((sim[i] * path[i]).sum()) == pytest.approx(best, abs=1e-5)
        assert path[i, t:].sum() == 0 and path[i, :, n:].sum() == 0  # nothing in the padding


def test_mas_rows_without_a_path_are_empty():
    sim = torch.randn(2, 4, 5)
    path = monotonic_alignment_search(sim, torch.tensor([3, 4]), torch.tensor([5, 0]))
    assert path.sum() == 0


def test_loss_is_zero_for_identical_sequences_and_positive_otherwise():
    x = torch.randn(3, 6, 8)
    lengths = torch.tensor([6, 4, 2])
    distance, feasible = aligned_cosine_distance(x, lengths, x.clone(), lengths)
    assert feasible.all()
    assert torch.allclose(distance, torch.zeros(3), atol=1e-6)
    # each token spoken over several frames (a repeated PLM state) is still a perfect match
    distance, _ = aligned_cosine_distance(x.repeat_interleave(3, dim=1), lengths * 3, x, lengths)
    assert torch.allclose(distance, torch.zeros(3), atol=1e-6)
    distance, _ = aligned_cosine_distance(torch.randn(3, 6, 8), lengths, x, lengths)
    assert (distance > 0.1).all()


def test_compressor_lengths_and_padding_do_not_leak():
    comp = FrameCompressor(4, 3, factor=2)
    x = torch.randn(2, 7, 4)
    lengths = torch.tensor([7, 3])
    y, y_lengths = comp(x, lengths)
    assert y.shape == (2, 4, 3) and y_lengths.tolist() == [4, 2]
    x2 = x.clone()
    x2[1, 3:] = 100.0  # padding of row 1
    y2, _ = comp(x2, lengths)
    assert torch.equal(y[1, :2], y2[1, :2])


def test_tokens_to_words_for_sentencepiece_and_character_lists():
    sp = ["<blank>", "<unk>", "\u2581the", "\u2581c", "at", "s", "<sos/eos>"]
    assert tokens_to_words([2, 3, 4, 5, 6, -1], sp) == ["the", "cats"]
    chars = ["<blank>", "<unk>", "a", "b", "<space>", "<sos/eos>"]
    assert tokens_to_words([2, 3, 4, 3, 1, 2, -1, -1], chars) == ["ab", "ba"]


class _WordPieceTokenizer:
    """A stand-in with the Hugging Face call signature: [CLS] pieces [SEP], 2 pieces per long word."""

    def __call__(self, words, is_split_into_words, padding, truncation, return_tensors, return_special_tokens_mask):
        rows = []
        for ws in words:
            pieces = [1 + len(w) % 5 for w in ws for _ in range(1 + (len(w) > 3))]
            rows.append([100, *pieces, 101])
        n = max(map(len, rows))
        ids = torch.tensor([r + [0] * (n - len(r)) for r in rows])
        attn = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
        special = ((ids == 100) | (ids == 101)).long()
        return {"input_ids": ids, "attention_mask": attn, "special_tokens_mask": special}


def test_words_to_pieces_then_pack_drops_special_tokens():
    batch = words_to_pieces([["the", "cats"], ["a"]], _WordPieceTokenizer())
    hidden = batch["input_ids"].float()[..., None]
    keep = (batch["special_tokens_mask"] == 0) & (batch["attention_mask"] == 1)
    packed, lengths = pack_rows(hidden, keep)
    assert lengths.tolist() == [3, 1]
    assert packed[0, :, 0].tolist() == [4.0, 5.0, 5.0] and packed[1, :1, 0].tolist() == [2.0]


def test_missing_plm_directory_or_file_is_named(tmp_path, token_list):
    missing = tmp_path / "no_such_bert"
    with pytest.raises(FileNotFoundError, match="no_such_bert"):
        build_frozen_plm("hf", token_list, hf_dir=missing)
    with pytest.raises(FileNotFoundError, match="lm_train_config.*nope.yaml"):
        build_frozen_plm("espnet_lm", token_list, lm_train_config=tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="plm must be one of"):
        build_frozen_plm("gpt", token_list)
    with pytest.raises(ValueError, match="unknown keys.*wieght"):
        build_comat({"wieght": 1.0}, token_list, 64)


def test_without_transformers_hf_is_a_clear_error(tmp_path, token_list, monkeypatch):
    (tmp_path / "config.json").write_text('{"hidden_size": 32}')
    plm = build_frozen_plm("hf", token_list, hf_dir=tmp_path)  # the size comes from config.json alone
    assert plm.output_size == 32
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ImportError, match=r"espnet_usr2\[comat\]"):
        load_hf_encoder(tmp_path, token_list)


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory, token_list, write_espnet_lm):
    out = tmp_path_factory.mktemp("comat_lm")
    return {kind: write_espnet_lm(out / kind, token_list, kind=kind) for kind in ("transformer", "rnn")}


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_espnet_lm_states_are_causal_one_per_token(lm_files, token_list, kind):
    config, lm_file = lm_files[kind]
    plm = build_frozen_plm("espnet_lm", token_list, lm_train_config=config, lm_file=lm_file)
    text = torch.tensor([[2, 3, 4, 5], [4, 2, -1, -1]])
    lengths = torch.tensor([4, 2])
    states, out_lengths = plm(text, lengths)
    assert states.shape == (2, 4, plm.output_size) and torch.equal(out_lengths, lengths)
    assert not any(p.requires_grad for p in plm.module.parameters())
    changed = text.clone()
    changed[0, 2] = 6
    states2, _ = plm(changed, lengths)
    assert torch.allclose(states[0, :2], states2[0, :2], atol=1e-6)  # a state has read its prefix only
    assert not torch.allclose(states[0, 2], states2[0, 2])


def _build(tiny_config, token_list, tmp_path, **extra) -> torch.nn.Module:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(token_list) + "\n")
    argv = ["--config", str(tiny_config), "--token_list", str(tokens)]
    for key, value in extra.items():
        argv += [f"--{key}", value]
    args = USR2Task.get_parser().parse_args(argv)
    torch.manual_seed(0)
    return USR2Task.build_model(args)


def test_off_by_default_and_weight_zero_leaves_the_loss_unchanged(
    tiny_config, token_list, tmp_path, lm_files, make_av_batch
):
    config, lm_file = lm_files["transformer"]
    plain = _build(tiny_config, token_list, tmp_path)
    assert plain.comat is None
    zero = _build(
        tiny_config,
        token_list,
        tmp_path,
        comat_conf=f"{{plm: espnet_lm, lm_train_config: {config}, lm_file: {lm_file}, weight: 0.0}}",
    )
    plain_state = plain.state_dict()
    comat_keys = {k for k in zero.state_dict() if k.startswith("comat.")}
    assert comat_keys and set(zero.state_dict()) - comat_keys == set(plain_state)
    assert not any("plm" in k for k in zero.state_dict())  # the frozen PLM is not saved with the model
    for k, v in plain_state.items():
        assert torch.equal(v, zero.state_dict()[k]), k
    batch = make_av_batch([20, 14], [3, 2], len(token_list))
    plain.eval(), zero.eval()
    with torch.no_grad():
        loss_plain, stats_plain, _ = plain(**batch)
        loss_zero, stats_zero, _ = zero(**batch)
    assert torch.equal(loss_plain, loss_zero)
    assert not any("comat" in k for k in stats_plain)
    for m in ("v", "a", "av"):
        assert torch.isfinite(stats_zero[f"loss_comat_{m}"]) and float(stats_zero[f"comat_skipped_{m}"]) == 0.0


def test_comat_term_is_added_and_trains_the_compressor_only(tiny_config, token_list, tmp_path, lm_files, make_av_batch):
    config, lm_file = lm_files["transformer"]
    model = _build(
        tiny_config,
        token_list,
        tmp_path,
        comat_conf=f"{{lm_train_config: {config}, lm_file: {lm_file}, weight: 2.0, modalities: [a]}}",
    )
    batch = make_av_batch([20, 14], [3, 2], len(token_list))
    loss, stats, _ = model(**batch)
    supervised = sum(
        w * (0.1 * stats[f"loss_ctc_{m}"] + 0.9 * stats[f"loss_att_{m}"])
        for m, w in (("v", 0.3), ("a", 0.7), ("av", 0.7))
    )
    assert float(loss.detach()) == pytest.approx(float(supervised + 0.7 * 2.0 * stats["loss_comat_a"]), rel=1e-5)
    assert "loss_comat_v" not in stats
    loss.backward()
    assert model.comat.compressor.proj.weight.grad is not None
    assert all(p.grad is None for p in model.comat.plm.module.parameters())


def _semi_comat_model(tiny_config, token_list, lm_files, semi="usr2", pseudo_labels="true"):
    config, lm_file = lm_files["transformer"]
    comat = f"{{lm_train_config: {config}, lm_file: {lm_file}, pseudo_labels: {pseudo_labels}}}"
    torch.manual_seed(0)
    return build_model_from_config(
        tiny_config, token_list, ["--semi", semi, "--semi_conf", "threshold=0.0", "--comat_conf", comat]
    )


def _mixed(make_av_batch, token_list, n_labelled: int):
    batch = make_av_batch([20, 16, 12, 18], [4, 3, 2, 1], len(token_list))
    labelled = torch.tensor([1] * n_labelled + [0] * (4 - n_labelled)).unsqueeze(1)
    batch["text_lengths"] = torch.where(labelled[:, 0].bool(), batch["text_lengths"], 0)
    batch["text"] = batch["text"].masked_fill(~labelled.bool(), -1)
    return dict(batch, labelled=labelled)


def test_semi_supervised_steps_keep_the_same_comat_keys(tiny_config, token_list, lm_files, make_av_batch):
    model = _semi_comat_model(tiny_config, token_list, lm_files)
    keys = []
    for n_labelled in (2, 0):  # a step without labelled utterances reports NaN for the labelled term
        _, stats, _ = model(**_mixed(make_av_batch, token_list, n_labelled))
        keys.append(set(stats))
        for m in ("v", "a", "av"):
            assert torch.isfinite(stats[f"loss_comat_unl_{m}"])  # threshold 0: every pseudo-label is kept
            assert torch.isfinite(stats[f"loss_comat_{m}"]) == (n_labelled > 0)
    assert keys[0] == keys[1]
    off = _semi_comat_model(tiny_config, token_list, lm_files, pseudo_labels="false")
    _, stats, _ = off(**_mixed(make_av_batch, token_list, 2))
    assert "loss_comat_a" in stats and not any("comat_skipped_unl" in k or "loss_comat_unl" in k for k in stats)
    # DDP (no find_unused_parameters): a step without labelled utterances still reaches the compressor
    loss, _, _ = off(**_mixed(make_av_batch, token_list, 0))
    loss.backward()
    assert all(p.grad is not None for p in off.comat.compressor.parameters())


def test_pseudo_label_comat_needs_usr2(tiny_config, token_list, lm_files):
    with pytest.raises(ValueError, match="pseudo_labels needs collapsed CTC pseudo-labels"):
        _semi_comat_model(tiny_config, token_list, lm_files, semi="usr1")


def test_with_plm_dim_the_plm_is_read_only_at_first_use(tmp_path, token_list):
    missing = tmp_path / "gone" / "config.yaml"
    comat = build_comat({"lm_train_config": str(missing), "plm_dim": 32}, token_list, 64)  # decoding: no PLM
    assert comat.compressor.proj.out_features == 32
    with pytest.raises(FileNotFoundError, match="gone/config.yaml"):
        comat(torch.randn(1, 8, 64), torch.tensor([8]), torch.tensor([[2, 3]]), torch.tensor([2]))
