"""Per-partition buffers of consecutive offsets, the flush policy, and a buffer turned into objects."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

from isal import isal_zlib

from loglake import layout
from loglake.events import format_event_time


@dataclass
class LakeGroup:
    """The records of one lake partition (folder) inside one Kafka partition's buffer."""

    first_offset: int
    last_offset: int = -1
    lines: list[bytes] = field(default_factory=list)
    min_ms: int = 2**63
    max_ms: int = -1


@dataclass
class PendingObject:
    """An object to upload; its body is built (and compressed) by the uploading thread."""

    key: str
    lines: list[bytes]
    metadata: dict[str, str]


@dataclass
class PartitionBuffer:
    """Records of one Kafka partition from `start_offset` (the committed position) onwards."""

    topic: str
    partition: int
    start_offset: int
    next_offset: int = -1  # the offset to commit once this buffer is in the lake
    groups: dict[str, LakeGroup] = field(default_factory=dict)
    records: int = 0
    dead_letters: int = 0
    size: int = 0
    created: float = field(default_factory=time.monotonic)

    def add(self, folder: str, offset: int, line: bytes, event_ms: int) -> None:
        group = self.groups.get(folder)
        if group is None:
            group = self.groups[folder] = LakeGroup(first_offset=offset)
        group.lines.append(line)
        group.last_offset = offset
        if event_ms < group.min_ms:
            group.min_ms = event_ms
        if event_ms > group.max_ms:
            group.max_ms = event_ms
        self.records += 1
        self.size += len(line)
        self.next_offset = offset + 1

    def add_dead_letter(self, offset: int) -> None:
        self.dead_letters += 1
        self.next_offset = offset + 1

    @property
    def empty(self) -> bool:
        return self.next_offset < 0


@dataclass(frozen=True)
class FlushPolicy:
    max_records: int = 200_000
    max_bytes: int = 32 * 1024 * 1024
    max_age: float = 60.0

    def full(self, buffer: PartitionBuffer) -> bool:
        return buffer.records + buffer.dead_letters >= self.max_records or buffer.size >= self.max_bytes

    def due(self, buffer: PartitionBuffer, now: float) -> bool:
        return self.full(buffer) or now - buffer.created >= self.max_age


@dataclass(frozen=True)
class ObjectFormat:
    prefix: str = "topics"
    layout: str = "time"
    fmt: str = "jsonl"
    compression: str = "gzip"
    level: int = 1

    @property
    def ext(self) -> str:
        return layout.extension(self.fmt, self.compression)

    @property
    def content_type(self) -> str:
        return "application/x-ndjson" if self.fmt == "jsonl" else "application/json"

    def body(self, lines: list[bytes]) -> bytes:
        json = self.fmt == "json"
        parts = (b"[", b",\n".join(lines), b"]\n") if json else (b"\n".join(lines), b"\n")
        if self.compression == "gzip":
            # levels 1-3: ISA-L (standard gzip, ~5x zlib's speed at level 1 with a slightly better
            # ratio; it was the writer's largest CPU cost); 4-9: zlib, smaller and slower
            packer = (isal_zlib if self.level <= 3 else zlib).compressobj(self.level, zlib.DEFLATED, 31)
            return b"".join([*(packer.compress(part) for part in parts), packer.flush()])  # 31: gzip
        return b"".join(parts)


def to_objects(buffer: PartitionBuffer, form: ObjectFormat, group_id: str) -> list[PendingObject]:
    """One object per lake partition of `buffer`, each with the metadata that audits it."""
    objects = []
    for folder, group in buffer.groups.items():
        key = layout.object_key(
            form.prefix, buffer.topic, folder, buffer.partition, group.first_offset, form.ext
        )
        metadata = {
            "loglake-topic": buffer.topic,
            "loglake-partition": str(buffer.partition),
            "loglake-first-offset": str(group.first_offset),
            "loglake-last-offset": str(group.last_offset),
            "loglake-records": str(len(group.lines)),
            "loglake-min-event-time": format_event_time(group.min_ms),
            "loglake-max-event-time": format_event_time(group.max_ms),
            "loglake-format": form.ext,
            "loglake-group": group_id,
        }
        objects.append(PendingObject(key, group.lines, metadata))
    return objects
