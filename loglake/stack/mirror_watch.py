"""What a mirror has done, read from both of its clusters: the remote topics, how far the copy lags,
the age of the newest heartbeat, and the consumer-group checkpoints MirrorMaker 2 wrote.

Every reader uses confluent_kafka; a cluster that does not answer gives None (or nothing), not an
error, so `scripts/stack status` can show a mirror whose source is down.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loglake.stack import kafka_servers

if TYPE_CHECKING:
    from loglake.stack.services import Instance


def remote_topic(source_alias: str, topic: str) -> str:
    """The name DefaultReplicationPolicy gives `topic` of `source_alias` in the target cluster."""
    return f"{source_alias}.{topic}"


def admin_config(inst: Instance) -> dict[str, str]:
    return kafka_servers.client_config(inst, inst.cfg.bootstrap_servers)


def topic_names(inst: Instance) -> list[str]:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        return list(AdminClient(admin_config(inst)).list_topics(timeout=3).topics)
    except KafkaException:
        return []


def selected_topics(source: Instance, topics: str) -> list[str]:
    """Source topics that MirrorMaker's `topics` list (names or regular expressions) selects."""
    patterns = [re.compile(p.strip()) for p in topics.split(",") if p.strip()]
    return [
        t
        for t in topic_names(source)
        if any(p.fullmatch(t) for p in patterns) and not t.startswith("__") and not t.endswith(".internal")
    ]


def end_offsets(inst: Instance, topic: str) -> dict[int, int] | None:
    """High watermark of every partition of `topic`; None when the cluster does not answer."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**admin_config(inst), "group.id": "loglake-stack-probe"})
    try:
        meta = consumer.list_topics(topic, timeout=3).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=3)[1] for p in meta.partitions
        }
    except KafkaException:
        return None
    finally:
        consumer.close()


def replication_lag(source: Instance, target: Instance, topics: str) -> dict[str, int] | None:
    """Records of each mirrored topic that are in the source but not yet in the target.

    Per partition: source end offset - remote end offset. It is exact here because MirrorMaker
    copied each partition from its first offset into an empty remote partition, one record for one
    record (no transactions, no compaction, no retention deletes on these stacks).
    """
    lags: dict[str, int] = {}
    for topic in selected_topics(source, topics):
        upstream = end_offsets(source, topic)
        if upstream is None:
            return None
        downstream = end_offsets(target, remote_topic(source.cfg.name, topic)) or {}
        lags[topic] = sum(max(0, high - downstream.get(p, 0)) for p, high in upstream.items())
    return lags if lags or topic_names(source) else None


def last_records(inst: Instance, topic: str, partition: int, count: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp ms) of the last `count` records of one partition."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {**admin_config(inst), "group.id": "loglake-stack-probe", "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=3)
        if high <= low:
            return []
        start = max(low, high - count)
        consumer.assign([TopicPartition(topic, partition, start)])
        found: list[tuple[bytes, bytes, int]] = []
        deadline = time.monotonic() + 5
        while len(found) < high - start and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    found.append((m.key() or b"", m.value() or b"", m.timestamp()[1]))
        return found
    except KafkaException:
        return []
    finally:
        consumer.close()


def heartbeat_age(target: Instance, source_alias: str) -> float | None:
    """Seconds since the newest heartbeat that came through the mirror from `source_alias`."""
    records = last_records(target, f"{source_alias}.heartbeats", 0, 1)
    if not records:
        return None
    _key, value, _ts = records[-1]
    if len(value) < 10:
        return None
    (emitted_ms,) = struct.unpack_from(">q", value, 2)  # int16 version, int64 timestamp
    return max(0.0, time.time() - emitted_ms / 1000)


@dataclass(frozen=True)
class Checkpoint:
    group: str
    topic: str  # the remote topic, in the target
    partition: int
    upstream_offset: int  # the group's committed offset in the source
    downstream_offset: int  # what it translates to in the target
    emitted_ms: int


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">h", buf, pos)
    return buf[pos + 2 : pos + 2 + size].decode(), pos + 2 + size


def decode_checkpoint(key: bytes, value: bytes, timestamp_ms: int) -> Checkpoint:
    """A record of `<source>.checkpoints.internal` (Kafka protocol structs, as MirrorMaker writes them):
    key (group STRING, topic STRING, partition INT32); value (version INT16, upstream offset INT64,
    downstream offset INT64, metadata STRING)."""
    group, pos = _string(key, 0)
    topic, pos = _string(key, pos)
    (partition,) = struct.unpack_from(">i", key, pos)
    upstream, downstream = struct.unpack_from(">qq", value, 2)
    return Checkpoint(group, topic, partition, upstream, downstream, timestamp_ms)


def checkpoints(
    target: Instance, source_alias: str, limit: int = 10_000
) -> dict[tuple[str, str, int], Checkpoint]:
    """The newest checkpoint of every (group, remote topic, partition) among the last `limit` records."""
    newest: dict[tuple[str, str, int], Checkpoint] = {}
    for key, value, ts in last_records(target, f"{source_alias}.checkpoints.internal", 0, limit):
        cp = decode_checkpoint(key, value, ts)
        newest[(cp.group, cp.topic, cp.partition)] = cp
    return newest
