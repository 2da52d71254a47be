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
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import orjson
from isal import isal_zlib

from loglake.batch import FolderRecords
from loglake.lake import Body

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


def stored_lines(
    envelope: bytes, records: FolderRecords, start: int = 0, stop: int | None = None
) -> list[bytes]:
    """`stored_line` of records `start` to `stop`. A chunk of compact values (as producers write them:
    `{"` first, no line break anywhere) takes one template per line, half the work of `stored_line`."""
    stop = len(records) if stop is None else min(stop, len(records))
    data, ends = records.data, records.ends
    begin, chunk_end = records.begin(start), records.begin(stop)
    view = memoryview(data)
    offsets, stamps = records.offsets[start:stop], records.timestamps[start:stop]
    lines = []
    if data.find(b"\n", begin, chunk_end) < 0 and data.find(b"\r", begin, chunk_end) < 0:
        template = envelope + b'%d,"timestamp":%d},%b'
        for o, t, end in zip(offsets, stamps, ends[start:stop], strict=True):
            if data[begin] == 123 and data[begin + 1] == 34:  # {"
                lines.append(template % (o, t, view[begin + 1 : end]))
            else:
                lines.append(stored_line(envelope, o, t, bytes(view[begin:end])))
            begin = end
        return lines
    for o, t, end in zip(offsets, stamps, ends[start:stop], strict=True):
        lines.append(stored_line(envelope, o, t, bytes(view[begin:end])))
        begin = end
    return lines


CHUNK = 8192  # records encoded and compressed at a time: the whole object's lines never exist at once


def compress(parts: Iterable[bytes], compression: str, level: int) -> tuple[bytes, str]:
    """(body, Content-Encoding) of `parts` joined (compressed one part at a time)."""
    if compression == "gzip":
        # levels 1-3: ISA-L (standard gzip, ~5x zlib's speed at level 1 with a slightly better ratio);
        # 4-9: zlib, smaller and slower. wbits 31: a gzip member.
        packer = (isal_zlib if level <= 3 else zlib).compressobj(level, zlib.DEFLATED, 31)
        return b"".join([*(packer.compress(part) for part in parts), packer.flush()]), "gzip"
    return b"".join(parts), ""


def _plain(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


class _StoredLines:
    """A JSON format built from stored lines, gzip'd or not: subclasses say how lines are joined."""

    name = ""
    content_type = ""
    compressions = ("gzip", "none")

    def extension(self, compression: str) -> str:
        return f"{self.name}.gz" if compression == "gzip" else self.name

    def piece(self, lines: list[bytes], first: bool, last: bool) -> bytes:
        """The bytes of `lines` in the object, with what goes before the first and after the last."""
        raise NotImplementedError

    def encode(self, topic: str, partition: int, records: FolderRecords, recipe: Recipe) -> Body:
        envelope = envelope_prefix(topic, partition)
        n = len(records)
        pieces = (
            self.piece(stored_lines(envelope, records, start, start + CHUNK), start == 0, start + CHUNK >= n)
            for start in range(0, n, CHUNK)
        )
        data, encoding = compress(pieces, recipe.compression, recipe.level)
        return Body(data, self.content_type, encoding)


class JsonLines(_StoredLines):
    """One event per line (the default: the user's "batched JSON files"), gzip'd."""

    name = "jsonl"
    content_type = "application/x-ndjson"

    def piece(self, lines: list[bytes], first: bool, last: bool) -> bytes:
        lines.append(b"")
        return b"\n".join(lines)

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        for line in _plain(data).splitlines():
            if line.strip():
                yield orjson.loads(line)


class JsonArray(_StoredLines):
    """One JSON array per object."""

    name = "json"
    content_type = "application/json"

    def piece(self, lines: list[bytes], first: bool, last: bool) -> bytes:
        return (b"[" if first else b",\n") + b",\n".join(lines) + (b"]\n" if last else b"")

    def decode(self, data: bytes) -> Iterator[dict[str, Any]]:
        yield from orjson.loads(_plain(data))


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
