"""docs/guarantees.md links each promise to the tests that prove it: every test it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "guarantees.md"


def named_tests() -> list[tuple[str, str]]:
    return re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", PAGE.read_text())


def defined_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    names |= {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    return names


def test_every_promise_names_tests_and_every_named_test_exists():
    found = named_tests()
    assert len(found) >= 30, "the guarantees table names too few tests; was it rewritten?"
    missing = [f"{f}::{t}" for f, t in found if not (REPO / f).exists() or t not in defined_in(REPO / f)]
    assert missing == [], f"docs/guarantees.md names tests that do not exist: {missing}"
    section = PAGE.read_text().split("## Every promise", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| promise | tests | oracle |" and len(rows) > 10
    untested = [r for r in rows[2:] if "::" not in r]
    assert untested == [], f"a promise without a test: {untested}"
