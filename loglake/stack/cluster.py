"""What a native stack instance is: its services, their ports, configuration files and health checks.

An instance lives in one folder (`.stack/<name>/`): `stack.json` (its shape), one folder per service
(configuration, data, `pid`, `log`), and `tls/` for `--secure`. The default instance uses the same
ports as docker-compose.yml; `--port-offset` moves every port, so tests can run a second instance
(a three-broker cluster, KRaft, secure, MinIO) beside the default one.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loglake import defaults

SCRAM_USER = "loglake"


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, 22 characters, as `kafka-storage
    random-uuid` makes them, and like Kafka's, never one that starts with `-`: `kafka-storage format
    -t -xyz...` takes it for an option ("argument --cluster-id/-t: expected one argument"), which
    failed one KRaft stack in 64 at random (a CI run on 2026-12-03)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        if not found.startswith("-"):
            return found


@dataclass
class StackConfig:
    name: str = "default"
    mode: str = "zookeeper"  # or "kraft"
    brokers: int = 1
    port_offset: int = 0
    secure: bool = False
    partitions: int = defaults.TOPIC_PARTITIONS
    s3: str = "versitygw"  # or "minio": which S3 server the service `s3` is
    postgres: bool = False  # the Iceberg catalog's PostgreSQL (service `postgres`)
    cluster_id: str = field(default_factory=new_cluster_id)
    scram_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def kafka_version(self) -> str:
        if self.mode == "zookeeper":
            return defaults.KAFKA_ZOOKEEPER_MODE_VERSION
        return defaults.KAFKA_KRAFT_MODE_VERSION

    def kafka_port(self, node: int) -> int:
        return defaults.KAFKA_PORTS[node - 1] + self.port_offset

    def internal_port(self, node: int) -> int:
        """Broker-to-broker listener (PLAINTEXT on loopback), apart from the client listener."""
        return 19091 + node + self.port_offset

    def controller_port(self, node: int) -> int:
        return 29091 + node + self.port_offset

    @property
    def zookeeper_port(self) -> int:
        return defaults.ZOOKEEPER_PORT + self.port_offset

    @property
    def s3_port(self) -> int:
        return defaults.S3_PORT + self.port_offset

    @property
    def s3_console_port(self) -> int | None:
        """MinIO's web console; versitygw has none."""
        return defaults.S3_CONSOLE_PORT + self.port_offset if self.s3 == "minio" else None

    @property
    def postgres_port(self) -> int:
        return defaults.POSTGRES_PORT + self.port_offset

    @property
    def replication(self) -> int:
        return min(3, self.brokers)

    @property
    def min_insync(self) -> int:
        return 2 if self.brokers >= 3 else 1

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.kafka_port(n)}" for n in range(1, self.brokers + 1))

    @property
    def security_protocol(self) -> str:
        return "SASL_SSL" if self.secure else "PLAINTEXT"

    @property
    def s3_endpoint(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.s3_port}"

    def service_names(self) -> list[str]:
        names = ["s3"]
        if self.mode == "zookeeper":
            names.append("zookeeper")
        names += [f"kafka-{n}" for n in range(1, self.brokers + 1)]
        if self.postgres:
            names.append("postgres")
        return names

    def ports_of(self, service: str) -> list[int]:
        """Every port `service` listens on (MinIO: S3 and its console)."""
        console = self.s3_console_port
        return [self.port_of(service), console] if service == "s3" and console else [self.port_of(service)]

    def port_of(self, service: str) -> int:
        if service == "s3":
            return self.s3_port
        if service == "postgres":
            return self.postgres_port
        if service == "zookeeper":
            return self.zookeeper_port
        return self.kafka_port(int(service.split("-")[1]))

    def same_shape(self, other: StackConfig) -> bool:
        keys = ("mode", "brokers", "port_offset", "secure", "s3")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def describe(self) -> str:
        secure = ", secure (SASL_SSL + TLS)" if self.secure else ""
        postgres = ", PostgreSQL" if self.postgres else ""
        return (
            f"{self.mode} mode, Kafka {self.kafka_version}, {self.brokers} broker(s){secure}, "
            f"S3 {self.s3}{postgres}, ports +{self.port_offset}"
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> StackConfig:
        return cls(**json.loads(path.read_text()))


# ---------------------------------------------------------------------------------------
# Configuration files


def zookeeper_properties(cfg: StackConfig, data: Path) -> str:
    return "\n".join(
        [
            f"dataDir={data}",
            f"clientPort={cfg.zookeeper_port}",
            "clientPortAddress=127.0.0.1",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat",
            "tickTime=2000",
            "initLimit=10",
            "syncLimit=5",
            "",
        ]
    )


def kafka_properties(cfg: StackConfig, node: int, data: Path, tls_dir: Path) -> str:
    client = f"CLIENT://127.0.0.1:{cfg.kafka_port(node)}"
    internal = f"INTERNAL://127.0.0.1:{cfg.internal_port(node)}"
    protocols = [f"CLIENT:{cfg.security_protocol}", "INTERNAL:PLAINTEXT"]
    lines = [
        f"log.dirs={data}",
        f"advertised.listeners={client},{internal}",
        "inter.broker.listener.name=INTERNAL",
        f"num.partitions={cfg.partitions}",
        f"default.replication.factor={cfg.replication}",
        f"min.insync.replicas={cfg.min_insync}",
        f"offsets.topic.replication.factor={cfg.replication}",
        f"transaction.state.log.replication.factor={cfg.replication}",
        f"transaction.state.log.min.isr={cfg.min_insync}",
        "offsets.topic.num.partitions=10",
        "auto.create.topics.enable=false",
        "group.initial.rebalance.delay.ms=0",
        # No time limit: tests and benchmarks replay seeded runs whose events (and so record
        # timestamps) start at 2026-01-01; a 7-day limit would delete them minutes after landing.
        "log.retention.ms=-1",
        # A size limit instead, docker-compose.yml's: an unpaced producer left running fills at most
        # 256 MiB (plus the active segment) per partition, not the disk.
        f"log.retention.bytes={defaults.TOPIC_RETENTION_BYTES}",
        f"log.segment.bytes={defaults.TOPIC_SEGMENT_BYTES}",
        "unclean.leader.election.enable=false",
    ]
    if cfg.mode == "zookeeper":
        lines += [
            f"broker.id={node}",
            f"listeners={client},{internal}",
            f"zookeeper.connect=127.0.0.1:{cfg.zookeeper_port}",
            "zookeeper.connection.timeout.ms=18000",
            # A broker that dies is noticed when its ZooKeeper session expires: Kafka's default 18 s left
            # leaders and ISR unchanged (and acks=all writes stalled) that long; 6 s is Kafka's old default.
            "zookeeper.session.timeout.ms=6000",
        ]
    else:
        voters = ",".join(f"{n}@127.0.0.1:{cfg.controller_port(n)}" for n in range(1, cfg.brokers + 1))
        protocols.append("CONTROLLER:PLAINTEXT")
        lines += [
            "process.roles=broker,controller",
            f"node.id={node}",
            f"controller.quorum.voters={voters}",
            f"listeners={client},{internal},CONTROLLER://127.0.0.1:{cfg.controller_port(node)}",
            "controller.listener.names=CONTROLLER",
        ]
    lines.append(f"listener.security.protocol.map={','.join(protocols)}")
    if cfg.secure:
        lines += [
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls_dir / 'server.pem'}",
            "ssl.client.auth=none",
        ]
    return "\n".join(lines) + "\n"


def client_properties(cfg: StackConfig, tls_dir: Path) -> str:
    """For Kafka's own command-line tools (`--command-config`) against a secure instance."""
    if not cfg.secure:
        return "security.protocol=PLAINTEXT\n"
    return "\n".join(
        [
            "security.protocol=SASL_SSL",
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{SCRAM_USER}" password="{cfg.scram_password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls_dir / 'ca.crt'}",
            "",
        ]
    )


BROKER_LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
"""

TOOLS_LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""

BROKER_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.req.name = kafka.request.logger
logger.req.level = warn
"""

TOOLS_LOG4J2 = """status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = ERR
"""


def log_config(kafka_version: str, tools: bool) -> tuple[str, str, str]:
    """(file name, content, JVM option naming it) for a broker or for the command-line tools."""
    if kafka_version.startswith("3."):
        name = "tools-log4j.properties" if tools else "log4j.properties"
        return name, TOOLS_LOG4J if tools else BROKER_LOG4J, "-Dlog4j.configuration=file:"
    name = "tools-log4j2.properties" if tools else "log4j2.properties"
    return name, TOOLS_LOG4J2 if tools else BROKER_LOG4J2, "-Dlog4j2.configurationFile="


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
