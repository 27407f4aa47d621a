"""Recipe directories for tests and benchmarks, laid out as a user has them.

A test or benchmark runs a recipe in a scratch directory so that what the recipe writes
(downloads/, data*/, dump*/, exp*/, hidden files) never lands in the checkout. Two shapes:

- ``link_recipe(corpus, dst)``: ``egs2/<corpus>/usr2`` with every entry linked except the
  recipe's outputs (what ``./run.sh`` needs, as a user's clone has it);
- ``link_template(dst)``: the shared files of ``egs2/TEMPLATE/usr2`` (usr2.sh and what it
  sources), for tests and benchmarks that call ``usr2.sh`` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

EGS = Path(__file__).resolve().parents[2] / "egs2"
TEMPLATE = EGS / "TEMPLATE" / "usr2"
# What running a recipe writes (data_cmp/, exp_lm/, dump_cmp/ ... included): never linked.
RECIPE_OUTPUTS = ("downloads", "data", "dump", "exp", ".")
# usr2.sh and what it sources or calls by a relative path.
TEMPLATE_SHARED = ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh", "path.sh")

# The mini recipe in its CI setting (test/recipe/test_mini_recipe.py; bench/results_across_commits.py):
# a tiny generated corpus, the tiny model, stages 1-13 in minutes on 2 cores.
MINI_CI_GEN_OPTS = (
    "--n_pretrain 16 --n_trainval 36 --n_test 6 --n_long 2 --n_speakers 3 --n_test_speakers 2 "
    "--max_words 5 --long_min_words 8 --long_max_words 10 --size 128"
)
MINI_CI_RUN_OPTS = (
    "--gen_opts",
    MINI_CI_GEN_OPTS,
    "--nj",
    "2",
    "--local_data_opts",
    "--long_test true --valid_from trainval --valid_size 6",
    "--nbpe",
    "40",
    "--max_frames",
    "300",
    "--sup_train_config",
    "conf/train_usr2_ci_sup.yaml",
    "--train_config",
    "conf/train_usr2_ci.yaml",
    "--labelled_batch_frames",
    "300",
    "--unlabelled_batch_frames",
    "300",
)
MINI_CI_DECODE_OPTS = (
    "--inference_nj",
    "2",
    "--test_sets",
    "test test_long",
    "--inference_config",
    "conf/decode_ci.yaml",
)
MINI_CI_TAG = "train_usr2_ci_trainval_train_semi_pretrain"
MINI_CI_DECODE_TAG = "decode_ci_valid.loss.best"


def link_recipe(corpus: str, dst: Path) -> Path:
    """``egs2/<corpus>/usr2`` in ``dst`` (created): every entry linked except the outputs."""
    dst.mkdir(parents=True)
    for entry in (EGS / corpus / "usr2").iterdir():
        if not entry.name.startswith(RECIPE_OUTPUTS):
            (dst / entry.name).symlink_to(entry.resolve())
    return dst


def link_template(dst: Path, names: Iterable[str] = TEMPLATE_SHARED) -> Path:
    """A recipe directory ``dst`` (created) holding links to the TEMPLATE's ``names``."""
    dst.mkdir(parents=True)
    for name in names:
        (dst / name).symlink_to(TEMPLATE / name)
    return dst
