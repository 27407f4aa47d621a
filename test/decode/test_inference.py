"""usr2_inference: decode-directory layout, methods end to end, bad inputs, splits, noise sweep."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.bin import usr2_inference, usr2_robustness_report
from espnet_usr2.data.roi_io import save_roi
from espnet_usr2.decode.hyps import DecodeOptions
from espnet_usr2.inference import noise_sweep, splits
from espnet_usr2.inference.inference import read_keys
from espnet_usr2.inference.speech2text import USR2Speech2Text

FILES = ("text", "token", "token_int", "score")


@pytest.fixture(scope="module")
def setup(decode_setup):
    """The tiny model as files (random weights, and forced to decode "ab" / CTC "c"), a toy data dir."""
    return decode_setup


def _run(setup, out: Path, *extra: str, which: str = "random", video: bool = True, data: Path = None):
    data = data or setup["data"]
    config, model_file = setup[which]
    cmd = [
        "--train_config",
        str(config),
        "--model_file",
        str(model_file),
        "--output_dir",
        str(out),
        "--data_path_and_name_and_type",
        f"{data}/wav.scp,speech,sound",
        "--log_level",
        "WARNING",
        "--num_workers",
        "0",
    ]
    if video:
        cmd += ["--data_path_and_name_and_type", f"{data}/video.scp,video,roi_video"]
    usr2_inference.main(cmd + list(extra))


def _read(path: Path) -> dict:
    return {
        line.split(maxsplit=1)[0]: (line.split(maxsplit=1) + [""])[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
    }


def test_bin_writes_espnet_layout_for_several_modalities(setup, tmp_path):
    conf = tmp_path / "decode.yaml"
    conf.write_text("method: beam\nbeam_size: 3\nctc_weight: 0.3\nnbest: 2\nbatch_size: 3\n", encoding="utf-8")
    _run(setup, tmp_path / "out", "--config", str(conf), "--modalities", "v", "a", "av")
    keys = set(setup["texts"])
    for long in ("video", "audio", "audiovisual"):
        d = tmp_path / "out" / long
        for sub in (d, d / "1best_recog", d / "2best_recog"):
            for f in FILES:
                assert set(_read(sub / f)) == keys, f"{sub / f}"
        assert _read(d / "text") == _read(d / "1best_recog" / "text")
        ids = _read(d / "token_int")
        tokens = _read(d / "token")
        assert all(len(ids[k].split()) == len(tokens[k].split()) for k in keys)


def test_bin_fast_and_espnet_beam_agree(setup, tmp_path):
    common = ("--modalities", "a", "av", "--beam_size", "3", "--ctc_weight", "0.3")
    _run(setup, tmp_path / "fast", *common, "--beam_impl", "fast", "--batch_size", "4")
    _run(setup, tmp_path / "ref", *common, "--beam_impl", "espnet", "--batch_size", "4")
    for long in ("audio", "audiovisual"):
        assert _read(tmp_path / "fast" / long / "token_int") == _read(tmp_path / "ref" / long / "token_int")


@pytest.mark.parametrize("method,expected", [("greedy_att", "ab"), ("greedy_ctc", "c"), ("beam", "ab")])
def test_bin_methods_on_forced_model(setup, tmp_path, method, expected):
    # the beam search's CTC weight is small: the forced decoder ("ab") wins over CTC ("c")
    _run(
        setup,
        tmp_path / "out",
        "--method",
        method,
        "--modalities",
        "v",
        "av",
        "--beam_size",
        "2",
        "--batch_size",
        "2",
        which="forced",
    )
    for long in ("video", "audiovisual"):
        assert set(_read(tmp_path / "out" / long / "text").values()) == {expected}


# ---------------------------------------------------------------------------- bad inputs


def test_missing_video_stream_is_named(setup, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run(setup, tmp_path / "out", "--modalities", "a", "av", video=False)
    err = capsys.readouterr().err
    assert "'video'" in err and "video.scp,video,roi_video" in err


def test_missing_data_file_is_named(setup, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit):
        _run(setup, tmp_path / "out", "--modalities", "a", video=False, data=missing)
    assert str(missing / "wav.scp") in capsys.readouterr().err


def test_unknown_key_is_named(setup, tmp_path, capsys):
    key_file = tmp_path / "keys"
    key_file.write_text(f"{next(iter(setup['texts']))}\nspk9-nosuchutt\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        _run(setup, tmp_path / "out", "--modalities", "a", "--key_file", str(key_file))
    assert "spk9-nosuchutt" in capsys.readouterr().err


def test_teacher_role_without_teacher_fails_clearly(setup, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run(setup, tmp_path / "out", "--model_role", "teacher", "--method", "greedy_ctc")
    assert "no EMA teacher" in capsys.readouterr().err


def test_empty_utterance_gets_empty_hypothesis(write_toy_corpus, setup, tmp_path, caplog):
    data = tmp_path / "data"
    write_toy_corpus(data, num_utts=2, frames_per_symbol=3)
    empty = "spk0-empty"
    soundfile.write(data / "media" / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    save_roi(data / "media" / "empty.npz", np.zeros((0, 96, 96), np.uint8))
    for name, file in (("wav.scp", "empty.wav"), ("video.scp", "empty.npz")):
        lines = (data / name).read_text().splitlines() + [f"{empty} {data / 'media' / file}"]
        (data / name).write_text("".join(f"{x}\n" for x in sorted(lines)))
    with caplog.at_level(logging.WARNING):
        _run(
            setup, tmp_path / "out", "--modalities", "a", "av", "--method", "greedy_att", "--batch_size", "3", data=data
        )
    assert any(empty in r.getMessage() and "no input frames" in r.getMessage() for r in caplog.records)
    for long in ("audio", "audiovisual"):
        text = _read(tmp_path / "out" / long / "text")
        assert len(text) == 3 and text[empty] == ""


# ---------------------------------------------------------------------------- splits and noise


def test_split_decode_merge_equals_single_run(setup, tmp_path):
    key_files = splits.split_key_file(setup["data"] / "wav.scp", 3, tmp_path / "logdir")
    assert len(key_files) == 3 and sum(len(read_keys(k)) for k in key_files) == 4
    for n, key_file in enumerate(key_files, 1):
        _run(
            setup,
            tmp_path / "logdir" / f"output.{n}",
            "--modalities",
            "a",
            "av",
            "--method",
            "greedy_ctc",
            "--key_file",
            str(key_file),
        )
    splits.merge_decode_dirs([tmp_path / "logdir" / f"output.{n}" for n in (1, 2, 3)], tmp_path / "merged")
    _run(setup, tmp_path / "single", "--modalities", "a", "av", "--method", "greedy_ctc")
    for rel in ("audio/text", "audiovisual/1best_recog/score", "audio/token_int"):
        assert (tmp_path / "merged" / rel).read_text() == (tmp_path / "single" / rel).read_text()
    with pytest.raises(splits.SplitMergeError, match="did not finish"):
        (tmp_path / "logdir" / "output.2" / "audio" / "text").unlink()
        splits.merge_decode_dirs([tmp_path / "logdir" / f"output.{n}" for n in (1, 2, 3)], tmp_path / "m2")


def test_noise_sweep_feeds_robustness_report(setup, tmp_path):
    config, model_file = setup["random"]
    s2t = USR2Speech2Text(config, model_file, modalities=["a", "av"], opts=DecodeOptions(method="greedy_ctc"))
    source = noise_sweep.noise_source(setup["data"], None, n_talkers=2, seed=0)
    hyps = noise_sweep.run_noise_sweep(setup["data"], tmp_path / "noisy", s2t, [rb.CLEAN, 0.0, -5.0], source)
    assert set(hyps) == {(m, s) for m in ("a", "av") for s in (rb.CLEAN, 0.0, -5.0)}
    assert (tmp_path / "noisy" / "data" / "snrm5" / "wav.scp").is_file()
    for path in hyps.values():
        assert set(_read(path)) == set(setup["texts"])
    specs = noise_sweep.noise_hyp_specs(hyps)
    assert "audio@-5=" + str(hyps[("a", -5.0)]) in specs
    cmd = ["--ref_text", str(setup["data"] / "text"), "--out_dir", str(tmp_path / "report")]
    for spec in specs:
        cmd += ["--noise_hyp", spec]
    usr2_robustness_report.main(cmd)
    assert "audiovisual" in (tmp_path / "report" / "robustness.md").read_text()


def test_split_and_merge_commands_as_usr2sh_calls_them(decode_setup, tmp_path):
    from espnet_usr2.bin import usr2_decode_splits

    usr2_decode_splits.main(
        ["split", "--scp", str(decode_setup["data"] / "wav.scp"), "--nj", "2", "--out_dir", str(tmp_path / "logdir")]
    )
    assert sorted(p.name for p in (tmp_path / "logdir").iterdir()) == ["keys.1.scp", "keys.2.scp"]
    with pytest.raises(SystemExit, match="usr2_decode_splits: error"):
        usr2_decode_splits.main(["merge", "--out_dir", str(tmp_path / "m"), str(tmp_path / "missing")])
