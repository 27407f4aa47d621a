"""The comparison harness egs2/mini_lrs3/usr2/run_compare.sh end to end, in miniature: a tiny
corpus, one seed, two methods continued from the supervised warm-ups under the same step
budget -- supervised with COMAT (the stage-2 LM as its PLM) and USR v1 from the second warm-up,
the one that started from a self-supervised encoder (issues 12-14) --, decoded greedily and by
beam search with LM fusion, one babble-noise SNR, and the report. Two methods, each combining
arms, keep it to one round of continuations: every pass through usr2.sh costs a Python start
with torch and ESPnet (~10 s on a loaded CPU). The real
comparisons (3 seeds, the low-resource corpus) are in egs2/mini_lrs3/usr2/README.md; this
checks the plumbing. The methods' options (conf/compare/<method>.yaml and the script's name
rules) are checked without training, by --dry_run, against what the script passed before they
were files.

Marked ``recipe``: ``pytest -m "not recipe"`` leaves it out of a quick run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs2" / "mini_lrs3" / "usr2"
GEN_OPTS = (
    "--n_pretrain 10 --n_trainval 18 --n_test 4 --n_long 2 --n_speakers 3 --n_test_speakers 2 "
    "--max_words 5 --long_min_words 8 --long_max_words 10 --size 128"
)
METHODS = ("sup_comat", "pt_usr1")
SEMI = {"sup_comat": None, "pt_usr1": "usr1"}
STEPS_PER_EPOCH, EPOCHS = 2, 2
# the LM decode is the recipe's own config (beam 10, lm_weight 0.3); greedy never fuses
DECODES = {"greedy": "conf/decode_greedy_att.yaml", "beam_lm": "conf/decode_mini_lm.yaml"}
LM_DIR = "lm_train_lm_tiny"
# every method name x seeds 1, 3 with the options the script built before issue 22 (the arms in bash)
OPTIONS_BEFORE = Path(__file__).parent / "data" / "run_compare_options_before.tsv"
PT_DIR = "pretrain_pretrain_ci_trainval_train+pretrain"

# the whole miniature runs in the first test's fixture: its limit is the subprocess's
pytestmark = [pytest.mark.recipe, pytest.mark.timeout(1500)]


def _run_compare(recipe: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "USR2_CMD_BACKEND": "local"}
    return subprocess.run(
        ["./run_compare.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=timeout
    )


def _ci_pretrain_config(path: Path) -> Path:
    """The tiny pre-training config with the CI warm-up's frontends and encoder (its encoder
    file must load into that warm-up), one short epoch."""
    sup = yaml.safe_load((RECIPE / "conf" / "train_usr2_ci_sup.yaml").read_text())
    conf = yaml.safe_load((RECIPE / "conf" / "pretrain_usr2_tiny.yaml").read_text())
    for part in ("audio_frontend", "video_frontend", "fusion", "encoder"):
        conf[part], conf[f"{part}_conf"] = sup[part], sup.get(f"{part}_conf", {})
    conf.update(max_epoch=1, batch_size=8)
    conf["scheduler_conf"]["warmup_epochs"] = 0.5
    path.write_text(yaml.safe_dump(conf))
    return path


def _miniature_args(pretrain_config: Path, methods=METHODS):
    decodes = " ".join(f"{t}={c}" for t, c in DECODES.items())
    return (
        "--gen_opts",
        GEN_OPTS,
        "--seeds",
        "1",
        "--methods",
        " ".join(methods),
        "--steps_per_epoch",
        str(STEPS_PER_EPOCH),
        "--epochs",
        str(EPOCHS),
        "--valid_size",
        "4",
        "--nbpe",
        "40",
        "--warmup_config",
        "conf/train_usr2_ci_sup.yaml",
        "--train_config",
        "conf/train_usr2_ci.yaml",
        "--decodes",
        decodes,
        "--noise_config",
        "conf/decode_ci.yaml",
        "--snrs",
        "0",
        "--batch_frames",
        "300",
        "--jobs",
        "2",
        "--use_lm",
        "true",
        "--lm_config",
        "conf/train_lm_tiny.yaml",
        "--lm_train_text",
        "dump_cmp/pretrain/text",
        "--pretrain_config",
        str(pretrain_config),
        "--pl_sets",
        "pretrain",  # one set is enough to check the plumbing (the default adds test_long)
        "--model_args",
        "",  # the CI configs' own tiny model
    )


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory, recipe_copy):
    root = tmp_path_factory.mktemp("compare")
    recipe = recipe_copy("mini_lrs3", root / "usr2")
    t0 = time.time()
    proc = _run_compare(recipe, *_miniature_args(_ci_pretrain_config(root / "pretrain_ci.yaml")))
    (recipe / "compare_run.log").write_text(proc.stdout + proc.stderr)
    print(f"run_compare.sh miniature: {time.time() - t0:.0f} s wall", file=sys.stderr)
    logs = "".join(p.read_text()[-2000:] for p in (recipe / "exp_cmp").glob("*_seed*.log"))
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:], logs)
    return recipe, proc.stdout


def _rows(exp: Path):
    return [line.split("\t") for line in (exp / "runs.tsv").read_text().splitlines()]


def test_every_method_continues_from_its_warmup_under_the_same_budget(compare_run):
    recipe, _ = compare_run
    exp = recipe / "exp_cmp"
    rows = _rows(exp)
    assert rows[0] == ["method", "seed", "exp_dir"]
    assert sorted(r[0] for r in rows[1:]) == sorted(METHODS + ("warmup_pt",))
    for method, seed, run in rows[1:]:
        if method == "warmup_pt":  # the second warm-up: one run, the warm-up config's seed
            assert (seed, run) == ("42", "warmup_pt")
            continue
        config = yaml.safe_load((exp / run / "config.yaml").read_text())
        assert seed == "1"
        assert (config["num_iters_per_epoch"], config["max_epoch"], config["seed"]) == (STEPS_PER_EPOCH, EPOCHS, 1)
        assert config["semi"] == SEMI[method], method
        warmup = "warmup_pt" if method.startswith("pt_") else "warmup"
        init = [Path(p) for p in config["init_param"]]
        assert len(init) == 1 and init[0].parent.name == warmup and (recipe / init[0]).is_file(), (method, init)
        if method == "sup_comat":  # labelled batches only, sorted by length
            assert (config["batch_type"], config["batch_size"]) == ("sorted", 8)


def test_comat_distils_the_stage_2_lm(compare_run):
    recipe, _ = compare_run
    exp = recipe / "exp_cmp"
    lm = exp / LM_DIR
    # LM text: the labelled transcripts and --lm_train_text (the unlabelled clips' transcripts)
    n_text = sum(
        len((recipe / "dump_cmp" / s / "text").read_text().splitlines()) for s in ("trainval_train", "pretrain")
    )
    assert len((lm / "data" / "train.txt").read_text().splitlines()) == n_text
    assert float((lm / "perplexity_valid" / "ppl").read_text()) > 1
    config = yaml.safe_load((exp / "sup_comat_seed1" / "config.yaml").read_text())
    assert config["comat_conf"]["plm"] == "espnet_lm" and config["comat_conf"]["weight"] == 1.0
    # the LM that shallow fusion uses (the file the LM's config selects)
    lm_file = config["comat_conf"]["lm_file"]
    assert Path(lm_file).parent == lm.relative_to(recipe) and (recipe / lm_file).is_file()
    fusion_log = (exp / "warmup" / "beam_lm" / "test" / "logdir" / "decode.1.log").read_text()
    assert f"shallow fusion: language model {lm_file} " in fusion_log
    assert Path(config["comat_conf"]["lm_train_config"]) == (lm / "config.yaml").relative_to(recipe)
    assert "loss_comat_av=" in (exp / "sup_comat_seed1" / "train.log").read_text()
    assert not yaml.safe_load((exp / "pt_usr1_seed1" / "config.yaml").read_text()).get("comat_conf")


def test_warmup_pt_starts_from_the_pretrained_encoder(compare_run):
    recipe, _ = compare_run
    exp = recipe / "exp_cmp"
    assert yaml.safe_load((exp / PT_DIR / "config.yaml").read_text())["model"] == "usr2_pretrain"
    encoder = exp / PT_DIR / "encoder" / "encoder.pth"
    assert f"--init_param {encoder.relative_to(recipe)}" in (exp / "warmup_pt" / "train.log").read_text()
    assert "--init_param" not in (exp / "warmup" / "train.log").read_text().splitlines()[0]  # from scratch


def test_every_run_is_decoded_each_way_the_lm_only_where_fused(compare_run):
    recipe, _ = compare_run
    exp = recipe / "exp_cmp"
    assert yaml.safe_load((recipe / DECODES["beam_lm"]).read_text())["lm_weight"] > 0
    for run in [f"{m}_seed1" for m in METHODS] + ["warmup", "warmup_pt"]:
        for tag in DECODES:
            for s, n in (("test", 4), ("test_long", 2)):
                logs = "".join(p.read_text() for p in (exp / run / tag / s / "logdir").glob("decode.*.log"))
                fused = "shallow fusion: language model" in logs
                assert fused == (tag == "beam_lm"), (run, tag, s)
                for m in ("audio", "video", "audiovisual"):
                    hyp = exp / run / tag / s / m / "text"
                    assert len(hyp.read_text().splitlines()) == n, hyp
    for run in [f"{m}_seed1" for m in METHODS] + ["warmup_pt"]:
        for m in ("audio", "audiovisual"):
            assert len((exp / run / "noise" / "decode" / "snr0" / m / "text").read_text().splitlines()) == 4


def test_the_teachers_pseudo_labels_are_scored_where_every_teacher_starts_and_ends(compare_run):
    """The warm-ups as teachers (stage 3) and each semi-supervised run's EMA teacher (stage 4), on
    the unlabelled clips and the long set; supervised runs have no teacher to score."""
    recipe, _ = compare_run
    exp = recipe / "exp_cmp"
    for run in ["warmup", "warmup_pt"] + [f"{m}_seed1" for m in METHODS]:
        results = exp / run / "pl_quality" / "pretrain" / "results.json"
        assert not (exp / run / "pl_quality" / "test_long").exists()  # not in --pl_sets
        if run.startswith("sup"):
            assert not results.exists(), results
            continue
        (table,) = json.loads(results.read_text()).values()
        assert {table["all"][k]["utterances"] for k in ("ctc", "att_tf", "ar")} == {10}, run
    for run, role in (("warmup", "student"), ("pt_usr1_seed1", "teacher")):
        assert f"({role}) on 10 clips" in (exp / run / "pl_quality" / "pretrain" / "results.md").read_text()


def test_the_report_has_a_row_per_method_the_step_cost_and_the_timing(compare_run):
    recipe, stdout = compare_run
    out = recipe / "exp_cmp" / "compare"
    results = (out / "results.md").read_text()
    for method in METHODS + ("warmup_pt",):
        assert f"| {method} " in results, method
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["wer"]["test"]) == set(DECODES)
    steps = summary["step_seconds"]
    for name in METHODS + ("warmup_pt", "warm-up", "pretrain"):
        assert steps[name]["mean"] > 0, name
    assert list(out.glob("*.png")), "no plots"
    timing = dict(line.split("\t") for line in (recipe / "exp_cmp" / "timing.tsv").read_text().splitlines()[1:])
    for what in (
        "corpus",
        "prepare",
        "lm",
        "warmup",
        "pretrain",
        "warmup_pt",
        "decode_warmup_pt",
        "train_sup_comat_seed1",
        "decode_pt_usr1_seed1",
        "noise_pt_usr1_seed1",
    ):
        assert int(timing[what]) >= 0, what
    assert "min in all" in stdout


@pytest.mark.parametrize(
    "args, error",
    [
        (("--methods", "usr2_comat"), "give --use_lm true"),
        (("--methods", "usr2_comatpl"), "give --use_lm true"),
        (("--methods", "sup_comatpl", "--use_lm", "true"), "COMAT on pseudo-labels needs a usr2 method"),
        (("--methods", "pt_usr2"), "give --pretrain_config"),
        (("--methods", "usr3"), "unknown method 'usr3': no conf/compare/usr3.yaml. The methods: "),
        (("--methods", "pt_usr3_comat"), "unknown method 'pt_usr3_comat': no conf/compare/usr3.yaml."),
        (("--decodes", "beam_lm=conf/decode_mini_lm.yaml"), "sets lm_weight > 0 (shallow fusion): give --use_lm true"),
        (("--decodes", "greedy"), "'greedy' is not TAG=YAML"),
        (("--decodes", "a=conf/decode_mini.yaml a=conf/decode_ci.yaml"), "tag 'a' is given twice"),
        (("--decodes", "b=conf/no_such.yaml"), "conf/no_such.yaml, does not exist"),
    ],
)
def test_bad_arms_fail_before_any_work(tmp_path, args, error, recipe_copy):
    recipe = recipe_copy("mini_lrs3", tmp_path / "usr2")
    proc = _run_compare(recipe, *args, timeout=120)
    assert proc.returncode != 0 and error in proc.stderr, proc.stderr
    assert not (recipe / "exp_cmp").exists()


def test_rerunning_a_stage_skips_what_is_done(compare_run):
    """Resuming a stopped comparison (stage 4 again) retrains nothing finished and decodes
    nothing already scored; the hypotheses stay the files they were. Stage 2 again with the same
    settings leaves the prepared data alone."""
    recipe, _ = compare_run
    run = recipe / "exp_cmp" / "pt_usr1_seed1"
    hyps = sorted(run.glob("*/test*/*/text"))
    assert len(hyps) == len(DECODES) * 2 * 3
    before = {h: h.stat().st_mtime_ns for h in hyps}
    proc = _run_compare(
        recipe,
        *_miniature_args(recipe.parent / "pretrain_ci.yaml", methods=("pt_usr1",)),
        "--stage",
        "4",
        "--stop_stage",
        "4",
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    log = (recipe / "exp_cmp" / "pt_usr1_seed1.log").read_text()
    for tag in DECODES:
        assert f"pt_usr1_seed1: decoding {tag} is already scored, skipped" in log, log[-3000:]
    assert "pt_usr1_seed1: pseudo-labels on pretrain are already scored, skipped" in log, log[-3000:]
    assert {h: h.stat().st_mtime_ns for h in hyps} == before
    # stage 2 again, same settings: the prepared data is kept (runs may be reading its shapes)
    shapes = sorted((recipe / "exp_cmp").glob("stats_*/train/*_shape"))
    before = {p: p.stat().st_mtime_ns for p in shapes}
    proc = _run_compare(
        recipe,
        "--gen_opts",
        GEN_OPTS,
        "--valid_size",
        "4",
        "--nbpe",
        "40",
        "--train_config",
        "conf/train_usr2_ci.yaml",
        "--stage",
        "2",
        "--stop_stage",
        "2",
        timeout=120,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "already prepared with these settings" in proc.stdout, proc.stdout[-2000:]
    assert shapes and {p: p.stat().st_mtime_ns for p in shapes} == before


def _options(words: str) -> dict:
    """Option words as ESPnet's and usr2.sh's parsers read them: each option's values in order
    (``--x=v`` is ``--x v``). Different options accumulate apart, so their interleaving does not
    change the result (usr2_prev's --teacher_conf now follows its --semi_conf values)."""
    tokens, read = words.split(), {}
    while tokens:
        name = tokens.pop(0)
        assert name.startswith("--"), (name, words)
        name, inline, value = name.partition("=")
        read.setdefault(name, []).append(value if inline else tokens.pop(0))
    return read


def test_every_method_resolves_to_its_options_before_the_confs(tmp_path, recipe_copy):
    """--dry_run: each method (base, pt_, _comat, _comatpl) x seed gets the warm-up, usr2.sh
    options and usr2_train arguments it got when the arms were decoded in bash."""
    rows = [line.split("\t") for line in OPTIONS_BEFORE.read_text().splitlines() if not line.startswith("#")]
    methods = list(dict.fromkeys(r[0] for r in rows))
    recipe = recipe_copy("mini_lrs3", tmp_path / "usr2")
    proc = _run_compare(
        recipe,
        "--methods",
        " ".join(methods),
        "--seeds",
        "1 3",
        "--dry_run",
        "true",
        "--use_lm",
        "true",
        "--pretrain_config",
        "conf/pretrain_usr2_mini.yaml",
        "--steps_per_epoch",
        "7",
        "--epochs",
        "2",
        "--train_args",
        "--num_workers 0",
        "--sup_batch_size",
        "5",
        "--comat_weight",
        "0.5",
        "--model_args",
        "",  # the arms' options as they were (the default adds a larger decoder to every run)
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    now = {(r[0], r[1]): r for r in (line.split("\t") for line in proc.stdout.splitlines())}
    assert len(now) == len(rows) == 2 * len(methods)
    for method, seed, warmup, usr2_sh, usr2_train in rows:
        got = now[method, seed]
        assert got[2] == warmup, (method, seed)
        assert _options(got[3]) == _options(usr2_sh), (method, seed, got[3])
        assert _options(got[4]) == _options(usr2_train), (method, seed, got[4])
    assert not (recipe / "exp_cmp").exists()  # a dry run writes nothing


def test_a_comparison_continues_only_with_its_own_settings(tmp_path, recipe_copy):
    """Stages 3-4 refuse an --expdir whose warm-up was made with other settings (corpus, configs,
    model), or one older than the settings record, instead of mixing runs of two settings."""
    recipe = recipe_copy("mini_lrs3", tmp_path / "usr2")
    (recipe / "exp_cmp").mkdir()
    (recipe / "exp_cmp" / "settings.txt").write_text("corpus=elsewhere\n")
    proc = _run_compare(recipe, "--stage", "4", "--stop_stage", "4", "--methods", "sup", timeout=120)
    assert proc.returncode != 0 and "holds a comparison made with other settings" in proc.stderr, proc.stderr
    (recipe / "exp_cmp" / "settings.txt").unlink()
    (recipe / "exp_cmp" / "warmup").mkdir()
    proc = _run_compare(recipe, "--stage", "3", "--stop_stage", "3", timeout=120)
    assert proc.returncode != 0 and "predates exp_cmp/settings.txt" in proc.stderr, proc.stderr
    assert not (recipe / "exp_cmp" / "settings.txt").exists()


def test_an_unknown_method_lists_the_conf_files(tmp_path, recipe_copy):
    recipe = recipe_copy("mini_lrs3", tmp_path / "usr2")
    proc = _run_compare(recipe, "--methods", "usr2 usr3_comat", timeout=120)
    assert proc.returncode != 0
    listed = proc.stderr.split("The methods: ", 1)[1].split(" (each also as", 1)[0].split()
    assert sorted(listed) == sorted(p.stem for p in (RECIPE / "conf" / "compare").glob("*.yaml"))
    assert {"sup", "usr1", "usr2", "usr2_prev"} <= set(listed)


def test_a_method_conf_reads_as_option_words(tmp_path):
    """usr2_compare_conf, the harness's reader: a mapping's leaves as ``key=value`` (dotted below
    the first level), booleans as ESPnet reads them, ${name} from the harness, an empty usr2.sh
    value as ``--name=`` (the one form that survives word splitting)."""
    from espnet_usr2.bin.usr2_compare_conf import fuses_lm, method_options

    conf = tmp_path / "arm.yaml"
    conf.write_text(
        "usr2_sh: {unlabelled_sets: '', semi_type: usr2}\n"
        "usr2_train: {batch_size: '${n}', semi_conf: {seed: '${seed}', heads: false, w: {a: 0.5}}}\n"
    )
    settings = {"seed": "3", "n": "5"}
    assert method_options(str(conf), "usr2_sh", settings) == ["--unlabelled_sets=", "--semi_type", "usr2"]
    assert " ".join(method_options(str(conf), "usr2_train", settings)) == (
        "--batch_size 5 --semi_conf seed=3 --semi_conf heads=false --semi_conf w.a=0.5"
    )
    with pytest.raises(ValueError, match="no harness setting 'seed'"):
        method_options(str(conf), "usr2_train", {"n": "5"})
    conf.write_text("usr2_train: {semi: two words}\n")
    with pytest.raises(ValueError, match="must be one non-empty word"):
        method_options(str(conf), "usr2_train", {})
    conf.write_text("usr2_opts: {semi_type: usr2}\n")  # a misspelt part is an error, not no options
    with pytest.raises(ValueError, match="unknown keys"):
        method_options(str(conf), "usr2_sh", {})
    assert fuses_lm(str(RECIPE / DECODES["beam_lm"])) and not fuses_lm(str(RECIPE / DECODES["greedy"]))


def test_every_method_conf_reads_with_the_harness_settings():
    """Each file of conf/compare -- a new arm too -- renders with the settings run_compare.sh
    gives (a misspelt part or an unknown ${name} fails here, not at stage 4)."""
    from espnet_usr2.bin.usr2_compare_conf import method_options

    confs = sorted((RECIPE / "conf" / "compare").glob("*.yaml"))
    assert confs
    for conf in confs:
        for part in ("usr2_sh", "usr2_train"):
            method_options(str(conf), part, {"seed": "1", "sup_batch_size": "8"})
