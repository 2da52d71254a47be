"""The architecture as a contract (pyproject.toml, [tool.importlinter]): import-linter keeps it, these
tests show that it can fail, and what it cannot see (private names, its own lists) is checked here."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def contract(contract_id: str) -> dict:
    return next(c for c in CONTRACTS if c["id"] == contract_id)


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports run in `where`, a copy of the package and its contracts, with no cache."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=where, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "loglake", tmp_path / "loglake", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contract_holds_on_the_package_and_breaks_on_one_import_back_up(copy):
    kept = lint_imports(copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Contracts: 4 kept, 0 broken." in kept.stdout

    settings = copy / "loglake" / "settings.py"
    settings.write_text(settings.read_text() + "\nfrom loglake import consume  # noqa: E402, F401\n")
    broken = lint_imports(copy)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    layers = contract("layers")["name"]
    assert f"{layers} BROKEN" in " ".join(broken.stdout.split()), broken.stdout
    assert "loglake.settings -> loglake.consume" in broken.stdout


def test_the_kafka_package_keeps_its_roles_apart(copy):
    errors = copy / "loglake" / "kafka" / "errors.py"
    errors.write_text(
        errors.read_text() + "\nfrom loglake.kafka.producer import LogProducer  # noqa: E402, F401\n"
    )
    broken = lint_imports(copy)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{contract('kafka')['name']} BROKEN" in " ".join(broken.stdout.split()), broken.stdout


def test_the_stack_contract_forbids_every_module_of_the_layers_but_defaults_and_errors():
    layered = {
        "loglake." + name.strip() for layer in contract("layers")["layers"] for name in layer.split("|")
    }
    allowed = {"loglake.stack", "loglake.defaults", "loglake.errors"}
    assert set(contract("stack-apart")["forbidden_modules"]) == layered - allowed


def test_no_private_name_is_imported_from_another_module():
    """`from loglake.x import _name` couples a module to another's insides: what is shared is public."""
    found = []
    for path in sorted((REPO / "loglake").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loglake"):
                found += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []
