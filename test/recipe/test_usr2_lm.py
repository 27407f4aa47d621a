"""usr2.sh stages 6-8: LM text, ESPnet's LM training and the perplexity, on a toy corpus's text;
an LM given with --lm_exp is checked against the recipe's token list."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "usr2"
WORDS = ["ABOUT", "BLUE", "CAT", "DOG", "EAT", "FISH", "GO", "HOME", "IT", "JUMP", "THE", "A"]


def _env() -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "local",
        "OMP_NUM_THREADS": "1",
    }


def _write_text(path: Path, prefix: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{prefix}_{i:03d} {' '.join(rng.choices(WORDS, k=rng.randint(2, 6)))}\n" for i in range(n))
    )


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    """A recipe dir (shared files linked) with labelled (tr), valid (va) and external text."""
    d = tmp_path / "recipe"
    d.mkdir()
    for name in ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh", "path.sh"):
        (d / name).symlink_to(TEMPLATE / name)
    (d / "conf").mkdir()
    (d / "conf" / "train_lm_tiny.yaml").symlink_to(TEMPLATE / "conf" / "train_lm_tiny.yaml")
    _write_text(d / "dump" / "tr" / "text", "tr", 30, seed=0)
    _write_text(d / "dump" / "va" / "text", "va", 6, seed=1)
    _write_text(d / "ext.txt", "tr", 10, seed=2)  # same ids as tr: stage 6 must keep both
    return d


def _usr2(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./usr2.sh", "--labelled_sets", "tr", "--valid_set", "va", "--use_lm", "true", *args],
        cwd=recipe,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.recipe
def test_lm_stages_write_an_lm_and_its_perplexity(recipe):
    p = _usr2(
        recipe,
        "--stage",
        "5",
        "--stop_stage",
        "8",
        "--nbpe",
        "30",
        "--lm_config",
        "conf/train_lm_tiny.yaml",
        "--lm_train_text",
        "ext.txt",
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    lm_exp = recipe / "exp" / "lm_train_lm_tiny"
    train = (lm_exp / "data" / "train.txt").read_text().splitlines()
    assert len(train) == 40 and len({line.split()[0] for line in train}) == 40  # 30 + 10, ids kept apart
    config = yaml.safe_load((lm_exp / "config.yaml").read_text())
    tokens = (recipe / "data" / "token_list" / "bpe_unigram30" / "tokens.txt").read_text().splitlines()
    assert config["lm"] == "transformer" and config["token_list"] == tokens
    assert (lm_exp / "valid.loss.best.pth").is_file()  # the tiny config keeps one model
    ppl_text = (lm_exp / "perplexity_va" / "ppl").read_text().strip()
    ppl = float(ppl_text)
    assert math.isfinite(ppl) and 1.0 < ppl < len(tokens) * 2, ppl
    assert f"perplexity {ppl_text} (per token, va)" in p.stdout

    # the same LM given with --lm_exp: checked against the token list, not trained again
    trained = (lm_exp / "train.log").stat().st_mtime
    p = _usr2(recipe, "--stage", "6", "--stop_stage", "7", "--nbpe", "30", "--lm_exp", str(lm_exp))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Stages 6-7 skipped" in p.stdout and (lm_exp / "train.log").stat().st_mtime == trained


def test_given_lm_with_another_token_list_is_refused(recipe):
    bpedir = recipe / "data" / "token_list" / "bpe_unigram30"
    bpedir.mkdir(parents=True)
    (bpedir / "tokens.txt").write_text("<blank>\n<unk>\n\u2581A\n<sos/eos>\n")
    (bpedir / "bpe.model").write_text("not read by stage 8's check\n")
    lm = recipe / "lm_elsewhere"
    lm.mkdir()
    (lm / "config.yaml").write_text(
        yaml.safe_dump({"lm": "transformer", "token_list": ["<blank>", "<unk>", "\u2581B", "<sos/eos>"]})
    )
    p = _usr2(recipe, "--stage", "8", "--stop_stage", "8", "--nbpe", "30", "--lm_exp", str(lm))
    assert p.returncode != 0
    assert "token 2 is '\u2581B' in the LM and '\u2581A' in the model" in p.stderr, p.stderr
    assert f"the LM in {lm} cannot be used" in p.stderr


def test_lm_stages_need_a_config_and_the_text(recipe):
    p = _usr2(recipe, "--stage", "6", "--stop_stage", "6")
    assert p.returncode != 0 and "--lm_config is required for stage 6" in p.stderr
    p = _usr2(recipe, "--stage", "7", "--stop_stage", "7", "--lm_config", "conf/train_lm_tiny.yaml")
    assert p.returncode != 0 and "missing input exp/lm_train_lm_tiny/stats/train/text_shape.bpe" in p.stderr
    # --use_lm false (the default): stages 6-8 do nothing
    p = subprocess.run(
        ["./usr2.sh", "--stage", "6", "--stop_stage", "8"], cwd=recipe, env=_env(), capture_output=True, text=True
    )
    assert p.returncode == 0 and "Stage 6" not in p.stdout, p.stderr
