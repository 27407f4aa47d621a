"""usr2_import: released USR 2.0 / USR checkpoints -> this task's model directory.

Checkpoints are built from the released parameter names and shapes
(``fixtures/release_layout.json``) with random values, in the forms the releases come in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model
from release_fixture import TINY, Dims, random_release_state, release_shapes, token_units, wrap, write_units

from espnet_usr2.bin import usr2_import, usr2_inference
from espnet_usr2.model.release_checkpoint import (
    RELEASED_SIZES,
    ReleaseCheckpointError,
    check_against_model,
    detect_architecture,
    load_checkpoint_file,
    our_name,
    rename_network,
    split_release_state,
)
from espnet_usr2.tasks.config import build_model_from_config, parse_training_args
from espnet_usr2.tasks.release_import import default_config, import_release, training_args
from espnet_usr2.tasks.usr2 import USR2Task

SIZES = [s.key for s in RELEASED_SIZES]


def _placeholder_tokens(n: int):
    return ["<blank>", *[f"u{i}" for i in range(n - 2)], "<sos/eos>"]


# ============================================================================ layout and sizes


@pytest.mark.parametrize("size", SIZES)
def test_every_released_tensor_maps_for_each_size(size):
    """Names and shapes of each released size (meta tensors): the size is detected from the
    shapes and every tensor lands on a tensor of the paper config's model, with nothing missing."""
    dims = Dims.released(size)
    state = wrap(random_release_state(release_shapes(dims), device="meta"), "usr").obj
    release = split_release_state(state)
    assert release.prefix == "model.backbone."
    arch = detect_architecture(release.network)
    assert arch.size is not None and arch.size.key == size
    assert (arch.vocab_size, arch.dunits, arch.idim) == (1049, dims.eunits, 512)
    converted, origin = rename_network(release.network)
    assert len(converted) == len(release.network)  # no two released tensors share a place
    args = training_args(default_config(arch), arch, _placeholder_tokens(1049), bpemodel=None)
    with torch.device("meta"):
        expected = USR2Task.build_model(args).state_dict()
    check_against_model(converted, origin, expected)
    assert len(expected) == len(converted)


def test_base_every_tensor_arrives_at_its_place():
    """Base with random values: loads strictly, each released tensor's values at its new name."""
    network = random_release_state(release_shapes(Dims.released("base")), seed=1)
    wrapped = wrap(network, "usr")
    release = split_release_state(wrapped.obj)
    assert release.ignored == {"target_backbone.* (USR's EMA teacher copy)": 671}
    assert sorted(release.unlabelled_heads) == [
        "out_layer_unlabelled_ctc_av.bias",
        "out_layer_unlabelled_ctc_av.weight",
        "out_layer_unlabelled_v.bias",
        "out_layer_unlabelled_v.weight",
    ]
    converted, _ = rename_network(release.network)
    arch = detect_architecture(release.network)
    model = USR2Task.build_model(training_args(default_config(arch), arch, _placeholder_tokens(1049), None))
    model.load_state_dict(converted, strict=True)
    state = model.state_dict()
    for name, tensor in network.items():
        assert torch.equal(state[our_name(name)], tensor), name


def test_known_names_map_as_the_architectures_correspond():
    assert (
        our_name("encoder.frontend_a.trunk.layer3.1.bn2.running_var")
        == "audio_frontend.trunk.layers.5.conv2.1.running_var"
    )
    assert (
        our_name("encoder.frontend_v.trunk.layer2.0.downsample.0.weight")
        == "video_frontend.trunk.layers.2.shortcut.0.weight"
    )
    assert our_name("encoder.frontend_v.frontend3D.1.running_mean") == "video_frontend.stem.1.running_mean"
    assert our_name("encoder.linear_av.weight") == "fusion.proj.av.weight"
    assert our_name("encoder.encoders.7.gamma_mha") == "encoder.blocks.7.scale_attn.gamma"
    assert our_name("encoder.encoders.7.norm_mha.bias") == "encoder.blocks.7.norm_attn.bias"
    assert our_name("encoder.encoders.0.self_attn.pos_bias_u") == "encoder.blocks.0.attn.pos_bias_u"
    assert our_name("ctc_av.ctc_lo.weight") == "ctc.av.ctc_lo.weight"
    assert our_name("decoder.out_layer_v.bias") == "decoder.output_layers.v.bias"
    assert our_name("decoder.decoders.3.src_attn.linear_k.weight") == "decoder.decoders.3.src_attn.linear_k.weight"
    with pytest.raises(KeyError):
        our_name("encoder.frontend_a.trunk.layer1.2.conv1.weight")  # ResNet-18 has two blocks per stage


# ============================================================================ end to end (tiny size)


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    network = random_release_state(release_shapes(TINY), seed=2)
    torch.save(wrap(network, "lightning").obj, root / "usr2_tiny.ckpt")
    units = write_units(root / "units.txt", token_units(TINY.vocab - 2))
    return root, network, units


def _import(args, capsys):
    usr2_import.main([str(a) for a in args])
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def imported(tiny_release, tmp_path_factory, tiny_config):
    root, network, units = tiny_release
    out = tmp_path_factory.mktemp("imported") / "model"
    report = import_release(root / "usr2_tiny.ckpt", out, units=units, config=tiny_config)
    return out, report


def test_cli_reports_what_it_read_and_wrote(tiny_release, tmp_path, capsys, tiny_config):
    root, _, units = tiny_release
    out = _import(
        [
            "--checkpoint",
            root / "usr2_tiny.ckpt",
            "--units",
            units,
            "--out_dir",
            tmp_path / "m",
            "--config",
            tiny_config,
        ],
        capsys,
    )
    assert "network tensors under 'model._orig_mod.model.backbone.'" in out
    assert "target_backbone.* (USR's EMA teacher copy)" in out
    assert "kept 4 x out_layer_unlabelled_*" in out and "--init_param model.pth unlabelled_heads.pth" in out
    assert "not a released size: d 64, 4 heads, FFN 128, 2 encoder / 1 decoder blocks" in out
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "bpe.model",
        "config.yaml",
        "decode_beam40.yaml",
        "model.pth",
        "tokens.txt",
        "unlabelled_heads.pth",
    ]


def test_imported_config_and_tokens(imported, tiny_release, tiny_config):
    out, _ = imported
    _, _, units = tiny_release
    config = yaml.safe_load((out / "config.yaml").read_text())
    tokens = (out / "tokens.txt").read_text().split("\n")[:-1]
    assert tokens == ["<blank>", *token_units(TINY.vocab - 2), "<sos/eos>"]
    assert config["token_list"] == tokens and config["token_type"] == "bpe"
    assert Path(config["bpemodel"]) == (out / "bpe.model").resolve()
    assert config["audio_frontend_conf"]["normalize_waveform"] is False
    assert config["audio_frontend_conf"]["channels"] == list(TINY.channels)
    assert config["encoder_conf"]["num_blocks"] == TINY.elayers and config["decoder_conf"]["num_blocks"] == 1
    assert config["model_conf"]["per_modality_ctc"] is True
    # the training options are the given config's
    assert config["optim"] == yaml.safe_load(tiny_config.read_text())["optim"]
    decode = yaml.safe_load((out / "decode_beam40.yaml").read_text())
    assert (decode["beam_size"], decode["ctc_weight"], decode["maxlenratio"]) == (40, 0.1, 1.0)


def test_imported_model_loads_strictly_with_every_value(imported, tiny_release):
    out, _ = imported
    _, network, _ = tiny_release
    model, _ = USR2Task.build_model_from_file(out / "config.yaml", out / "model.pth", "cpu")
    saved = torch.load(out / "model.pth")
    assert set(saved) == set(model.state_dict())  # build_model_from_file itself is not strict
    state = model.state_dict()
    for name, tensor in network.items():
        assert torch.equal(state[our_name(name)], tensor), name


def test_unlabelled_heads_of_the_release_initialise_semi_supervised_fine_tuning(imported, tiny_release, tiny_config):
    """USR's out_layer_unlabelled_* land in unlabelled_heads.pth under the objective's names,
    load into a --semi usr2 model beside model.pth, and decoding (config.yaml) never sees them."""
    out, report = imported
    root, network, _ = tiny_release
    release = load_checkpoint_file(root / "usr2_tiny.ckpt")
    heads = torch.load(out / "unlabelled_heads.pth")
    assert report.unlabelled_heads == len(heads) == 4
    model = build_model_from_config(out / "config.yaml", out / "tokens.txt", ["--semi", "usr2"])
    state = {**torch.load(out / "model.pth"), **heads}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("teacher.") or k.startswith("unlabelled_objective.") for k in missing)
    for ours, theirs in (
        ("ctc_heads.av.weight", "out_layer_unlabelled_ctc_av.weight"),
        ("dec_heads.v.bias", "out_layer_unlabelled_v.bias"),
    ):
        expected = release[f"model._orig_mod.model.{theirs}"]
        assert torch.equal(model.unlabelled_objective.state_dict()[ours], expected)
    assert not any(k.startswith("unlabelled_objective.") for k in torch.load(out / "model.pth"))


def test_imported_model_decodes_with_usr2_inference(imported, tmp_path, write_toy_corpus):
    out, _ = imported
    data = tmp_path / "data"
    write_toy_corpus(data, num_utts=3, frames_per_symbol=3)
    usr2_inference.main(
        [
            "--train_config",
            str(out / "config.yaml"),
            "--model_file",
            str(out / "model.pth"),
            "--config",
            str(out / "decode_beam40.yaml"),
            "--beam_size",
            "3",
            "--output_dir",
            str(tmp_path / "dec"),
            "--data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound",
            "--data_path_and_name_and_type",
            f"{data}/video.scp,video,roi_video",
            "--modalities",
            "v",
            "a",
            "av",
            "--num_workers",
            "0",
            "--log_level",
            "WARNING",
        ]
    )
    keys = sorted(line.split()[0] for line in (data / "text").read_text().splitlines())
    vocab = set(token_units(TINY.vocab - 2))
    for modality in ("video", "audio", "audiovisual"):
        for name in ("text", "token", "token_int", "score"):
            lines = (tmp_path / "dec" / modality / name).read_text().splitlines()
            assert sorted(line.split()[0] for line in lines) == keys, (modality, name)
        for line in (tmp_path / "dec" / modality / "token").read_text().splitlines():
            assert set(line.split()[1:]) <= vocab


def _shape_file(path: Path, texts: dict, frames_per_symbol: int) -> Path:
    path.write_text("".join(f"{u} {len(t) * frames_per_symbol},96,96\n" for u, t in sorted(texts.items())))
    return path


def test_usr2_train_fine_tunes_from_the_imported_model(imported, tmp_path, write_toy_corpus, usr2_train):
    """``--config config.yaml --init_param model.pth``: the imported config trains, and with a
    zero learning rate the trained weights are the release's."""
    out, _ = imported
    texts = write_toy_corpus(tmp_path / "train", num_utts=4, frames_per_symbol=3)
    shapes = _shape_file(tmp_path / "shape", texts, 3)
    data = []
    for split in ("train", "valid"):
        for fname, name, ftype in (
            ("wav.scp", "speech", "sound"),
            ("video.scp", "video", "roi_video"),
            ("text", "text", "text"),
        ):
            data += [f"--{split}_data_path_and_name_and_type", f"{tmp_path / 'train' / fname},{name},{ftype}"]
    usr2_train(
        [
            "--config",
            str(out / "config.yaml"),
            "--init_param",
            str(out / "model.pth"),
            "--output_dir",
            str(tmp_path / "exp"),
            "--max_epoch",
            "1",
            "--batch_size",
            "2",
            "--optim_conf",
            "lr=0.0",
            "--train_shape_file",
            str(shapes),
            "--valid_shape_file",
            str(shapes),
            "--num_workers",
            "0",
            "--batch_type",
            "sorted",
            *usr2_train.quiet,
            *data,
        ],
        tmp_path,
    )
    trained = torch.load(tmp_path / "exp" / "1epoch.pth")
    released = torch.load(out / "model.pth")
    params = [k for k in released if "running_" not in k and "num_batches" not in k]
    assert params and all(torch.equal(trained[k], released[k]) for k in params)


# ============================================================================ encoder only


@pytest.mark.parametrize("style", ["ssl", "ssl_stripped"])
def test_encoder_only_init_reaches_student_and_teacher(style, tmp_path, capsys, tiny_config, tiny_release):
    network = random_release_state(release_shapes(TINY), seed=3)
    torch.save(wrap(network, style).obj, tmp_path / "ssl.pth")
    units = ["--units", tiny_release[2]] if style == "ssl" else []  # + the released vocabulary
    out = _import(
        [
            "--checkpoint",
            tmp_path / "ssl.pth",
            "--encoder_only",
            "--out_dir",
            tmp_path / "enc",
            "--config",
            tiny_config,
            *units,
        ],
        capsys,
    )
    assert "encoder only" in out and f"checked against the model of {tiny_config}" in out
    if style == "ssl":
        assert "not part of the encoder (--encoder_only)" in out and "predictor" in out
    init = torch.load(tmp_path / "enc" / "encoder.pth")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == (
        ["bpe.model", "encoder.pth", "tokens.txt"] if units else ["encoder.pth"]
    )
    assert all(k.startswith(("audio_frontend.", "video_frontend.", "fusion.", "encoder.blocks.")) for k in init)
    released_encoder = [k for k in network if k.startswith("encoder.") and not k.startswith("encoder.after_norm.")]
    assert len(init) == len(released_encoder)

    args = parse_training_args(tiny_config, _placeholder_tokens(TINY.vocab), ["--semi", "usr2"])
    model = USR2Task.build_model(args)
    decoder_before = {
        k: v.clone() for k, v in model.state_dict().items() if k.startswith(("decoder.", "encoder.after"))
    }
    load_pretrained_model(str(tmp_path / "enc" / "encoder.pth"), model, ignore_init_mismatch=False)  # --init_param
    assert not bool(model.teacher.initialized)
    model.ensure_teacher_initialized()  # the first semi-supervised step
    state = model.state_dict()
    for name in released_encoder:
        ours = our_name(name)
        assert torch.equal(state[ours], network[name]), name
        assert torch.equal(state[f"teacher.model.{ours}"], network[name]), name
    for k, v in decoder_before.items():
        assert torch.equal(state[k], v), f"{k} must keep its initialisation"


# ============================================================================ errors: nothing written


def _assert_nothing_written(parent: Path, out_name: str = "out") -> None:
    assert not (parent / out_name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{out_name}.")], "staging left behind"


def _save(tmp_path: Path, obj, name: str = "ckpt.pth") -> Path:
    torch.save(obj, tmp_path / name)
    return tmp_path / name


@pytest.fixture
def tiny_network():
    return random_release_state(release_shapes(TINY), seed=4)


@pytest.mark.parametrize(
    "style, extra, message",
    [
        ("usr", "model.mystery_head.weight", r"nor a known part of its training wrapper: model\.mystery_head\.weight"),
        (
            "compiled",
            "_orig_mod.model.backbone.encoder.encoders.0.conv_module.weight",
            r"no place in this model: encoder\.encoders\.0\.conv_module\.weight",
        ),
    ],
    ids=["wrapper", "network"],
)
def test_unknown_tensor_is_an_error_listing_it(
    style, extra, message, tiny_network, tiny_release, tmp_path, tiny_config
):
    state = wrap(tiny_network, style).obj
    state[extra] = torch.zeros(2)
    with pytest.raises(ReleaseCheckpointError, match=message):
        import_release(_save(tmp_path, state), tmp_path / "out", units=tiny_release[2], config=tiny_config)
    _assert_nothing_written(tmp_path)


def test_shape_mismatch_names_the_tensor_and_both_shapes(tiny_network, tiny_release, tmp_path, tiny_config):
    tiny_network["encoder.encoders.1.feed_forward.w_1.weight"] = torch.zeros(96, 64)
    with pytest.raises(
        ReleaseCheckpointError,
        match=r"encoder\.encoders\.1\.feed_forward\.w_1\.weight .*"
        r"shape \(96, 64\) in the checkpoint but \(128, 64\)",
    ):
        import_release(
            _save(tmp_path, wrap(tiny_network, "bare").obj), tmp_path / "out", units=tiny_release[2], config=tiny_config
        )
    _assert_nothing_written(tmp_path)


def test_encoder_that_does_not_fit_the_training_config_is_refused(tiny_network, tmp_path, conf_dir):
    with pytest.raises(
        ReleaseCheckpointError,
        match=r"encoder\.frontend_a\.trunk\.conv1\.weight \(-> audio_frontend"
        r"\.stem\.0\.weight\) has shape \(8, 1, 80\) in the checkpoint "
        r"but \(64, 1, 80\) in the model of .*train_usr2_base\.yaml",
    ):
        import_release(
            _save(tmp_path, wrap(tiny_network, "ssl").obj),
            tmp_path / "out",
            encoder_only=True,
            config=conf_dir / "train_usr2_base.yaml",
        )
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("text", "is not a PyTorch checkpoint"),
        ([1, 2], "holds list, not a state dict"),
        ({"epoch": 3, "optimizer": {"lr": 1}}, "holds a dict with keys"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_gets_a_clear_error(content, message, tiny_release, tmp_path, tiny_config):
    path = tmp_path / "ckpt.pth"
    if content == "text":
        path.write_text("not a model\n")
    else:
        torch.save(content, path)
    with pytest.raises(ReleaseCheckpointError, match=message):
        import_release(path, tmp_path / "out", units=tiny_release[2], config=tiny_config)
    _assert_nothing_written(tmp_path)


def test_other_refusals(tiny_network, tiny_release, tmp_path, capsys, tiny_config):
    ckpt = _save(tmp_path, wrap(tiny_network, "bare").obj)
    units = tiny_release[2]
    wrong_units = write_units(tmp_path / "units9.txt", token_units(9))
    cases = [
        (dict(units=wrong_units, config=tiny_config), "gives 11 tokens .* output layers have 12"),
        (dict(config=tiny_config), "needs --units"),
        (dict(units=units), "match no released size .* give --config"),
        (dict(units=units, config=tiny_config, source="target_backbone"), "holds no EMA teacher"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ReleaseCheckpointError, match=message):
            import_release(ckpt, tmp_path / "out", **kwargs)
        _assert_nothing_written(tmp_path)
    stripped = _save(tmp_path, wrap(tiny_network, "ssl_stripped").obj, "enc.pth")
    with pytest.raises(ReleaseCheckpointError, match="encoder only .* --encoder_only"):
        import_release(stripped, tmp_path / "out", units=units, config=tiny_config)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(SystemExit):  # the CLI: one line, exit status 1
        usr2_import.main(
            [
                "--checkpoint",
                str(ckpt),
                "--units",
                str(units),
                "--out_dir",
                str(tmp_path / "out"),
                "--config",
                str(tiny_config),
            ]
        )
    assert "is not empty (use --overwrite" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    import_release(ckpt, tmp_path / "out", units=units, config=tiny_config, overwrite=True)
    assert (tmp_path / "out" / "model.pth").is_file() and not (tmp_path / "out" / "keep.txt").exists()


def test_teacher_of_a_usr_wrapper_can_be_imported(tiny_network):
    state = wrap(tiny_network, "usr").obj
    state = {
        k: (v + 1 if k.startswith("model.target_backbone.") and v.is_floating_point() else v) for k, v in state.items()
    }
    release = split_release_state(state, source="target_backbone")
    assert release.ignored == {
        "backbone.* (the student: --source backbone)": len(tiny_network),
        "out_layer_unlabelled_* (USR's output heads for the unlabelled losses)": 4,
    }
    assert not release.unlabelled_heads  # the student's, not the teacher's
    name = "encoder.linear_v.weight"
    assert torch.equal(release.network[name], tiny_network[name] + 1)


def test_training_checkpoint_and_plain_state_dict_read_alike(tiny_network, tmp_path):
    lightning = load_checkpoint_file(_save(tmp_path, wrap(tiny_network, "lightning").obj))
    assert "epoch" not in lightning
    a = split_release_state(lightning).network
    b = split_release_state(load_checkpoint_file(_save(tmp_path, wrap(tiny_network, "bare").obj, "b.pth"))).network
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ============================================================================ paper-faithful configs


@pytest.mark.parametrize("size", SIZES)
def test_paper_configs_carry_the_released_choices(size, conf_dir):
    config = conf_dir / f"train_usr2_{size}.yaml"
    args = parse_training_args(config, _placeholder_tokens(1049))
    with torch.device("meta"):
        model = USR2Task.build_model(args)
    assert model.audio_frontend.normalize_waveform is False
    rates = {block.drop_path.drop_prob for block in model.encoder.blocks}
    assert rates == {args.encoder_conf["drop_path_rate"]}  # constant schedule
    assert rates == {dict(base=0.1, base_plus=0.1, large=0.2, huge=0.3)[size]}  # paper Table 6
    assert {m: model.ctc_head(m).dropout_rate for m in ("v", "a", "av")} == {"v": 0.1, "a": 0.1, "av": 0.1}
    assert (model.video_frontend.pixel_mean, model.video_frontend.pixel_std) == (0.421, 0.165)
    assert model.augmentation.crop_size == 88


@pytest.mark.parametrize(
    "name, expected",
    [
        ("decode_beam40.yaml", dict(method="beam", beam_size=40, ctc_weight=0.1, maxlenratio=1.0, minlenratio=0.0)),
        ("decode_beam30.yaml", dict(method="beam", beam_size=30, ctc_weight=0.1, maxlenratio=1.0)),
        ("decode_noise.yaml", dict(method="beam", beam_size=30, ctc_weight=0.1, maxlenratio=0.4)),
        ("decode_ood.yaml", dict(method="greedy_att", maxlenratio=0.4)),
    ],
)
def test_decoding_configs_as_released(name, expected, conf_dir):
    config = yaml.safe_load((conf_dir / name).read_text())
    assert {k: config[k] for k in expected} == expected
    for recipe in ("lrs3", "lrs2", "vox2", "avspeech", "lrs2_lrs3_vox2_avspeech"):
        assert (conf_dir.parents[2] / recipe / "usr2" / "conf" / name).resolve() == (conf_dir / name).resolve()
    # usr2_inference takes the file as --config
    usr2_inference.get_parser().parse_args(
        [
            "--config",
            str(conf_dir / name),
            "--output_dir",
            "x",
            "--train_config",
            "c",
            "--data_path_and_name_and_type",
            "a,b,c",
        ]
    )


def test_imported_release_transcribes_a_video_from_anywhere(imported, tmp_path, capsys):
    """The first thing a user does with a converted release: ``usr2_transcribe VIDEO --model_dir DIR``,
    after moving DIR (config.yaml names bpe.model; the importer's decode_beam40.yaml is used)."""
    import json
    import shutil

    import numpy as np

    from espnet_usr2.bin import usr2_transcribe
    from espnet_usr2.prep.mini_lrs3 import write_mp4
    from espnet_usr2.prep.talking_face import FaceStyle, TalkingFace

    out, _ = imported
    moved = tmp_path / "elsewhere" / "release"
    shutil.copytree(out, moved)
    release_decoding = yaml.safe_load((moved / "decode_beam40.yaml").read_text())
    (moved / "decode_beam40.yaml").write_text(yaml.safe_dump(dict(release_decoding, beam_size=3)))
    n_frames, size = 30, 128
    phones = [("h", 0.1, 0.2), ("@", 0.2, 0.4), ("m", 0.5, 0.7), ("a", 0.7, 1.0)]
    frames = list(TalkingFace(FaceStyle(), size).animate(phones, n_frames))
    wave = (0.1 * np.random.default_rng(0).standard_normal(n_frames * 640)).astype(np.float32)
    write_mp4(tmp_path / "clip.mp4", frames, wave, size)
    status = usr2_transcribe.main(
        [
            str(tmp_path / "clip.mp4"),
            "--model_dir",
            str(moved),
            "--modalities",
            "all",
            "--json",
            str(tmp_path / "out.json"),
            "--log_level",
            "WARNING",
        ]
    )
    capsys.readouterr()
    assert status == 0
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["model"]["model_file"] == str(moved / "model.pth")
    decode = doc["model"]["decode"]  # the search the importer wrote (here with a smaller beam)
    assert decode["beam_size"] == 3 and decode["ctc_weight"] == release_decoding["ctc_weight"]
    assert decode["maxlenratio"] == release_decoding["maxlenratio"]
    assert [r["modality"] for r in doc["results"]] == ["V", "A", "AV"]
    vocab = set(token_units(TINY.vocab - 2))
    for r in doc["results"]:
        assert set(r["tokens"]) <= vocab and r["num_frames"] == n_frames
