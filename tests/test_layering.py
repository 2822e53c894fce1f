"""Imports point one way: ui -> bot -> {nlu, retrieval, storage}.

finetune imports nlu, retrieval and storage; nlu imports only retrieval; storage and
retrieval import none of the others. evaluation may import every package but ui, and
only ui imports evaluation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN = {
    "storage": {"bot", "ui", "finetune", "retrieval", "evaluation"},
    "retrieval": {"bot", "ui", "finetune", "evaluation"},
    "bot": {"ui", "finetune", "evaluation"},
    "finetune": {"bot", "ui", "evaluation"},
    "nlu": {"bot", "ui", "finetune", "storage", "evaluation"},
    "evaluation": {"ui"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package):
    violations = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in _imported_packages(path) & FORBIDDEN[package]
    ]

    assert violations == []
