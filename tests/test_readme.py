"""Every command the README shows exists: scripts, subcommands and the flags they pass."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def shell_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "<<", "PY", "import", "s3", "for ", "meta", "print")):
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word in ("&&", "||", "|", ";"):
                    if command:
                        commands.append(command)
                    command = []
                else:
                    command.append(word)
    return commands


@cache
def help_of(*command: str) -> str:
    result = subprocess.run([*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)} --help failed: {result.stderr}"
    return result.stdout


def flags(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--")]


def test_the_readme_shows_commands():
    assert len(shell_commands()) > 30


def test_scripts_and_their_flags_exist():
    checked = 0
    for words in shell_commands():
        for i, word in enumerate(words):
            if word.endswith(("faking_data.py", "receive_faking_data.py")):
                script = word.rsplit("/", 1)[-1]
                text = help_of(sys.executable, script)
                for flag in flags(words[i + 1 :]):
                    assert flag in text, f"README: {script} has no flag {flag}"
                checked += 1
            elif word == "scripts/stack":
                rest = words[i + 1 :]
                while rest and rest[0].startswith("--"):
                    rest = rest[2:] if rest[0] in ("--name", "--home") else rest[1:]
                if not rest:
                    continue
                command = rest[0]
                assert command in help_of(str(REPO / "scripts" / "stack")), f"README: scripts/stack {command}"
                if command in ("up", "down", "kill", "start"):
                    text = help_of(str(REPO / "scripts" / "stack"), command)
                    for flag in flags(rest[1:]):
                        assert flag in text, f"README: scripts/stack {command} has no flag {flag}"
                checked += 1
            elif word.startswith("scripts/") or word.startswith(".ci/"):
                assert (REPO / word).exists(), f"README names {word}, which does not exist"
    assert checked > 10


def test_verify_flags_exist():
    text = help_of(sys.executable, "-m", "loglake", "verify")
    for words in shell_commands():
        if words[1:4] == ["-m", "loglake", "verify"]:
            for flag in flags(words[4:]):
                assert flag in text, f"README: verify has no flag {flag}"
