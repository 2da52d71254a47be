"""The producer and writer processes of the real-stack tests: started, watched, stopped and reaped here.

A test takes the `processes` fixture (tests/conftest.py) and starts what it needs through it:

    writer = processes.writer(env, "--topic", topic, "--exit-when-idle", "3")
    code, out, err = writer.finish(120)

Every process runs the repository's scripts with this interpreter, from the repository's root, with
the environment it is given: `env` is the stack's (`scripts/stack env`), and the stack variables the
test process itself may carry are removed first (`clean_env`). The helper reads no stack from anywhere
else, so a scenario runs on whichever stack its test is given (a parametrised fixture can hand the same
test a versitygw stack and a MinIO one).

A process's stdout and stderr go to files in the test's tmp_path (pytest keeps those of its last three
sessions; failed assertions quote the output they need). The test reads them while the process runs
(`lines`, `last`, `wait_for`, waiting through tests/waiting.py) and when it ends (`finish`). When the
test ends, passed or failed, the fixture SIGKILLs and reaps every process still running: none outlives
its test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from loglake.stack.__main__ import ENV_NAMES
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STACK_ENV_KEYS = ENV_NAMES  # every variable `scripts/stack env` may print
REAP_SECONDS = 30  # a SIGKILLed process is gone within this; longer means something is wrong


def clean_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The process environment without any stack variables, plus those of `stack_env`."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_ENV_KEYS}
    env.update(stack_env)
    return env


class Finished(NamedTuple):
    """How a process ended, named like subprocess.CompletedProcess's fields; unpacks as
    `code, out, err`. With stderr merged into stdout, both hold the merged log."""

    returncode: int
    stdout: str
    stderr: str


class Child:
    """One started process and the files its output goes to."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, merge_stderr: bool) -> None:
        self.args = args
        self._paths = {"out": log.with_name(log.name + (".log" if merge_stderr else ".out"))}
        self._paths["err"] = self._paths["out"] if merge_stderr else log.with_name(log.name + ".err")
        with contextlib.ExitStack() as files:  # the child has its own copies of these descriptors
            out = files.enter_context(open(self._paths["out"], "wb"))
            err = subprocess.STDOUT if merge_stderr else files.enter_context(open(self._paths["err"], "wb"))
            self.process = subprocess.Popen(args, cwd=REPO, env=clean_env(env), stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the process still runs after `timeout` s (it is left running)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig: signal.Signals) -> None:
        """SIGTERM to stop it, SIGKILL to crash it, SIGSTOP / SIGCONT to make and wake a zombie."""
        self.process.send_signal(sig)

    # ----------------------------------------------------------------------------- its output

    def text(self, stream: str = "err") -> str:
        """All of `stream` ("out" or "err") so far."""
        return self._paths[stream].read_bytes().decode(errors="replace")

    def lines(self, stream: str = "err") -> list[str]:
        """The complete lines of `stream` so far (a line still being written is left out)."""
        lines = self.text(stream).splitlines(keepends=True)
        return lines if not lines or lines[-1].endswith("\n") else lines[:-1]

    def last(self, pattern: str, stream: str = "err") -> re.Match[str] | None:
        """The last complete line of `stream` so far that matches `pattern`."""
        compiled = re.compile(pattern)
        for line in reversed(self.lines(stream)):
            found = compiled.search(line)
            if found:
                return found
        return None

    def wait_for(self, text: str, timeout: float, stream: str = "err") -> None:
        """Until a line of `stream` contains `text`; fails at once if the process exits first."""
        wait_until(
            lambda: any(text in line for line in self.lines(stream)),
            timeout,
            f"a log line with {text!r}",
            alive=[self],
        )

    # ------------------------------------------------------------------------ how it ends

    def finish(self, timeout: float) -> Finished:
        """Wait for it to exit; how it ended. Not exited within `timeout` s: killed, and the test fails."""
        if self.wait(timeout) is None:
            self.kill()
            raise AssertionError(
                f"{self.args!r} did not exit within {timeout:g} s and was killed; its stderr ends:\n"
                + self.text()[-3000:]
            )
        return Finished(self.process.returncode, self.text("out"), self.text("err"))

    def stop(self, timeout: float = 120) -> Finished:
        """SIGTERM (unless it has exited already), then `finish`: SIGKILL if it outlasts `timeout`."""
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self) -> Finished:
        """SIGKILL, on purpose or at the end of the test (a stopped process dies too), and reap it."""
        if self.poll() is None:
            self.process.kill()
        self.process.wait(timeout=REAP_SECONDS)
        return Finished(self.process.returncode, self.text("out"), self.text("err"))


class Processes:
    """The processes one test starts; `reap` ends those still running."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Child] = []
        self._names: set[str] = set()

    def start(self, args: list[str], env: dict[str, str], name: str, merge_stderr: bool = False) -> Child:
        """`python ARGS` (a script of the repository and its flags, or `-m loglake ...`) with the stack
        environment `env`; its output in `<name>.out` and `<name>.err` of the logs folder, or all of it
        in `<name>.log` with `merge_stderr` (a name used before gets a number)."""
        return self.program([PYTHON, *args], env, name, merge_stderr)

    def command(self, words: list[str], env: dict[str, str], name: str) -> Child:
        """A command as the docs write it, run from the repository's root: `python` or
        `.venv/bin/python` first means this interpreter; anything else (`scripts/lake-sql ...`) runs
        as written."""
        if words[0] in ("python", ".venv/bin/python"):
            return self.start(words[1:], env, name)
        return self.program(words, env, name)

    def program(self, argv: list[str], env: dict[str, str], name: str, merge_stderr: bool = False) -> Child:
        """`argv` as it is (a program of the repository, from its root), as `start` runs Python."""
        unique, n = name, 1
        while unique in self._names:
            n += 1
            unique = f"{name}-{n}"
        self._names.add(unique)
        child = Child(argv, env, self.logs / unique, merge_stderr)
        self.started.append(child)
        return child

    def producer(
        self, env: dict[str, str], *flags: str, name: str = "producer", merge_stderr: bool = False
    ) -> Child:
        """faking_data.py FLAGS."""
        return self.start(["faking_data.py", *flags], env, name, merge_stderr)

    def writer(
        self, env: dict[str, str], *flags: str, name: str = "writer", merge_stderr: bool = False
    ) -> Child:
        """receive_faking_data.py FLAGS."""
        return self.start(["receive_faking_data.py", *flags], env, name, merge_stderr)

    def reap(self) -> None:
        """SIGKILL every process still running (paused ones too) and wait for each."""
        stuck = []
        for child in self.started:
            try:
                child.kill()
            except subprocess.TimeoutExpired:
                stuck.append(child.args)
        assert not stuck, f"still running {REAP_SECONDS} s after SIGKILL: {stuck}"
