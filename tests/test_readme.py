"""Every command that README.md and docs/*.md show exists, with every flag it passes.

Each command line of a ```bash block is parsed and checked by what it runs: our scripts against their
`--help`, `scripts/stack` against its subcommands, `docker compose` against the real Compose binary's
help and the services of docker-compose.yml, Kafka's tools against their own help (from the same jars
the native stack runs). A command nobody knows how to check fails the test, and each kind of check
must have found commands: the test never passes because nothing matched.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml

from loglake.stack import fetch

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
COMPOSE_BINARY = REPO / ".stack" / "cache" / "compose-v2.40.3" / "docker-compose"
KAFKA_JARS = REPO / ".stack" / "cache" / "kafka-3.9.2" / ".complete"
# commands shown for what they are, not for a flag of ours: only their existence matters
UNCHECKED = {"printf", ".venv/bin/ruff", ".venv/bin/lint-imports", "sleep", "wait"}


def commands_of(text: str) -> list[list[str]]:
    """The simple commands of a page's bash blocks, as words (heredoc bodies and comments left out)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines, skip_until = [], None
        for line in block.replace("\\\n", " ").splitlines():
            if skip_until:
                skip_until = None if line.strip() == skip_until else skip_until
                continue
            heredoc = re.search(r"<<\s*'?(\w+)'?", line)
            if heredoc:
                skip_until = heredoc.group(1)
                line = line[: heredoc.start()]
            lines.append(line)
        for line in lines:
            words = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*words, "&&"]:
                if word in ("&&", "||", "|", ";"):
                    if command:
                        commands.extend(unwrap(command))
                    command = []
                else:
                    command.append(word)
    return commands


def unwrap(words: list[str]) -> list[list[str]]:
    """`eval "$(cmd)"` is cmd; `NAME=value cmd` is cmd."""
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    if words[:1] == ["eval"] and len(words) == 2 and words[1].startswith("$("):
        return [shlex.split(words[1][2:-1])]
    return [words] if words else []


def all_commands() -> list[tuple[str, list[str]]]:
    return [(page.name, words) for page in PAGES for words in commands_of(page.read_text())]


def has_flag(flag: str, text: str) -> bool:
    """A whole flag: `--rate` is not found in `--rate-limit`, nor `-d` in `-db`."""
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text) is not None


@cache
def help_of(*command: str) -> str:
    result = subprocess.run([*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


# ------------------------------------------------------------------------------------ checkers


def check_script(words: list[str], where: str) -> str:
    """`[.venv/bin/]python faking_data.py|receive_faking_data.py FLAGS`, `python -m loglake verify FLAGS` or
    `python -m loglake table maintain FLAGS`."""
    if words[1:4] == ["-m", "loglake", "verify"]:
        text, rest, name = help_of(sys.executable, "-m", "loglake", "verify"), words[4:], "verify"
    elif words[1:5] == ["-m", "loglake", "table", "maintain"]:
        text, rest, name = (
            help_of(sys.executable, "-m", "loglake", "table", "maintain"),
            words[5:],
            "table maintain",
        )
    elif words[1:3] == ["-m", "pytest"]:
        return "pytest"
    elif words[1:2] == ["-"]:
        return "python-stdin"
    else:
        name = words[1]
        assert name in ("faking_data.py", "receive_faking_data.py"), f"{where}: unknown script {words}"
        text, rest = help_of(sys.executable, str(REPO / name)), words[2:]
    for word in rest:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            assert has_flag(flag, text), f"{where}: {name} has no flag {flag}"
    return "script"


def check_stack(words: list[str], where: str) -> str:
    stack = str(REPO / "scripts" / "stack")
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        assert has_flag(rest[0], help_of(stack)), f"{where}: scripts/stack has no option {rest[0]}"
        rest = rest[2:] if rest[0] in ("--name", "--home") else rest[1:]
    assert rest, f"{where}: scripts/stack without a command"
    command = rest[0]
    assert re.search(r"\{[a-z,]*\b" + command + r"\b", help_of(stack)), f"{where}: no scripts/stack {command}"
    if command == "kafka":
        check_kafka_tool(rest[1:], where)
        return "kafka-tool"
    text = help_of(stack, command)
    for word in rest[1:]:
        if word.startswith("-"):
            assert has_flag(word.split("=", 1)[0], text), (
                f"{where}: scripts/stack {command} has no flag {word}"
            )
    return "stack"


@cache
def compose_help(*sub: str) -> dict[str, bool]:
    """{flag: takes a value} from the real Compose binary's help of `docker compose SUB`."""
    text = help_of(str(COMPOSE_BINARY), *sub)
    flags = {}
    for match in re.finditer(r"^\s+(?:(-\w), )?(--[\w-]+)(?: (\w+))?", text, flags=re.M):
        short, long, kind = match.groups()
        for flag in (short, long):
            if flag:
                flags[flag] = kind is not None
    assert flags, f"no options in the help of docker compose {' '.join(sub)}"
    return flags


def check_compose(words: list[str], where: str) -> str:
    assert words[1] == "compose", f"{where}: only `docker compose` is shown, not {words}"
    if not COMPOSE_BINARY.exists():
        pytest.skip("the Compose binary is built by scripts/check-compose (scripts/test runs it first)")
    rest, profiles = words[2:], []
    global_flags = compose_help()
    while rest and rest[0].startswith("-"):
        flag = rest[0]
        assert flag in global_flags, f"{where}: docker compose has no option {flag}"
        if flag == "--profile":
            profiles.append(rest[1])
        rest = rest[2:] if global_flags[flag] else rest[1:]
    declared = {p for s in COMPOSE["services"].values() for p in s.get("profiles", [])}
    assert set(profiles) <= declared | {"*"}, f"{where}: no profile {profiles} in docker-compose.yml"
    sub, rest = rest[0], rest[1:]
    sub_flags = compose_help(sub)
    operands = []
    while rest:
        word = rest[0]
        if word.startswith("-") and not operands:
            flag = word.split("=", 1)[0]
            assert flag in sub_flags, f"{where}: docker compose {sub} has no flag {flag}"
            if flag == "--scale":
                assert rest[1].split("=")[0] in COMPOSE["services"], f"{where}: --scale {rest[1]}"
            rest = rest[1:] if "=" in word or not sub_flags[flag] else rest[2:]
            continue
        operands.append(word)
        rest = rest[1:]
        if sub in ("exec", "run"):
            break
    for service in operands:
        assert service in COMPOSE["services"], f"{where}: docker-compose.yml has no service {service}"
        wanted = COMPOSE["services"][service].get("profiles")
        assert not wanted or set(wanted) & set(profiles) or "*" in profiles, (
            f"{where}: service {service} needs --profile {wanted[0]}"
        )
    if sub in ("exec", "run"):
        assert operands, f"{where}: docker compose {sub} without a service"
        inside = rest
        if inside and inside[0] == "python":
            check_script(inside, where)
        elif inside:
            check_kafka_tool(inside, where)
    return "compose"


def check_kafka_tool(words: list[str], where: str) -> None:
    """A Kafka tool (`kafka-topics`, `/opt/kafka/bin/kafka-topics.sh`, ...) and its flags."""
    tool = words[0].rsplit("/", 1)[-1].removesuffix(".sh")
    assert tool in fetch.TOOLS, f"{where}: {words[0]} is none of Kafka's tools this test knows"
    if not KAFKA_JARS.exists():
        pytest.skip("Kafka's jars are fetched by scripts/stack up (scripts/test does it first)")
    stack = str(REPO / "scripts" / "stack")
    text = help_of(stack, "kafka", tool)
    subcommand = next(
        (w for w in words[1:] if not w.startswith("-") and not words[words.index(w) - 1].startswith("-")),
        None,
    )
    if subcommand and re.search(r"\{[\w,-]*\b" + subcommand + r"\b", text):
        text += help_of(stack, "kafka", tool, subcommand)
    for i, word in enumerate(words[1:], start=1):
        if word.startswith("--"):
            assert has_flag(word, text), f"{where}: {tool} has no flag {word}"
        if words[i - 1] == "--property":
            key = word.split("=", 1)[0]
            assert has_flag(key, text), f"{where}: {tool} knows no property {key}"


def check(words: list[str], where: str) -> str:
    head = words[0]
    if head in ("python", ".venv/bin/python"):
        return check_script(words, where)
    if head == "scripts/stack":
        return check_stack(words, where)
    if head == "docker":
        return check_compose(words, where)
    if head.startswith(("scripts/", ".ci/")):
        assert (REPO / head).is_file(), f"{where}: {head} does not exist"
        for word in words[1:]:
            if word.startswith("tests/"):
                assert (REPO / word.split("::")[0]).exists(), f"{where}: {word} does not exist"
        return "repo-script"
    if head == "export":
        code = "".join(f.read_text() for f in (REPO / "loglake").rglob("*.py"))
        for word in words[1:]:
            name = word.split("=", 1)[0]
            assert f'"{name}"' in code, f"{where}: loglake reads no variable {name}"
        return "export"
    if head == ".venv/bin/pip-compile":
        text = help_of(str(REPO / head))
        for word in words[1:]:
            if word.startswith("-"):
                assert has_flag(word.split("=", 1)[0], text), f"{where}: pip-compile has no flag {word}"
            elif word.endswith(".txt") and words[words.index(word) - 1] != "--output-file":
                assert (REPO / word).is_file(), f"{where}: {word} does not exist"
        return "pip-compile"
    if head == "make":
        makefile = (REPO / "Makefile").read_text()
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), (
                f"{where}: no make target {target}"
            )
        return "make"
    assert head in UNCHECKED, f"{where}: nobody checks command {head!r}; teach tests/test_readme.py about it"
    return "unchecked"


# -------------------------------------------------------------------------------------- tests


def test_the_parser_finds_commands_on_every_page():
    found = Counter(page for page, _ in all_commands())
    for page in (
        "README.md",
        "producer.md",
        "lake-writer.md",
        "native-stack.md",
        "compose.md",
        "development.md",
    ):
        assert found[page] > 0, f"no bash command found in {page}"
    assert found["README.md"] > 40


def test_a_missing_flag_or_command_fails():
    """The checks bite: made-up flags, subcommands, services and tools are refused."""
    for words in (
        [".venv/bin/python", "faking_data.py", "--rate-limit", "5"],
        ["python", "receive_faking_data.py", "--exit-when"],
        ["scripts/stack", "env", "--composer"],
        ["scripts/stack", "teleport"],
        ["scripts/nothing"],
        ["make", "pictures"],
        ["curl", "http://localhost:9000"],
    ):
        with pytest.raises(AssertionError):
            check(words, "made-up")


def test_a_missing_compose_flag_service_or_kafka_flag_fails():
    for words in (
        ["docker", "compose", "up", "--detach-all"],
        ["docker", "compose", "exec", "broker", "kafka-topics"],
        ["docker", "compose", "--profile", "galaxy", "up"],
        ["docker", "compose", "kill", "kafka-2"],  # a profile's service without its --profile
        ["docker", "compose", "exec", "kafka", "kafka-topics", "--bootstrap-servers", "kafka:29092"],
        ["docker", "compose", "exec", "kafka", "kafka-console-consumer", "--property", "print.colour=true"],
    ):
        with pytest.raises(AssertionError):
            check(words, "made-up")


def test_every_documented_command_exists():
    kinds = Counter(check(words, f"{page}: {' '.join(words)}") for page, words in all_commands())
    # each kind of check ran on real commands, so none of them passed for want of matches
    assert kinds["script"] >= 10, kinds
    assert kinds["stack"] >= 10, kinds
    assert kinds["compose"] >= 30, kinds
    assert kinds["kafka-tool"] >= 3, kinds
    assert kinds["repo-script"] >= 3, kinds


def test_readme_links_to_every_reference_page():
    readme = (REPO / "README.md").read_text()
    for page in (
        "producer",
        "lake-writer",
        "guarantees",
        "compose",
        "native-stack",
        "performance",
        "development",
    ):
        assert (REPO / "docs" / f"{page}.md").exists(), page
        assert f"](docs/{page}.md" in readme, f"README does not link docs/{page}.md"
    assert "](docs/geo.md)" in readme
    for picture in re.findall(r"\]\((Image/[^)]+)\)", readme):
        assert (REPO / picture).exists(), picture


# ------------------------------------------------------------------- the tutorial against compose


def compose_commands() -> list[tuple[str, list[str], list[str]]]:
    """(page, global options, [subcommand, args...]) of every `docker compose` command the pages show,
    in bash blocks and in inline code."""
    found = [(page, words) for page, words in all_commands() if words[:2] == ["docker", "compose"]]
    for page in PAGES:
        for span in re.findall(r"`(docker compose [^`]*)`", page.read_text()):
            found.append((page.name, shlex.split(span.replace("…", ""))))
    commands = []
    for page, words in found:
        rest, options = words[2:], []
        while rest and rest[0].startswith("-"):
            takes_value = rest[0] in ("--profile", "-f", "--file", "--env-file", "-p", "--project-name")
            options += rest[: 2 if takes_value else 1]
            rest = rest[2 if takes_value else 1 :]
        if rest:
            commands.append((page, options, rest))
    return commands


def test_compose_ps_shows_the_exited_init_jobs():
    """`docker compose ps` lists running containers only: the init jobs' `Exited (0)` needs -a."""
    shown = [(page, args) for page, _, args in compose_commands() if args[0] == "ps"]
    assert shown
    for page, args in shown:
        assert {"-a", "--all"} & set(args) or "--status" in args, f"{page}: docker compose {' '.join(args)}"


def test_teardown_reaches_every_profile():
    """`down` and a whole-stack `stop` act on the profiles named only: they say --profile '*'."""
    teardowns = [
        (page, options, args)
        for page, options, args in compose_commands()
        if args[0] == "down"
        or (args[0] in ("stop", "kill") and not [a for a in args[1:] if not a.startswith("-")])
    ]
    assert len(teardowns) >= 4
    for page, options, args in teardowns:
        assert "*" in options, (
            f"{page}: docker compose {' '.join(options + args)} leaves the profiles' services"
        )


def test_every_one_off_run_leaves_the_running_stack_alone():
    """`run` starts the service's dependencies again (the init jobs, or a broker killed on purpose)
    unless --no-deps: the tutorial runs its one-off containers beside a running stack."""
    runs = [(page, args) for page, _, args in compose_commands() if args[0] == "run"]
    assert len(runs) >= 5
    for page, args in runs:
        assert "--no-deps" in args, f"{page}: docker compose {' '.join(args)}"


def section(page: str, heading: str) -> str:
    text = (REPO / page).read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else None]


def test_prerequisites_name_every_sign_of_a_missing_compose_plugin_and_the_ports():
    prerequisites = section("README.md", "## Prerequisites")
    for message in ("docker: unknown command: docker compose", "'compose' is not a docker command"):
        assert f"`{message}`" in prerequisites
    ports = re.search(r"free ports ([\d, and]+) on\s+127\.0\.0\.1", prerequisites).group(1)
    stated = sorted(int(p) for p in re.findall(r"\d+", ports))
    published = sorted(
        int(str(port).split(":")[1])
        for service in COMPOSE["services"].values()
        if not service.get("profiles")
        for port in service.get("ports", [])
    )
    assert stated == published


def test_the_quick_start_promises_what_the_compose_file_sets():
    quick = section("README.md", "## Quick start")
    env = {name: s.get("environment", {}) for name, s in COMPOSE["services"].items()}

    def default(value: str) -> int:
        return int(re.fullmatch(r"\$\{\w+:-(\d+)\}", value).group(1))

    rate, duration = default(env["producer"]["LOGLAKE_RATE"]), default(env["producer"]["LOGLAKE_DURATION"])
    assert f"sends {rate} fake events a second for an hour" in quick and duration == 3600
    batch_age = default(env["writer"]["LOGLAKE_BATCH_AGE"])
    assert f"waited {batch_age} s\n  (`LOGLAKE_BATCH_AGE`" in quick
    assert "Within a minute" in quick and batch_age < 60
    # verify while the producer runs: PENDING with exit 3, and the way to OK
    assert "result=PENDING" in quick and "exits 3" in quick and "--to-committed" in quick
    services = set(re.findall(r"`([a-z-]+)`", quick)) & set(COMPOSE["services"])
    assert services == {name for name, s in COMPOSE["services"].items() if not s.get("profiles")}


def test_repository_scripts_are_executable_in_git():
    """A fresh clone runs `./.ci/run` and scripts/*: git must store them as executables."""
    scripts = sorted(p for folder in ("scripts", ".ci") for p in (REPO / folder).iterdir() if p.is_file())
    assert any(p.name == "run" for p in scripts)
    listed = subprocess.run(
        ["git", "ls-files", "-s", "--", "scripts", ".ci"], cwd=REPO, capture_output=True, text=True
    )
    if listed.returncode != 0 or not listed.stdout:
        pytest.skip("not a git checkout: the mode git stores cannot be read")
    modes = {line.split("\t")[1]: line.split()[0] for line in listed.stdout.splitlines()}
    for path in scripts:
        name = str(path.relative_to(REPO))
        assert modes.get(name) == "100755", f"{name} is stored as {modes.get(name)}, not executable"


def test_the_suite_time_is_one_figure_in_one_place():
    """How long the suite takes: measured once, written in docs/development.md, linked from elsewhere."""
    for page in PAGES:
        text = page.read_text().replace("\n", " ")
        claims = re.findall(r"(?:suite|scripts/test|\.ci/run)[^.]{0,80}?\b\d+(?:\.\d+)? minutes", text)
        if page.name == "development.md":
            assert len(claims) == 1, claims
        else:
            assert not claims, f"{page.name}: {claims}"
    assert "](docs/development.md#how-long-the-suite-takes)" in (REPO / "README.md").read_text()
