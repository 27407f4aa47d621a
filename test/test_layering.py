"""Imports run one way: bin -> inference -> tasks (and the trainer) -> model, semi, decode, scoring,
analysis, samplers, prep -> data -> utils. Read from the source (every ``import`` and ``from ... import``, also those
inside functions), so a new upward import fails here with the module and line that made it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "espnet_usr2"
# a package may import its own modules, those of its layer and of every layer below
LAYER = {
    "bin": 6,
    "inference": 5,
    "tasks": 4,
    "train": 4,
    "model": 3,
    "semi": 3,
    "decode": 3,
    "scoring": 3,
    "analysis": 3,
    "samplers": 3,
    "prep": 3,
    "data": 2,
    "utils": 1,
    "version": 1,
    "testing": 1,
}
# no exceptions: the inference front ends that build the model through USR2Task sit above it


def internal_imports(path: Path) -> Iterator[Tuple[str, int]]:
    """(top-level espnet_usr2 package imported, line) for every import in ``path``."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "espnet_usr2" and len(parts) > 1:
                yield parts[1], node.lineno


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:  # espnet_usr2/__init__.py, version.py
            continue
        package = rel.parts[0]
        assert package in LAYER, f"{package}: give the new package a layer in this test"
        for imported, line in internal_imports(path):
            assert imported in LAYER, f"{rel}:{line} imports espnet_usr2.{imported}, which has no layer here"
            if LAYER[imported] > LAYER[package]:
                upward.append(
                    f"{rel}:{line} ({package}, layer {LAYER[package]}) imports {imported} (layer {LAYER[imported]})"
                )
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_only_tests_and_benchmarks_use_the_testing_helpers():
    users = [
        f"{p.relative_to(PACKAGE)}:{line}"
        for p in PACKAGE.rglob("*.py")
        if "testing" not in p.parts
        for imported, line in internal_imports(p)
        if imported == "testing"
    ]
    assert not users, users
