"""The lake writer's consumer on confluent-kafka (librdkafka): `ConfluentConsumer` implements
loglake/source.py's `SourceConsumer`, the only way the writer sees Kafka. loglake/cli.py opens it
(`open_consumer`) and hands it to the writer.

The writer runs on confluent-kafka only. It once had a kafka-python consumer as well; it was removed
because resuming a paused partition needed kafka-python's private fetcher internals, and a second,
half-supported client would have weakened the exactly-once promise rather than added to it.
"""

from __future__ import annotations

import logging
import time
from itertools import repeat
from operator import is_not
from typing import Any

from loglake.errors import ConfigError, KafkaUnavailable
from loglake.kafka.admin import list_metadata
from loglake.kafka.config import confluent_config
from loglake.kafka.errors import COMMIT_REFUSED, ClientErrors, missing_topic, unreachable
from loglake.settings import KafkaSettings
from loglake.source import LATEST, Rebalance, SourceConsumer

log = logging.getLogger(__name__)


# Prefetch: at most 4 MiB queued per partition (memory). librdkafka stops fetching a partition whose
# queue is full and by default waits fetch.queue.backoff.ms=1000 before it looks again: that pause, not
# the network, capped a 700-byte-event topic at ~170k records/s here; at 10 ms the bare client reads
# 260-420k/s. With 16 MiB queues and 16 MiB fetches the bare client peaked at 138 MiB RSS, with these
# at 70 MiB (300k events of 712 B, 3 partitions, consume() of 2,000: docs/performance.md). The writer
# benchmark's client floor (benchmarks/floor.py) reads with these too.
FETCH = {
    "fetch.max.bytes": 8 * 1024 * 1024,
    "max.partition.fetch.bytes": 2 * 1024 * 1024,
    "queued.max.messages.kbytes": 4 * 1024,
    "fetch.queue.backoff.ms": 10,
    "enable.partition.eof": False,
}


def open_consumer(settings: KafkaSettings, group: str, topic: str, start_from: str | int) -> SourceConsumer:
    """The lake writer's consumer: confluent-kafka, the one client it runs on."""
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
            **FETCH,
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
            raise missing_topic(self._settings, self._topic)
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
