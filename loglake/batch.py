"""A batch: consecutive offsets of one Kafka partition, grouped by lake folder, and the flush policy.

A batch holds what every format can encode without parsing a record again: per lake folder the
offsets, record timestamps and raw values (validated JSON objects); the records that are not
storable events are kept aside with the reason (`Rejected`), to become dead letters once the
batch's claim is settled (loglake/partition.py).
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from typing import Any


def _longs() -> array[int]:
    return array("q")


@dataclass(slots=True)
class FolderRecords:
    """The records of one lake folder (e.g. `dt=2026-11-24/hour=21`) inside one batch, in offset order:
    offsets, Kafka timestamps and event times (ms) as packed arrays, and the values back to back in
    one buffer (`ends[i]` is where value i ends). One buffer instead of a bytes object per record: no
    per-record overhead, and when the batch is gone its memory goes back to the system at once."""

    first: int
    offsets: array[int] = field(default_factory=_longs)
    timestamps: array[int] = field(default_factory=_longs)
    event_ms: array[int] = field(default_factory=_longs)
    data: bytearray = field(default_factory=bytearray)
    ends: array[int] = field(default_factory=_longs)

    def __len__(self) -> int:
        return len(self.offsets)

    def append(self, offset: int, timestamp: int, event_ms: int, value: bytes) -> None:
        self.offsets.append(offset)
        self.timestamps.append(timestamp)
        self.event_ms.append(event_ms)
        self.data += value
        self.ends.append(len(self.data))

    def begin(self, i: int) -> int:
        """Where value `i` starts in `data`."""
        return self.ends[i - 1] if i else 0

    def value(self, i: int) -> bytes:
        """Value `i` as bytes (a copy)."""
        return bytes(self.data[self.begin(i) : self.ends[i]])

    @property
    def last(self) -> int:
        return self.offsets[-1]

    @property
    def min_ms(self) -> int:
        return min(self.event_ms)

    @property
    def max_ms(self) -> int:
        return max(self.event_ms)


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

    def folder(self, name: str, offset: int) -> FolderRecords:
        """The records of folder `name`, created with `offset` as its first."""
        records = self.folders.get(name)
        if records is None:
            records = self.folders[name] = FolderRecords(first=offset)
        return records

    def add(self, folder: str, offset: int, timestamp: int, value: bytes, event_ms: int) -> None:
        self.folder(folder, offset).append(offset, timestamp, event_ms, value)
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
