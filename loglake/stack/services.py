"""Start, stop, watch and health-check the processes of one native stack instance."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from loglake import defaults
from loglake.errors import LoglakeError
from loglake.stack import fetch, tls
from loglake.stack.cluster import (
    SCRAM_USER,
    StackConfig,
    client_properties,
    kafka_properties,
    log_config,
    port_is_free,
    zookeeper_properties,
)

log = logging.getLogger("loglake.stack")

JVM_HEAP = ["-Xms256m", "-Xmx1g"]


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


class Instance:
    """One stack instance on disk: `root/<name>/`."""

    def __init__(self, root: Path, cfg: StackConfig) -> None:
        self.root = root
        self.cfg = cfg
        self.dir = root / cfg.name
        self.cache = root / "cache"

    # -- paths -------------------------------------------------------------------------------
    def service_dir(self, service: str) -> Path:
        return self.dir / service

    def log_path(self, service: str) -> Path:
        return self.service_dir(service) / "log"

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"

    # -- process bookkeeping -----------------------------------------------------------------
    def pid(self, service: str) -> int | None:
        """The pid of the running service, or None; a stale pid file is ignored."""
        pid_file = self.service_dir(service) / "pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        marker = str(self.service_dir(service)).encode()
        if marker not in cmdline:
            return None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return None if state in ("Z", "X") else pid

    def running(self) -> list[str]:
        return [s for s in self.cfg.service_names() if self.pid(s)]

    def spawn(self, service: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        sdir = self.service_dir(service)
        sdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(service), "ab") as out:
            out.write(f"\n===== starting {service} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=sdir,
                start_new_session=True,
                env=env,
            )
        (sdir / "pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 5  # until the child has exec'd, /proc shows our own command line
        while not self.pid(service) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- commands for one service ------------------------------------------------------------
    def start(self, service: str, timeout: float) -> None:
        if service not in self.cfg.service_names():
            raise StackError(
                f"no service {service!r} in this stack; services: {', '.join(self.cfg.service_names())}"
            )
        if self.pid(service):
            log.info("%s is already running", service)
        else:
            port = self.cfg.port_of(service)
            if not port_is_free(port):
                raise StackError(
                    f"port {port} ({service}) is already in use by another program; stop it, "
                    "or move this stack with --port-offset"
                )
            argv, env = self._command(service)
            self.spawn(service, argv, env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wait_healthy(service, max(1.0, deadline - time.monotonic()))
                return
            except StackError:
                if not self._stale_registration(service) or time.monotonic() > deadline:
                    raise
            # a broker killed hard is still registered in ZooKeeper until its session expires (~18 s)
            log.info("%s: ZooKeeper still holds the killed broker's registration; retrying in 3 s", service)
            time.sleep(3)
            self.spawn(service, *self._command(service))

    def _stale_registration(self, service: str) -> bool:
        if self.cfg.mode != "zookeeper" or not service.startswith("kafka-") or self.pid(service):
            return False
        try:
            tail = self.log_path(service).read_bytes()[-20000:]
        except OSError:
            return False
        return b"NodeExists" in tail.rsplit(b"===== starting", 1)[-1]

    def stop(self, service: str, sig: int = signal.SIGTERM, grace: float = 40.0) -> None:
        pid = self.pid(service)
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while self.pid(service) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid(service):
            log.warning("%s did not stop within %.0fs; killing it", service, grace)
            os.kill(pid, signal.SIGKILL)
            while self.pid(service):
                time.sleep(0.1)

    # -- how each service starts ---------------------------------------------------------------
    def _command(self, service: str) -> tuple[list[str], dict[str, str] | None]:
        sdir = self.service_dir(service)
        sdir.mkdir(parents=True, exist_ok=True)
        if service == "s3":
            return self._s3_command(sdir), None
        if service == "zookeeper":
            libs = fetch.zookeeper_libs(self.cache, defaults.ZOOKEEPER_VERSION)
            conf = sdir / "zookeeper.properties"
            conf.write_text(zookeeper_properties(self.cfg, sdir / "data"))
            logback = sdir / "logback.xml"
            logback.write_text(_LOGBACK)
            return [
                java(),
                *JVM_HEAP[:1],
                "-Xmx512m",
                f"-Dlogback.configurationFile={logback}",
                "-cp",
                f"{libs}/*",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(conf),
            ], None
        node = int(service.split("-")[1])
        libs = fetch.kafka_libs(self.cache, self.cfg.kafka_version)
        conf = sdir / "server.properties"
        conf.write_text(kafka_properties(self.cfg, node, sdir / "data", self.tls_dir))
        name, content, option = log_config(self.cfg.kafka_version, tools=False)
        (sdir / name).write_text(content)
        if self.cfg.mode == "kraft" and not (sdir / "data" / "meta.properties").exists():
            self._format_kraft(libs, conf)
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
        ], None

    def _s3_command(self, sdir: Path) -> list[str]:
        binary = fetch.versitygw_binary(self.cache)
        data = sdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "--port",
            f"127.0.0.1:{self.cfg.s3_port}",
            "--access",
            defaults.S3_ACCESS_KEY_ID,
            "--secret",
            defaults.S3_SECRET_ACCESS_KEY,
            "--region",
            defaults.REGION,
            "--quiet",
        ]
        if self.cfg.secure:
            argv += ["--cert", str(self.tls_dir / "server.crt"), "--key", str(self.tls_dir / "server.key")]
        return [*argv, "posix", str(data)]

    def _format_kraft(self, libs: Path, conf: Path) -> None:
        argv = [
            java(),
            "-cp",
            f"{libs}/*",
            fetch.tool_class(libs, "kafka-storage"),
            "format",
            "-t",
            self.cfg.cluster_id,
            "-c",
            str(conf),
            "--ignore-formatted",
        ]
        if self.cfg.secure:
            argv += ["--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={self.cfg.scram_password}]"]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"formatting KRaft storage failed: {result.stderr.strip().splitlines()[-1:]}")

    def add_scram_user_zookeeper(self) -> None:
        """ZooKeeper mode: SCRAM credentials are stored in ZooKeeper before the brokers start."""
        libs = fetch.kafka_libs(self.cache, self.cfg.kafka_version)
        result = self.kafka_tool(
            libs,
            "kafka-configs",
            [
                "--zookeeper",
                f"127.0.0.1:{self.cfg.zookeeper_port}",
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                SCRAM_USER,
                "--add-config",
                f"SCRAM-SHA-512=[iterations=4096,password={self.cfg.scram_password}]",
            ],
            capture=True,
        )
        if result.returncode != 0:
            raise StackError("could not store the SCRAM user in ZooKeeper; see the zookeeper log")

    def kafka_tool(
        self, libs: Path, tool: str, args: list[str], capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = self.kafka_tool_argv(libs, tool, args)
        return subprocess.run(argv, capture_output=capture, text=True, check=False)

    def kafka_tool_argv(self, libs: Path, tool: str, args: list[str]) -> list[str]:
        """The java command line of Kafka tool `tool` (the benchmarks run it as their own child, to
        measure the JVM's CPU time and peak RSS without a launcher in between)."""
        name, content, option = log_config(self.cfg.kafka_version, tools=True)
        conf = self.dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        conf.write_text(content)
        return [
            java(),
            "-Xmx512m",
            f"{option}{conf}",
            "-cp",
            f"{libs}/*",
            fetch.tool_class(libs, tool),
            *args,
        ]

    def write_client_properties(self) -> Path:
        path = self.dir / "client.properties"
        path.write_text(client_properties(self.cfg, self.tls_dir))
        path.chmod(0o600)
        return path

    def ensure_tls(self) -> None:
        if self.cfg.secure:
            tls.ensure_certificates(self.tls_dir)

    # -- health ------------------------------------------------------------------------------
    def healthy(self, service: str) -> bool:
        try:
            if service == "zookeeper":
                return _zookeeper_ok(self.cfg.zookeeper_port)
            if service == "s3":
                return self._s3_ok()
            return self._kafka_ok(int(service.split("-")[1]))
        except OSError:
            return False

    def wait_healthy(self, service: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pid(service):
                raise StackError(f"{service} exited while starting; see its log: {self.log_path(service)}")
            if self.healthy(service):
                log.info("%s is up on 127.0.0.1:%d", service, self.cfg.port_of(service))
                return
            time.sleep(0.5)
        raise StackError(
            f"{service} did not answer within {timeout:.0f}s; see its log: {self.log_path(service)}"
        )

    def kafka_client_config(self, bootstrap: str) -> dict[str, str]:
        # probes fail on purpose while a broker starts: librdkafka's own log would only be noise
        conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": "3000", "log_level": "0"}
        if self.cfg.secure:
            conf.update(
                {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": SCRAM_USER,
                    "sasl.password": self.cfg.scram_password,
                    "ssl.ca.location": str(self.tls_dir / "ca.crt"),
                }
            )
        return conf

    def _kafka_ok(self, node: int) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.kafka_client_config(f"127.0.0.1:{self.cfg.kafka_port(node)}"))
        try:
            md = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any failure of the probe means "not yet"
            return False
        return node in md.brokers and md.controller_id not in (None, -1)

    def s3_client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.cfg.s3_endpoint,
            region_name=defaults.REGION,
            aws_access_key_id=defaults.S3_ACCESS_KEY_ID,
            aws_secret_access_key=defaults.S3_SECRET_ACCESS_KEY,
            verify=str(self.tls_dir / "ca.crt") if self.cfg.secure else None,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        )

    def _s3_ok(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3_client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    # -- topic and bucket ----------------------------------------------------------------------
    def create_topics(self, timeout: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.kafka_client_config(self.cfg.bootstrap_servers))
        wanted = [
            NewTopic(t, self.cfg.partitions, self.cfg.replication)
            for t in (defaults.TOPIC, defaults.TOPIC + defaults.DEAD_LETTER_SUFFIX)
        ]
        deadline = time.monotonic() + timeout
        for topic, future in admin.create_topics(wanted, request_timeout=timeout).items():
            try:
                future.result(timeout=max(1.0, deadline - time.monotonic()))
                log.info(
                    "created topic %s (%d partitions, replication %d)",
                    topic,
                    self.cfg.partitions,
                    self.cfg.replication,
                )
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise StackError(f"could not create topic {topic}: {exc.args[0].str()}") from None

    def create_bucket(self) -> None:
        from botocore.exceptions import ClientError

        s3 = self.s3_client()
        try:
            s3.create_bucket(Bucket=defaults.BUCKET)
            log.info("created bucket %s", defaults.BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StackError(f"could not create bucket {defaults.BUCKET}: {exc}") from None


def _zookeeper_ok(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"ruok")
        return sock.recv(16) == b"imok"


_LOGBACK = """<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>[%d] %level %msg \\(%logger\\)%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="OUT"/></root>
</configuration>
"""
