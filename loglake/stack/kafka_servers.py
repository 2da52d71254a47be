"""ZooKeeper and the Kafka brokers of an instance: how each starts, how it answers, its topics, and
Kafka's own command-line tools from the same jars."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loglake import defaults
from loglake.stack import fetch
from loglake.stack.cluster import (
    SCRAM_USER,
    client_properties,
    kafka_properties,
    log_config,
    zookeeper_properties,
)
from loglake.stack.process import StackError, java

if TYPE_CHECKING:
    from loglake.stack.services import Instance

log = logging.getLogger("loglake.stack")

JVM_HEAP = ["-Xms256m", "-Xmx1g"]


def command(inst: Instance, service: str) -> list[str]:
    """The command line of `zookeeper` or `kafka-N`, with its configuration written beside it."""
    sdir = inst.service_dir(service)
    if service == "zookeeper":
        libs = fetch.zookeeper_libs(inst.cache, defaults.ZOOKEEPER_VERSION)
        conf = sdir / "zookeeper.properties"
        conf.write_text(zookeeper_properties(inst.cfg, sdir / "data"))
        logback = sdir / "logback.xml"
        logback.write_text(LOGBACK)
        return [
            java(),
            *JVM_HEAP[:1],
            "-Xmx512m",
            f"-Dlogback.configurationFile={logback}",
            "-cp",
            f"{libs}/*",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(conf),
        ]
    node = int(service.split("-")[1])
    libs = fetch.kafka_libs(inst.cache, inst.cfg.kafka_version)
    conf = sdir / "server.properties"
    conf.write_text(kafka_properties(inst.cfg, node, sdir / "data", inst.tls_dir))
    name, content, option = log_config(inst.cfg.kafka_version, tools=False)
    (sdir / name).write_text(content)
    if inst.cfg.mode == "kraft" and not (sdir / "data" / "meta.properties").exists():
        format_kraft(inst, libs, conf)
    return [
        java(),
        *JVM_HEAP,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"{option}{sdir / name}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(conf),
    ]


def stale_registration(inst: Instance, service: str) -> bool:
    """Whether broker `service` exited because ZooKeeper still holds its previous registration."""
    if inst.cfg.mode != "zookeeper" or not service.startswith("kafka-") or inst.pid(service):
        return False
    try:
        tail = inst.log_path(service).read_bytes()[-20000:]
    except OSError:
        return False
    return b"NodeExists" in tail.rsplit(b"===== starting", 1)[-1]


def format_kraft(inst: Instance, libs: Path, conf: Path) -> None:
    argv = [
        java(),
        "-cp",
        f"{libs}/*",
        fetch.tool_class(libs, "kafka-storage"),
        "format",
        "-t",
        inst.cfg.cluster_id,
        "-c",
        str(conf),
        "--ignore-formatted",
    ]
    if inst.cfg.secure:
        argv += ["--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={inst.cfg.scram_password}]"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"formatting KRaft storage failed: {result.stderr.strip().splitlines()[-1:]}")


def add_scram_user_zookeeper(inst: Instance) -> None:
    """ZooKeeper mode: SCRAM credentials are stored in ZooKeeper before the brokers start."""
    libs = fetch.kafka_libs(inst.cache, inst.cfg.kafka_version)
    args = [
        "--zookeeper",
        f"127.0.0.1:{inst.cfg.zookeeper_port}",
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        SCRAM_USER,
        "--add-config",
        f"SCRAM-SHA-512=[iterations=4096,password={inst.cfg.scram_password}]",
    ]
    result = subprocess.run(
        tool_argv(inst, libs, "kafka-configs", args), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError("could not store the SCRAM user in ZooKeeper; see the zookeeper log")


def tool_argv(inst: Instance, libs: Path, tool: str, args: list[str]) -> list[str]:
    """The java command line of Kafka tool `tool` (the benchmarks run it as their own child, to
    measure the JVM's CPU time and peak RSS without a launcher in between)."""
    name, content, option = log_config(inst.cfg.kafka_version, tools=True)
    conf = inst.dir / name
    inst.dir.mkdir(parents=True, exist_ok=True)
    conf.write_text(content)
    return [java(), "-Xmx512m", f"{option}{conf}", "-cp", f"{libs}/*", fetch.tool_class(libs, tool), *args]


def exec_tool(inst: Instance, libs: Path, tool: str, args: list[str]) -> None:
    """Become Kafka tool `tool` (`scripts/stack kafka ...`): no Python parent stays behind, so a signal
    sent to the command (SIGTERM, Ctrl-C) reaches the JVM itself and leaves no orphan."""
    argv = tool_argv(inst, libs, tool, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606 - argv is ours: java and its arguments


def write_client_properties(inst: Instance) -> Path:
    path = inst.dir / "client.properties"
    path.write_text(client_properties(inst.cfg, inst.tls_dir))
    path.chmod(0o600)
    return path


def client_config(inst: Instance, bootstrap: str) -> dict[str, str]:
    """confluent-kafka settings for the stack's own probes and admin calls."""
    # probes fail on purpose while a broker starts: librdkafka's own log would only be noise
    conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": "3000", "log_level": "0"}
    if inst.cfg.secure:
        conf.update(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": SCRAM_USER,
                "sasl.password": inst.cfg.scram_password,
                "ssl.ca.location": str(inst.tls_dir / "ca.crt"),
            }
        )
    return conf


def healthy(inst: Instance, service: str) -> bool:
    if service == "zookeeper":
        return zookeeper_ok(inst.cfg.zookeeper_port)
    return broker_ok(inst, int(service.split("-")[1]))


def zookeeper_ok(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"ruok")
        return sock.recv(16) == b"imok"


def broker_ok(inst: Instance, node: int) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(inst, f"127.0.0.1:{inst.cfg.kafka_port(node)}"))
    try:
        md = admin.list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure of the probe means "not yet"
        return False
    return node in md.brokers and md.controller_id not in (None, -1)


def create_topics(inst: Instance, timeout: float) -> None:
    """`log-data` and its dead-letter topic, with the instance's partitions and replicas.

    A broker that has just started may take longer than the probes' 3 s socket timeout to answer its
    first CreateTopics on a loaded machine: the request gets the whole `timeout`, and a request that
    timed out is asked again until then (creating a topic twice only finds it there)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = inst.cfg
    admin = AdminClient(client_config(inst, cfg.bootstrap_servers) | {"socket.timeout.ms": "30000"})
    pending = [defaults.TOPIC, defaults.TOPIC + defaults.DEAD_LETTER_SUFFIX]
    deadline = time.monotonic() + timeout
    while pending:
        wanted = [NewTopic(t, cfg.partitions, cfg.replication) for t in pending]
        left = max(1.0, deadline - time.monotonic())
        for topic, future in admin.create_topics(wanted, request_timeout=left).items():
            try:
                future.result(timeout=left)
                log.info(
                    "created topic %s (%d partitions, replication %d)", topic, cfg.partitions, cfg.replication
                )
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError._TIMED_OUT and time.monotonic() < deadline:
                    log.info("creating topic %s timed out; asking again", topic)
                    continue
                if error.name() != "TOPIC_ALREADY_EXISTS":
                    raise StackError(f"could not create topic {topic}: {error.str()}") from None
            pending.remove(topic)


LOGBACK = """<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>[%d] %level %msg \\(%logger\\)%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="OUT"/></root>
</configuration>
"""
