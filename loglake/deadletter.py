"""Records that cannot be stored: to the dead-letter topic, with the error and where they came from.

A dead letter keeps the original key, value and headers, and adds headers:
`loglake.error.kind` (short machine name), `loglake.error` (one sentence), `loglake.error.class` (the
class of the exception that decided it: `Rejection` when validation named the problem itself, another
class when an unexpected exception was caught at the record's boundary), `loglake.source.topic`,
`loglake.source.partition`, `loglake.source.offset`, `loglake.source.timestamp`.

The dead-letter topic is created (if missing) with its source's `max.message.bytes`, so that any
record the source accepted fits; an existing one that accepts less is named at start. A letter the
topic still refuses for good (too large, invalid) is stored in the lake instead, under
`_loglake/dead-letters/` (loglake/partition.py): a bad record never stops its partition and is
never dropped.

Dead letters are acknowledged before the offset commit that covers them; a crash between the two
sends them again, so the dead-letter topic is at-least-once and readers deduplicate by the source
coordinates (`python -m loglake verify` does).
"""

from __future__ import annotations

import logging
import threading

from loglake.batch import Rejected
from loglake.kafka.admin import ensure_topic, topic_max_message_bytes
from loglake.kafka.producer import ConfluentProducer, LogProducer, ProducerTuning
from loglake.partition import DeadLettersPending
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

HEADER_KIND = "loglake.error.kind"
HEADER_ERROR = "loglake.error"
HEADER_CLASS = "loglake.error.class"
HEADER_TOPIC = "loglake.source.topic"
HEADER_PARTITION = "loglake.source.partition"
HEADER_OFFSET = "loglake.source.offset"
HEADER_TIMESTAMP = "loglake.source.timestamp"

KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
HEADROOM = 16 * 1024  # our headers and the record batch around one letter
DELIVERY_WAIT = 60.0  # seconds to wait for the letters of one batch to be acknowledged


def refused_for_good(error: str) -> bool:
    """Whether a delivery error means the topic will never take this record (not worth a retry)."""
    text = error.lower().replace("_", " ")
    return "too large" in text or "toolarge" in text or "invalid record" in text or "invalidrecord" in text


class DeadLetters:
    def __init__(self, settings: KafkaSettings, topic: str, source_topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.source_topic = source_topic
        self.limit = KAFKA_DEFAULT_MAX_MESSAGE_BYTES  # the largest letter the topic takes
        self._producer: LogProducer | None = None
        self._lock = threading.Lock()
        self.sent = 0

    def prepare(self, partitions: int) -> None:
        source_limit = (
            topic_max_message_bytes(self.settings, self.source_topic) or KAFKA_DEFAULT_MAX_MESSAGE_BYTES
        )
        created = ensure_topic(
            self.settings,
            self.topic,
            partitions,
            like=self.source_topic,
            config={"max.message.bytes": str(source_limit + HEADROOM)},
        )
        self.limit = topic_max_message_bytes(self.settings, self.topic) or source_limit + HEADROOM
        if not created and self.limit < source_limit + HEADROOM:
            log.warning(
                "dead-letter topic %s takes records up to %d bytes, its source %s up to %d: larger dead "
                "letters are stored in the lake under _loglake/dead-letters/",
                self.topic,
                self.limit,
                self.source_topic,
                source_limit,
            )
        self._producer = ConfluentProducer(
            self.settings,
            self.topic,
            ProducerTuning(client_id="loglake-dead-letters", max_record_bytes=self.limit + HEADROOM),
        )
        self._producer.check_topic(self.topic)

    def deliver(self, letters: list[Rejected]) -> list[tuple[Rejected, str]]:
        """Send `letters` and wait for their acknowledgements (called from flight threads)."""
        assert self._producer is not None, "prepare() first"
        outcome: dict[int, str | None] = {}  # index -> delivery error (None: acknowledged)
        sent: dict[int, Rejected] = {}
        refused: list[tuple[Rejected, str]] = []
        for i, letter in enumerate(letters):
            size = len(letter.value or b"") + len(letter.key or b"")
            size += sum(len(k) + len(v or b"") for k, v in letter.headers or [])
            if size + 1024 > self.limit:
                refused.append((letter, f"{size} bytes, over the {self.limit} the dead-letter topic takes"))
                continue
            try:
                with self._lock:
                    self._producer.send(
                        letter.key or b"",
                        letter.value if letter.value is not None else b"",
                        letter.timestamp,
                        headers_of(letter),
                        lambda error, _value, i=i: outcome.__setitem__(i, error),
                    )
            except Exception as exc:  # noqa: BLE001 - either client's synchronous refusal, sorted out here
                if not refused_for_good(str(exc)):
                    raise DeadLettersPending(
                        f"the dead-letter topic {self.topic!r} refused a letter: {exc}"
                    ) from None
                refused.append((letter, str(exc)))
                continue
            sent[i] = letter
            self.sent += 1
        self._producer.flush(DELIVERY_WAIT)
        for i, letter in sent.items():
            error = outcome.get(i, "not acknowledged in time")
            if error is None:
                continue
            if not refused_for_good(error):
                raise DeadLettersPending(f"dead letters to {self.topic!r} were not acknowledged ({error})")
            refused.append((letter, error))
        return refused

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()


def headers_of(letter: Rejected) -> list[tuple[str, bytes]]:
    return [
        *(letter.headers or []),
        (HEADER_KIND, letter.kind.encode()),
        (HEADER_ERROR, letter.reason.encode("utf-8", "replace")),
        (HEADER_CLASS, letter.error_class.encode("utf-8", "replace")),
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_OFFSET, str(letter.offset).encode()),
        (HEADER_TIMESTAMP, str(letter.timestamp).encode()),
    ]


def source_of(headers: list[tuple[str, bytes | None]] | None) -> tuple[str, int, int] | None:
    """(topic, partition, offset) a dead letter came from, or None if it carries none."""
    found = {k: v for k, v in headers or [] if v is not None}
    try:
        return found[HEADER_TOPIC].decode(), int(found[HEADER_PARTITION]), int(found[HEADER_OFFSET])
    except (KeyError, ValueError):
        return None
