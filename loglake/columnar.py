"""The lake's typed columns: one Arrow schema derived from the event schema (loglake/events.py), and
the conversion of a batch's raw events into an Arrow table and back. loglake/formats.py writes the
table as Parquet.

Columns, in this order:
- `_kafka`: struct of `topic`, `partition`, `offset`, `timestamp` (the record's, timestamp[ms, UTC]),
  the same coordinates the JSON formats splice into every line, under the same name;
- every field of `events.FIELDS`, then of `events.OPTIONAL_FIELDS`, typed from the Python types the
  event schema gives them, refined below: `event_time` timestamp[ms, UTC]; fields with a bounded
  vocabulary dictionary-encoded; integers as narrow as their meaning allows; `latency_ms` and
  `amount` as decimals (the generator gives them 0.1 ms and cent resolution; Parquet stores
  decimal(9, 1) as INT32 and decimal(18, 2) as INT64, exactly, where a float would round);
- `_raw`: null, unless the typed columns cannot reproduce the event exactly. Then it holds the
  event's JSON as it came from Kafka, and the typed columns hold what of it fits their types.

A row reproduces its event exactly when the event has only schema fields (each once), every field of
`FIELDS` (only `referrer` may be null), no optional field set to null, each value of its column's
type and range (decimals with no more digits than the column keeps), and a canonical `event_time`
(`2026-11-24T21:03:04.123Z`). Anything else is still a valid event (validation asks for three
fields): it is kept whole in `_raw` rather than sent to the dead letters, so whether a record is a
dead letter never depends on the format, and no event is lost or changed by being typed.
`records_of` turns a table back into the record dicts the JSON formats decode to.

The conversion parses with Arrow's JSON reader (C++, the GIL released, so the worker thread that
encodes does not hold up the thread that consumes) and checks exactness column by column; only
rows holding a JSON null other than `"referrer":null` are checked one by one in Python (none of the
generated events), and an object whose values do not all have the columns' types is converted row
by row.

Why one module of more than 400 lines: the schema and the two conversions (raw events into a table,
a table back into the records the JSON formats decode to) must agree column by column, and read best
side by side.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from operator import sub
from typing import Annotated, Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from loglake import events
from loglake.batch import FolderRecords

# Refinements of the types the event schema gives (str, int, float|int, str|None).
CATEGORICAL = frozenset(
    (
        "event_type",
        "service",
        "host",
        "app_version",
        "method",
        "country",
        "locale",
        "device",
        "platform",
        "os",
        "currency",
        "error_code",
        "error_message",
    )
)  # bounded vocabularies: dictionary<int32, string>
INTEGER_BITS = {"status": 16, "schema_version": 16, "seq": 32, "results": 32, "quantity": 32}  # else 64
DECIMALS = {"latency_ms": (9, 1), "amount": (18, 2)}  # (precision, scale)
TIME = pa.timestamp("ms", tz="UTC")
RAW = "_raw"
KAFKA = events.RESERVED_FIELD
KAFKA_TYPE = pa.struct(
    [
        ("topic", pa.dictionary(pa.int32(), pa.string())),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", TIME),
    ]
)
# a second 60 (a leap second) is not canonical: Arrow's timestamps have none (stored as the next second)
_CANONICAL_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d\.\d{3}Z$"


@dataclass(frozen=True)
class Column:
    """One event field as a column."""

    name: str
    stored: pa.DataType  # the column's type in the table
    parsed: pa.DataType  # the type Arrow's JSON reader parses the field into
    check: Any  # the msgspec type of a value that fits (row-by-row checks)
    required: bool  # in events.FIELDS: present in every event
    nullable: bool  # may be JSON null (only where the event schema allows None)


def _column(name: str, types: tuple[type, ...], required: bool) -> Column:
    nullable = type(None) in types
    kinds = tuple(t for t in types if t is not type(None))
    if name == "event_time":
        stored, parsed, check = TIME, pa.string(), str
    elif name in DECIMALS:
        stored, parsed, check = pa.decimal128(*DECIMALS[name]), pa.float64(), float
    elif kinds == (str,):
        stored = pa.dictionary(pa.int32(), pa.string()) if name in CATEGORICAL else pa.string()
        parsed, check = pa.string(), str
    elif kinds == (int,):
        bits = INTEGER_BITS.get(name, 64)
        stored = parsed = pa.int16() if bits == 16 else pa.int32() if bits == 32 else pa.int64()
        check = Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]
    elif set(kinds) <= {int, float}:
        stored = parsed = pa.float64()
        check = float
    else:
        raise TypeError(f"event field {name!r} of types {types} has no column type: add one to {__name__}")
    return Column(name, stored, parsed, check | None if nullable else check, required, nullable)


COLUMNS: tuple[Column, ...] = tuple(
    [_column(n, t, True) for n, t in events.FIELDS.items()]
    + [_column(n, t, False) for n, t in events.OPTIONAL_FIELDS.items()]
)
SCHEMA = pa.schema(
    [pa.field(KAFKA, KAFKA_TYPE, nullable=False)]
    + [pa.field(c.name, c.stored) for c in COLUMNS]  # nullable: an unfit row may lack any field
    + [pa.field(RAW, pa.string())]
)
EVENTS_SCHEMA = pa.schema(list(SCHEMA)[1:])  # without _kafka
# Parquet encodings: columns that grow row by row are delta-encoded (smaller objects than with
# dictionaries, and faster to write: docs/performance.md); every other column is dictionary-encoded,
# falling back to plain where the values hardly repeat (ids).
DELTA_COLUMNS = ("_kafka.offset", "_kafka.timestamp", "event_time", "seq")
DICTIONARY_COLUMNS = tuple(
    name
    for field in SCHEMA
    for name in (
        [f"{field.name}.{child.name}" for child in field.type]
        if pa.types.is_struct(field.type)
        else [field.name]
    )
    if name not in DELTA_COLUMNS
)
_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema([(c.name, c.parsed) for c in COLUMNS]), unexpected_field_behavior="error"
)
# One thread per read: the writer already encodes one object per partition at once beside its consuming
# thread, and Arrow's threaded reader cost more CPU per event than one thread did
# (docs/performance.md, "Parquet").
BLOCK = 4 << 20
_READ = pa_json.ReadOptions(use_threads=False, block_size=BLOCK)
# A value fits when it decodes into this struct: schema fields only, FIELDS present, types and
# ranges of the columns, no null where the schema has none (optional fields default to None, so an
# explicit null fails: it would decode as an absent field).
_Fitting = msgspec.defstruct(
    "_Fitting",
    [(c.name, c.check) for c in COLUMNS if c.required]
    + [(c.name, c.check, None) for c in COLUMNS if not c.required],
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
)
_decode_fitting = msgspec.json.Decoder(_Fitting).decode
_encode = msgspec.json.Encoder().encode


# ------------------------------------------------------------------------------- raw events -> table


SLICE = 32_768  # rows parsed at a time: the parser's transient memory is a few times its input


def to_table(topic: str, partition: int, records: FolderRecords) -> pa.Table:
    """The table of one object: `records` (validated events) with their Kafka coordinates."""
    n = len(records)
    kafka = pa.StructArray.from_arrays(
        [
            pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), n), pa.array([topic])),
            pa.repeat(pa.scalar(partition, pa.int32()), n),
            pa.array(records.offsets, pa.int64()),
            pa.array(records.timestamps, pa.int64()).cast(TIME),
        ],
        fields=list(KAFKA_TYPE),
    )
    events = pa.concat_tables(_events(records, i, min(n, i + SLICE)) for i in range(0, n, SLICE))
    return events.add_column(0, SCHEMA.field(KAFKA), pa.chunked_array([kafka])).unify_dictionaries()


def _events(records: FolderRecords, lo: int, hi: int) -> pa.Table:
    """The event columns and `_raw` of rows lo..hi-1 of `records` (numbered from 0 in the table)."""
    data, begin, end = records.data, records.begin(lo), records.ends[hi - 1]
    table = None
    if data.find(b"\n", begin, end) < 0 and data.find(b"\r", begin, end) < 0:  # one value per line for Arrow
        try:
            table = _read(_lines(records, lo, hi), _longest(records, lo, hi))
        except pa.ArrowInvalid:
            table = None  # some value has other fields or types than the columns: row by row below
    if table is None:
        values = [records.value(i) for i in range(lo, hi)]
        lines, unfit = _conform(values)
        table = _read(pa.py_buffer(b"\n".join(lines)), max(map(len, lines), default=0))
        fitting = [i for i in range(hi - lo) if i not in unfit]
        unfit.update(_given_twice([values[i] for i in fitting], fitting))
    else:
        nulls, other_nulls = _rows_with_null(records, lo, hi)
        unfit = {i for i in other_nulls if not _fits(records.value(lo + i))}
        unfit.update(_absent_required(table, nulls))
    columns, unfit_values = _typed(table, unfit)
    unfit.update(unfit_values)
    raw: list[str | None] = [None] * (hi - lo)
    for i in unfit:
        raw[i] = records.value(lo + i).decode()
    return pa.Table.from_arrays([*columns, pa.array(raw, pa.string())], schema=EVENTS_SCHEMA)


_NEWLINE = pa.scalar("\n", pa.large_string())


def _lines(records: FolderRecords, lo: int, hi: int) -> pa.Buffer:
    """Values lo..hi-1 joined by line breaks, by Arrow from the batch's buffer: no bytes object per
    value (0.3 µs per event instead of 0.8-1.3 for a list of values and bytes.join). The values were
    checked as UTF-8 when they were routed."""
    offsets = array("q", [records.begin(lo)])
    offsets.extend(records.ends[lo:hi])
    values = pa.Array.from_buffers(
        pa.large_string(), hi - lo, [None, pa.py_buffer(offsets), pa.py_buffer(records.data)]
    )
    one_list = pa.LargeListArray.from_arrays(pa.array([0, hi - lo], pa.int64()), values)
    return pc.binary_join(one_list, _NEWLINE)[0].as_buffer()


def _read(data: pa.Buffer, longest: int) -> pa.Table:
    """The table of `data` (one value per line, the longest `longest` bytes): Arrow reads in blocks,
    and a line must fit in one."""
    options = _READ
    if longest >= BLOCK:
        options = pa_json.ReadOptions(use_threads=False, block_size=min(longest + 1, 2**31 - 1))
    return pa_json.read_json(data, read_options=options, parse_options=_PARSE).combine_chunks()


def _longest(records: FolderRecords, lo: int, hi: int) -> int:
    """The length of the longest of values lo..hi-1."""
    ends = records.ends
    rest = max(map(sub, ends[lo + 1 : hi], ends[lo : hi - 1]), default=0)
    return max(ends[lo] - records.begin(lo), rest)


def _fits(value: bytes) -> bool:
    try:
        _decode_fitting(value)
    except msgspec.ValidationError:
        return False
    return True


def _conform(values: list[bytes]) -> tuple[list[bytes], set[int]]:
    """Lines Arrow reads with the columns' types (the fitting part of each event), and the rows whose
    events do not fit."""
    lines, unfit = [], set()
    for i, value in enumerate(values):
        try:
            lines.append(_encode(_decode_fitting(value)))
        except msgspec.ValidationError:
            unfit.add(i)
            lines.append(_encode(_fitting_part(events.decode(value))))
    return lines, unfit


def _given_twice(values: list[bytes], rows: list[int]) -> set[int]:
    """Of `values` (events that fit the columns, msgspec taking the last of a key given twice), the
    rows that give a key twice: Arrow's reader refuses those, so one read of them all usually says
    none, and halving finds the few (their columns hold the last value, `_raw` the event as it came).
    A value Arrow refuses for another reason is kept in `_raw` too: exact either way."""
    if not values:
        return set()
    lines = [v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values]  # line breaks: whitespace
    try:
        _read(pa.py_buffer(b"\n".join(lines)), max(map(len, lines)))
    except pa.ArrowInvalid:
        if len(values) == 1:
            return set(rows)
        half = len(values) // 2
        return _given_twice(values[:half], rows[:half]) | _given_twice(values[half:], rows[half:])
    return set()


def _fitting_part(event: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for c in COLUMNS:
        if c.name in event:
            try:
                kept[c.name] = msgspec.convert(event[c.name], c.check)
            except msgspec.ValidationError:
                continue
    return kept


_NULL = re.compile(b"null")
_NULLABLE_KEYS = tuple(b'"%b":' % c.name.encode() for c in COLUMNS if c.nullable)


def _rows_with_null(records: FolderRecords, lo: int, hi: int) -> tuple[set[int], set[int]]:
    """Rows lo..hi-1 (numbered from 0) whose bytes hold `null`: only there can a null column be a JSON
    null rather than an absent field; and of those, the rows where it is not just `"referrer":null` (a
    nullable field set to null, which fits), to be checked one by one. (`"referrer":null` cannot be
    inside a string: a quote there is escaped.)"""
    data, ends, begin = records.data, records.ends, records.begin(lo)
    rows, others = set(), set()
    for match in _NULL.finditer(data, begin, ends[hi - 1]):  # a literal: searched at memchr speed
        start = match.start()
        row = bisect_right(ends, start, lo, hi) - lo  # value i ends at ends[i], exclusive
        rows.add(row)
        if not any(start - len(k) >= begin and data[start - len(k) : start] == k for k in _NULLABLE_KEYS):
            others.add(row)
    return rows, others


def _absent_required(table: pa.Table, checked: set[int]) -> set[int]:
    """Rows lacking a field every event carries. A null in a required column is such a row, except
    that a nullable field (referrer) may be a JSON null: that is told apart in the rows `checked` one
    by one (those whose bytes hold a `null`); elsewhere its null too means absent."""
    missing = nullable = None
    for c in COLUMNS:
        if c.required:
            nulls = pc.is_null(table.column(c.name))
            if c.nullable:
                nullable = nulls if nullable is None else pc.or_(nullable, nulls)
            else:
                missing = nulls if missing is None else pc.or_(missing, nulls)
    rows = set()
    if missing is not None and pc.any(missing).as_py():
        rows.update(pc.indices_nonzero(missing).to_pylist())
    if nullable is not None and pc.any(nullable).as_py():
        rows.update(set(pc.indices_nonzero(nullable).to_pylist()).difference(checked))
    return rows


def _typed(table: pa.Table, unfit: set[int]) -> tuple[list[pa.Array], set[int]]:
    """The event columns in their stored types, and the rows whose values the types cannot hold
    exactly (their column is null there)."""
    columns, more = [], set()
    for c in COLUMNS:
        parsed = table.column(c.name).chunk(0) if table.num_rows else pa.array([], c.parsed)
        if c.name == "event_time":
            array, bad = _timestamps(parsed)
        elif c.name in DECIMALS:
            array, bad = _decimals(parsed, c.stored)
        elif pa.types.is_dictionary(c.stored):
            array, bad = parsed.dictionary_encode(), []
        else:
            array, bad = parsed, []
        columns.append(array)
        more.update(bad)
    return columns, more


def _timestamps(text: pa.Array) -> tuple[pa.Array, list[int]]:
    """timestamp[ms, UTC] of `event_time`; rows whose text is not canonical (so would not come back
    as written) are unfit, their time still stored (every stored event_time passed validation)."""
    odd = pc.invert(pc.match_substring_regex(text, _CANONICAL_TIME))
    bad = pc.indices_nonzero(pc.fill_null(odd, True)).to_pylist() if pc.any(odd).as_py() else []
    if bad:
        strings = text.to_pylist()
        for i in bad:
            if strings[i] is not None:
                strings[i] = events.format_event_time(events.parse_event_time(strings[i]))
        text = pa.array(strings, pa.string())
    return text.cast(TIME), bad


def _decimals(numbers: pa.Array, stored: pa.Decimal128Type) -> tuple[pa.Array, list[int]]:
    """`numbers` as `stored` decimals; values with more digits than it keeps (or too large) are null
    and their rows unfit. Exact: a value fits when the decimal, read back as a float the way
    `records_of` does, is the same float, its sign too."""
    scale = stored.scale
    limit = min(10 ** (stored.precision - scale) - 1, 2**53 / 10**scale)  # no rounding up past precision
    in_range = pc.less(pc.abs(numbers), limit)
    decimals = pc.if_else(in_range, numbers, pa.scalar(None, pa.float64())).cast(stored)
    exact = pc.equal(_floats(decimals), numbers)
    # -0.0 equals 0.0 but reads back without its sign (a decimal has none): exact only in `_raw`
    negative_zero = pc.equal(numbers.view(pa.int64()), pa.scalar(-(2**63), pa.int64()))
    exact = pc.and_(exact, pc.invert(negative_zero))
    unfit = pc.and_(pc.is_valid(numbers), pc.invert(pc.fill_null(exact, False)))
    if not pc.any(unfit).as_py():
        return decimals, []
    decimals = pc.if_else(unfit, pa.scalar(None, stored), decimals)
    return decimals, pc.indices_nonzero(unfit).to_pylist()


def _floats(decimals: pa.Array) -> pa.Array:
    """Decimals as the nearest floats (Arrow's own decimal -> float cast can be one bit off: go through
    the unscaled integer, and one correctly rounded division)."""
    scale = decimals.type.scale
    unscaled = pc.multiply(decimals, pa.scalar(Decimal(10**scale))).cast(pa.int64())
    return pc.divide(unscaled.cast(pa.float64()), float(10**scale))


# ------------------------------------------------------------------------------- table -> records


def records_of(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The record dicts the JSON formats decode the same events to: `_kafka` first, then the event."""
    n = table.num_rows
    kafka = table.column(KAFKA).combine_chunks()
    coordinates = zip(
        _python_values(kafka.field("topic")),
        _python_values(kafka.field("partition")),
        _python_values(kafka.field("offset")),
        _python_values(kafka.field("timestamp").cast(pa.int64())),
        strict=True,
    )
    raw = table.column(RAW).to_pylist() if RAW in table.column_names else [None] * n
    present = [c for c in COLUMNS if c.name in table.column_names]  # older objects may lack newer fields
    names = [c.name for c in present]
    optional = [c.name for c in present if not c.required]
    rows = zip(*(_python_values(table.column(name).combine_chunks()) for name in names), strict=True)
    for (topic, partition, offset, timestamp), original, row in zip(coordinates, raw, rows, strict=True):
        kafka_field = {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp}
        if original is not None:
            yield {KAFKA: kafka_field, **events.decode(original)}
            continue
        record = {KAFKA: kafka_field}
        record.update(zip(names, row, strict=True))
        for name in optional:
            if record[name] is None:
                del record[name]
        yield record


def _python_values(array: pa.Array) -> list[Any]:
    """The values of a stored column as the JSON formats decode them."""
    kind = array.type
    if pa.types.is_timestamp(kind):  # event_time: the canonical text it was written as
        return pc.strftime(array.cast(pa.timestamp("ms")), format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    if pa.types.is_decimal(kind):
        return _floats(array).to_pylist()
    if pa.types.is_dictionary(kind):
        return array.cast(kind.value_type).to_pylist()
    return array.to_pylist()
