"""Fetch what the native stack runs, on first use, into a git-ignored cache; reuse it after.

- Apache Kafka, MirrorMaker 2 and ZooKeeper: their jars from Maven Central, resolved by Maven itself
  (`mvn dependency:copy-dependencies` on a small generated POM), so the versions are exact.
- The S3 server: versitygw (Apache-2.0), built from the Go module proxy with `go install`.

A finished download leaves a `.complete` marker; a half-finished one is redone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from loglake import defaults
from loglake.errors import LoglakeError

log = logging.getLogger("loglake.stack")


class FetchError(LoglakeError):
    pass


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>loglake.stack</groupId><artifactId>{name}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _dep(coords: str) -> str:
    group, artifact, version = coords.split(":")
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
    )


def kafka_artifacts(version: str) -> list[str]:
    """The Maven coordinates that make a runnable Kafka broker plus its command-line tools."""
    scala = defaults.SCALA_VERSION
    coords = [f"org.apache.kafka:kafka_{scala}:{version}", f"org.apache.kafka:kafka-tools:{version}"]
    if version.startswith("3."):
        coords.append("org.slf4j:slf4j-reload4j:1.7.36")  # Kafka 3.x logs through reload4j
    else:
        coords.append("org.apache.logging.log4j:log4j-slf4j-impl:2.25.5")  # Kafka 4.x: log4j2
    return coords


def mirror_artifacts(version: str) -> list[str]:
    """MirrorMaker 2 (Kafka Connect's mirror connectors and their driver) of one Kafka version."""
    logging_binding = [c for c in kafka_artifacts(version) if not c.startswith("org.apache.kafka:")]
    return [f"org.apache.kafka:connect-mirror:{version}", *logging_binding]


def zookeeper_artifacts(version: str) -> list[str]:
    # metrics-core and logback are optional in ZooKeeper's POM but its server needs them
    return [
        f"org.apache.zookeeper:zookeeper:{version}",
        "io.dropwizard.metrics:metrics-core:4.1.12.1",
        "ch.qos.logback:logback-classic:1.3.15",
        "org.xerial.snappy:snappy-java:1.1.10.7",
    ]


def maven_libs(cache: Path, name: str, coords: list[str]) -> Path:
    """The jars of `coords` and their runtime dependencies in `cache/name/libs`, fetched on first use
    (also used by the writer benchmark to look for a Kafka Connect S3 sink)."""
    home = cache / name
    libs = home / "libs"
    stamp = "\n".join(coords) + "\n"
    if (
        (home / ".complete").exists()
        and (home / "coords.txt").exists()
        and (home / "coords.txt").read_text() == stamp
    ):
        return libs
    if not shutil.which("mvn"):
        raise FetchError("Maven (mvn) is needed to fetch the Kafka jars; install it (apt-get install maven)")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "pom.xml").write_text(_POM.format(name=name, deps="\n".join(_dep(c) for c in coords)))
    log.info("fetching %s from Maven Central (first use only)", ", ".join(coords))
    started = time.monotonic()
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        (home / "mvn.log").write_text(result.stdout + result.stderr)
        raise FetchError(f"Maven could not fetch {coords[0]}; see {home / 'mvn.log'}")
    (home / "coords.txt").write_text(stamp)
    (home / ".complete").write_text(f"{time.monotonic() - started:.1f}s\n")
    return libs


def kafka_libs(cache: Path, version: str) -> Path:
    return maven_libs(cache, f"kafka-{version}", kafka_artifacts(version))


def mirror_libs(cache: Path, version: str) -> Path:
    return maven_libs(cache, f"kafka-mirror-{version}", mirror_artifacts(version))


def zookeeper_libs(cache: Path, version: str) -> Path:
    return maven_libs(cache, f"zookeeper-{version}", zookeeper_artifacts(version))


def versitygw_binary(cache: Path, version: str = defaults.VERSITYGW_VERSION) -> Path:
    home = cache / f"versitygw-{version}"
    binary = home / "bin" / "versitygw"
    if (home / ".complete").exists() and binary.exists():
        return binary
    if not shutil.which("go"):
        raise FetchError("Go is needed to build the S3 server versitygw; install Go 1.24 or newer")
    shutil.rmtree(home, ignore_errors=True)
    (home / "bin").mkdir(parents=True)
    log.info("building versitygw %s from the Go module proxy (first use only, about 2 minutes)", version)
    env = dict(os.environ, GOBIN=str(home / "bin"), GOFLAGS="-mod=mod", CGO_ENABLED="0")
    started = time.monotonic()
    result = subprocess.run(
        ["go", "install", f"github.com/versity/versitygw/cmd/versitygw@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=home,
    )
    if result.returncode != 0 or not binary.exists():
        (home / "go.log").write_text(result.stdout + result.stderr)
        raise FetchError(f"could not build versitygw {version}; see {home / 'go.log'}")
    (home / ".complete").write_text(f"{time.monotonic() - started:.1f}s\n")
    return binary


# Kafka's command-line tools: script name -> main class candidates (they moved between versions).
TOOLS: dict[str, tuple[str, ...]] = {
    "kafka-topics": ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand"),
    "kafka-console-consumer": (
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka.tools.ConsoleConsumer",
    ),
    "kafka-console-producer": ("org.apache.kafka.tools.ConsoleProducer", "kafka.tools.ConsoleProducer"),
    "kafka-consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka.admin.ConsumerGroupCommand",
    ),
    "kafka-producer-perf-test": ("org.apache.kafka.tools.ProducerPerformance",),
    "kafka-consumer-perf-test": (
        "org.apache.kafka.tools.ConsumerPerformance",
        "kafka.tools.ConsumerPerformance",
    ),
    "kafka-configs": ("org.apache.kafka.tools.ConfigCommand", "kafka.admin.ConfigCommand"),
    "kafka-get-offsets": ("org.apache.kafka.tools.GetOffsetShell", "kafka.tools.GetOffsetShell"),
    "kafka-broker-api-versions": (
        "org.apache.kafka.tools.BrokerApiVersionsCommand",
        "kafka.admin.BrokerApiVersionsCommand",
    ),
    "kafka-metadata-quorum": ("org.apache.kafka.tools.MetadataQuorumCommand",),
    "kafka-leader-election": ("org.apache.kafka.tools.LeaderElectionCommand",),
    "kafka-reassign-partitions": ("org.apache.kafka.tools.reassign.ReassignPartitionsCommand",),
    "kafka-dump-log": ("org.apache.kafka.tools.DumpLogSegments", "kafka.tools.DumpLogSegments"),
    "kafka-acls": ("org.apache.kafka.tools.AclCommand", "kafka.admin.AclCommand"),
    "kafka-storage": ("kafka.tools.StorageTool",),
}


def tool_class(libs: Path, tool: str) -> str:
    """The main class of Kafka tool `tool` (with or without `.sh`) in this version's jars."""
    name = tool.removesuffix(".sh")
    if name not in TOOLS:
        raise LoglakeError(f"unknown Kafka tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    index = libs.parent / "classes.txt"
    if not index.exists():
        entries: list[str] = []
        for jar in sorted(libs.glob("kafka*.jar")):
            with zipfile.ZipFile(jar) as zf:
                entries.extend(
                    n[:-6].replace("/", ".")
                    for n in zf.namelist()
                    if n.endswith("Command.class")
                    or n.endswith("Performance.class")
                    or n.endswith("Tool.class")
                    or n.endswith("Consumer.class")
                    or n.endswith("Producer.class")
                    or n.endswith("Shell.class")
                    or n.endswith("Segments.class")
                )
        index.write_text("\n".join(entries) + "\n")
    known = set(index.read_text().split())
    for candidate in TOOLS[name]:
        if candidate in known:
            return candidate
    raise LoglakeError(f"Kafka tool {name} is not in the jars of {libs.parent.name}")
