"""One native stack instance on disk, and its services: start, stop, health, by server kind.

Each kind of server has its own module, which knows how it starts and how it answers:
`kafka_servers` (ZooKeeper and the brokers), `object_store` (versitygw or MinIO as the service `s3`)
and `postgres` (the Iceberg catalog's PostgreSQL). This module keeps what they share: where an
instance lives, which port each service needs, and the wait until a started service answers.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

from loglake.stack import kafka_servers, object_store, postgres, process, tls
from loglake.stack.cluster import StackConfig, port_is_free
from loglake.stack.process import StackError

log = logging.getLogger("loglake.stack")


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
        return process.running_pid(self.service_dir(service))

    def running(self) -> list[str]:
        return [s for s in self.cfg.service_names() if self.pid(s)]

    def spawn(self, service: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        process.spawn(self.service_dir(service), argv, env)

    # -- commands for one service ------------------------------------------------------------
    def start(self, service: str, timeout: float) -> None:
        if service not in self.cfg.service_names():
            raise StackError(
                f"no service {service!r} in this stack; services: {', '.join(self.cfg.service_names())}"
            )
        if self.pid(service):
            log.info("%s is already running", service)
        else:
            for port in self.cfg.ports_of(service):
                if not port_is_free(port):
                    raise StackError(
                        f"port {port} ({service}) is already in use by another program; stop it, "
                        "or move this stack with --port-offset"
                    )
            self._launch(service)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.wait_healthy(service, max(1.0, deadline - time.monotonic()))
                return
            except StackError:
                if not kafka_servers.stale_registration(self, service) or time.monotonic() > deadline:
                    raise
            # a broker killed hard is still registered in ZooKeeper until its session expires (~18 s)
            log.info("%s: ZooKeeper still holds the killed broker's registration; retrying in 3 s", service)
            time.sleep(3)
            self._launch(service)

    def _launch(self, service: str) -> None:
        sdir = self.service_dir(service)
        sdir.mkdir(parents=True, exist_ok=True)
        if service == "s3":
            argv, env = object_store.command(self)
            process.spawn(sdir, argv, env)
        elif service == "postgres":
            argv = postgres.command(self)
            process.spawn(sdir, argv, user=postgres.run_as(), cwd=postgres.cluster_dir(self))
        else:
            process.spawn(sdir, kafka_servers.command(self, service))

    def stop(self, service: str, sig: int = signal.SIGTERM, grace: float = 40.0) -> None:
        if service == "postgres" and sig == signal.SIGTERM:
            sig = postgres.STOP_SIGNAL  # SIGTERM would wait for every client to disconnect
        process.stop(self.service_dir(service), sig, grace)

    def ensure_tls(self) -> None:
        if self.cfg.secure:
            tls.ensure_certificates(self.tls_dir)

    # -- health ------------------------------------------------------------------------------
    def healthy(self, service: str) -> bool:
        try:
            if service == "s3":
                return object_store.healthy(self)
            if service == "postgres":
                return postgres.healthy(self)
            return kafka_servers.healthy(self, service)
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
