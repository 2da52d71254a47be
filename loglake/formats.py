"""How a batch becomes the bytes of a lake object, and back: the format seam.

A `Recipe` holds every setting that decides what an object of a batch contains and is called: the
layout, the format, its compression, and the record-size limit that decides which records are dead
letters. A claim (loglake/ledger.py) stores the recipe with the batch's offset range, so whoever
lands that range again produces the same objects under the same keys, whatever its own settings.

A format is one small class: its name, the extensions and content type of its objects, the
compressions it takes (inside the file or around it: compression belongs to the format), `encode`
(the records of one lake folder -> one object body) and `decode` (an object body -> its records,
each with its `_kafka` coordinates, for `verify --deep`). Adding a format is one class and one line
in `FORMATS`. JSON Lines (the default) and a JSON array store each event as it came, with its
coordinates spliced in; Parquet stores typed columns (loglake/columnar.py).

Stored line (JSON formats): the event with one field added first,
`{"_kafka":{"topic":"log-data","partition":2,"offset":12345,"timestamp":1732480000123},...event...}`,
so any record in the lake can be traced back to its topic, partition and offset.
"""

from __future__ import annotations

import gzip
import mmap
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import orjson
from isal import isal_zlib

from loglake import events
from loglake.batch import FolderRecords
from loglake.body import Body
from loglake.settings import WriterSettings

LAYOUTS = ("time", "partition")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the objects of a batch: stored with each claim."""

    layout: str = "time"
    format: str = "jsonl"
    compression: str = "gzip"
    level: int = 1  # gzip level: 1-3 ISA-L (fast), 4-9 zlib (smaller, slower)
    max_record_bytes: int = 1024 * 1024  # larger values are dead letters

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def codec(self) -> Format:
        return FORMATS[self.format]

    @property
    def extension(self) -> str:
        return self.codec.extension(self.compression)


class Format(Protocol):
    name: str
    compressions: tuple[str, ...]  # the first is the default
    content_type: str

    def extension(self, compression: str) -> str: ...

    def encode(self, topic: str, partition: int, records: FolderRecords, recipe: Recipe) -> Body:
        """The body of the object holding `records` (one lake folder of one batch of `partition`)."""
        ...

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        """The records of an object body, each with its `_kafka` field."""
        ...


# ---------------------------------------------------------------------------------------
# JSON family: stored lines


def envelope_prefix(topic: str, partition: int) -> bytes:
    """The start of every stored line of one Kafka partition, up to the offset."""
    return b'{"_kafka":{"topic":%b,"partition":%d,"offset":' % (orjson.dumps(topic), partition)


def stored_line(prefix: bytes, offset: int, timestamp_ms: int, value: bytes) -> bytes:
    """The event `value` (a validated JSON object) with the `_kafka` field spliced in first.

    Byte splicing keeps the event exactly as produced. In valid JSON a raw line break can only be
    whitespace between tokens (never inside a string), so the line breaks of a pretty-printed value
    become spaces: one line stays one record and the event stays the same.
    """
    if not (value.startswith(b'{"') and b"\n" not in value and b"\r" not in value):
        value = value.replace(b"\n", b" ").replace(b"\r", b" ").strip()
        if value[1:].lstrip().startswith(b"}"):  # an empty object cannot pass validation; never emit `{..,}`
            return prefix + b'%d,"timestamp":%d}}' % (offset, timestamp_ms)
    return prefix + b'%d,"timestamp":%d},' % (offset, timestamp_ms) + value[1:]


def write_stored_lines(
    write: Callable[[bytes], object],
    envelope: bytes,
    records: FolderRecords,
    start: int,
    stop: int,
    separator: bytes,
    first: bool,
) -> None:
    """Write the stored lines (`stored_line`) of records `start` to `stop`, each after `separator`
    but the object's `first`. A run of compact values (as producers write them: `{"` first, no line
    break anywhere) takes one template per line, half the work of `stored_line`."""
    data, ends = records.data, records.ends
    begin, run_end = records.begin(start), records.begin(stop)
    view = memoryview(data)
    offsets, stamps, stops = records.offsets[start:stop], records.timestamps[start:stop], ends[start:stop]
    if first:
        write(stored_line(envelope, offsets[0], stamps[0], bytes(view[begin : stops[0]])))
        begin = stops[0]
        offsets, stamps, stops = offsets[1:], stamps[1:], stops[1:]
    if data.find(b"\n", begin, run_end) < 0 and data.find(b"\r", begin, run_end) < 0:
        head = separator + envelope + b'%d,"timestamp":%d},'
        for o, t, end in zip(offsets, stamps, stops, strict=True):
            if data[begin] == 123 and data[begin + 1] == 34:  # {"
                write(head % (o, t))
                write(view[begin + 1 : end])
            else:
                write(separator + stored_line(envelope, o, t, bytes(view[begin:end])))
            begin = end
        return
    for o, t, end in zip(offsets, stamps, stops, strict=True):
        write(separator + stored_line(envelope, o, t, bytes(view[begin:end])))
        begin = end


RUN = 256  # records written at a time; their room in the scratch buffer is checked once per run
SCRATCH_BYTES = 4 << 20  # stored lines compressed at a time: the whole object's lines never exist at once
_scratch = threading.local()


def _scratch_buffer() -> mmap.mmap:
    """This thread's buffer for stored lines before they are compressed: one mapping, written and
    read again for every object this thread encodes, so its pages are touched once (a fresh buffer
    per object costs a page fault per 4 KiB written: 170,000 in a run of 1M events)."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) != SCRATCH_BYTES:
        buffer = _scratch.buffer = mmap.mmap(-1, SCRATCH_BYTES)
    buffer.seek(0)
    return buffer


class _Compressor:
    """The body of one object, fed in parts and compressed one part at a time."""

    def __init__(self, compression: str, level: int) -> None:
        self.packer: Any = None
        self.encoding = ""
        if compression == "gzip":
            # levels 1-3: ISA-L (standard gzip, ~5x zlib's speed at level 1 with a slightly better
            # ratio); 4-9: zlib, smaller and slower. wbits 31: a gzip member.
            self.packer = (isal_zlib if level <= 3 else zlib).compressobj(level, zlib.DEFLATED, 31)
            self.encoding = "gzip"
        self.parts: list[bytes] = []

    def add(self, part: bytes | memoryview) -> None:
        self.parts.append(self.packer.compress(part) if self.packer else bytes(part))

    def body(self) -> bytes:
        if self.packer:
            self.parts.append(self.packer.flush())
        return b"".join(self.parts)


def _plain(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


class _StoredLines:
    """A JSON format built from stored lines, gzip'd or not: subclasses say what goes before the
    first line, between two lines and after the last."""

    name = ""
    content_type = ""
    compressions = ("gzip", "none")
    opening = b""
    separator = b"\n"
    closing = b"\n"

    def extension(self, compression: str) -> str:
        return f"{self.name}.gz" if compression == "gzip" else self.name

    def encode(self, topic: str, partition: int, records: FolderRecords, recipe: Recipe) -> Body:
        envelope = envelope_prefix(topic, partition)
        out = _Compressor(recipe.compression, recipe.level)
        buffer = _scratch_buffer()
        capacity, write = len(buffer), buffer.write
        write(self.opening)
        per_record = len(envelope) + len(self.separator) + 64  # the coordinates take at most 56
        n = len(records)
        for start in range(0, n, RUN):
            stop = min(start + RUN, n)
            room = records.begin(stop) - records.begin(start) + (stop - start) * per_record
            if buffer.tell() + room > capacity:
                self._flush(buffer, out)
            if room > capacity:  # records too large for the buffer: these few go as their own part
                lines: list[bytes] = []
                write_stored_lines(lines.append, envelope, records, start, stop, self.separator, start == 0)
                out.add(b"".join(lines))
                continue
            write_stored_lines(write, envelope, records, start, stop, self.separator, start == 0)
        if buffer.tell() + len(self.closing) > capacity:
            self._flush(buffer, out)
        write(self.closing)
        self._flush(buffer, out)
        return Body(out.body(), self.content_type, out.encoding)

    @staticmethod
    def _flush(buffer: mmap.mmap, out: _Compressor) -> None:
        with memoryview(buffer) as view, view[: buffer.tell()] as written:
            out.add(written)
        buffer.seek(0)


class JsonLines(_StoredLines):
    """One event per line (the default: the user's "batched JSON files"), gzip'd."""

    name = "jsonl"
    content_type = "application/x-ndjson"

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        for line in _plain(data).splitlines():
            if line.strip():
                yield events.decode(line)


class JsonArray(_StoredLines):
    """One JSON array per object."""

    name = "json"
    content_type = "application/json"

    opening = b"["
    separator = b",\n"
    closing = b"]\n"

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        yield from events.decode(_plain(data))


class Parquet:
    """Typed columns (loglake/columnar.py), compressed inside the file, one row group per object."""

    name = "parquet"
    content_type = "application/vnd.apache.parquet"
    compressions = ("zstd", "snappy", "none")
    max_row_group = 1 << 20  # rows; objects hold one batch's records of one folder (200,000 by default)

    def extension(self, compression: str) -> str:
        return "parquet"

    def encode(self, topic: str, partition: int, records: FolderRecords, recipe: Recipe) -> Body:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from loglake.columnar import DELTA_COLUMNS, DICTIONARY_COLUMNS, to_table

        sink = pa.BufferOutputStream()
        pq.write_table(
            to_table(topic, partition, records),
            sink,
            row_group_size=min(len(records), self.max_row_group),
            compression=recipe.compression,
            compression_level=recipe.level if recipe.compression == "zstd" else None,
            store_decimal_as_integer=True,  # decimal(9, 1) as INT32, decimal(18, 2) as INT64
            use_dictionary=list(DICTIONARY_COLUMNS),
            column_encoding=dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED"),
        )
        return Body(sink.getvalue().to_pybytes(), self.content_type)

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from loglake.columnar import records_of

        yield from records_of(pq.read_table(pa.BufferReader(data)))


FORMATS: dict[str, Format] = {f.name: f for f in (JsonLines(), JsonArray(), Parquet())}


def format_of_key(key: str) -> Format | None:
    """The format whose objects end like `key` (None for keys that are not lake objects)."""
    for codec in FORMATS.values():
        if any(key.endswith("." + codec.extension(c)) for c in codec.compressions):
            return codec
    return None


def compressions() -> list[str]:
    """Every compression some format accepts (for the --compression flag)."""
    seen: dict[str, None] = {}
    for f in FORMATS.values():
        seen.update(dict.fromkeys(f.compressions))
    return list(seen)


def recipe_of(s: WriterSettings) -> Recipe:
    """The recipe a writer's settings give (a format's first compression unless one is named)."""
    codec = FORMATS.get(s.fmt)
    compression = s.compression or (codec.compressions[0] if codec else "")
    return Recipe(s.layout, s.fmt, compression, s.compression_level, s.max_record_bytes)


def check_recipe(recipe: Recipe) -> str | None:
    """One sentence saying what is wrong with `recipe`, or None."""
    if recipe.layout not in LAYOUTS:
        return f"layout {recipe.layout!r} is not one of {', '.join(LAYOUTS)}"
    codec = FORMATS.get(recipe.format)
    if codec is None:
        return f"format {recipe.format!r} is not one of {', '.join(FORMATS)}"
    if recipe.compression not in codec.compressions:
        return f"format {recipe.format} takes compression {' or '.join(codec.compressions)}, not {recipe.compression!r}"
    return None
