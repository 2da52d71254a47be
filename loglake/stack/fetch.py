"""Fetch what the native stack runs, on first use, into a git-ignored cache; reuse it after.

- Apache Kafka, MirrorMaker 2 and ZooKeeper: their jars from Maven Central, resolved by Maven itself
  (`mvn dependency:copy-dependencies` on a small generated POM), so the versions are exact.
- The S3 servers: versitygw (Apache-2.0) and MinIO (AGPL-3.0, the release docker-compose.yml runs), each
  built from the Go module proxy with `go install`; MinIO only ever runs as a separate server process.

A finished download leaves a `.complete` marker, a finished build a `built-with.txt` naming its
command; a half-finished one, or one built otherwise, is redone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class GoProgram:
    """A Go program the stack builds from the Go module proxy: `go install package@version`."""

    name: str
    package: str
    version: str
    ldflags: str = ""
    tags: str = ""
    trimpath: bool = False

    @property
    def module(self) -> str:
        return self.package.split("/cmd/")[0]

    @property
    def install_argv(self) -> list[str]:
        argv = ["go", "install", *(["-trimpath"] if self.trimpath else [])]
        if self.tags:
            argv.append(f"-tags={self.tags}")
        if self.ldflags:
            argv.append(f"-ldflags={self.ldflags}")
        return [*argv, f"{self.package}@{self.version}"]


def minio_ldflags(release: str = defaults.MINIO_RELEASE, commit: str = defaults.MINIO_COMMIT) -> str:
    """The version stamps MinIO's own release build puts in (its Makefile runs
    buildscripts/gen-ldflags.go, with MINIO_RELEASE=RELEASE for a release), so that `minio --version`
    names the release, as the compose image's does."""
    day, _, clock = release.removeprefix("RELEASE.").partition("T")
    cmd = "github.com/minio/minio/cmd"
    return " ".join(
        [
            "-s -w",
            f"-X {cmd}.Version={day}T{clock.replace('-', ':')}",  # RFC 3339: 2025-09-07T16:13:09Z
            f"-X {cmd}.CopyrightYear={day[:4]}",
            f"-X {cmd}.ReleaseTag={release}",
            f"-X {cmd}.CommitID={commit}",
            f"-X {cmd}.ShortCommitID={commit[:12]}",
        ]
    )


VERSITYGW = GoProgram("versitygw", "github.com/versity/versitygw/cmd/versitygw", defaults.VERSITYGW_VERSION)
# MinIO (AGPL-3.0), the release docker-compose.yml runs, built as MinIO's Makefile builds it (CGO off,
# `-tags kqueue`, `-trimpath`, its version stamps). A separate server program: loglake only starts it
# and speaks S3 to it.
MINIO = GoProgram(
    "minio",
    "github.com/minio/minio",
    defaults.MINIO_MODULE_VERSION,
    ldflags=minio_ldflags(),
    tags="kqueue",
    trimpath=True,
)


def in_module_cache(module: str, version: str) -> bool:
    """Whether Go's module cache already holds `module@version` (then `go install` only compiles, mostly
    from Go's build cache: seconds, not minutes)."""
    result = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
    root = result.stdout.strip()
    escaped = "".join("!" + c.lower() if c.isupper() else c for c in module)  # the cache's spelling
    return bool(root) and (Path(root) / "cache" / "download" / escaped / "@v" / f"{version}.zip").exists()


def go_binary(cache: Path, program: GoProgram) -> Path:
    """`program` built into `cache/<name>-<version>/bin` on first use, and reused after: nothing is said
    when it is reused, and "building" only when it builds."""
    home = cache / f"{program.name}-{program.version}"
    binary = home / "bin" / program.package.rsplit("/", 1)[-1]
    stamp = " ".join(program.install_argv) + "\n"  # other build flags make another build
    if (
        (home / "built-with.txt").exists()
        and (home / "built-with.txt").read_text() == stamp
        and binary.exists()
    ):
        return binary
    if not shutil.which("go"):
        raise FetchError(f"Go is needed to build the S3 server {program.name}; install Go 1.24 or newer")
    shutil.rmtree(home, ignore_errors=True)
    (home / "bin").mkdir(parents=True)
    what = f"{program.name} {program.version}"
    if in_module_cache(program.module, program.version):
        log.info("building %s from Go's module cache (first use in this folder)", what)
    else:
        log.info(
            "downloading and building %s from the Go module proxy (first use; docs/native-stack.md says how long)",
            what,
        )
    env = dict(os.environ, GOBIN=str((home / "bin").resolve()), GOFLAGS="-mod=mod", CGO_ENABLED="0")
    started = time.monotonic()
    result = subprocess.run(
        program.install_argv, capture_output=True, text=True, check=False, env=env, cwd=home
    )
    if result.returncode != 0 or not binary.exists():
        (home / "go.log").write_text(result.stdout + result.stderr)
        raise FetchError(f"could not build {what}; see {home / 'go.log'}")
    took = time.monotonic() - started
    (home / "built-with.txt").write_text(stamp)
    log.info("built %s in %.0f s", what, took)
    return binary


def versitygw_binary(cache: Path) -> Path:
    return go_binary(cache, VERSITYGW)


def minio_binary(cache: Path) -> Path:
    return go_binary(cache, MINIO)


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
