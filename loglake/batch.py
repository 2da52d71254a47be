"""A batch: consecutive offsets of one Kafka partition, grouped by lake folder, and the flush policy.

A batch holds what every format can encode without parsing a record again: per lake folder the
offsets, record timestamps and raw values (validated JSON objects); the records that are not
storable events are kept aside with the reason (`Rejected`), to become dead letters once the
batch's claim is settled (loglake/partition.py).
"""

from __future__ import annotations

import mmap
import time
from array import array
from dataclasses import dataclass, field
from typing import Any


def _longs() -> array[int]:
    return array("q")


BUFFER_BYTES = 1 << 20  # a folder's buffer when no pool hands one out (it grows when full)


def _buffer() -> mmap.mmap:
    return mmap.mmap(-1, BUFFER_BYTES)


@dataclass(slots=True)
class FolderRecords:
    """The records of one lake folder (e.g. `dt=2026-11-24/hour=21`) inside one batch, in offset order:
    offsets, Kafka timestamps and event times (ms) as packed arrays, and the values back to back in
    one buffer (`ends[i]` is where value i ends; the buffer's position is where the next one goes).
    One buffer instead of a bytes object per record: no per-record overhead; and a buffer handed back
    to the writer's pool (`Buffers`) is written again for a later batch, its pages touched once."""

    first: int
    offsets: array[int] = field(default_factory=_longs)
    timestamps: array[int] = field(default_factory=_longs)
    event_ms: array[int] = field(default_factory=_longs)
    data: mmap.mmap = field(default_factory=_buffer)
    ends: array[int] = field(default_factory=_longs)

    def __len__(self) -> int:
        return len(self.offsets)

    def append(self, offset: int, timestamp: int, event_ms: int, value: bytes) -> None:
        self.offsets.append(offset)
        self.timestamps.append(timestamp)
        self.event_ms.append(event_ms)
        try:
            self.data.write(value)
        except ValueError:
            self.grow(len(value)).write(value)
        self.ends.append(self.data.tell())

    def grow(self, more: int) -> mmap.mmap:
        """A buffer with room for `more` bytes after what it holds (the full one is left to be freed)."""
        used = self.data.tell()
        larger = mmap.mmap(-1, max(2 * len(self.data), used + more))
        with memoryview(self.data) as old, old[:used] as held:
            larger.write(held)
        self.data = larger
        return larger

    def begin(self, i: int) -> int:
        """Where value `i` starts in `data`."""
        return self.ends[i - 1] if i else 0

    def value(self, i: int) -> bytes:
        """Value `i` as bytes (a copy)."""
        return self.data[self.begin(i) : self.ends[i]]

    @property
    def last(self) -> int:
        return self.offsets[-1]

    @property
    def min_ms(self) -> int:
        return min(self.event_ms)

    @property
    def max_ms(self) -> int:
        return max(self.event_ms)


class Buffers:
    """The writer's pool of value buffers, one per folder of a batch. A landed batch's buffers come
    back here and a new batch's folders write them again: a fresh buffer per batch costs a page fault
    per 4 KiB of values (2 of 5 of a 1M-event run's faults). Buffers are mappings of `size` bytes of
    address space; only the pages written hold memory. At most `keep` wait here; `clear` frees them
    (an idle writer holds no batch memory)."""

    def __init__(self, size: int, keep: int = 8) -> None:
        self.size = size
        self.keep = keep
        self._free: list[mmap.mmap] = []

    def take(self) -> mmap.mmap:
        if self._free:
            buffer = self._free.pop()
            buffer.seek(0)
            return buffer
        return mmap.mmap(-1, self.size)

    def give(self, batch: Batch) -> None:
        """Take back the buffers of `batch`, which is landed: its folders are emptied."""
        for records in batch.folders.values():
            if len(records.data) == self.size and len(self._free) < self.keep:
                self._free.append(records.data)
        batch.folders = {}

    @property
    def kept(self) -> int:
        return len(self._free)

    def clear(self) -> None:
        self._free.clear()


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
    error_class: str = "Rejection"  # the exception that decided it (`Rejection`: validation named it)


@dataclass
class Batch:
    """Offsets `start` .. `next - 1` of one Kafka partition, every one of them accounted for: a record
    stored in a folder or rejected, an offset Kafka holds no record for (`absent`: a transaction
    marker, an aborted or compacted record), or one deleted by retention before it was read (`lost`).
    `start` is where the batch began reading (the end of the claim before); `next` is the offset to
    commit once the batch is in the lake."""

    topic: str
    partition: int
    start: int
    next: int = -1
    folders: dict[str, FolderRecords] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    buffers: Buffers | None = None  # where its folders' buffers come from (None: their own)
    absent: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)

    def skip(self, upto: int, deleted_below: int = -1) -> None:
        """Offsets from `next` (or `start`) up to `upto` hold no record this batch will see: those
        below `deleted_below` were deleted by retention, the rest Kafka never held as records."""
        begin = self.next if self.next >= 0 else self.start
        if upto <= begin:
            return
        gone = min(max(deleted_below, begin), upto)
        if gone > begin:
            self.lost.append((begin, gone))
        self.absent += upto - gone
        self.next = upto

    def folder(self, name: str, offset: int) -> FolderRecords:
        """The records of folder `name`, created with `offset` as its first."""
        records = self.folders.get(name)
        if records is None:
            if self.buffers is None:
                records = FolderRecords(first=offset)
            else:
                records = FolderRecords(first=offset, data=self.buffers.take())
            self.folders[name] = records
        return records

    def add(self, folder: str, offset: int, timestamp: int, value: bytes, event_ms: int) -> None:
        self.folder(folder, offset).append(offset, timestamp, event_ms, value)
        self.next = offset + 1

    @property
    def records(self) -> int:
        """Stored records (not rejected): counted from the folders, not per record as they come."""
        return sum(len(records.offsets) for records in self.folders.values())

    @property
    def size(self) -> int:
        """Bytes of stored values (each folder's buffer is written up to its position)."""
        return sum(records.data.tell() for records in self.folders.values())

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


def rejected_from(message: Any, kind: str, reason: str, error_class: str = "Rejection") -> Rejected:
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
        error_class,
    )
