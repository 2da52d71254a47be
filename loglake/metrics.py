"""Prometheus metrics of the lake writer (`--metrics-port`); no-ops when the port is 0."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from loglake.errors import ConfigError

log = logging.getLogger(__name__)


class WriterMetrics:
    def __init__(self, port: int, addr: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter("loglake_records", "Records consumed from Kafka", registry=r)
        self.objects = Counter("loglake_objects", "Objects written to the lake", registry=r)
        self.bytes = Counter("loglake_object_bytes", "Bytes written to the lake (compressed)", registry=r)
        self.dead_letters = Counter(
            "loglake_dead_letters", "Records sent to the dead-letter topic", ["kind"], registry=r
        )
        self.lost = Counter(
            "loglake_lost_to_retention",
            "Offsets Kafka deleted (retention) before the writer landed them, by partition",
            ["partition"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "loglake_flush_seconds",
            "Time from flush start to commit",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
        self.lag = Gauge(
            "loglake_lag_records", "Records behind the end of the partition", ["partition"], registry=r
        )
        if port:
            try:
                start_http_server(port, addr=addr, registry=r)
            except OSError as exc:
                raise ConfigError(f"cannot serve metrics on {addr}:{port}: {exc.strerror}") from None
            log.info("Prometheus metrics on http://%s:%d/metrics", addr, port)

    def flushed(self, objects: int, size: int, seconds: float) -> None:
        self.objects.inc(objects)
        self.bytes.inc(size)
        self.flush_seconds.observe(seconds)
