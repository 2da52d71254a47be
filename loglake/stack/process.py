"""The processes of a stack: started in their own session, found again by pid file, stopped by signal.

A service's folder (`.stack/<instance>/<service>/`) holds its `pid` and `log`; a pid counts only while
that process's command line still names the folder, so a stale pid file (a reboot, a reused pid) is
never taken for a running service.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from loglake.errors import LoglakeError

log = logging.getLogger("loglake.stack")


class StackError(LoglakeError):
    pass


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    binary = Path(home) / "bin" / "java" if home else shutil.which("java")
    if not binary or not Path(binary).exists():
        raise StackError(
            "Java 17 or newer is needed to run Kafka; install it (apt-get install openjdk-17-jre)"
        )
    return str(binary)


def running_pid(sdir: Path) -> int | None:
    """The pid of the service whose folder is `sdir`, or None; a stale pid file is ignored."""
    try:
        pid = int((sdir / "pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if str(sdir).encode() not in cmdline:
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else pid


def spawn(
    sdir: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> None:
    """Start `argv` in its own session, in `cwd` (default `sdir`), with its output appended to
    `sdir/log`; write `sdir/pid`. `user` runs it as that system user (PostgreSQL refuses root)."""
    sdir.mkdir(parents=True, exist_ok=True)
    with open(sdir / "log", "ab") as out:
        out.write(f"\n===== starting {sdir.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or sdir,
            start_new_session=True,
            env=env,
            user=user,
        )
    (sdir / "pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 5  # until the child has exec'd, /proc shows our own command line
    while not running_pid(sdir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def stop(sdir: Path, sig: int = signal.SIGTERM, grace: float = 40.0) -> None:
    """Send `sig` to the service of `sdir` and wait until it is gone; SIGKILL after `grace` seconds."""
    pid = running_pid(sdir)
    if not pid:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while running_pid(sdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    if running_pid(sdir):
        log.warning("%s did not stop within %.0fs; killing it", sdir.name, grace)
        os.kill(pid, signal.SIGKILL)
        while running_pid(sdir):
            time.sleep(0.1)
