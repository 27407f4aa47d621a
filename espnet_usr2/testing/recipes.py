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
