"""A batch: consecutive offsets of one Kafka partition, grouped by lake folder, and the flush policy.

A batch holds what every format can encode without parsing a record again: per lake folder the
offsets, record timestamps and raw values (validated JSON objects); the records that are not
storable events are kept aside with the reason (`Rejected`), to become dead letters once the
batch's claim is settled (loglake/partition.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FolderRecords:
    """The records of one lake folder (e.g. `dt=2026-11-24/hour=21`) inside one batch, in offset order."""

    first: int
    last: int = -1
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    min_ms: int = 2**63
    max_ms: int = -1

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A consumed record that is not a storable event, with why (a dead letter to be)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    kind: str
    reason: str


@dataclass
class Batch:
    """Offsets `start` .. `next - 1` of one Kafka partition, every one of them handled: stored in a
    folder or rejected. `next` is the offset to commit once the batch is in the lake."""

    topic: str
    partition: int
    start: int
    next: int = -1
    folders: dict[str, FolderRecords] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    records: int = 0  # stored records (not rejected)
    size: int = 0  # bytes of stored values
    created: float = field(default_factory=time.monotonic)

    def add(self, folder: str, offset: int, timestamp: int, value: bytes, event_ms: int) -> None:
        records = self.folders.get(folder)
        if records is None:
            records = self.folders[folder] = FolderRecords(first=offset)
        records.offsets.append(offset)
        records.timestamps.append(timestamp)
        records.values.append(value)
        records.last = offset
        if event_ms < records.min_ms:
            records.min_ms = event_ms
        if event_ms > records.max_ms:
            records.max_ms = event_ms
        self.records += 1
        self.size += len(value)
        self.next = offset + 1

    def reject(self, rejected: Rejected) -> None:
        self.rejected.append(rejected)
        self.next = rejected.offset + 1

    @property
    def handled(self) -> int:
        return self.records + len(self.rejected)

    @property
    def empty(self) -> bool:
        return self.next < 0


@dataclass(frozen=True)
class FlushPolicy:
    max_records: int = 200_000
    max_bytes: int = 32 * 1024 * 1024
    max_age: float = 60.0

    def full(self, batch: Batch) -> bool:
        return batch.handled >= self.max_records or batch.size >= self.max_bytes

    def due(self, batch: Batch, now: float) -> bool:
        return self.full(batch) or now - batch.created >= self.max_age


def rejected_from(message: Any, kind: str, reason: str) -> Rejected:
    """A Rejected from a consumed record (anything with the confluent_kafka.Message accessors)."""
    return Rejected(
        message.topic(),
        message.partition(),
        message.offset(),
        message.timestamp()[1],
        message.key(),
        message.value(),
        message.headers(),
        kind,
        reason,
    )
