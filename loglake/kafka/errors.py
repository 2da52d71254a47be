"""Kafka failures classified into the one sentence a user reads (loglake.errors.KafkaUnavailable):
no broker answered, the credentials were refused, the TLS handshake failed, the topic is missing;
and which refused commits mean "this partition moved to another member".

Each client library says why in its own way: confluent-kafka through its error callback
(`ClientErrors`), kafka-python through its ERROR log lines (`LibraryErrors`, `library_logs_muted`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loglake.errors import KafkaUnavailable
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

# Commit errors that mean the group no longer lets this member commit the partition (a rebalance
# moved it, or the member was fenced): the writer forgets the partition, it does not retry.
COMMIT_REFUSED = {
    "REBALANCE_IN_PROGRESS",
    "ILLEGAL_GENERATION",
    "UNKNOWN_MEMBER_ID",
    "FENCED_INSTANCE_ID",
    "_ASSIGNMENT_LOST",
    "_STATE",
    "STALE_MEMBER_EPOCH",
    "UNKNOWN_TOPIC_OR_PART",
}


def unreachable(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"no Kafka broker answered at {settings.describe()} within {settings.connect_timeout:g} s ({detail})"
    )


def refused_credentials(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"Kafka at {settings.describe()} refused the credentials "
        f"(check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD): {detail}"
    )


def failed_tls(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"the TLS handshake with Kafka at {settings.describe()} failed "
        f"(check --ssl-cafile / KAFKA_SSL_CAFILE): {detail}"
    )


def missing_topic(settings: KafkaSettings, topic: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"topic {topic!r} does not exist on {settings.bootstrap_servers} and the broker does not create "
        "topics on demand; create it first (kafka-topics --create)"
    )


class ClientErrors:
    """The `error_cb` of a confluent-kafka client: keeps the last error, so that a failed first
    contact can say why (credentials refused, TLS failed) instead of just "no broker answered"."""

    def __init__(self) -> None:
        self.last: Any = None

    def __call__(self, error: Any) -> None:
        self.last = error
        log.debug("Kafka: %s", error.str())

    def says_why(self) -> bool:
        """Whether the last error is a refused login or a failed TLS handshake."""
        from confluent_kafka import KafkaError

        return self.last is not None and self.last.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)

    def explain(self, settings: KafkaSettings, detail: str) -> KafkaUnavailable:
        from confluent_kafka import KafkaError

        code = self.last.code() if self.last is not None else None
        if code == KafkaError._AUTHENTICATION:
            return refused_credentials(settings, self.last.str())
        if code == KafkaError._SSL:
            return failed_tls(settings, self.last.str())
        return unreachable(settings, detail)


class LibraryErrors(logging.Handler):
    """Keeps kafka-python's ERROR lines, which say why a connection failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages = [*self.messages[-49:], record.getMessage()]

    def first(self, *needles: str) -> str | None:
        return next((m for m in self.messages if any(n in m for n in needles)), None)


def kafka_python_failure(settings: KafkaSettings, last: LibraryErrors, exc: Exception) -> KafkaUnavailable:
    """Why a kafka-python client could not reach the cluster, in one sentence, from its own ERROR
    lines (kept by `library_logs_muted`): credentials refused, TLS failed, or no broker answered."""
    why = last.first("AuthenticationFailed")
    if why:
        return refused_credentials(settings, why)
    why = last.first("Handshake failed", "CERTIFICATE_VERIFY_FAILED")
    if why:
        return failed_tls(settings, why)
    # the broker answered (its version is known) and then hung up: SASL refused the login
    if settings.uses_sasl and last.first("broker_version=(") and last.first("socket disconnected"):
        return refused_credentials(settings, "the broker closed the connection during login")
    return unreachable(settings, str(exc))


@contextmanager
def library_logs_muted() -> Iterator[LibraryErrors]:
    """While we probe the cluster, kafka-python's own retries and complaints (ERROR lines every
    100 ms) are not shown but kept: the caller reports the outcome as one sentence."""
    library = logging.getLogger("kafka")
    level, propagate = library.level, library.propagate
    last = LibraryErrors()
    library.addHandler(last)
    library.setLevel(logging.ERROR)
    library.propagate = False
    try:
        yield last
    finally:
        library.removeHandler(last)
        library.setLevel(level)
        library.propagate = propagate
