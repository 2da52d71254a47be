"""Records at the edges of JSON, of its parsers and of the event's types: a catalogue of named classes
(`EDGES`, each with the outcome the rule in docs/lake-writer.md gives it) for tests/test_edge_records.py,
and what builds them, shared with the fuzzer (tests/test_fuzz_records.py).

A record is built as JSON text from members (key, value) given as raw JSON bytes, so it can hold what
no encoder writes: a number past a double's range, a key given twice, an unpaired surrogate escape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loglake import events, layout
from loglake.batch import Batch, rejected_from
from loglake.formats import Recipe

# A purchase as the generator writes it (loglake/fake.py, seed 11): every field of the schema.
BASE: dict[str, object] = orjson.loads(
    b'{"event_id":"26858007-e3fd-41d2-8814-9b261d6017b3","event_time":"2026-11-24T21:03:16.703Z",'
    b'"event_type":"purchase","schema_version":1,"seq":5,"request_id":"6c797ee749b69c43",'
    b'"trace_id":"e462966dc50764b775b657a9d41912ac","service":"checkout","host":"checkout-01.use1",'
    b'"method":"POST","path":"/api/checkout","status":201,"latency_ms":804.0,"bytes_sent":585,'
    b'"referrer":"https://shop.example.com/p/free-trade-born-6","order_id":"of3124f704c9e",'
    b'"amount":80.2,"currency":"EUR","user_id":"u0000001","session_id":"saaf6a0b14f14bbf6",'
    b'"app_version":"5.13.2","ip":"173.6.210.224","user_agent":"ShopApp/5.13.2 (iPhone; iOS 17.6; mobile)",'
    b'"country":"DE","locale":"de-DE","device":"mobile","platform":"ios","os":"iOS"}'
)
Member = tuple[bytes, bytes]  # (key, value), each raw JSON text


def members(event_id: str, base: dict[str, object] | None = None) -> list[Member]:
    """The members of `base` (default BASE) with `event_id`, each key and value as JSON text."""
    event = {**(BASE if base is None else base), "event_id": event_id}
    return [(orjson.dumps(k), orjson.dumps(v)) for k, v in event.items()]


def join(fields: list[Member], colon: bytes = b":", comma: bytes = b",") -> bytes:
    return b"{" + comma.join(k + colon + v for k, v in fields) + b"}"


def raw(event_id: str, /, *extra: Member, drop: tuple[str, ...] = (), **values: bytes) -> bytes:
    """BASE with `event_id`, the fields of `values` set to raw JSON text (in place), the fields of
    `drop` removed, and `extra` members appended (a key already there is then given twice)."""
    replaced = {orjson.dumps(k): v for k, v in values.items()}
    dropped = {orjson.dumps(k) for k in drop}
    fields = [(k, replaced.pop(k, v)) for k, v in members(event_id) if k not in dropped]
    fields.extend(replaced.items())
    fields.extend(extra)
    return join(fields)


def text(value: str) -> bytes:
    """A JSON string (escapes as orjson writes them)."""
    return orjson.dumps(value)


def nested(depth: int) -> bytes:
    """A value nesting `depth` levels (arrays and objects alternating), itself one of them."""
    opening = b"".join(b"[" if i % 2 else b'{"a":' for i in range(depth))
    closing = b"".join(b"]" if i % 2 else b"}" for i in reversed(range(depth)))
    return opening + b"1" + closing


@dataclass(frozen=True)
class Edge:
    """A class of edge records: `build(event_id)` makes one; `kind` is the dead letter's kind it must
    get, None if it must land. `event_id`: the id a reader finds in the stored event (the last given)."""

    name: str
    build: Callable[[str], bytes]
    kind: str | None
    id_suffix: str = ""  # the stored event's id is the id given to `build` and this

    def event_id(self, given: str) -> str:
        return given + self.id_suffix


def timed(event_time: bytes) -> Callable[[str], bytes]:
    """A builder of BASE events whose event_time is the JSON string `event_time` (raw text)."""
    return lambda event_id: raw(event_id, event_time=b'"' + event_time + b'"')


MAX_RECORD_BYTES = 300_000  # the writer's --max-record-bytes in tests/test_edge_records.py


def sized(event_id: str, size: int) -> bytes:
    """An event of exactly `size` bytes (a long `path`)."""
    short = raw(event_id, path=b'""')
    return raw(event_id, path=b'"' + b"p" * (size - len(short)) + b'"')


def many_fields(event_id: str) -> bytes:
    return raw(event_id, *((b'"f%d"' % i, b"%d" % i) for i in range(20_000)))


EDGES: list[Edge] = [
    # numbers: kept as written in both formats, whatever their size
    Edge("number past a double's range", lambda i: raw(i, latency_ms=b"1e400"), None),
    Edge("negative number past a double's range", lambda i: raw(i, (b'"x"', b"-1e400")), None),
    Edge("number under a double's range", lambda i: raw(i, latency_ms=b"1e-400"), None),
    Edge("integer past int64", lambda i: raw(i, bytes_sent=b"9223372036854775808"), None),
    Edge("integer past uint64", lambda i: raw(i, bytes_sent=b"-18446744073709551617"), None),
    Edge("integer of 400 digits", lambda i: raw(i, status=b"1" + b"0" * 399), None),
    Edge("integer past Python's 4300 digits", lambda i: raw(i, (b'"n"', b"7" * 5000)), None),
    Edge(
        "-0, -0.0, 1E+2 and 2.00e2",
        lambda i: raw(i, seq=b"-0", status=b"1E+2", bytes_sent=b"2.00e2"),
        None,
    ),
    Edge("-0.0 and 5 in decimal columns", lambda i: raw(i, latency_ms=b"-0.0", amount=b"5"), None),
    Edge("exponent of 21 digits", lambda i: raw(i, (b'"x"', b"0.5e-000000000000000000400")), None),
    Edge("numbers as strings, strings as numbers", lambda i: raw(i, status=b'"200"', host=b"7"), None),
    # nesting
    Edge("nested to the limit (512 levels)", lambda i: raw(i, (b'"ctx"', nested(511))), None),
    Edge("nested one level past the limit", lambda i: raw(i, (b'"ctx"', nested(512))), "too-deep"),
    Edge("2,000 brackets inside a string", lambda i: raw(i, path=b'"' + b"[{" * 1000 + b'"'), None),
    Edge(
        "600 small objects in an array (2,402 brackets, 4 levels)",
        lambda i: raw(i, (b'"items"', b"[" + b",".join([b'{"n":[1]}'] * 600) + b"]")),
        None,
    ),
    Edge("nested 3,000 levels", lambda i: raw(i, (b'"ctx"', nested(3000))), "too-deep"),
    # event times
    Edge("year 1 at +14:00", timed(b"0001-01-01T00:00:00.000+14:00"), "bad-event-time"),
    Edge(
        "year 9999 at -14:00",
        timed(b"9999-12-31T23:59:59.999-14:00"),
        "bad-event-time",
    ),
    Edge("the first millisecond of year 1", timed(b"0001-01-01T00:00:00.000Z"), None),
    Edge("the last millisecond of year 9999", timed(b"9999-12-31T23:59:59.999Z"), None),
    Edge("year 0 shifted into year 1", timed(b"0000-12-31T23:00:00.000-02:00"), None),
    Edge("a leap second", timed(b"2016-12-31T23:59:60.500Z"), None),
    Edge(
        "RFC 3339 but not fromisoformat: t, z, 9 digits",
        timed(b"2026-11-24t21:03:04.123456789z"),
        None,
    ),
    Edge(
        "fromisoformat but not RFC 3339: a week date",
        timed(b"2026-W47-2T21:03:04Z"),
        "bad-event-time",
    ),
    Edge(
        "fromisoformat but not RFC 3339: basic format",
        timed(b"20261124T210304Z"),
        "bad-event-time",
    ),
    Edge(
        "an offset with seconds",
        timed(b"2026-11-24T21:03:04+01:00:30"),
        "bad-event-time",
    ),
    Edge(
        "non-ASCII digits in the time",
        timed("\uff12026-11-24T21:03:04.123Z".encode()),
        "bad-event-time",
    ),
    Edge(
        "a NUL after the time",
        timed(b"2026-11-24T21:03:04.123Z\\u0000"),
        "bad-event-time",
    ),
    Edge(
        "February 29 of a year without one",
        timed(b"2026-02-29T00:00:00Z"),
        "bad-event-time",
    ),
    # strings
    Edge("an unpaired surrogate in a value", lambda i: raw(i, path=b'"/\\ud800"'), "lone-surrogate"),
    Edge("an unpaired surrogate in a key", lambda i: raw(i, (b'"\\udc00"', b"1")), "lone-surrogate"),
    Edge(
        "a surrogate pair and non-characters",
        lambda i: raw(i, path=b'"\\ud83d\\ude00\\uffff' + "\U0010ffff".encode() + b'"'),
        None,
    ),
    Edge("NUL and control escapes", lambda i: raw(i, user_id=b'"\\u0000\\u001f"', path=b'"a\\u0000b"'), None),
    Edge("a raw NUL in a string", lambda i: raw(i, path=b'"a\x00b"'), "invalid-json"),
    Edge("empty strings and an empty key", lambda i: raw(i, (b'""', b'""'), path=b'""', host=b'""'), None),
    Edge("an empty event_id", lambda i: raw(i, event_id=b'""'), "wrong-type"),
    Edge("null in event_id", lambda i: raw(i, event_id=b"null"), "wrong-type"),
    Edge("null in a field the schema requires", lambda i: raw(i, host=b"null", seq=b"null"), None),
    Edge("event_type a number", lambda i: raw(i, event_type=b"5"), "wrong-type"),
    # keys given twice: the last counts, as the writer and every last-wins reader read it
    Edge("a key given twice", lambda i: raw(i, (b'"status"', b"503")), None),
    Edge("event_id given twice", lambda i: raw(i, (b'"event_id"', text(i + "-last"))), None, "-last"),
    Edge("event_time given twice", lambda i: raw(i, (b'"event_time"', b'"2030-01-01T00:00:00.000Z"')), None),
    Edge(
        "event_id again in escapes", lambda i: raw(i, (b'"event\\u005fid"', text(i + "-esc"))), None, "-esc"
    ),
    Edge(
        "event_id first of the wrong type", lambda i: join([(b'"event_id"', b"5"), *members(i)]), "wrong-type"
    ),
    Edge("_kafka given", lambda i: raw(i, (b'"_kafka"', b"{}")), "reserved-field"),
    # bytes around and inside the value
    Edge("a byte order mark", lambda i: b"\xef\xbb\xbf" + raw(i), "invalid-json"),
    Edge("whitespace around", lambda i: b" \t\r\n" + raw(i) + b"\n ", None),
    Edge("pretty-printed", lambda i: orjson.dumps({**BASE, "event_id": i}, option=orjson.OPT_INDENT_2), None),
    Edge("whitespace before colons", lambda i: join(members(i), colon=b" :\t"), None),
    Edge("something after the object", lambda i: raw(i) + b" {}", "invalid-json"),
    Edge("invalid UTF-8 in a key", lambda i: raw(i, (b'"\xff"', b"1")), "invalid-utf8"),
    Edge("overlong UTF-8 in a value", lambda i: raw(i, path=b'"\xc0\xaf"'), "invalid-utf8"),
    Edge("a surrogate encoded in UTF-8", lambda i: raw(i, path=b'"\xed\xa0\x80"'), "invalid-utf8"),
    Edge("20,000 fields", many_fields, None),
    Edge("exactly --max-record-bytes", lambda i: sized(i, MAX_RECORD_BYTES), None),
    Edge("one byte over --max-record-bytes", lambda i: sized(i, MAX_RECORD_BYTES + 1), "too-large"),
]


# ------------------------------------------------------------------------------- the writer's path


@dataclass
class Message:
    """A consumed record, with the accessors of confluent_kafka.Message the writer uses."""

    _offset: int
    _value: bytes | None
    _partition: int = 0
    _timestamp: int = 1_795_554_184_123
    _topic: str = "log-data"

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp

    def key(self) -> bytes | None:
        return b"k"

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None


@dataclass
class Routed:
    """A batch as the writer's loop builds it (loglake/consume.py `_route`), and what each record got."""

    batch: Batch
    found: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # offset -> validate's answer
    quick: dict[int, Any] = field(default_factory=dict)  # offset -> validate_quickly's answer


def route(values: list[bytes | None], recipe: Recipe, first: int = 0) -> Routed:
    """Validate each value as the writer's loop does (validate_quickly, then validate) and add it to
    its lake folder's records, or reject it, as `_route` does. Raises whatever they raise but
    Rejection: a record's own failure must end as its dead letter, never as the loop's exception."""
    routed = Routed(Batch("log-data", 0, first))
    for offset, value in enumerate(values, first):
        message = Message(offset, value)
        found = routed.quick[offset] = events.validate_quickly(value, recipe.max_record_bytes)
        if found is None:
            try:
                found = events.validate(value, recipe.max_record_bytes)
            except events.Rejection as why:
                routed.batch.reject(rejected_from(message, why.kind, str(why), why.error_class))
                continue
        routed.found[offset] = found
        date, hour, event_ms = found
        folder = layout.lake_partition(recipe.layout, date, hour, message.partition())
        assert value is not None
        routed.batch.add(folder, offset, message.timestamp()[1], value, event_ms)
    return routed


def stored(routed: Routed, recipe: Recipe) -> dict[int, dict[str, Any]]:
    """offset -> the record as `verify --deep` reads it back: each folder encoded in `recipe`'s
    format, then decoded by that format."""
    records: dict[int, dict[str, Any]] = {}
    for folder in routed.batch.folders.values():
        body = recipe.codec.encode("log-data", 0, folder, recipe)
        for record in recipe.codec.decode(body.data):
            offset = record["_kafka"]["offset"]
            assert offset not in records, f"offset {offset} decoded twice"
            records[offset] = record
    return records


def expected(value: bytes, offset: int) -> dict[str, Any]:
    """The record every format must give back for a landed `value`."""
    return {
        "_kafka": {"topic": "log-data", "partition": 0, "offset": offset, "timestamp": 1_795_554_184_123},
        **events.decode(value),
    }


def same(a: Any, b: Any) -> bool:
    """Whether two decoded JSON values are the same JSON value: stricter than `==`, which takes True for
    1 and -0.0 for 0.0; a number is a number whether read as an int or a float (JSON has one kind, and
    Parquet's decimal columns read `5` back as 5.0); keys in any order. Without recursion: values may
    nest 512 levels."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
            if x is not y:
                return False
        elif isinstance(x, int | float) and isinstance(y, int | float):
            if not (x == y and math.copysign(1, x) == math.copysign(1, y)):
                return False
        elif type(x) is not type(y):
            return False
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            pairs.extend((v, y[k]) for k, v in x.items())
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True
