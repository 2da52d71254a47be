"""The producer side of Kafka: what producing code sees (`LogProducer`, `ProducerTuning`) and its
implementation on confluent-kafka (librdkafka), which every producer uses unless the producer's
`--kafka-client kafka-python` asks for loglake/kafka/kafka_python_producer.py
(loglake/kafka/clients.py chooses). The dead-letter producer is always this one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loglake.errors import ConfigError
from loglake.kafka.admin import list_metadata
from loglake.kafka.config import confluent_config
from loglake.kafka.errors import ClientErrors, missing_topic
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

# on_result(error, value): error is None when the broker acknowledged the record.
DeliveryCallback = Callable[[str | None, bytes], None]
Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class ProducerTuning:
    """Delivery and batching options common to both libraries."""

    compression: str = "lz4"
    linger_ms: int = 10
    batch_bytes: int = 1_000_000
    delivery_timeout: float = 120.0  # seconds a record may take, retries included, to be acknowledged
    client_id: str = "loglake-producer"
    max_record_bytes: int = 1_000_000  # the largest record the producer lets through
    # False: on_result hears of failures only, acknowledgements are counted (`reports_successes`)
    report_successes: bool = True


class LogProducer(Protocol):
    # False when on_result hears of failed records only (ProducerTuning.report_successes): every
    # record sent is then acknowledged unless it failed or is still `in_flight()`
    reports_successes: bool

    def in_flight(self) -> int:
        """Records sent and neither acknowledged nor failed yet."""
        ...

    def check_topic(self, topic: str) -> int:
        """Partitions of `topic`; KafkaUnavailable when no broker answers or it does not exist."""
        ...

    def send(
        self, key: bytes, value: bytes, timestamp_ms: int, headers: Headers, on_result: DeliveryCallback
    ) -> None: ...

    def send_many(
        self, records: Iterable[tuple[bytes, bytes, int]], headers: Headers, on_result: DeliveryCallback
    ) -> None:
        """`send` for each (key, value, timestamp_ms): the hot path, without a call per record."""
        ...

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery callbacks, waiting up to `timeout` seconds for one."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait until every record is acknowledged or failed; returns how many are still in flight."""
        ...

    def close(self) -> None: ...


class ConfluentProducer:
    """confluent-kafka (librdkafka): batching, compression and retries happen in C threads."""

    def __init__(self, settings: KafkaSettings, topic: str, tuning: ProducerTuning) -> None:
        from confluent_kafka import KafkaException, Producer

        self._settings = settings
        self._topic = topic
        self._started = False
        self._errors = ClientErrors()
        config = confluent_config(settings) | {
            "client.id": tuning.client_id,
            "acks": "all",
            "enable.idempotence": True,  # retries without duplicates or reordering
            "compression.type": tuning.compression,
            "linger.ms": tuning.linger_ms,
            "batch.size": tuning.batch_bytes,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 200_000,
            "queue.buffering.max.kbytes": 32 * 1024,  # bounds memory: 32 MiB of records in flight
            "message.timeout.ms": int(tuning.delivery_timeout * 1000),
            "partitioner": "murmur2_random",  # the Java client's key -> partition mapping
            "message.max.bytes": max(tuning.max_record_bytes, 1_000_000),
            "error_cb": self._on_error,
            # no report (a Python call and a message object) per acknowledged record unless asked
            "delivery.report.only.error": not tuning.report_successes,
        }
        try:
            self._producer = Producer(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"the Kafka producer options were rejected: {exc}") from None
        self._produce = self._producer.produce
        self._adapter: tuple[DeliveryCallback, Callable[[Any, Any], None]] | None = None
        self.reports_successes = tuning.report_successes

    def in_flight(self) -> int:
        return len(self._producer)

    def _on_error(self, error: Any) -> None:
        self._errors.last = error
        if error.fatal():
            log.error("Kafka producer fatal error: %s", error.str())
        elif self._started:
            log.warning("Kafka: %s", error.str())
        else:
            log.debug("Kafka (while connecting): %s", error.str())

    def check_topic(self, topic: str) -> int:
        metadata = list_metadata(self._producer, self._settings, self._errors)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise missing_topic(self._settings, topic)
        self._started = True
        return len(found.partitions)

    def _callback(self, on_result: DeliveryCallback) -> Callable[[Any, Any], None]:
        if self._adapter is None or self._adapter[0] is not on_result:

            def adapt(error: Any, message: Any) -> None:
                on_result(None if error is None else error.str(), message.value())

            self._adapter = (on_result, adapt)
        return self._adapter[1]

    def send(
        self, key: bytes, value: bytes, timestamp_ms: int, headers: Headers, on_result: DeliveryCallback
    ) -> None:
        callback = self._callback(on_result)
        while True:
            try:
                self._produce(
                    self._topic, value, key, timestamp=timestamp_ms, headers=headers, on_delivery=callback
                )
                return
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)

    def send_many(
        self, records: Iterable[tuple[bytes, bytes, int]], headers: Headers, on_result: DeliveryCallback
    ) -> None:
        produce = self._produce
        topic = self._topic
        callback = self._callback(on_result)
        # positional, in the order confluent-kafka's C code parses them (topic, value, key, partition,
        # callback, on_delivery, timestamp, headers; -1: the partitioner's choice): keywords are
        # looked up by name on every call, a measurable part of it (docs/performance.md); a test
        # reads back the timestamp, headers, key and partition of records sent this way
        for key, value, timestamp_ms in records:
            try:
                produce(topic, value, key, -1, callback, None, timestamp_ms, headers)
            except BufferError:
                self.send(key, value, timestamp_ms, headers, on_result)

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        return self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.flush(0)
