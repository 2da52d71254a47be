"""The producer on kafka-python (`faking_data.py --kafka-client kafka-python`): pure Python, no
native library, easy to read and step through. The lake writer and the dead-letter producer do not
use it (loglake/kafka/producer.py's confluent-kafka producer is theirs)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from loglake.errors import ConfigError
from loglake.kafka.config import kafka_python_config
from loglake.kafka.errors import LibraryErrors, kafka_python_failure, library_logs_muted, missing_topic
from loglake.kafka.producer import DeliveryCallback, Headers, ProducerTuning
from loglake.settings import KafkaSettings


class KafkaPythonProducer:
    """kafka-python (pure Python): batching and compression run in its sender thread."""

    def __init__(self, settings: KafkaSettings, topic: str, tuning: ProducerTuning) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._settings = settings
        self._topic = topic
        compression = None if tuning.compression == "none" else tuning.compression
        last = LibraryErrors()
        try:
            with library_logs_muted() as last:
                self._producer = KafkaProducer(
                    **kafka_python_config(settings),
                    client_id=tuning.client_id,
                    acks="all",
                    enable_idempotence=True,
                    compression_type=compression,
                    linger_ms=tuning.linger_ms,
                    batch_size=min(tuning.batch_bytes, 1_000_000),
                    allow_auto_create_topics=False,
                    delivery_timeout_ms=int(tuning.delivery_timeout * 1000),
                    request_timeout_ms=min(30_000, int(tuning.delivery_timeout * 1000)),
                    max_block_ms=int(settings.connect_timeout * 1000),
                    max_request_size=max(tuning.max_record_bytes, 1_048_576),
                )
        except RuntimeError as exc:  # the compression codec's library is not installed
            raise ConfigError(
                f"kafka-python cannot use {tuning.compression} compression here: {exc}"
            ) from None
        except KafkaError as exc:
            raise kafka_python_failure(settings, last, exc) from None
        self._send = self._producer.send
        self.reports_successes = True  # kafka-python has no such option: its futures say each outcome
        # for in_flight(): callbacks run on kafka-python's sender thread (or at once, on the sending
        # thread, for a send that failed before it was queued); the figure is for progress lines
        self._sent = 0
        self._settled = 0

    def in_flight(self) -> int:
        return self._sent - self._settled

    def _settle(self, on_result: DeliveryCallback, error: str | None, value: bytes) -> None:
        self._settled += 1
        on_result(error, value)

    def check_topic(self, topic: str) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            with library_logs_muted():
                partitions = self._producer.partitions_for(topic)
        except KafkaTimeoutError:
            partitions = None
        if not partitions:  # the constructor reached the cluster, so the topic is missing
            raise missing_topic(self._settings, topic)
        return len(partitions)

    def send(
        self, key: bytes, value: bytes, timestamp_ms: int, headers: Headers, on_result: DeliveryCallback
    ) -> None:
        future = self._send(
            self._topic, value=value, key=key, headers=list(headers), timestamp_ms=timestamp_ms
        )
        self._sent += 1
        future.add_callback(lambda _metadata: self._settle(on_result, None, value))
        future.add_errback(lambda exc: self._settle(on_result, str(exc) or type(exc).__name__, value))

    def send_many(
        self, records: Iterable[tuple[bytes, bytes, int]], headers: Headers, on_result: DeliveryCallback
    ) -> None:
        for key, value, timestamp_ms in records:
            self.send(key, value, timestamp_ms, headers, on_result)

    def poll(self, timeout: float = 0.0) -> None:
        # callbacks run on kafka-python's sender thread; nothing to serve here
        if timeout > 0:
            time.sleep(timeout)

    def flush(self, timeout: float) -> int:
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return 1  # kafka-python does not say how many; at least one is still in flight
        return 0

    def close(self) -> None:
        self._producer.close(timeout=5)
