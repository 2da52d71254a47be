"""Connection options for the cluster in `KafkaSettings` (bootstrap, TLS, SASL), one function per
client library, shared by every client of that library (producer, consumer, admin, verify)."""

from __future__ import annotations

import logging
from typing import Any

from loglake.settings import KafkaSettings


def confluent_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka options for the cluster in `settings` (shared by producer and consumer)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
        "socket.connection.setup.timeout.ms": int(settings.connect_timeout * 1000),
        # librdkafka backs off up to 10 s between reconnects by default: a broker that is back
        # would go unnoticed that long (tests/test_faults.py saw it); look every 2 s at most
        "reconnect.backoff.max.ms": 2000,
        "logger": _LibrdkafkaLog(),
    }
    if settings.uses_sasl:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password.get()
    if settings.uses_tls and settings.ssl_cafile:
        config["ssl.ca.location"] = settings.ssl_cafile
    return config


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for the cluster in `settings` (its producer)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
        "bootstrap_timeout_ms": int(settings.connect_timeout * 1000),
    }
    if settings.uses_sasl:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = settings.sasl_password.get()
    if settings.uses_tls:
        config["ssl_check_hostname"] = True
        if settings.ssl_cafile:
            config["ssl_cafile"] = settings.ssl_cafile
    return config


class _LibrdkafkaLog:
    """librdkafka's own log lines go to DEBUG: what a user must see comes through the error
    callback and our own sentences (a refused connection is not worth ten log lines)."""

    _log = logging.getLogger("loglake.librdkafka")

    def log(self, level: int, msg: str, *args: object) -> None:
        self._log.debug(msg, *args)
