"""USR2Speech2Text: arrays in, hypotheses per modality out; the model-directory forms it loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from espnet_usr2.bin import usr2_inference
from espnet_usr2.data.av_sync import AVLengthMismatchError
from espnet_usr2.data.roi_io import load_roi
from espnet_usr2.decode.hyps import DecodeOptions, transcription_search
from espnet_usr2.inference.model_dir import ModelDirError, resolve_model_dir, resolved_train_config
from espnet_usr2.inference.speech2text import USR2Speech2Text, decode_options_from_yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2" / "conf"


def _scp(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def _utterance(data: Path, key: str) -> tuple:
    speech, rate = soundfile.read(_scp(data / "wav.scp")[key])
    assert rate == 16000
    return speech, load_roi(_scp(data / "video.scp")[key])


@pytest.fixture(scope="module")
def forced(decode_setup):
    """The forced model: the decoder says "ab", CTC says "c", whatever the input."""
    config, model_file = decode_setup["forced"]
    return USR2Speech2Text(config, model_file, method="greedy_att")


# ---------------------------------------------------------------------------- arrays


def test_arrays_give_what_usr2_inference_writes(decode_setup, tmp_path):
    config, model_file = decode_setup["random"]
    search = dict(beam_size=3, ctc_weight=0.3, nbest=2)
    usr2_inference.main(
        [
            "--train_config",
            str(config),
            "--model_file",
            str(model_file),
            "--output_dir",
            str(tmp_path / "cli"),
            "--data_path_and_name_and_type",
            f"{decode_setup['data']}/wav.scp,speech,sound",
            "--data_path_and_name_and_type",
            f"{decode_setup['data']}/video.scp,video,roi_video",
            "--modalities",
            "v",
            "a",
            "av",
            "--num_workers",
            "0",
            "--log_level",
            "WARNING",
            *[f"--{k}={v}" for k, v in search.items()],
        ]
    )
    s2t = USR2Speech2Text(config, model_file, **search)
    for key in decode_setup["texts"]:
        results = s2t(*_utterance(decode_setup["data"], key))
        assert list(results) == ["v", "a", "av"]
        for m, long in (("v", "video"), ("a", "audio"), ("av", "audiovisual")):
            assert len(results[m]) == 2  # n-best
            for n, hyp in enumerate(results[m], 1):
                written = {
                    f: _scp(tmp_path / "cli" / long / f"{n}best_recog" / f).get(key, "") for f in ("token_int", "score")
                }
                assert " ".join(map(str, hyp.token_int)) == written["token_int"], (key, m, n)
                assert hyp.score == pytest.approx(float(written["score"]), abs=1e-5)
                text, token, token_int, raw = hyp  # ESPnet's tuple
                assert raw.score == hyp.score and len(token) == len(token_int)


def test_the_inputs_decide_the_modalities(forced, decode_setup):
    speech, video = _utterance(decode_setup["data"], next(iter(decode_setup["texts"])))
    texts = {m: nbest[0].text for m, nbest in forced(speech=speech, video=video).items()}
    assert texts == {"v": "ab", "a": "ab", "av": "ab"}
    assert list(forced(video=video)) == ["v"]
    assert list(forced(speech=speech)) == ["a"]
    assert list(forced(speech=speech, video=video, modalities=["audiovisual", "a"])) == ["a", "av"]
    out = forced.transcribe(video=video)
    assert out.num_frames == len(video) and set(out.seconds) == {"encode", "v"}
    with pytest.raises(ValueError, match="cannot decode .* from nothing"):
        forced()
    with pytest.raises(ValueError, match="video needs the mouth ROIs"):
        forced(speech=speech, modalities=["v"])


def test_input_forms_and_bad_inputs(decode_setup):
    config, model_file = decode_setup["random"]
    s2t = USR2Speech2Text(config, model_file, method="greedy_ctc")
    speech, video = _utterance(decode_setup["data"], next(iter(decode_setup["texts"])))
    as_float = s2t(speech=speech, video=video)
    pcm16 = np.round(speech * 32768).astype(np.int16)
    as_int = s2t(speech=pcm16, video=video.astype(np.float32))
    assert {m: r[0].token_int for m, r in as_int.items()} == {m: r[0].token_int for m, r in as_float.items()}
    with pytest.raises(ValueError, match=r"video: expected \(T, H, W\).*shape \(96, 96\)"):
        s2t(video=video[0])
    with pytest.raises(ValueError, match=r"speech: expected a mono waveform.*shape \(2, "):
        s2t(speech=np.stack([speech, speech]))
    with pytest.raises(AVLengthMismatchError, match="differ by"):
        s2t(speech=np.concatenate([speech, speech]), video=video)
    empty = s2t(speech=np.zeros(0), video=video[:0])
    assert all(r[0].token_int == [] and r[0].text == "" for r in empty.values())
    with pytest.raises(ValueError, match="opts or as keywords"):
        USR2Speech2Text(config, model_file, opts=DecodeOptions(), beam_size=3)


def test_every_shipped_decoding_config_loads(tmp_path):
    for path in sorted(CONF_DIR.glob("decode_*.yaml")):
        assert isinstance(decode_options_from_yaml(path), DecodeOptions)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: beam\nbeam_sise: 4\nbatch_size: 2\n")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['beam_sise'\]"):
        decode_options_from_yaml(bad)


# ---------------------------------------------------------------------------- model directories


def _imported_layout(decode_setup, out: Path) -> Path:
    """What usr2_import writes: config.yaml naming tokens.txt beside it, model.pth."""
    config, model_file = decode_setup["forced"]
    out.mkdir()
    args = yaml.safe_load(Path(config).read_text())
    (out / "tokens.txt").write_text("".join(f"{t}\n" for t in args["token_list"]))
    args["token_list"] = "tokens.txt"
    (out / "config.yaml").write_text(yaml.safe_dump(args))
    (out / "model.pth").write_bytes(Path(model_file).read_bytes())
    return out


def test_imported_release_layout_from_another_directory(decode_setup, tmp_path, monkeypatch):
    model_dir = _imported_layout(decode_setup, tmp_path / "release")
    (model_dir / "decode_ctc.yaml").write_text("method: greedy_ctc\nbatch_size: 16\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # token_list "tokens.txt" is found beside the config, not here
    video = _utterance(decode_setup["data"], next(iter(decode_setup["texts"])))[1]
    s2t = USR2Speech2Text.from_pretrained(model_dir)
    assert s2t.opts.method == "greedy_ctc"  # the decoding config shipped with the model
    assert s2t(video=video)["v"][0].text == "c"
    assert USR2Speech2Text.from_pretrained(model_dir, method="greedy_att")(video=video)["v"][0].text == "ab"
    (model_dir / "decode_other.yaml").write_text("method: greedy_att\n")
    assert USR2Speech2Text.from_pretrained(model_dir).opts == transcription_search()  # ambiguous: the default


def test_experiment_dir_and_packed_zip(packed_recipe, decode_setup):
    exp, zip_path = packed_recipe["exp"], packed_recipe["zip"]
    files = resolve_model_dir(exp)
    assert files.model_file == exp / "valid.loss.best.pth" and files.decode_config is None
    (exp / "5epoch.pth").write_bytes((exp / "valid.loss.best.pth").read_bytes())
    assert resolve_model_dir(exp, model_file="5epoch.pth").model_file == exp / "5epoch.pth"
    with pytest.raises(FileNotFoundError, match="valid.acc.best.pth.*5epoch.pth, valid.loss.best.pth"):
        resolve_model_dir(exp, model_file="valid.acc.best.pth")

    packed = resolve_model_dir(zip_path)
    unpacked = zip_path.with_suffix("")
    assert packed.train_config == unpacked / "exp" / "usr2_tiny" / "config.yaml"
    assert packed.decode_config == unpacked / "conf" / "decode_greedy_att.yaml"
    video = _utterance(decode_setup["data"], next(iter(decode_setup["texts"])))[1]
    s2t = USR2Speech2Text.from_pretrained(zip_path)
    assert s2t.opts.method == "greedy_att" and s2t(video=video)["v"][0].text == "ab"
    assert resolve_model_dir(zip_path).model_file == packed.model_file  # the unpacked copy is reused


def test_bad_model_dirs_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="has no config.yaml"):
        resolve_model_dir(tmp_path / "empty")
    with pytest.raises(ModelDirError, match="does not exist"):
        resolve_model_dir(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelDirError, match="not a zip archive"):
        resolve_model_dir(tmp_path / "notes.txt")
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "not a model")
    with pytest.raises(ModelDirError, match="not a packed USR 2.0 model"):
        resolve_model_dir(tmp_path / "other.zip")


def test_config_paths_resolve_from_the_recipe_root(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe"
    bpe = recipe / "data" / "token_list" / "bpe_unigram8" / "bpe.model"
    bpe.parent.mkdir(parents=True)
    bpe.write_bytes(b"spm")
    exp = recipe / "exp" / "m"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(
        yaml.safe_dump(
            {"token_list": ["<blank>", "a", "<sos/eos>"], "bpemodel": "data/token_list/bpe_unigram8/bpe.model"}
        )
    )
    monkeypatch.chdir(tmp_path)
    with resolved_train_config(exp / "config.yaml") as (config, bpemodel):
        assert Path(bpemodel) == bpe.resolve()
        assert yaml.safe_load(Path(config).read_text())["bpemodel"] == bpemodel
    (exp / "config.yaml").write_text(yaml.safe_dump({"token_list": "data/nowhere/tokens.txt"}))
    with pytest.raises(ModelDirError, match="token_list data/nowhere/tokens.txt"):
        with resolved_train_config(exp / "config.yaml"):
            pass


def test_a_recipe_trained_model_decodes_from_another_directory(decode_setup, tmp_path, monkeypatch):
    """config.yaml names bpe.model relative to the recipe that trained it (data/token_list/...):
    USR2Speech2Text -- hence usr2_inference and usr2.sh --model_dir -- finds it from anywhere."""
    from espnet_usr2.data.unit_tokenizer import write_sentencepiece_model

    config, model_file = decode_setup["forced"]
    recipe = tmp_path / "recipe_a"
    bpe = recipe / "data" / "token_list" / "bpe.model"
    bpe.parent.mkdir(parents=True)
    write_sentencepiece_model(["<unk>", *"ABCDEF", "\u2581"], bpe)
    args = yaml.safe_load(Path(config).read_text())
    args.update(token_type="bpe", bpemodel="data/token_list/bpe.model")
    exp = recipe / "exp" / "usr2_tiny"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(args))
    elsewhere = tmp_path / "recipe_b"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s2t = USR2Speech2Text(
        Path("..") / "recipe_a" / "exp" / "usr2_tiny" / "config.yaml", model_file, method="greedy_att"
    )
    assert type(s2t.tokenizer).__name__ == "SentencepiecesTokenizer"
    assert Path(s2t.tokenizer.model).resolve() == bpe.resolve()


def test_the_transcription_default_is_the_shipped_decode_transcribe_yaml():
    """conf/decode_transcribe.yaml is what usr2_transcribe does without a config: they must not drift."""
    from espnet_usr2.inference.speech2text import decode_options_from_yaml

    conf = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2" / "conf" / "decode_transcribe.yaml"
    assert decode_options_from_yaml(conf) == transcription_search()
