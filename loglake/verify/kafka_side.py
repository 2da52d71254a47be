"""What Kafka holds, as verify needs it: each partition's range and the group's committed offset, the
dead letters on the dead-letter topic (by their source coordinates), the topic's id, and how many
records a range really holds (a range may hold offsets without records: transaction markers)."""

from __future__ import annotations

import time
from typing import Any

from loglake.deadletter import source_of
from loglake.errors import KafkaUnavailable, LoglakeError
from loglake.kafka.admin import list_metadata
from loglake.kafka.config import confluent_config
from loglake.kafka.errors import ClientErrors
from loglake.settings import KafkaSettings


def _consumer(kafka: KafkaSettings, group: str, errors: ClientErrors, **more: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        confluent_config(kafka) | {"group.id": group, "enable.auto.commit": False, "error_cb": errors} | more
    )


def kafka_ranges(kafka: KafkaSettings, topic: str, group: str) -> dict[int, tuple[int, int, int]]:
    """(first offset Kafka holds, the group's committed offset or -1, high watermark) per partition."""
    from confluent_kafka import KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = _consumer(kafka, group, errors)
    try:
        info = list_metadata(consumer, kafka, errors, topic).topics.get(topic)
        if info is None or info.error is not None:
            raise LoglakeError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        parts = [TopicPartition(topic, p) for p in sorted(info.partitions)]
        committed = {
            tp.partition: tp.offset for tp in consumer.committed(parts, timeout=kafka.connect_timeout)
        }
        ranges = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=kafka.connect_timeout)
            done = committed.get(tp.partition, -1)
            ranges[tp.partition] = (low, min(high, done) if done >= 0 else -1, high)
        return ranges
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"could not read {topic!r} at {kafka.bootstrap_servers}: {exc.args[0].str()}"
        ) from None
    finally:
        consumer.close()


def topic_id(kafka: KafkaSettings, topic: str) -> str:
    """The topic's id ("" if the cluster gives none)."""
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(confluent_config(kafka))
    try:
        return str(
            admin.describe_topics(TopicCollection([topic]))[topic].result(kafka.connect_timeout).topic_id
        )
    except KafkaException:
        return ""


def read_dead_letters(kafka: KafkaSettings, dlq_topic: str, topic: str) -> dict[int, set[int]]:
    """Source offsets per partition of the dead letters of `topic`, read to the end of the DLQ."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = _consumer(kafka, "loglake-verify", errors)
    found: dict[int, set[int]] = {}
    try:
        metadata = list_metadata(consumer, kafka, errors, dlq_topic)
        info = metadata.topics.get(dlq_topic)
        if info is None or info.error is not None:
            return found
        remaining = {}
        for p in info.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(dlq_topic, p), timeout=kafka.connect_timeout
            )
            if high > low:
                remaining[p] = high
        consumer.assign([TopicPartition(dlq_topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is not None:
                    continue
                if m.offset() + 1 >= remaining.get(m.partition(), 0):
                    remaining.pop(m.partition(), None)
                source = source_of(m.headers())
                if source and source[0] == topic:
                    found.setdefault(source[1], set()).add(source[2])
        if remaining:
            raise KafkaUnavailable(f"could not read the dead-letter topic {dlq_topic!r} to its end")
    except KafkaException as exc:
        raise KafkaUnavailable(f"could not read {dlq_topic!r}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    return found


def records_in(
    kafka: KafkaSettings, topic: str, ranges: dict[int, tuple[int, int]], limit: int = 200_000
) -> dict[int, int]:
    """How many records (as a read_committed consumer sees them) each partition holds in its range
    start..end-1; a partition whose range holds more than `limit` is not read to the end (its range's
    size is given instead)."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    counts = {p: 0 for p in ranges}
    todo = {p: r for p, r in ranges.items() if r[1] > r[0]}
    for p, (start, end) in list(todo.items()):
        if end - start > limit:
            counts[p] = end - start
            del todo[p]
    if not todo:
        return counts
    errors = ClientErrors()
    consumer = _consumer(
        kafka, "loglake-verify", errors, **{"enable.partition.eof": True, "isolation.level": "read_committed"}
    )
    try:
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _end) in todo.items()])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                p = m.partition()
                if p not in todo:
                    continue
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        del todo[p]
                    continue
                if m.offset() < todo[p][1]:
                    counts[p] += 1
                if m.offset() + 1 >= todo[p][1]:
                    del todo[p]
        for p, (start, end) in todo.items():  # not read to the end in time: count every offset
            counts[p] = end - start
    except KafkaException as exc:
        raise KafkaUnavailable(f"could not read {topic!r}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    return counts
