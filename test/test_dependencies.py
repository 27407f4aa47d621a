"""setup.py declares every third-party module the code imports, and says why it declares the rest.

The imports are read from the source (``import x``, ``from x import y``, also inside
functions, and ``pytest.importorskip("x")``), mapped to the distributions installed here
that provide them, and compared with ``install_requires`` / ``extras_require`` of setup.py.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"espnet_usr2"}
# Imported, but installed by tools/install.sh instead of setup.py, and why.
INSTALLED_BY_TOOLS = {
    "mediapipe": "mediapipe==0.10.21 goes in with --no-deps: its metadata asks for numpy<2, espnet 202511 "
    "for numpy>=2, so pip could not install both from setup.py",
}
# Imported by the package only when an optional feature is used (lazily, inside a function),
# declared in that extra of setup.py and may be absent: module -> (extra, what needs it).
OPTIONAL_EXTRAS = {
    "transformers": ("comat", "COMAT with a Hugging Face PLM (comat_conf.plm: hf)"),
}


def imported_modules(files: Iterable[Path]) -> Dict[str, Set[str]]:
    """Top-level module name -> the files importing it (absolute imports only)."""
    found: Dict[str, Set[str]] = {}
    for path in files:
        for name in _imports_of(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _imports_of(tree: ast.AST) -> Iterable[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.args[0].value


def third_party(modules: Dict[str, Set[str]], files: List[Path]) -> Dict[str, Set[str]]:
    """Drop the standard library, this package and modules that are files of the scanned tree."""
    local = {p.stem for p in files} | {p.parent.name for p in files}
    return {
        m: f for m, f in modules.items() if m not in sys.stdlib_module_names and m not in FIRST_PARTY and m not in local
    }


def setup_requirements() -> Tuple[List[Tuple[str, int]], Dict[str, List[Tuple[str, int]]]]:
    """(install_requires, extras_require) of setup.py as (requirement, line number) pairs."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"]
    assert len(calls) == 1, "setup.py must call setup() once"
    keywords = {k.arg: k.value for k in calls[0].keywords}

    def strings(node: ast.AST) -> List[Tuple[str, int]]:
        assert isinstance(node, ast.List), "requirements in setup.py must be a literal list of strings"
        return [(ast.literal_eval(e), e.lineno) for e in node.elts]

    extras = keywords.get("extras_require")
    return (
        strings(keywords["install_requires"]),
        {ast.literal_eval(k): strings(v) for k, v in zip(extras.keys, extras.values)} if extras else {},
    )


@functools.lru_cache(maxsize=None)
def _packages_distributions() -> Dict[str, List[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> Set[str]:
    providers = _packages_distributions().get(module)
    if not providers:
        pytest.fail(
            f"module {module!r} is imported but no installed distribution provides it; "
            f"declare it in setup.py and install it"
        )
    return {canonicalize_name(d) for d in providers}


def _names(requirements: Iterable[Tuple[str, int]]) -> Set[str]:
    return {canonicalize_name(Requirement(r).name) for r, _ in requirements}


def _python_files(*roots: str) -> List[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py") if "venv" not in p.parts)


def _undeclared(files: List[Path], declared: Set[str]) -> List[str]:
    problems = []
    for module, users in sorted(third_party(imported_modules(files), files).items()):
        if module in INSTALLED_BY_TOOLS or module in OPTIONAL_EXTRAS:
            continue
        if not distributions_of(module) & declared:
            problems.append(
                f"{module} (provided by {sorted(distributions_of(module))}; imported by {sorted(users)[:3]})"
            )
    return problems


def test_package_and_recipe_imports_are_install_requires():
    install, _ = setup_requirements()
    problems = _undeclared(_python_files("espnet_usr2", "egs2"), _names(install))
    assert not problems, "imported but not in setup.py's install_requires: " + "; ".join(problems)


def test_test_and_benchmark_imports_are_declared():
    install, extras = setup_requirements()
    problems = _undeclared(_python_files("test", "bench"), _names(install) | _names(extras.get("test", [])))
    assert not problems, (
        "imported by tests / benchmarks but not declared (install_requires or the 'test' extra): " + "; ".join(problems)
    )


def test_every_declared_requirement_is_imported_or_says_why():
    """A requirement nothing imports needs a comment on its line or directly above it."""
    install, extras = setup_requirements()
    files = _python_files("espnet_usr2", "egs2", "test", "bench")
    imported = set()
    for module in third_party(imported_modules(files), files):
        if module not in INSTALLED_BY_TOOLS and module not in OPTIONAL_EXTRAS:
            imported |= distributions_of(module)
    lines = (REPO / "setup.py").read_text(encoding="utf-8").splitlines()
    unexplained = []
    for requirement, lineno in [*install, *(r for group in extras.values() for r in group)]:
        if canonicalize_name(Requirement(requirement).name) in imported:
            continue
        line, above = lines[lineno - 1], lines[lineno - 2].strip()
        if "#" not in line.split(repr(requirement).strip("'"), 1)[-1] and not above.startswith("#"):
            unexplained.append(requirement)
    assert not unexplained, f"declared, never imported, and no comment saying why: {unexplained}"


def test_optional_modules_are_declared_in_their_extra():
    _, extras = setup_requirements()
    for module, (extra, _) in OPTIONAL_EXTRAS.items():
        assert canonicalize_name(module) in _names(extras.get(extra, [])), (
            f"{module} must be declared in setup.py's extras_require[{extra!r}]"
        )


def test_modules_installed_outside_setup_py_are_installed_by_tools_install_sh():
    install_sh = (REPO / "tools" / "install.sh").read_text(encoding="utf-8")
    for module in INSTALLED_BY_TOOLS:
        assert f'--no-deps "{module}==' in install_sh, f"tools/install.sh no longer installs {module}"


def test_the_import_walker_sees_every_form_of_import(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    (tmp_path / "pkg" / "helper.py").write_text("")
    source.write_text(
        "import os, yaml.cyaml as y\n"
        "from numpy.linalg import norm\n"
        "from . import sibling\n"
        "import helper\n"
        "def f():\n"
        "    import scipy.signal\n"
        "    return pytest.importorskip('pocketsphinx')\n"
        "import espnet_usr2.tasks\n"
    )
    files = [source, tmp_path / "pkg" / "helper.py"]
    assert set(third_party(imported_modules(files), files)) == {"yaml", "numpy", "scipy", "pocketsphinx"}
