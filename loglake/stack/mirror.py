"""MirrorMaker 2 between two native stack instances: `scripts/stack mirror east west`.

A mirror lives with its target instance, in `.stack/<target>/mirror-<source>/` (mm2.properties, log
configuration, `pid`, `log`, `mirror.json`), and runs Kafka's own MirrorMaker 2 driver
(org.apache.kafka.connect.mirror.MirrorMaker, the class behind `connect-mirror-maker.sh`) in
dedicated mode from jars fetched from Maven Central. Instance names are MirrorMaker's cluster
aliases, so `log-data` of `east` arrives in `west` as `east.log-data` (DefaultReplicationPolicy).

What it runs (see docs/geo.md):
- east->west: MirrorSourceConnector (records, topic configuration, partitions; offset syncs into
  `mm2-offset-syncs.west.internal` in east), MirrorCheckpointConnector (translated group offsets
  into `east.checkpoints.internal` in west, and written into west's groups), MirrorHeartbeatConnector.
- west->east: heartbeats only (into east's `heartbeats`, mirrored back as `east.heartbeats`: the
  age of its newest record is how stale west's copy is, even when nothing is produced).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from loglake import defaults
from loglake.stack import fetch
from loglake.stack.cluster import BROKER_LOG4J, BROKER_LOG4J2, StackConfig, log_config
from loglake.stack.mirror_watch import (
    heartbeat_age,
    remote_topic,
    replication_lag,
    selected_topics,
    topic_names,
)
from loglake.stack.process import StackError, java
from loglake.stack.services import Instance

log = logging.getLogger("loglake.stack")

MIRROR_HEAP = ["-Xms128m", "-Xmx512m"]
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ClusterRef:
    """One end of a mirror as MirrorMaker sees it: its alias, where to reach it, how many replicas."""

    alias: str
    bootstrap: str
    replication: int


def mm2_properties(source: ClusterRef, target: ClusterRef, topics: str = defaults.TOPIC) -> str:
    """MirrorMaker 2 configuration for one active/passive flow source -> target.

    The same function writes the native mirror's file and is what docker-compose.yml's `geo`
    profile must hold (tests/test_compose.py compares them).
    """
    s, t = source.alias, target.alias
    refresh = defaults.MIRROR_REFRESH_SECONDS
    every = defaults.MIRROR_CHECKPOINT_SECONDS
    lines = [
        f"# MirrorMaker 2, dedicated mode: {s} -> {t} (active/passive). Written by loglake; see docs/geo.md.",
        f"clusters = {s}, {t}",
        f"{s}.bootstrap.servers = {source.bootstrap}",
        f"{t}.bootstrap.servers = {target.bootstrap}",
        f"{s}->{t}.enabled = true",
        f"{s}->{t}.topics = {topics}",
        "# The reverse flow copies nothing; it only emits heartbeats into the source cluster, which",
        f"# come back as {s}.heartbeats: a liveness signal of the whole path.",
        f"{t}->{s}.enabled = false",
        "# Remote topics are named <source alias>.<topic> (DefaultReplicationPolicy, separator '.').",
        "replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        "replication.policy.separator = .",
        "# Consumer-group offsets: translate, checkpoint and write them into the target's groups.",
        "groups = .*",
        "sync.group.offsets.enabled = true",
        f"sync.group.offsets.interval.seconds = {every}",
        f"emit.checkpoints.interval.seconds = {every}",
        "emit.heartbeats.interval.seconds = 1",
        f"refresh.groups.interval.seconds = {refresh}",
        f"refresh.topics.interval.seconds = {refresh}",
        f"offset.lag.max = {defaults.MIRROR_OFFSET_LAG_MAX}",
        "sync.topic.acls.enabled = false",
        "# Replicas of the topics MirrorMaker creates, each in the cluster it lives in.",
        f"{s}->{t}.replication.factor = {target.replication}",
        f"{s}->{t}.checkpoints.topic.replication.factor = {target.replication}",
        f"{s}->{t}.heartbeats.topic.replication.factor = {target.replication}",
        f"{s}->{t}.offset-syncs.topic.replication.factor = {source.replication}",
        f"{t}->{s}.heartbeats.topic.replication.factor = {source.replication}",
    ]
    lines.append("# Kafka Connect's own topics in each cluster; the source position (and pending offset")
    lines.append("# syncs) are committed every second.")
    for ref in (source, target):
        lines += [
            f"{ref.alias}.config.storage.replication.factor = {ref.replication}",
            f"{ref.alias}.offset.storage.replication.factor = {ref.replication}",
            f"{ref.alias}.status.storage.replication.factor = {ref.replication}",
            f"{ref.alias}.offset.flush.interval.ms = 1000",
        ]
    return "\n".join(lines) + "\n"


def _mirror_log_config(kafka_version: str) -> tuple[str, str, str]:
    """The broker's log configuration, with Kafka Connect's chatter at WARN and MirrorMaker at INFO."""
    name, _, option = log_config(kafka_version, tools=False)
    if name.endswith("log4j.properties"):
        content = BROKER_LOG4J.replace("rootLogger=INFO", "rootLogger=WARN")
        content += "log4j.logger.org.apache.kafka.connect.mirror=INFO\n"
    else:
        content = BROKER_LOG4J2.replace("rootLogger.level = info", "rootLogger.level = warn")
        content += "logger.mm2.name = org.apache.kafka.connect.mirror\nlogger.mm2.level = info\n"
    return name, content, option


class Mirror:
    """The mirror from instance `source` into instance `target` (both under `home`)."""

    def __init__(self, home: Path, source: str, target: str) -> None:
        self.home = home
        self.source_name = source
        self.target_name = target
        self.service = f"mirror-{source}"

    # -- the instances at both ends -----------------------------------------------------------
    def _instance(self, name: str) -> Instance | None:
        state = self.home / name / "stack.json"
        return Instance(self.home, StackConfig.load(state)) if state.exists() else None

    def _require_up(self, name: str) -> Instance:
        inst = self._instance(name)
        brokers = [s for s in inst.cfg.service_names() if s.startswith("kafka-")] if inst else []
        if inst is None or not all(inst.pid(b) and inst.healthy(b) for b in brokers):
            raise StackError(
                f"stack {name!r} is not up; start it first: scripts/stack --name {name} up --port-offset N"
            )
        if inst.cfg.secure:
            raise StackError(
                f"stack {name!r} is --secure; scripts/stack mirror joins plaintext instances only"
            )
        return inst

    @property
    def target(self) -> Instance:
        inst = self._instance(self.target_name)
        if inst is None:
            raise StackError(f"stack {self.target_name!r} has never been started")
        return inst

    @property
    def dir(self) -> Path:
        return self.home / self.target_name / self.service

    @property
    def log_path(self) -> Path:
        return self.dir / "log"

    def pid(self) -> int | None:
        inst = self._instance(self.target_name)
        return inst.pid(self.service) if inst else None

    def topics(self) -> str:
        try:
            return json.loads((self.dir / "mirror.json").read_text())["topics"]
        except (OSError, ValueError, KeyError):
            return defaults.TOPIC

    # -- start and stop --------------------------------------------------------------------------
    def start(self, topics: str, timeout: float) -> None:
        for alias in (self.source_name, self.target_name):
            if not _ALIAS.match(alias):
                raise StackError(
                    f"instance name {alias!r} cannot be a MirrorMaker cluster alias; "
                    "use letters, digits, '-' and '_' only"
                )
        if self.source_name == self.target_name:
            raise StackError(f"a mirror needs two different instances, not {self.source_name!r} twice")
        source, target = self._require_up(self.source_name), self._require_up(self.target_name)
        if target.pid(self.service):
            if self.topics() != topics:
                raise StackError(
                    f"mirror {self.source_name}->{self.target_name} already runs for topics {self.topics()!r}; "
                    f"stop it first: scripts/stack --name {self.target_name} kill {self.service} --signal TERM"
                )
            log.info("mirror %s -> %s is already running", self.source_name, self.target_name)
            self.wait_replicating(topics, timeout)
            return
        libs = fetch.mirror_libs(target.cache, target.cfg.kafka_version)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mm2.properties"
        conf.write_text(
            mm2_properties(
                ClusterRef(self.source_name, source.cfg.bootstrap_servers, source.cfg.replication),
                ClusterRef(self.target_name, target.cfg.bootstrap_servers, target.cfg.replication),
                topics,
            )
        )
        (self.dir / "mirror.json").write_text(
            json.dumps({"source": self.source_name, "target": self.target_name, "topics": topics}) + "\n"
        )
        name, content, option = _mirror_log_config(target.cfg.kafka_version)
        (self.dir / name).write_text(content)
        target.spawn(
            self.service,
            [
                java(),
                *MIRROR_HEAP,
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"{option}{self.dir / name}",
                "-cp",
                f"{libs}/*",
                "org.apache.kafka.connect.mirror.MirrorMaker",
                str(conf),
            ],
        )
        self.wait_replicating(topics, timeout)

    def wait_replicating(self, topics: str, timeout: float) -> None:
        """Until every source topic that `topics` selects exists in the target under its remote name."""
        source, target = self._require_up(self.source_name), self._require_up(self.target_name)
        deadline = time.monotonic() + timeout
        while True:
            if not target.pid(self.service):
                raise StackError(f"MirrorMaker exited while starting; see its log: {self.log_path}")
            wanted = {remote_topic(self.source_name, t) for t in selected_topics(source, topics)}
            missing = wanted - set(topic_names(target))
            if wanted and not missing:
                log.info(
                    "mirror %s -> %s is replicating %s (log %s)",
                    self.source_name,
                    self.target_name,
                    ", ".join(sorted(wanted)),
                    self.log_path,
                )
                return
            if time.monotonic() > deadline:
                what = (
                    ", ".join(sorted(missing))
                    if wanted
                    else f"any topic of {self.source_name} matching {topics}"
                )
                raise StackError(
                    f"MirrorMaker did not create {what} in {self.target_name} within {timeout:.0f}s; "
                    f"see its log: {self.log_path}"
                )
            time.sleep(1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        inst = self._instance(self.target_name)
        if inst and inst.pid(self.service):
            inst.stop(self.service, sig, grace=15.0)
            log.info("mirror %s -> %s stopped", self.source_name, self.target_name)

    # -- what it has done ------------------------------------------------------------------------
    def status_line(self) -> str:
        pid = self.pid()
        head = f"  mirror {self.source_name}->{self.target_name:<6} pid {pid or '-':<8} "
        if not pid:
            return head + f"stopped                log {self.log_path}"
        source = self._instance(self.source_name)
        lags = replication_lag(source, self.target, self.topics()) if source else None
        beat = heartbeat_age(self.target, self.source_name)
        if lags is None:
            lag_text = f"lag unknown ({self.source_name} unreachable)"
        elif not lags:
            lag_text = f"no topic of {self.source_name} matches {self.topics()}"
        else:
            lag_text = "lag " + ", ".join(
                f"{t}->{remote_topic(self.source_name, t)} {n:,}" for t, n in sorted(lags.items())
            )
        beat_text = "no heartbeat yet" if beat is None else f"last heartbeat {beat:.1f}s old"
        return head + f"{lag_text}; {beat_text}; log {self.log_path}"


def mirrors_touching(home: Path, name: str) -> list[Mirror]:
    """Every mirror that reads from or writes into instance `name`."""
    found = []
    for conf in sorted(home.glob("*/mirror-*/mirror.json")):
        target, source = conf.parent.parent.name, conf.parent.name.removeprefix("mirror-")
        if name in (source, target):
            found.append(Mirror(home, source, target))
    return found
