"""What both benchmarks share: the machine line, the load average, processes measured by wait4,
the runs of one invocation with their median and spread, and the JSON the plot is drawn from."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loglake import defaults  # noqa: E402

CORES = os.cpu_count() or 1
# A run that starts with the 1-minute load average at or above this is labelled as taken under load
# (half the cores busy with something else: the broker, S3 server and client share them).
LOADED_AT = CORES / 2


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cpu_model() -> str:
    try:
        return next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> str:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    java_version = (java.splitlines() or ["?"])[0]
    import confluent_kafka
    import kafka

    return (
        f"machine: {cpu_model()}, {CORES} cores, Linux {platform.release()}; Python {platform.python_version()}; "
        f"confluent-kafka {metadata.version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}); "
        f"kafka-python {kafka.__version__}; Kafka {defaults.KAFKA_ZOOKEEPER_MODE_VERSION} broker and tool; "
        f"{java_version}"
    )


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def load_text() -> str:
    return f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; {CORES} cores)"


def wait_for_quiet(below: float, at_most: float) -> float:
    """Wait until the 1-minute load average is below `below`, at most `at_most` seconds; the wait (s)."""
    if below <= 0:
        return 0.0
    started = time.monotonic()
    while load() >= below and time.monotonic() - started < at_most:
        time.sleep(5)
    waited = time.monotonic() - started
    if waited >= 5:
        state = "quiet" if load() < below else "still loaded"
        say(f"waited {waited:.0f} s for a 1-minute load average below {below:g}: {load():.2f} ({state})")
    return waited


@dataclass
class Usage:
    """Of a finished child: its CPU time from wait4 (its own plus that of the children it waited for),
    its peak RSS from its high-water marks (PeakRss)."""

    returncode: int
    seconds: float
    cpu: float
    peak_rss_mib: float


def high_water_mib(pid: int) -> float:
    """VmHWM: the kernel's high-water mark of a process's resident set since its exec (0 once it ended)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss(threading.Thread):
    """The peak RSS of a process and its descendants: each one's VmHWM, read every 0.1 s until it ends,
    summed (for one process, exact up to its last 0.1 s). Not wait4's ru_maxrss: Linux carries the
    spawning process's high-water mark into the child at exec, so a child of a large benchmark process
    would report at least the benchmark's own size."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.marks: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            try:
                pids = [self.pid, *(c.pid for c in root.children(recursive=True))]
            except psutil.Error:
                pids = [self.pid]
            for pid in pids:
                self.marks[pid] = max(self.marks.get(pid, 0.0), high_water_mib(pid))
            self.done.wait(0.1)

    def peak_mib(self) -> float:
        self.done.set()
        self.join()
        return sum(self.marks.values())


class Child:
    """A measured process: output to temporary files (no pipe to fill up), reaped with wait4 only."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> None:
        # closed by output(), after the process ended
        self._out = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.started = time.monotonic()
        self.started_at = time.time()  # wall clock, to place the lines it logs
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._out, stderr=self._err, text=True)
        self.usage: Usage | None = None
        self._rss = PeakRss(self.proc.pid)
        self._rss.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> Usage | None:
        if self.usage is None:
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self._finish(status, rusage)
        return self.usage

    def wait(self, timeout: float) -> Usage:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.proc.send_signal(signal.SIGKILL)
                _, status, rusage = os.wait4(self.proc.pid, 0)
                self._finish(status, rusage)
                raise SystemExit(f"{self.proc.args[0]} did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        assert self.usage is not None
        return self.usage

    def stop(self) -> None:
        if self.usage is None:
            self.proc.send_signal(signal.SIGTERM)

    def _finish(self, status: int, rusage: os.struct_rusage) -> None:
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.usage = Usage(
            returncode=self.proc.returncode,
            seconds=time.monotonic() - self.started,
            cpu=rusage.ru_utime + rusage.ru_stime,
            peak_rss_mib=self._rss.peak_mib(),
        )

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) of the finished process."""
        texts = []
        for f in (self._out, self._err):
            f.seek(0)
            texts.append(f.read())
            f.close()
        return texts[0], texts[1]


def run_measured(argv: list[str], name: str = "", timeout: float = 900) -> tuple[Usage, str]:
    """Run to the end; (usage, stdout). Exits with the tail of stderr if it failed."""
    child = Child(argv)
    usage = child.wait(timeout)
    out, err = child.output()
    if usage.returncode != 0:
        what = name or Path(argv[0]).name
        raise SystemExit(f"{what} failed ({usage.returncode}): {(err or out).strip()[-800:]}")
    return usage, out


def kafka_tool_argv(tool: str, args: list[str]) -> list[str]:
    """The java command of one of Kafka's tools from the stack's jars (of the instance LOGLAKE_STACK_NAME
    names, as `scripts/stack` would pick it), to run as our own child: its CPU and RSS are then the JVM's."""
    from loglake.stack import fetch, kafka_servers
    from loglake.stack.cluster import StackConfig
    from loglake.stack.services import Instance

    home = Path(os.environ.get("LOGLAKE_STACK_HOME", REPO / ".stack"))
    state = home / os.environ.get("LOGLAKE_STACK_NAME", "default") / "stack.json"
    inst = Instance(home, StackConfig.load(state))
    return kafka_servers.tool_argv(inst, fetch.kafka_libs(inst.cache, inst.cfg.kafka_version), tool, args)


def per_million(cpu: float, events: int) -> float:
    return cpu * 1_000_000 / events


def add_run_options(parser: argparse.ArgumentParser, section: str) -> None:
    """--runs, --wait-load, --wait-max and --json, the same for both benchmarks."""
    parser.add_argument("--runs", type=int, default=1, help="runs in this invocation (default 1)")
    parser.add_argument(
        "--wait-load",
        type=float,
        default=0.0,
        metavar="L",
        help="before each run, wait up to --wait-max s for a 1-minute load average below L (default: no wait)",
    )
    parser.add_argument("--wait-max", type=float, default=600.0, help="longest wait for --wait-load (s)")
    parser.add_argument(
        "--json", type=Path, help=f"also write the figures to this file's {section!r} section (for the plot)"
    )


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    fmt: str = ",.0f"


@dataclass
class Runs:
    """The figures of each run of one invocation (key -> value), the load around each run."""

    figures: list[Figure]
    runs: list[dict[str, float]] = field(default_factory=list)
    waited: float = 0.0  # seconds spent waiting for a quiet machine (--wait-load)

    def each(self, ns: argparse.Namespace) -> Iterator[tuple[int, dict[str, float]]]:
        """(run number, its figures) for each of the --runs, after waiting as --wait-load says; the load
        average is taken before and after each."""
        for number in range(1, ns.runs + 1):
            self.waited += wait_for_quiet(ns.wait_load, ns.wait_max)
            figures: dict[str, float] = {"load_before": load()}
            self.runs.append(figures)
            say(f"--- run {number} of {ns.runs} on {cpu_model()}; load average before: {load_text()}")
            yield number, figures
            figures["load_after"] = load()
            loaded = figures["load_before"] >= LOADED_AT
            say(
                f"load average after run {number}: {load_text()}"
                + (
                    f"  [taken under load: 1-min load {figures['load_before']:.2f} before it]"
                    if loaded
                    else ""
                )
            )

    def values(self, key: str) -> list[float]:
        return [run[key] for run in self.runs if key in run]

    def median(self, key: str) -> float:
        values = self.values(key)
        return statistics.median(values) if values else 0.0

    def summary(self) -> list[str]:
        """One line per figure: each run's value, the median and the spread (min-max)."""
        lines = [
            f"=== {len(self.runs)} run(s) on {cpu_model()}, {CORES} cores: each run, then the median and the "
            "spread (min-max)"
        ]
        width = max(len(f.label) for f in self.figures)
        for fig in [*self.figures, Figure("load_before", "load average (1 min) before", ".2f")]:
            values = self.values(fig.key)
            if not values:
                continue
            each = " | ".join(f"{v:{fig.fmt}}" for v in values)
            lines.append(
                f"{fig.label:<{width}}  {each}  -> median {statistics.median(values):{fig.fmt}} "
                f"({min(values):{fig.fmt}}-{max(values):{fig.fmt}})"
            )
        loaded = [str(i + 1) for i, run in enumerate(self.runs) if run["load_before"] >= LOADED_AT]
        if loaded:
            lines.append(
                f"taken under load (1-min load average >= {LOADED_AT:g} before the run): run(s) {', '.join(loaded)}"
            )
        if self.waited >= 1:
            lines.append(f"waited {self.waited:.0f} s in all for a quieter machine (--wait-load)")
        return lines

    def as_json(self) -> dict[str, object]:
        keys = sorted({k for run in self.runs for k in run})
        return {
            "waited_s": self.waited,
            "runs": self.runs,
            "median": {k: self.median(k) for k in keys},
            "min": {k: min(self.values(k)) for k in keys},
            "max": {k: max(self.values(k)) for k in keys},
        }


def write_json(path: Path, section: str, content: dict[str, object]) -> None:
    """Replace one section ("producer" or "writer") of the results file the plot is drawn from."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[section] = content
    path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"figures written to {path} (section {section!r}); draw them with Image/plot_bench.py")
