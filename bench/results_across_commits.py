"""Does a restructuring change results? The mini recipe's CI setting run at two commits.

Each commit is checked out in a scratch worktree (``git worktree add --detach``) that shares
this checkout's virtual environment, and ``egs2/mini_lrs3/usr2/run.sh`` runs stages 1-13
there with the options of test/recipe/test_mini_recipe.py (tiny corpus and model), the same
training thread count and seeds. Both runs read one generated corpus (``MINI_LRS3``), so only
the code under test differs. Compared, in this order of strictness:

- the RESULTS.md WER table (A / V / AV per test set),
- every decoded hypothesis (``<decode>/<set>/<modality>/text``),
- every tensor of the final model (``valid.loss.best.pth`` of the warm-up and of the
  semi-supervised run): the largest absolute difference.

Prints a markdown report (also written with ``--out``); exits 1 when anything differs.

    python bench/results_across_commits.py --before d16ec01 --after HEAD --workdir /tmp/across
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from espnet_usr2.testing.recipes import (
    MINI_CI_DECODE_OPTS,
    MINI_CI_DECODE_TAG,
    MINI_CI_RUN_OPTS,
    MINI_CI_TAG,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = (f"{MINI_CI_TAG}_sup/valid.loss.best.pth", f"{MINI_CI_TAG}/valid.loss.best.pth")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def checkout(rev: str, workdir: Path) -> Path:
    """A worktree of ``rev`` in ``workdir`` (reused when it is already there) with this venv."""
    sha = git("rev-parse", "--short=12", rev)
    tree = workdir / sha
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), sha)
        (tree / "tools" / "venv").symlink_to((REPO / "tools" / "venv").resolve())
    return tree


def run_recipe(tree: Path, corpus: Path, threads: int) -> Path:
    """Stages 1-13 of the mini recipe's CI setting in ``tree``; the recipe directory."""
    recipe = tree / "egs2" / "mini_lrs3" / "usr2"
    if (recipe / "exp" / MINI_CI_TAG / "RESULTS.md").is_file():
        print(f"[across] {tree.name}: already run, kept", file=sys.stderr)
        return recipe
    env = {**os.environ, "PYTHONPATH": str(tree), "MINI_LRS3": str(corpus), "USR2_CMD_BACKEND": "local"}
    cmd = ["./run.sh", *MINI_CI_RUN_OPTS, *MINI_CI_DECODE_OPTS, "--train_nthreads", str(threads)]
    start = time.perf_counter()
    with open(recipe / "across.log", "w") as log:
        proc = subprocess.run(cmd, cwd=recipe, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"run.sh failed at {tree.name}; see {recipe / 'across.log'}")
    print(f"[across] {tree.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return recipe


def wer_table(recipe: Path) -> List[str]:
    results = (recipe / "exp" / MINI_CI_TAG / "RESULTS.md").read_text()
    section = results.split("### WER (%) per modality", 1)[1].split("###", 1)[0]
    return [line for line in section.strip().splitlines() if line.startswith("|")]


def hypotheses(recipe: Path) -> Dict[str, str]:
    decode = recipe / "exp" / MINI_CI_TAG / MINI_CI_DECODE_TAG
    return {str(p.relative_to(decode)): p.read_text() for p in sorted(decode.glob("*/*/text"))}


def largest_difference(a: Path, b: Path) -> Tuple[float, List[str]]:
    """(largest |a - b| over the shared tensors, names present in only one file)."""
    sa, sb = torch.load(a, map_location="cpu"), torch.load(b, map_location="cpu")
    only = sorted(set(sa) ^ set(sb))
    diff = 0.0
    for name in set(sa) & set(sb):
        x, y = sa[name], sb[name]
        if x.shape != y.shape:
            only.append(f"{name} (shape {tuple(x.shape)} vs {tuple(y.shape)})")
        elif x.numel():
            diff = max(diff, (x.double() - y.double()).abs().max().item())
    return diff, only


def report(before: str, after: str, a: Path, b: Path, threads: int) -> Tuple[str, bool]:
    lines = [
        f"# Mini recipe (CI setting) at {before} and {after}",
        "",
        f"`python bench/results_across_commits.py --before {before} --after {after} --threads {threads}`",
        "",
    ]
    same = True
    table_a, table_b = wer_table(a), wer_table(b)
    same_table = table_a == table_b
    same &= same_table
    lines += ["## WER table (RESULTS.md)", "", f"identical: {same_table}", "", f"{before}:", "", *table_a, ""]
    if not same_table:
        lines += [f"{after}:", "", *table_b, ""]
    hyp_a, hyp_b = hypotheses(a), hypotheses(b)
    differing = sorted(k for k in set(hyp_a) | set(hyp_b) if hyp_a.get(k) != hyp_b.get(k))
    same &= not differing
    lines += ["## Hypotheses", "", f"{len(hyp_a)} files; differing: {', '.join(differing) or 'none'}", ""]
    lines += ["## Model tensors", "", "| model | largest abs. difference | tensors in one only |", "|---|---|---|"]
    for model in MODELS:
        diff, only = largest_difference(a / "exp" / model, b / "exp" / model)
        same &= diff == 0.0 and not only
        lines.append(f"| {model} | {diff:.3g} | {', '.join(only) or '-'} |")
    return "\n".join(lines) + "\n", same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="commit before the change")
    parser.add_argument("--after", default="HEAD", help="commit after the change")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/results_across_commits"))
    parser.add_argument("--threads", type=int, default=2, help="training threads, the same for both")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.workdir / "mini_lrs3"
    recipes = [run_recipe(checkout(rev, args.workdir), corpus, args.threads) for rev in (args.before, args.after)]
    text, same = report(args.before, args.after, *recipes, args.threads)
    print(text)
    if args.out:
        args.out.write_text(text)
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
