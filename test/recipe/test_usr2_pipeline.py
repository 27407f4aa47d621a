"""usr2.sh stages 10-14 on a generated toy corpus: the model handed on at every step
(warm-up -> semi-supervised run -> decoding -> scoring -> packing) is the one each run's
config selects, for every shipped training config, without --inference_model; a missing
model is named with the files that exist; <exp>/run.sh decodes the same again;
--model_dir decodes a given model; --pretrained_encoder reaches student and teacher.
(--help, the given tokenizer and the corpus run.sh parsing: test_shell_helpers.py.)

The shipped configs are grouped by their selection settings (best_model_criterion,
keep_nbest_models); one pipeline per group runs a tiny model with that group's settings
(about 1-2 minutes each on 2 cores; marked ``recipe``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from espnet_usr2.testing.recipes import EGS, TEMPLATE, link_template
from espnet_usr2.utils.model_selection import default_inference_model, selection_of

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"

CI_SUP = EGS / "mini_lrs3" / "usr2" / "conf" / "train_usr2_ci_sup.yaml"  # the tiny model, supervised
DECODE = EGS / "mini_lrs3" / "usr2" / "conf" / "decode_ci.yaml"

# One config per selection setting; test_groups_cover_every_shipped_config checks that
# together they carry the selection of every training config in egs2/*/usr2/conf.
GROUPS = {
    "paper": TEMPLATE / "conf" / "train_usr2_base.yaml",  # valid acc_av max, 5 averaged
    "single": TEMPLATE / "conf" / "train_usr2_tiny.yaml",  # valid loss min, 1 kept
}
SETS = dict(train=(16, 0), valid=(4, 1), unl=(8, 2), test=(3, 3))  # utterances, seed


def _selection_key(config) -> tuple:
    criterion, nbest = selection_of(config)
    return criterion, tuple(nbest)


def test_groups_cover_every_shipped_config():
    shipped = sorted(EGS.glob("*/usr2/conf/train_usr2*.yaml"))  # train_lm_*.yaml: ESPnet's LM task (stage 7)
    names = {p.name for p in shipped}
    assert {
        f"train_usr2_{m}.yaml"
        for m in ("base", "base_plus", "large", "huge", "tiny", "mini", "mini_sup", "ci", "ci_sup")
    } <= names, names
    covered = {_selection_key(c): g for g, c in GROUPS.items()}
    assert len(covered) == len(GROUPS), "two groups with the same selection"
    missing = [str(p.relative_to(EGS.parent)) for p in shipped if _selection_key(p) not in covered]
    assert not missing, f"no pipeline runs the model selection of {missing}: add a group to GROUPS"


# ------------------------------------------------------------------ setup
def _env() -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "local",
        "OMP_NUM_THREADS": "1",
    }


def _recipe_dir(dst: Path) -> Path:
    """A recipe directory laid out like egs2/<corpus>/usr2 (shared files linked)."""
    link_template(dst)
    (dst / "conf").mkdir()
    (dst / "conf" / "decode_ci.yaml").symlink_to(DECODE)
    return dst


def _usr2(recipe: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["./usr2.sh", *args], cwd=recipe, env=_env(), capture_output=True, text=True, timeout=timeout)
    with open(recipe / "usr2_calls.log", "a") as log:
        log.write(f"$ ./usr2.sh {shlex.join(args)}\n{proc.stdout}{proc.stderr}\n")
    return proc


def _derived_config(group_config: Path, **extra) -> dict:
    """The tiny model for a few steps, with the group config's selection settings."""
    config = yaml.safe_load(CI_SUP.read_text())
    shipped = yaml.safe_load(group_config.read_text())
    for key in ("best_model_criterion", "keep_nbest_models"):
        config.pop(key, None)
        if key in shipped:
            config[key] = shipped[key]
    config.update({"max_epoch": 2, **extra})
    return config


@pytest.fixture(scope="module")
def corpus(write_toy_corpus, tmp_path_factory) -> Path:
    """Toy data in usr2.sh's dump layout and a SentencePiece tokenizer made from it."""
    root = tmp_path_factory.mktemp("toy")
    for name, (n, seed) in SETS.items():
        write_toy_corpus(root / "dump" / name, num_utts=n, seed=seed, prefix=name)
    (root / "dump" / "unl" / "text").unlink()  # unlabelled
    proc = subprocess.run(
        [
            sys.executable,
            str(TEMPLATE / "pyscripts" / "make_bpe.py"),
            "--text",
            str(root / "dump" / "train" / "text"),
            "--outdir",
            str(root / "tok"),
            "--nbpe",
            "12",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return root


def _data_args(corpus: Path) -> list:
    """The sets and the given tokenizer (stage 5 is not run)."""
    return [
        "--labelled_sets",
        "train",
        "--unlabelled_sets",
        "unl",
        "--valid_set",
        "valid",
        "--test_sets",
        "test",
        "--token_list",
        str(corpus / "tok" / "tokens.txt"),
        "--bpemodel",
        str(corpus / "tok" / "bpe.model"),
        "--labelled_batch_frames",
        "300",
        "--unlabelled_batch_frames",
        "300",
    ]


DECODE_ARGS = ["--inference_config", "conf/decode_ci.yaml", "--inference_nj", "1"]


@pytest.fixture(scope="module")
def recipe(corpus, tmp_path_factory) -> Path:
    recipe = _recipe_dir(tmp_path_factory.mktemp("pipeline") / "usr2")
    (recipe / "dump").symlink_to(corpus / "dump")
    return recipe


def _run_pipeline(group: str, recipe: Path, corpus: Path) -> dict:
    """Stages 10-14 with the group's selection: warm-up, semi-supervised run, decoding,
    scoring, packing, without --inference_model. Stage 10 (shape statistics, the same for
    every model) runs with the first group; later groups start at stage 11."""
    (recipe / "conf" / f"{group}.yaml").write_text(yaml.safe_dump(_derived_config(GROUPS[group])))
    first = "11" if (recipe / "exp" / "stats_train" / "train" / "video_shape").is_file() else "10"
    proc = _usr2(
        recipe,
        "--stage",
        first,
        "--stop_stage",
        "14",
        *_data_args(corpus),
        "--sup_train_config",
        f"conf/{group}.yaml",
        "--train_config",
        f"conf/{group}.yaml",
        *DECODE_ARGS,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert f"Successfully finished stages {first}-14" in proc.stdout
    model = default_inference_model(GROUPS[group])
    tag = f"{group}_train_semi_unl"
    return dict(
        group=group,
        recipe=recipe,
        corpus=corpus,
        model=model,
        tag=tag,
        exp=recipe / "exp" / tag,
        decode=f"decode_ci_{model[: -len('.pth')]}",
        args=[*_data_args(corpus), "--train_config", f"conf/{group}.yaml", *DECODE_ARGS],
    )


@pytest.fixture(scope="module")
def paper_pipeline(recipe, corpus) -> dict:
    """The pipeline under the paper configs' selection (valid acc_av max, 5 models averaged)."""
    return _run_pipeline("paper", recipe, corpus)


@pytest.fixture(scope="module")
def single_pipeline(recipe, corpus) -> dict:
    """The pipeline under the small configs' selection (valid loss min, 1 model kept)."""
    return _run_pipeline("single", recipe, corpus)


@pytest.fixture(params=sorted(GROUPS))
def pipeline(request) -> dict:
    """Each selection group's pipeline in turn (every shipped config is in one group)."""
    return request.getfixturevalue(f"{request.param}_pipeline")


def _hyps(decode_dir: Path) -> dict:
    return {m: (decode_dir / "test" / m / "text").read_text() for m in ("audio", "video", "audiovisual")}


# ------------------------------------------------------------------ model selection
@pytest.mark.recipe
def test_every_hand_over_uses_the_selected_model(pipeline):
    exp, model, tag = pipeline["exp"], pipeline["model"], pipeline["tag"]
    assert model == {"paper": "valid.acc_av.ave.pth", "single": "valid.loss.best.pth"}[pipeline["group"]]
    sup = exp.parent / (exp.name + "_sup")
    # 11a -> 11: the semi-supervised run started from the warm-up's selected model
    assert (sup / model).is_file()
    assert f"--init_param exp/{tag}_sup/{model}" in (exp / "train.log").read_text()
    assert "loss_unl_av" in (exp / "train.log").read_text()
    # 11 -> 12 -> 13: that model decoded and scored
    assert (exp / model).is_file()
    decode = exp / pipeline["decode"]
    assert f"--model_file exp/{tag}/{model}" in (decode / "test" / "logdir" / "decode.1.log").read_text()
    for text in _hyps(decode).values():
        assert len(text.splitlines()) == SETS["test"][0]
    assert pipeline["decode"] in (exp / "RESULTS.md").read_text()
    # 14: the packed model is that file
    with zipfile.ZipFile(exp / "packed" / f"{tag}.zip") as z:
        assert f"exp/{tag}/{model}" in z.namelist()


@pytest.mark.recipe
def test_missing_model_names_the_files_that_exist(paper_pipeline):
    recipe, model = paper_pipeline["recipe"], paper_pipeline["model"]
    proc = _usr2(
        recipe, "--stage", "12", "--stop_stage", "12", "--inference_model", "nope.pth", *paper_pipeline["args"]
    )
    assert proc.returncode != 0
    assert f"exp/{paper_pipeline['tag']}/nope.pth (given) does not exist" in proc.stderr, proc.stderr
    assert model in proc.stderr and "checkpoint.pth" in proc.stderr


# ------------------------------------------------------------------ run.sh, --model_dir
@pytest.mark.recipe
def test_exp_run_sh_redecodes_the_same(paper_pipeline):
    exp = paper_pipeline["exp"]
    script = (exp / "run.sh").read_text()
    assert f"cd {shlex.quote(str(paper_pipeline['recipe']))}" in script
    assert "--stop_stage 14" in script and "--train_config conf/paper.yaml" in script
    assert "nope.pth" not in script  # a failed run (test_missing_model_...) records nothing
    assert (exp / paper_pipeline["decode"] / "run.sh").read_text().splitlines()[-1] == script.splitlines()[-1]
    # from anywhere: the script goes to the recipe directory itself
    proc = subprocess.run(
        [str(exp / "run.sh"), "--stage", "12", "--stop_stage", "12", "--inference_tag", "again"],
        cwd="/",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _hyps(exp / "again") == _hyps(exp / paper_pipeline["decode"])


@pytest.mark.recipe
def test_model_dir_decodes_a_given_model(paper_pipeline, tmp_path):
    """A directory with config.yaml + model.pth (usr2_import's layout): stages 12-13 decode
    it into exp/<its name>/ with the hypotheses of the experiment it came from."""
    exp, recipe = paper_pipeline["exp"], paper_pipeline["recipe"]
    given = tmp_path / "released_base"
    given.mkdir()
    shutil.copy(exp / "config.yaml", given / "config.yaml")
    shutil.copy((exp / paper_pipeline["model"]).resolve(), given / "model.pth")
    proc = _usr2(
        recipe,
        "--stage",
        "5",
        "--stop_stage",
        "13",
        "--model_dir",
        str(given),
        "--test_sets",
        "test",
        "--modalities",
        "av",
        "--inference_config",
        "conf/decode_ci.yaml",
        "--inference_nj",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stages 5, 10 and 11 (tokenizer, training) are skipped" in proc.stdout
    out = recipe / "exp" / "released_base"
    hyps = (out / "decode_ci_model" / "test" / "audiovisual" / "text").read_text()
    assert hyps == _hyps(exp / paper_pipeline["decode"])["audiovisual"]
    assert (out / "RESULTS.md").is_file() and (out / "run.sh").is_file()
    assert not (given / "decode_ci_model").exists()  # the given directory is only read


# ------------------------------------------------------------------ --pretrained_encoder
ENCODER_PREFIXES = ("audio_frontend.", "video_frontend.", "fusion.", "encoder.")


@pytest.mark.recipe
def test_pretrained_encoder_reaches_student_and_teacher(single_pipeline, tmp_path):
    """Semi-supervised stage 11 without a warm-up, from an encoder-only init file (keys in
    this model's names, encoder.after_norm left out as usr2_import --encoder_only does); at
    learning rate 0 the student keeps those values and the EMA teacher copies them."""
    from espnet_usr2.tasks.config import build_model_from_config

    recipe, corpus = single_pipeline["recipe"], single_pipeline["corpus"]
    config = _derived_config(GROUPS["single"], max_epoch=1)
    config["optim_conf"]["lr"] = 0.0
    (recipe / "conf" / "lr0.yaml").write_text(yaml.safe_dump(config))
    model = build_model_from_config(recipe / "conf" / "lr0.yaml", corpus / "tok" / "tokens.txt")
    g = torch.Generator().manual_seed(7)
    init = {
        k: torch.randn(v.shape, generator=g)
        for k, v in model.named_parameters()
        if k.startswith(ENCODER_PREFIXES) and not k.startswith("encoder.after_norm.")
    }
    assert any(k.startswith("encoder.blocks.") for k in init) and any(k.startswith("fusion.") for k in init)
    torch.save(init, tmp_path / "encoder.pth")
    proc = _usr2(
        recipe,
        "--stage",
        "11",
        "--stop_stage",
        "11",
        "--tag",
        "pre",
        *_data_args(corpus),
        "--train_config",
        "conf/lr0.yaml",
        "--pretrained_encoder",
        str(tmp_path / "encoder.pth"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = recipe / "exp" / "pre"
    assert f"--init_param {tmp_path / 'encoder.pth'}" in (exp / "train.log").read_text()
    state = torch.load(exp / "checkpoint.pth", weights_only=False)["model"]
    assert int(state["teacher.num_updates"]) > 0
    for k, v in init.items():
        torch.testing.assert_close(state[k], v, msg=f"student {k}")
        torch.testing.assert_close(state[f"teacher.model.{k}"], v, msg=f"teacher {k}")
