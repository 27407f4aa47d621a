"""The repository passes its linters, as ESPnet's CI runs flake8 / black / isort / shellcheck.

- ``ruff check`` and ``ruff format --check`` with pyproject.toml's settings, over every
  Python file of the repository (package, recipes' scripts, tests, benchmarks);
- ``shellcheck`` with .shellcheckrc's settings (sourced files followed) over every shell
  script in git: ``*.sh`` and files whose first line names bash or sh, symbolic links (the
  recipes' shared scripts) once, at their target.

The linters are the test extra's (setup.py): a checkout without them fails here, with the
command that installs them, rather than passing unchecked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = "install the test extra: pip install -e '.[test]' (tools/install.sh does)"


def linter(name: str) -> str:
    """The linter's executable: beside this Python (the venv's bin/) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; {INSTALL_HINT}")
    return found


def run(cmd: List[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def shell_scripts() -> List[str]:
    """Shell scripts git tracks as regular files (links to them are checked at the target)."""
    listing = run(["git", "ls-files", "-s"])
    if listing.returncode != 0:
        pytest.fail(f"git ls-files failed (the lint test reads the tracked files): {listing.stderr}")
    scripts = []
    for line in listing.stdout.splitlines():
        mode, _, _, path = line.split(maxsplit=3)
        if mode == "120000" or not (REPO / path).is_file():
            continue
        if path.endswith(".sh") or _shebang_is_shell(REPO / path):
            scripts.append(path)
    return scripts


def _shebang_is_shell(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline(100)
    return first.startswith(b"#!") and (first.rstrip().endswith((b"bash", b"/sh")))


def test_ruff_check():
    proc = run([linter("ruff"), "check", "--no-cache", "."])
    assert proc.returncode == 0, f"ruff check found problems (ruff check --fix fixes some):\n{proc.stdout[-6000:]}"


def test_ruff_format():
    proc = run([linter("ruff"), "format", "--check", "--no-cache", "."])
    assert proc.returncode == 0, f"not formatted (run: ruff format .):\n{proc.stdout[-3000:]}"


def test_shellcheck():
    scripts = shell_scripts()
    assert "egs2/TEMPLATE/usr2/usr2.sh" in scripts and ".ci/run" in scripts, scripts[:10]
    proc = run([linter("shellcheck"), "-x", "-f", "gcc", *scripts])
    assert proc.returncode == 0, f"shellcheck found problems:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"
