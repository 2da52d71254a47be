"""What the table holds of each topic, written in its snapshot summaries: the table proves its own
contents without a listing or a scan.

Every snapshot the writer or `table maintain` commits carries, for every topic the table holds
(values are JSON objects keyed by Kafka partition, as strings):

    loglake.offsets.<topic>   {"0": 120000, "1": 98000}   the next offset: every offset below it is in
                                                         the table or a dead letter (the spec'd key,
                                                         like the Iceberg sink's kafka.connect.offsets.*)
    loglake.starts.<topic>    {"0": 0, "1": 0}           the first offset the table holds
    loglake.records.<topic>   {"0": 119990, "1": 98000}  the rows the table holds of the partition
    loglake.absent.<topic>    {"0": 6, "1": 0}           offsets of that range Kafka holds no record for
                                                         (transaction markers, aborted or compacted records)
    loglake.lost.<topic>      {"0": 4, "1": 0}           offsets of that range lost to retention before they
                                                         were landed (a claim's `lost` ranges, and what a claim
                                                         noted lost in the lake did not store)

So offsets `starts` .. `offsets - 1` are rows, absent, lost, or dead letters (on the dead-letter topic):
what verify --iceberg-table checks (loglake/verify/table_side.py). They are cumulative: a commit carries every key of the snapshot it builds on and advances its own
topic's partitions. A snapshot made by another program (a compaction by Spark, a delete) lacks them;
the newest snapshot of the current one's ancestry that has them still tells. The table property
`loglake.topics` lists the topics ever committed, so offsets that vanished (their snapshots expired by
another tool) are an error rather than a silent start from nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from loglake.table.errors import TableUnavailable

if TYPE_CHECKING:
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

    from loglake.ledger import Claim

PREFIX = "loglake."
OFFSETS = PREFIX + "offsets."
STARTS = PREFIX + "starts."
RECORDS = PREFIX + "records."
ABSENT = PREFIX + "absent."
LOST = PREFIX + "lost."
CARRIED = (OFFSETS, STARTS, RECORDS, ABSENT, LOST)  # every key a snapshot carries over
TOPICS_PROPERTY = PREFIX + "topics"
TOPIC_ID = PREFIX + "topic-id."  # + topic: a table property, Kafka's id of the topic the table holds


def _decode(text: str | None) -> dict[int, int]:
    return {int(p): int(v) for p, v in orjson.loads(text).items()} if text else {}


def _encode(values: Mapping[int, int]) -> str:
    return orjson.dumps({str(p): values[p] for p in sorted(values)}).decode()


@dataclass(frozen=True)
class Progress:
    """What the table holds of one topic, per Kafka partition: offsets `starts[p]` .. `offsets[p] - 1`,
    as `records[p]` rows, `absent[p]` offsets without a record in Kafka and `lost[p]` offsets lost to
    retention (the rest of that range is dead letters). `snapshot_id`: the snapshot that says so
    (None: the table holds nothing of the topic)."""

    topic: str
    offsets: dict[int, int] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)
    records: dict[int, int] = field(default_factory=dict)
    snapshot_id: int | None = None
    absent: dict[int, int] = field(default_factory=dict)
    lost: dict[int, int] = field(default_factory=dict)

    def advanced(self, claims: Iterable[Claim]) -> Progress:
        """The progress once `claims` (each starting where the table's partition ends) are added. A
        claim accounts for every offset of its range (loglake/ledger.py): its records, dead letters,
        absent offsets, and what neither of them covers is lost (its `lost` ranges; for a claim noted
        lost, handed in with only its stored objects, also the records and dead letters it lost)."""
        offsets, starts, records = dict(self.offsets), dict(self.starts), dict(self.records)
        absent, lost = dict(self.absent), dict(self.lost)
        for c in claims:
            p = c.partition
            starts.setdefault(p, c.start)
            offsets[p] = c.end
            records[p] = records.get(p, 0) + c.records
            absent[p] = absent.get(p, 0) + c.absent
            lost[p] = lost.get(p, 0) + max(0, (c.end - c.start) - c.records - c.dead_letters - c.absent)
        return Progress(self.topic, offsets, starts, records, self.snapshot_id, absent, lost)

    def summary(self) -> dict[str, str]:
        """This topic's keys, for a snapshot summary."""
        return {
            OFFSETS + self.topic: _encode(self.offsets),
            STARTS + self.topic: _encode(self.starts),
            RECORDS + self.topic: _encode(self.records),
            ABSENT + self.topic: _encode(self.absent),
            LOST + self.topic: _encode(self.lost),
        }


def carried_snapshot(metadata: TableMetadata) -> Snapshot | None:
    """The newest snapshot in the current one's ancestry that carries loglake's keys (None: none)."""
    from pyiceberg.table.snapshots import ancestors_of

    for snapshot in ancestors_of(metadata.current_snapshot(), metadata):
        summary = snapshot.summary
        if summary is not None and any(k.startswith(OFFSETS) for k in summary.additional_properties):
            return snapshot
    return None


def carried(metadata: TableMetadata) -> dict[str, str]:
    """The loglake keys (of every topic) of `carried_snapshot`: what the next snapshot must carry over."""
    snapshot = carried_snapshot(metadata)
    if snapshot is None or snapshot.summary is None:
        return {}
    return {k: v for k, v in snapshot.summary.additional_properties.items() if k.startswith(CARRIED)}


def committed_topics(metadata: TableMetadata) -> list[str]:
    return orjson.loads(metadata.properties.get(TOPICS_PROPERTY, "[]"))


def progress_of(metadata: TableMetadata, topic: str) -> Progress:
    """What the table (as of `metadata`) holds of `topic`."""
    snapshot = carried_snapshot(metadata)
    summary = snapshot.summary.additional_properties if snapshot is not None and snapshot.summary else {}
    if OFFSETS + topic not in summary:
        if topic in committed_topics(metadata):
            raise TableUnavailable(
                f"the table once held topic {topic!r} but no snapshot of its current history says which "
                "offsets it holds (were its snapshots expired by another tool?); the writer will not guess"
            )
        return Progress(topic)
    return Progress(
        topic,
        _decode(summary.get(OFFSETS + topic)),
        _decode(summary.get(STARTS + topic)),
        _decode(summary.get(RECORDS + topic)),
        snapshot.snapshot_id if snapshot is not None else None,
        _decode(summary.get(ABSENT + topic)),  # absent in tables committed before these counts
        _decode(summary.get(LOST + topic)),
    )


def topics_in(summary: Mapping[str, str]) -> list[str]:
    """The topics whose offsets a snapshot summary carries."""
    return sorted(k.removeprefix(OFFSETS) for k in summary if k.startswith(OFFSETS))
