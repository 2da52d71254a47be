"""The peers of `scripts/bench writer --peers`: the tools a user would pick instead of our writer,
landing the same pre-filled topic, each checked by reading back what it stored.

- Quix Streams' S3FileSink (PyPI `quixstreams`), installed on first use into its own environment,
  .stack/peers/quix/venv (git-ignored; never in requirements*.txt nor in the Docker image), and run
  there as benchmarks/quix_sink.py.
- A Kafka Connect S3 sink, if Maven Central serves one: the candidates below are asked for once, with
  Kafka's own Connect runtime of the stack's version, and the answer is kept in the stack's cache. None
  of them is served here (see docs/performance.md); the benchmark says so instead of a figure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, per_million, say
from benchmarks.landing import count_json_lines, land

QUIX_VERSION = "3.28.1"  # the version the registry listed on 2026-11-25
QUIX_HOME = REPO / ".stack" / "peers" / "quix"


@dataclass
class PeerRun:
    key: str  # prefix of its figures' keys
    name: str
    events_per_s: float
    cpu_s_per_million: float
    peak_rss_mib: float
    objects: int
    records: int
    unique_ids: int
    bytes_per_event: float


def quix_python() -> Path:
    """The Python of the Quix Streams environment, made on first use."""
    venv = QUIX_HOME / "venv"
    python = venv / "bin" / "python"
    stamp = QUIX_HOME / "installed.txt"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == QUIX_VERSION:
        return python
    say(f"installing quixstreams[s3]=={QUIX_VERSION} into {venv} (first use only)")
    shutil.rmtree(venv, ignore_errors=True)
    QUIX_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run([*pip, f"quixstreams[s3]=={QUIX_VERSION}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"could not install quixstreams {QUIX_VERSION}: {result.stderr.strip()[-500:]}")
    stamp.write_text(QUIX_VERSION + "\n")
    return python


# The Quix Streams sinks each run lands the topic with: key -> gzip (its JSONFormat's compress)
QUIX_SINKS = {"quix": False, "quix_gzip": True}
QUIX_NAMES = {"quix": "Quix S3FileSink", "quix_gzip": "Quix S3FileSink (gzip)"}


def quix(bootstrap: str, topic: str, events: int, gzip: bool) -> PeerRun:
    """Quix Streams' S3FileSink lands the topic with a fresh group into a fresh folder; then its objects
    are read back and counted. Plain JSON Lines is what its "json" format gives by default; with gzip
    (level 9, Python's gzip module) its lake is compressed as ours is."""
    group = f"peer-quix-{uuid.uuid4().hex[:8]}"
    directory = f"peer_quix_{uuid.uuid4().hex[:8]}"  # the sink allows only [a-zA-Z0-9 ._/] here
    argv = [str(quix_python()), "-W", "ignore", str(REPO / "benchmarks" / "quix_sink.py")]
    argv += ["--topic", topic, "--group", group, "--directory", directory, *(["--gzip"] if gzip else [])]
    landed = land("Quix Streams", argv, bootstrap, topic, group, events)
    counted = count_json_lines(directory + "/", envelope="_value")
    return PeerRun(
        key="quix_gzip" if gzip else "quix",
        name="Quix Streams S3FileSink" + (" (gzip)" if gzip else " (plain JSON Lines)"),
        events_per_s=events / landed.seconds,
        cpu_s_per_million=per_million(landed.usage.cpu, events),
        peak_rss_mib=landed.usage.peak_rss_mib,
        objects=counted.objects,
        records=counted.records,
        unique_ids=counted.unique_ids,
        bytes_per_event=counted.stored_bytes / events,
    )


# Kafka Connect S3 sinks that Maven Central might serve (Aiven's is not served there; Confluent's is
# not on Maven Central; Lenses' stream-reactor ships as release archives, not Maven artifacts).
CONNECT_S3_SINKS = (
    "org.apache.camel.kafkaconnector:camel-aws-s3-sink-kafka-connector:4.14.0",  # kamelet aws-s3-sink
    "org.apache.camel.kafkaconnector:camel-aws2-s3-kafka-connector:0.11.5",  # Camel 3's aws2-s3 one
    "com.spredfast.kafka.connect.s3:kafka-connect-s3:0.5.0",
)


def connect_s3_sink() -> tuple[str | None, list[str]]:
    """(coordinates of the first Connect S3 sink Maven resolves with Connect's runtime, or None; one line
    per candidate tried). Each answer is kept in the stack's cache, so the registry is asked once."""
    from loglake import defaults
    from loglake.stack import fetch

    cache = Path(os.environ.get("LOGLAKE_STACK_HOME", REPO / ".stack")) / "cache"
    kafka = defaults.KAFKA_ZOOKEEPER_MODE_VERSION
    tried = []
    for coords in CONNECT_S3_SINKS:
        name = "connect-s3-sink-" + coords.replace(":", "-")
        refused = cache / f"{name}.refused"
        if refused.exists():
            tried.append(f"{coords}: {refused.read_text().strip()}")
            continue
        try:
            fetch.maven_libs(cache, name, [f"org.apache.kafka:connect-runtime:{kafka}", coords])
        except fetch.FetchError:
            log = (cache / name / "mvn.log").read_text() if (cache / name / "mvn.log").exists() else ""
            missing = re.search(r"Could not find artifact|was not found in", log)
            answer = (
                "not found" if missing else f"Maven could not resolve it (see {cache / name / 'mvn.log'})"
            )
            refused.write_text(answer + "\n")
            tried.append(f"{coords}: {answer}")
            continue
        return coords, tried
    return None, tried
