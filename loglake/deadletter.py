"""Records that cannot be stored: to the dead-letter topic, with the error and where they came from.

A dead letter keeps the original key, value and headers, and adds headers:
`loglake.error.kind` (short machine name), `loglake.error` (one sentence), `loglake.source.topic`,
`loglake.source.partition`, `loglake.source.offset`, `loglake.source.timestamp`.

Dead letters must be acknowledged before the offset commit that covers them (`flush()`); a crash
between the two sends them again, so the dead-letter topic is at-least-once and readers
deduplicate by the source coordinates (`python -m loglake verify` does).
"""

from __future__ import annotations

import logging
from typing import Any

from loglake.errors import KafkaUnavailable
from loglake.kafka import ProducerTuning, ensure_topic, open_producer
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

HEADER_KIND = "loglake.error.kind"
HEADER_ERROR = "loglake.error"
HEADER_TOPIC = "loglake.source.topic"
HEADER_PARTITION = "loglake.source.partition"
HEADER_OFFSET = "loglake.source.offset"
HEADER_TIMESTAMP = "loglake.source.timestamp"


class DeadLetters:
    def __init__(self, settings: KafkaSettings, topic: str, partitions: int, source_topic: str) -> None:
        self.topic = topic
        ensure_topic(settings, topic, partitions, like=source_topic)
        self._producer = open_producer(settings, topic, ProducerTuning(client_id="loglake-dead-letters"))
        self._producer.check_topic(topic)
        self._failed: list[str] = []
        self.sent = 0

    def send(self, message: Any, kind: str, reason: str) -> None:
        """Send the consumed `message` (a confluent_kafka.Message) to the dead-letter topic."""
        headers = list(message.headers() or [])
        headers += [
            (HEADER_KIND, kind.encode()),
            (HEADER_ERROR, reason.encode("utf-8", "replace")),
            (HEADER_TOPIC, message.topic().encode()),
            (HEADER_PARTITION, str(message.partition()).encode()),
            (HEADER_OFFSET, str(message.offset()).encode()),
            (HEADER_TIMESTAMP, str(message.timestamp()[1]).encode()),
        ]
        value = message.value()
        self._producer.send(
            message.key(),
            value if value is not None else b"",
            message.timestamp()[1],
            headers,
            self._on_result,
        )
        self.sent += 1
        self._producer.poll(0)

    def _on_result(self, error: str | None, _value: bytes) -> None:
        if error is not None:
            self._failed.append(error)

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until every dead letter is acknowledged; KafkaUnavailable otherwise (commit nothing)."""
        left = self._producer.flush(timeout)
        if left or self._failed:
            detail = self._failed[0] if self._failed else f"{left} still in flight"
            self._failed.clear()
            raise KafkaUnavailable(f"dead letters to {self.topic!r} were not acknowledged ({detail})")

    def close(self) -> None:
        self._producer.close()


def source_of(headers: list[tuple[str, bytes | None]] | None) -> tuple[str, int, int] | None:
    """(topic, partition, offset) a dead letter came from, or None if it carries none."""
    found = {k: v for k, v in headers or [] if v is not None}
    try:
        return found[HEADER_TOPIC].decode(), int(found[HEADER_PARTITION]), int(found[HEADER_OFFSET])
    except (KeyError, ValueError):
        return None
