"""tests/processes.py on small Python children (no stack): what the real-stack tests rely on when they
start, read, stop and reap producers and writers."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.processes import PYTHON, Processes

SLEEP = ["-c", "import time; time.sleep(120)"]


def test_reap_kills_what_still_runs_a_paused_process_too(tmp_path: Path) -> None:
    started = Processes(tmp_path)
    running = started.start(SLEEP, {}, "running")
    paused = started.start(SLEEP, {}, "paused")
    paused.send_signal(signal.SIGSTOP)
    done = started.start(["-c", "pass"], {}, "done")
    assert done.finish(60).returncode == 0
    started.reap()
    assert running.returncode == paused.returncode == -signal.SIGKILL
    assert done.returncode == 0


def test_finish_past_its_bound_kills_and_fails(tmp_path: Path) -> None:
    child = Processes(tmp_path).start(SLEEP, {}, "sleeper")
    with pytest.raises(AssertionError, match=r"did not exit within 0\.5 s and was killed"):
        child.finish(0.5)
    assert child.returncode == -signal.SIGKILL


def test_output_lines_streams_and_the_stack_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "the-callers-stack:9092")
    monkeypatch.setenv("LAKE_BUCKET", "the-callers-bucket")
    script = (
        "import os, sys; print('out', os.environ.get('KAFKA_BOOTSTRAP_SERVERS'), os.environ.get('LAKE_BUCKET'));"
        "sys.stderr.write('err 1\\nerr 2\\npartial')"
    )
    started = Processes(tmp_path)
    child = started.start(["-c", script], {"KAFKA_BOOTSTRAP_SERVERS": "given:1"}, "child")
    code, out, err = child.finish(60)
    assert code == 0
    assert out == "out given:1 None\n"  # the stack given, nothing of the caller's
    assert err == "err 1\nerr 2\npartial"
    assert child.lines() == ["err 1\n", "err 2\n"]  # a line still being written is left out
    assert child.last(r"err (\d)").group(1) == "2"
    assert (tmp_path / "child.out").exists() and (tmp_path / "child.err").exists()

    merged = started.start(["-c", script], {}, "child", merge_stderr=True)
    code, out, err = merged.finish(60)
    assert out == err and "out None None\n" in out and "err 2\n" in out
    assert (tmp_path / "child-2.log").read_text() == out


def test_wait_for_fails_at_once_when_the_process_exits(tmp_path: Path) -> None:
    child = Processes(tmp_path).start(["-c", "import sys; sys.exit(3)"], {}, "quitter")
    with pytest.raises(AssertionError, match="exited with code 3 while waiting for a log line"):
        child.wait_for("never written", 60)


def test_a_command_as_the_docs_write_it(tmp_path: Path) -> None:
    """`python ...` runs on this interpreter; another program of the repository runs as written."""
    started = Processes(tmp_path)
    python = started.command(["python", "-c", "import sys; print(sys.executable)"], {}, "docs")
    assert python.finish(60).stdout.strip() == PYTHON
    shell = started.command(["scripts/lake-sql", "--help"], {}, "docs")  # a bash script, from the root
    code, out, err = shell.finish(120)
    assert shell.args == ["scripts/lake-sql", "--help"] and code == 0, err
    assert out.startswith("usage: "), out
