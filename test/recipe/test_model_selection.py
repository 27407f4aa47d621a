"""espnet_usr2.utils.model_selection (and its command, usr2_model_selection): the model file
name a training config makes ESPnet's trainer write, and finding it in an experiment directory
(with a clear error when missing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from espnet_usr2.bin.usr2_model_selection import main
from espnet_usr2.utils.model_selection import (
    ESPNET_DEFAULT_BEST_MODEL_CRITERION,
    ESPNET_DEFAULT_KEEP_NBEST_MODELS,
    default_inference_model,
    find_model_file,
)

ACC_AV = {"best_model_criterion": [["valid", "acc_av", "max"]], "keep_nbest_models": 5}
LOSS1 = {"best_model_criterion": [["valid", "loss", "min"], ["valid", "acc", "max"]], "keep_nbest_models": 1}


@pytest.mark.parametrize(
    "config, name",
    [
        (ACC_AV, "valid.acc_av.ave.pth"),
        (LOSS1, "valid.loss.best.pth"),  # one kept model: the best epoch itself
        (
            {"best_model_criterion": [["valid", "cer_ctc_a", "min"]], "keep_nbest_models": [1, 3]},
            "valid.cer_ctc_a.ave.pth",
        ),
        ({"best_model_criterion": [["valid", "acc", "max"]], "keep_nbest_models": 0}, "valid.acc.best.pth"),
        ({"best_model_criterion": ["valid,acc_av_teacher,max"]}, "valid.acc_av_teacher.ave.pth"),  # CLI form
        ({}, "train.loss.ave.pth"),  # ESPnet's defaults: first criterion train/loss/min, 10 kept
    ],
)
def test_default_inference_model(config, name):
    assert default_inference_model(config) == name


def test_espnet_defaults_match_espnet():
    """The defaults used for absent keys are those of the trainer's parser (ESPnet's; an
    upgrade that changes them fails here)."""
    from espnet_usr2.tasks.usr2 import USR2Task

    parser = USR2Task.get_parser()
    assert [tuple(c) for c in parser.get_default("best_model_criterion")] == ESPNET_DEFAULT_BEST_MODEL_CRITERION
    assert list(parser.get_default("keep_nbest_models")) == ESPNET_DEFAULT_KEEP_NBEST_MODELS


@pytest.mark.parametrize(
    "config, message",
    [
        ({"best_model_criterion": [["valid", "acc"]]}, "is not [phase, criterion, mode]"),
        ({"best_model_criterion": [["valid", "acc", "best"]]}, "mode must be min or max"),
        ({"best_model_criterion": []}, "non-empty list"),
        ({"best_model_criterion": "valid,acc,max"}, "non-empty list"),
        ({"best_model_criterion": [["valid", "acc", "max"]], "keep_nbest_models": "5"}, "keep_nbest_models"),
    ],
)
def test_bad_selection_keys_are_named(config, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        default_inference_model(config)


def test_name_from_a_yaml_file(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(ACC_AV))
    assert default_inference_model(tmp_path / "c.yaml") == default_inference_model(str(tmp_path / "c.yaml"))
    with pytest.raises(FileNotFoundError, match="nope.yaml does not exist"):
        default_inference_model(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ValueError, match="not a YAML mapping"):
        default_inference_model(tmp_path / "list.yaml")


def _espnet_end_of_training(exp: Path, criterion, nbest, values) -> None:
    """What ESPnet's trainer leaves behind: one file per epoch, the best link, and
    average_nbest_models' ave_<n>best / ave files (run through ESPnet itself)."""
    from espnet2.main_funcs.average_nbest_models import average_nbest_models
    from espnet2.train.reporter import Reporter

    phase, key, mode = criterion
    reporter = Reporter()
    for epoch, value in enumerate(values, start=1):
        reporter.set_epoch(epoch)
        with reporter.observe(phase) as sub:
            sub.register({key: value})
            sub.next()
        torch.save({"w": torch.full((2,), float(epoch))}, exp / f"{epoch}epoch.pth")
    best = reporter.get_best_epoch(phase, key, mode)
    (exp / f"{phase}.{key}.best.pth").symlink_to(f"{best}epoch.pth")
    average_nbest_models(exp, reporter, [criterion], nbest)


@pytest.mark.parametrize("config, nbest", [(ACC_AV, [5]), (LOSS1, [1]), (ACC_AV, [2])])
def test_find_model_file_matches_what_espnet_writes(tmp_path, config, nbest):
    crit = tuple(config["best_model_criterion"][0])
    _espnet_end_of_training(tmp_path, crit, nbest, [0.2, 0.5, 0.4])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "keep_nbest_models": nbest}))
    path = find_model_file(tmp_path)
    assert path.parent == tmp_path and path.is_file()
    w = torch.load(path)["w"][0].item()
    if crit[2] == "max" and max(nbest) == 2:
        assert w == pytest.approx((2 + 3) / 2)  # epochs 2 and 3 averaged
    elif crit[2] == "max":
        assert w == pytest.approx((1 + 2 + 3) / 3)  # 5 wanted, 3 epochs: every epoch
    else:
        assert w == 1.0  # loss min: epoch 1


def test_missing_model_lists_the_files_that_exist(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ACC_AV))
    for name in ("1epoch.pth", "valid.loss.best.pth", "checkpoint.pth"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "latest.pth").symlink_to("9epoch.pth")  # a link to nothing
    with pytest.raises(FileNotFoundError) as err:
        find_model_file(tmp_path)
    msg = str(err.value)
    assert f"{tmp_path / 'valid.acc_av.ave.pth'}" in msg and "config.yaml" in msg
    assert "1epoch.pth, checkpoint.pth, valid.loss.best.pth" in msg and "links to missing files: latest.pth" in msg
    assert find_model_file(tmp_path, name="valid.loss.best.pth") == tmp_path / "valid.loss.best.pth"
    assert find_model_file(tmp_path, train_config=LOSS1) == tmp_path / "valid.loss.best.pth"
    with pytest.raises(FileNotFoundError, match="x.pth .given. does not exist"):
        find_model_file(tmp_path, name="x.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_model_file(tmp_path / "nowhere")


def test_imported_model_dir(tmp_path):
    """usr2_import's layout: config.yaml + model.pth, whatever the config's selection says."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ACC_AV))
    (tmp_path / "model.pth").write_bytes(b"x")
    assert find_model_file(tmp_path) == tmp_path / "model.pth"
    (tmp_path / "valid.acc_av.ave.pth").write_bytes(b"x")  # the selection wins where it exists
    assert find_model_file(tmp_path) == tmp_path / "valid.acc_av.ave.pth"


def test_cli(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ACC_AV))
    assert main(["--train_config", str(tmp_path / "config.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "valid.acc_av.ave.pth"
    assert main(["--exp_dir", str(tmp_path)]) == 1
    assert "valid.acc_av.ave.pth" in capsys.readouterr().err
    (tmp_path / "valid.acc_av.ave.pth").write_bytes(b"x")
    # as usr2.sh calls it: a fresh interpreter, no torch import needed
    proc = subprocess.run(
        [sys.executable, "-m", "espnet_usr2.bin.usr2_model_selection", "--exp_dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "valid.acc_av.ave.pth"), proc.stderr
