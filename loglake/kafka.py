"""The one home of the Kafka client libraries: confluent-kafka (librdkafka) or kafka-python.

- `confluent_config()` / `kafka_python_config()`: connection options (bootstrap, TLS, SASL)
  built from `KafkaSettings`, one function per library, shared by producer and consumer.
- Producer side: `open_producer()` returns a `LogProducer` with one interface for both
  libraries: send(key, value, timestamp_ms, headers, on_result), poll, flush, close.
- Consumer side: below, in its own section.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Any, Protocol

from loglake.errors import ConfigError, KafkaUnavailable
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Connection options, one function per library


def confluent_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka options for the cluster in `settings` (shared by producer and consumer)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
        "socket.connection.setup.timeout.ms": int(settings.connect_timeout * 1000),
        # librdkafka backs off up to 10 s between reconnects by default: a broker that is back
        # would go unnoticed that long (measured in tests/test_faults.py); look every 2 s at most
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
    """kafka-python keyword arguments for the cluster in `settings` (producer and consumer)."""
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


# ---------------------------------------------------------------------------------------
# Producer side

# on_result(error, value): error is None when the broker acknowledged the record.
DeliveryCallback = Callable[[str | None, bytes], None]
Headers = Sequence[tuple[str, bytes]]

COMPRESSIONS = ["lz4", "zstd", "gzip", "snappy", "none"]


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


def open_producer(settings: KafkaSettings, topic: str, tuning: ProducerTuning) -> LogProducer:
    """A producer for `topic`: acks=all, idempotent, retrying, compressed, batched."""
    if settings.client == "kafka-python":
        return KafkaPythonProducer(settings, topic, tuning)
    return ConfluentProducer(settings, topic, tuning)


def unreachable(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"no Kafka broker answered at {settings.describe()} within {settings.connect_timeout:g} s ({detail})"
    )


def _refused_credentials(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"Kafka at {settings.describe()} refused the credentials "
        f"(check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD): {detail}"
    )


def _failed_tls(settings: KafkaSettings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"the TLS handshake with Kafka at {settings.describe()} failed "
        f"(check --ssl-cafile / KAFKA_SSL_CAFILE): {detail}"
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
            return _refused_credentials(settings, self.last.str())
        if code == KafkaError._SSL:
            return _failed_tls(settings, self.last.str())
        return unreachable(settings, detail)


def list_metadata(
    client: Any, settings: KafkaSettings, errors: ClientErrors, topic: str | None = None
) -> Any:
    """Cluster metadata from a confluent-kafka client built with `error_cb=errors`; KafkaUnavailable
    with the reason when the brokers cannot be reached within the connect timeout."""
    from confluent_kafka import KafkaException

    try:
        return client.list_topics(topic, timeout=settings.connect_timeout)
    except KafkaException as exc:
        # serve the error callback for up to 1 s: a refused login or TLS failure may say why
        for _ in range(5):
            client.poll(0.2)
            if errors.says_why():
                break
        raise errors.explain(settings, exc.args[0].str()) from None


def _missing_topic(settings: KafkaSettings, topic: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"topic {topic!r} does not exist on {settings.bootstrap_servers} and the broker does not create "
        "topics on demand; create it first (kafka-topics --create)"
    )


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
            raise _missing_topic(self._settings, topic)
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
        # looked up by name per call, 0.6 us per record, a fifth of the call (a test reads back the
        # timestamp, headers, key and partition of records sent this way)
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


class _LibraryErrors(logging.Handler):
    """Keeps kafka-python's ERROR lines, which say why a connection failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages = [*self.messages[-49:], record.getMessage()]

    def first(self, *needles: str) -> str | None:
        return next((m for m in self.messages if any(n in m for n in needles)), None)


def kafka_python_failure(settings: KafkaSettings, last: _LibraryErrors, exc: Exception) -> KafkaUnavailable:
    """Why a kafka-python client could not reach the cluster, in one sentence, from its own ERROR
    lines (kept by `library_logs_muted`): credentials refused, TLS failed, or no broker answered."""
    why = last.first("AuthenticationFailed")
    if why:
        return _refused_credentials(settings, why)
    why = last.first("Handshake failed", "CERTIFICATE_VERIFY_FAILED")
    if why:
        return _failed_tls(settings, why)
    # the broker answered (its version is known) and then hung up: SASL refused the login
    if settings.uses_sasl and last.first("broker_version=(") and last.first("socket disconnected"):
        return _refused_credentials(settings, "the broker closed the connection during login")
    return unreachable(settings, str(exc))


@contextmanager
def library_logs_muted() -> Iterator[_LibraryErrors]:
    """While we probe the cluster, kafka-python's own retries and complaints (ERROR lines every
    100 ms) are not shown but kept: the caller reports the outcome as one sentence."""
    library = logging.getLogger("kafka")
    level, propagate = library.level, library.propagate
    last = _LibraryErrors()
    library.addHandler(last)
    library.setLevel(logging.ERROR)
    library.propagate = False
    try:
        yield last
    finally:
        library.removeHandler(last)
        library.setLevel(level)
        library.propagate = propagate


class KafkaPythonProducer:
    """kafka-python (pure Python): batching and compression run in its sender thread."""

    def __init__(self, settings: KafkaSettings, topic: str, tuning: ProducerTuning) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._settings = settings
        self._topic = topic
        compression = None if tuning.compression == "none" else tuning.compression
        last = _LibraryErrors()
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
            raise _missing_topic(self._settings, topic)
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


# ---------------------------------------------------------------------------------------
# Consumer side (lake writer)


class Rebalance(Protocol):
    """What the lake writer does when partitions come and go (called inside `poll`)."""

    def assigned(self, partitions: list[int]) -> None: ...
    def revoked(self, partitions: list[int]) -> None: ...
    def lost(self, partitions: list[int]) -> None: ...

    def deleted(self, partition: int, position: int, kafka_from: int) -> None:
        """`position` of `partition` is out of range: Kafka deleted what came before `kafka_from`
        (retention); the consumer reads on from `kafka_from`."""
        ...


# `seek` positions besides offsets (Kafka's own values for them)
EARLIEST = -2
LATEST = -1


class Record(Protocol):
    """A consumed record, as confluent_kafka.Message presents it (other clients are wrapped in it)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


class SourceConsumer(Protocol):
    """A consumer-group member for one topic with manual commits only: what the lake writer needs."""

    def check_topic(self) -> int:
        """Partitions of the topic; KafkaUnavailable when no broker answers or it does not exist."""
        ...

    def cluster_id(self) -> str:
        """The Kafka cluster's id (offsets mean nothing outside their cluster)."""
        ...

    def subscribe(self, listener: Rebalance) -> None: ...

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to `max_records` records; rebalance callbacks run inside this call."""
        ...

    def committed(self, partitions: list[int]) -> dict[int, int]:
        """The group's committed offset per partition (negative when it has none)."""
        ...

    def commit(self, partition: int, next_offset: int) -> bool:
        """Commit synchronously; False when the group refused it (the partition is no longer ours)."""
        ...

    def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset` (or EARLIEST, LATEST) on; records fetched before are not
        returned any more."""
        ...

    def offset_for_time(self, partition: int, ms: int) -> int:
        """The first offset of `partition` whose timestamp is at or after `ms` (LATEST: none yet)."""
        ...

    def topic_id(self) -> str:
        """The topic's id as the cluster says now ("" if it gives none): a topic deleted and created
        again under its name has another."""
        ...

    def pause(self, partitions: list[int]) -> None: ...
    def resume(self, partitions: list[int]) -> None: ...

    def ends(self, partitions: list[int]) -> dict[int, int]:
        """The end (high watermark) of each partition, as last heard (cheap: no request)."""
        ...

    def group_lag(self) -> dict[int, int]:
        """For every partition of the topic: its end minus the group's committed offset."""
        ...

    def close(self) -> None: ...


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


def open_consumer(settings: KafkaSettings, group: str, topic: str, start_from: str | int) -> SourceConsumer:
    return ConfluentConsumer(settings, group, topic, start_from)


class ConfluentConsumer:
    """The lake writer's consumer on confluent-kafka (librdkafka). Where each assigned partition is
    read from is the writer's choice (`seek`, after it read the lake's claims): partitions come paused."""

    def __init__(self, settings: KafkaSettings, group: str, topic: str, start_from: str | int) -> None:
        from confluent_kafka import Consumer, KafkaException, Message

        self._error_of = Message.error
        self._settings = settings
        self._topic = topic
        self._start_from = start_from
        self._listener: Rebalance | None = None
        self._cluster_id = ""
        self._admin: Any = None
        self._paused: set[int] = set()
        self._errors = ClientErrors()
        config = confluent_config(settings) | {
            "group.id": group,
            "client.id": "loglake-writer",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # a position Kafka no longer holds (retention) is reported, not silently moved: the writer
            # names what was deleted before it was landed (`deleted`), then reads on from the start
            "auto.offset.reset": "error",
            # partitions added to the topic are seen within seconds (the default is 5 minutes)
            "topic.metadata.refresh.interval.ms": 10000,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10000,  # a killed writer's partitions move on after 10 s
            "max.poll.interval.ms": 300000,
            # Prefetch: at most 4 MiB queued per partition (memory). librdkafka stops fetching a
            # partition whose queue is full and by default waits fetch.queue.backoff.ms=1000 before it
            # looks again: that pause, not the network, capped a 700-byte-event topic at ~170k
            # records/s here; at 10 ms the bare client reads 260-420k/s. With 16 MiB queues and
            # 16 MiB fetches the bare client peaked at 138 MiB RSS, with these at 70 MiB (300k events
            # of 712 B, 3 partitions, consume() of 2,000: docs/performance.md).
            "fetch.max.bytes": 8 * 1024 * 1024,
            "max.partition.fetch.bytes": 2 * 1024 * 1024,
            "queued.max.messages.kbytes": 4 * 1024,
            "fetch.queue.backoff.ms": 10,
            "enable.partition.eof": False,
            "error_cb": self._errors,
        }
        try:
            self._consumer = Consumer(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"the Kafka consumer options were rejected: {exc}") from None

    def _tp(self, partition: int, offset: int | None = None) -> Any:
        from confluent_kafka import TopicPartition

        return (
            TopicPartition(self._topic, partition)
            if offset is None
            else TopicPartition(self._topic, partition, offset)
        )

    # -- start -------------------------------------------------------------------------------------
    def check_topic(self) -> int:
        metadata = list_metadata(self._consumer, self._settings, self._errors)
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            raise _missing_topic(self._settings, self._topic)
        self._cluster_id = metadata.cluster_id or ""
        return len(found.partitions)

    def cluster_id(self) -> str:
        return self._cluster_id

    def subscribe(self, listener: Rebalance) -> None:
        self._listener = listener
        self._consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        # assigned at a placeholder and paused at once (by the listener): the writer seeks each one
        # where the lake says, then resumes it
        consumer.incremental_assign([self._tp(p.partition, OFFSET_BEGINNING) for p in partitions])
        assert self._listener is not None
        self._listener.assigned([p.partition for p in partitions])

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self._paused.difference_update(p.partition for p in partitions)
        assert self._listener is not None
        self._listener.revoked([p.partition for p in partitions])

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._paused.difference_update(p.partition for p in partitions)
        assert self._listener is not None
        self._listener.lost([p.partition for p in partitions])

    # -- the loop ----------------------------------------------------------------------------------
    def poll(self, max_records: int, timeout: float) -> list[Any]:
        from confluent_kafka import KafkaError

        messages = self._consumer.consume(max_records, timeout)
        if not any(map(is_not, map(self._error_of, messages), repeat(None))):
            return messages  # none is an error: the common case, checked without a Python loop
        kept = []
        for m in messages:
            error = m.error()
            if error is None:
                kept.append(m)
            elif error.fatal():
                raise KafkaUnavailable(f"the Kafka consumer failed: {error.str()}")
            elif error.code() == KafkaError._AUTO_OFFSET_RESET and m.partition() is not None:
                self._out_of_range(m.partition(), m.offset())
            else:
                log.warning("Kafka: %s", error.str())
        return kept

    def _out_of_range(self, partition: int, position: int) -> None:
        """Kafka no longer holds `position`: read on from where it starts now, and say so."""
        from confluent_kafka import KafkaException

        try:
            low, _high = self._consumer.get_watermark_offsets(
                self._tp(partition), timeout=self._settings.connect_timeout
            )
        except KafkaException as exc:
            log.warning(
                "partition %d: offset %d is out of range, and the start is unknown: %s",
                partition,
                position,
                exc,
            )
            return
        assert self._listener is not None
        self._listener.deleted(partition, position, low)
        self.seek(partition, low)

    def commit(self, partition: int, next_offset: int) -> bool:
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 60
        while True:
            try:
                result = self._consumer.commit(offsets=[self._tp(partition, next_offset)], asynchronous=False)
                error = result[0].error if result else None
                if error is None:
                    return True
                name = error.name()
            except KafkaException as exc:
                error = exc.args[0]
                name = error.name()
            if name in COMMIT_REFUSED:
                log.warning(
                    "commit of partition %d refused (%s): it moved to another writer", partition, name
                )
                return False
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"could not commit offsets to {self._settings.bootstrap_servers}: {name}"
                )
            log.warning("commit of partition %d failed (%s); retrying", partition, name)
            time.sleep(1)

    def seek(self, partition: int, offset: int) -> None:
        from confluent_kafka import KafkaException

        # EARLIEST and LATEST are librdkafka's OFFSET_BEGINNING and OFFSET_END
        target = self._tp(partition, offset)
        try:
            self._consumer.seek(target)
            return
        except KafkaException as exc:
            log.debug("seek partition %d to %d: %s; assigning it at that offset", partition, offset, exc)
        try:  # not fetching yet (assignment in progress): position the assignment itself
            self._consumer.incremental_assign([target])
        except KafkaException:
            # assigned, but stopped in an error state (its position was out of range): assign it again
            self._consumer.incremental_unassign([self._tp(partition)])
            self._consumer.incremental_assign([target])
            if partition in self._paused:
                self._set_paused([partition], pause=True)

    def pause(self, partitions: list[int]) -> None:
        self._set_paused(partitions, pause=True)

    def resume(self, partitions: list[int]) -> None:
        self._set_paused(partitions, pause=False)

    def _set_paused(self, partitions: list[int], pause: bool) -> None:
        from confluent_kafka import KafkaException

        if not partitions:
            return
        (self._paused.update if pause else self._paused.difference_update)(partitions)
        try:
            (self._consumer.pause if pause else self._consumer.resume)([self._tp(p) for p in partitions])
        except KafkaException as exc:
            log.debug("pause/resume: %s", exc)

    def committed(self, partitions: list[int]) -> dict[int, int]:
        from confluent_kafka import KafkaException

        try:
            found = self._consumer.committed(
                [self._tp(p) for p in partitions], timeout=self._settings.connect_timeout
            )
        except KafkaException as exc:
            raise unreachable(self._settings, exc.args[0].str()) from None
        return {tp.partition: tp.offset for tp in found}

    def ends(self, partitions: list[int]) -> dict[int, int]:
        from confluent_kafka import KafkaException

        found = {}
        for p in partitions:
            try:
                _, high = self._consumer.get_watermark_offsets(self._tp(p), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                found[p] = high
        return found

    def offset_for_time(self, partition: int, ms: int) -> int:
        from confluent_kafka import KafkaException

        try:
            (found,) = self._consumer.offsets_for_times(
                [self._tp(partition, ms)], timeout=self._settings.connect_timeout
            )
        except KafkaException as exc:
            raise unreachable(self._settings, exc.args[0].str()) from None
        return found.offset if found.offset >= 0 else LATEST

    def topic_id(self) -> str:
        from confluent_kafka import KafkaException, TopicCollection
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient(confluent_config(self._settings) | {"error_cb": self._errors})
        future = self._admin.describe_topics(TopicCollection([self._topic]))[self._topic]
        try:
            described = future.result(timeout=self._settings.connect_timeout)
        except KafkaException as exc:
            log.debug("describe topic %s: %s", self._topic, exc)
            return ""
        return str(described.topic_id or "")

    def group_lag(self) -> dict[int, int]:
        from confluent_kafka import KafkaException

        try:
            partitions = sorted(
                self._consumer.list_topics(self._topic, timeout=5).topics[self._topic].partitions
            )
            committed = self.committed(partitions)
            lags = {}
            for p in partitions:
                low, high = self._consumer.get_watermark_offsets(self._tp(p), timeout=5)
                lags[p] = max(0, high - max(committed.get(p, -1), low))
            return lags
        except (KafkaException, KeyError) as exc:
            raise KafkaUnavailable(f"could not read the lag of {self._topic!r}: {exc}") from None

    def close(self) -> None:
        from confluent_kafka import KafkaException

        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the consumer: %s", exc)


def topic_max_message_bytes(settings: KafkaSettings, topic: str) -> int | None:
    """The topic's effective `max.message.bytes` (its own setting or the broker's default)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(confluent_config(settings))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=settings.connect_timeout)
    except KafkaException as exc:
        log.debug("describe_configs %s: %s", topic, exc)
        return None
    entry = configs.get("max.message.bytes")
    return int(entry.value) if entry is not None and entry.value else None


def ensure_topic(
    settings: KafkaSettings,
    topic: str,
    partitions: int,
    like: str | None = None,
    config: dict[str, str] | None = None,
    visible_within: float = 30.0,
) -> bool:
    """Create `topic` if it is missing, with the replication of `like`, and wait until the cluster
    shows it. A concurrent creator is fine (TOPIC_ALREADY_EXISTS). True if this call created it."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    errors = ClientErrors()
    admin = AdminClient(confluent_config(settings) | {"error_cb": errors})
    metadata = list_metadata(admin, settings, errors)
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return False
    replication = 1
    if like and like in metadata.topics:
        first = next(iter(metadata.topics[like].partitions.values()), None)
        replication = len(first.replicas) if first else 1
    future = admin.create_topics([NewTopic(topic, partitions, replication, config=config or {})])[topic]
    created = True
    try:
        future.result(timeout=settings.connect_timeout)
        log.info("created topic %s (%d partitions, replication %d)", topic, partitions, replication)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise KafkaUnavailable(f"could not create topic {topic!r}: {exc.args[0].str()}") from None
        created = False
    deadline = time.monotonic() + visible_within
    while True:
        found = list_metadata(admin, settings, errors, topic).topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) > 0:
            return created
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"topic {topic!r} was created but the cluster did not show it within {visible_within:g} s"
            )
        time.sleep(0.2)
