"""usr2.sh --pretrain_config: self-supervised pre-training inside stage 11, before the first
recognition run, whose encoder file that run starts from (the --pretrained_encoder path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "usr2"
CI_SUP = REPO / "egs2" / "mini_lrs3" / "usr2" / "conf" / "train_usr2_ci_sup.yaml"
ENCODER_PARTS = ("audio_frontend.", "video_frontend.", "fusion.", "encoder.blocks.")


def _usr2(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "local",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(["./usr2.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def recipe(write_toy_corpus, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrain_recipe")
    recipe = root / "usr2"
    recipe.mkdir()
    for name in ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh", "path.sh"):
        (recipe / name).symlink_to(TEMPLATE / name)
    for name, n, seed in (("train", 8, 0), ("valid", 3, 1), ("unl", 8, 2)):
        write_toy_corpus(recipe / "dump" / name, num_utts=n, seed=seed, prefix=name)
    (recipe / "dump" / "unl" / "text").unlink()
    proc = subprocess.run(
        [
            sys.executable,
            str(TEMPLATE / "pyscripts" / "make_bpe.py"),
            "--text",
            str(recipe / "dump" / "train" / "text"),
            "--outdir",
            str(root / "tok"),
            "--nbpe",
            "12",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (recipe / "conf").mkdir()
    supervised = yaml.safe_load(CI_SUP.read_text())
    supervised.update(max_epoch=1)
    supervised["optim_conf"]["lr"] = 0.0  # the recognition run keeps the encoder it starts from
    (recipe / "conf" / "sup.yaml").write_text(yaml.safe_dump(supervised))
    pretrain = yaml.safe_load((TEMPLATE / "conf" / "pretrain_usr2_tiny.yaml").read_text())
    pretrain.update(max_epoch=1, batch_size=4)
    pretrain["scheduler_conf"]["warmup_epochs"] = 0.5
    for part in ("audio_frontend", "video_frontend", "fusion", "encoder"):  # the recognition model's encoder
        pretrain[part], pretrain[f"{part}_conf"] = supervised[part], supervised.get(f"{part}_conf", {})
    (recipe / "conf" / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    return recipe


def test_stage_11_pretrains_and_starts_recognition_from_its_encoder(recipe):
    tok = recipe.parent / "tok"
    proc = _usr2(
        recipe,
        "--stage",
        "10",
        "--stop_stage",
        "11",
        "--labelled_sets",
        "train",
        "--valid_set",
        "valid",
        "--token_list",
        str(tok / "tokens.txt"),
        "--bpemodel",
        str(tok / "bpe.model"),
        "--train_config",
        "conf/sup.yaml",
        "--tag",
        "sup",
        "--pretrain_config",
        "conf/pretrain.yaml",
        "--pretrain_sets",
        "train unl",
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    pt_exp = recipe / "exp" / "pretrain_pretrain_train+unl"
    assert (recipe / "dump" / "train+unl" / "video.scp").read_text().count("\n") == 16
    assert yaml.safe_load((pt_exp / "config.yaml").read_text())["model"] == "usr2_pretrain"
    encoder_file = pt_exp / "encoder" / "encoder.pth"
    assert f"--init_param {encoder_file.relative_to(recipe)}" in (recipe / "exp" / "sup" / "train.log").read_text()
    pretrained = torch.load(pt_exp / "latest.pth", map_location="cpu")
    encoder = torch.load(encoder_file, map_location="cpu")
    assert encoder and all(k.startswith(ENCODER_PARTS) for k in encoder)
    assert {k for k in pretrained if k.startswith(ENCODER_PARTS)} == set(encoder)
    recognised = torch.load(recipe / "exp" / "sup" / "checkpoint.pth", weights_only=False)["model"]
    for k, v in encoder.items():
        torch.testing.assert_close(v, pretrained[k], msg=k)
        if "running_" not in k and "num_batches" not in k:  # BatchNorm statistics move even at lr 0
            torch.testing.assert_close(recognised[k], pretrained[k], msg=k)


def test_pretrain_config_and_pretrained_encoder_exclude_each_other(recipe, tmp_path):
    tok = recipe.parent / "tok"
    (tmp_path / "enc.pth").write_bytes(b"x")
    proc = _usr2(
        recipe,
        "--stage",
        "11",
        "--stop_stage",
        "11",
        "--labelled_sets",
        "train",
        "--valid_set",
        "valid",
        "--token_list",
        str(tok / "tokens.txt"),
        "--bpemodel",
        str(tok / "bpe.model"),
        "--train_config",
        "conf/sup.yaml",
        "--tag",
        "both",
        "--pretrain_config",
        "conf/pretrain.yaml",
        "--pretrained_encoder",
        str(tmp_path / "enc.pth"),
    )
    assert proc.returncode != 0
    assert "give --pretrain_config or --pretrained_encoder, not both" in proc.stdout + proc.stderr
