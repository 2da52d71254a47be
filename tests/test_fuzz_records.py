"""A grammar-driven fuzzer of the record path: events at the edges of JSON and of the event's types,
run through what the writer does with a record (validate_quickly, then validate; the batch's lake
folders as `_route` fills them; each folder encoded as JSON Lines, a JSON array and Parquet; decoded
back as `verify --deep` reads it). Every example must end with each record either landed (read back
with its event_id, as the same record in every format, in the folder of the time it holds) or a dead
letter (a Rejection with a known kind and a one-line reason, decided by validation itself), never an
exception.

Examples: mostly valid events with one or more members mutated toward an edge (numbers past every
range and in every notation, strings with escapes, surrogates and control characters, times from a
grammar of RFC 3339 and its near misses, nesting around the limit, keys given twice or escaped, null
and wrong types in the fields the writer reads, formatting), and raw byte mutations of valid JSON.
CI runs 5,000 (derandomized, no example database: the same examples every run);
`LOGLAKE_FUZZ_EXAMPLES=N` runs N.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake import events, layout
from loglake.formats import Recipe
from tests import edge_records
from tests.test_edge_records import KINDS

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EXAMPLES = int(os.environ.get("LOGLAKE_FUZZ_EXAMPLES", "5000"))
MAX_BYTES = 64 * 1024
# Parquet in the partition layout (one folder, so one object, per example: Parquet is most of the
# fuzzer's time), the JSON formats in the time layout (a folder per hour)
RECIPES = {
    "jsonl": Recipe(format="jsonl", compression="gzip", max_record_bytes=MAX_BYTES),
    "json": Recipe(format="json", compression="none", max_record_bytes=MAX_BYTES),
    "parquet": Recipe(layout="partition", format="parquet", compression="snappy", max_record_bytes=MAX_BYTES),
}

# ------------------------------------------------------------------------------- the grammar


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of `choices`, each drawn `weight` times in sum(weights) (`st.one_of` weighs its branches
    alike, whatever repeats among them)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


DIGITS = st.text("0123456789", min_size=1, max_size=30)
# numbers in every notation JSON allows, at and past every range (kept as written, whatever their size)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from([2**15, 2**31, 2**63, 2**64]).flatmap(
        lambda edge: st.sampled_from([edge - 1, edge, -edge - 1, -edge]).map(str)
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(
        lambda sign, whole, frac, e, esign, exp: f"{sign}{whole}{frac}{e}{esign}{exp}",
        st.sampled_from(["", "-"]),
        st.sampled_from(["0", "1", "9", "17976931348623157"]) | DIGITS.filter(lambda d: d[0] != "0"),
        st.sampled_from(["", ".0", ".5"]) | DIGITS.map(lambda d: "." + d),
        st.sampled_from(["e", "E"]),
        st.sampled_from(["", "+", "-"]),
        st.sampled_from(["0", "308", "309", "400", "0000400", "99999999999999999999"]) | DIGITS,
    ),
    st.sampled_from(["-0", "-0.0", "1E+2", "2.00e2", "1" + "0" * 400, "7" * 5000, "0e400", "1e-400"]),
).map(str.encode)
ESCAPES = [
    *["\\u0000", "\\u001f", "\\ud83d\\ude00", "\\uffff", "\\ufeff", "\\u005f", "\\u2028"],
    *['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"],
]
strings = st.one_of(
    st.text(max_size=20).map(orjson.dumps),
    st.lists(
        st.sampled_from(ESCAPES) | st.text(max_size=3).map(lambda t: orjson.dumps(t)[1:-1].decode()),
        max_size=5,
    ).map(lambda parts: ('"' + "".join(parts) + '"').encode()),
    st.sampled_from(
        [b'"\xf4\x8f\xbf\xbf"', b'"\xef\xbf\xbe"', b'"\xe2\x80\xa8"', b'"\xef\xbb\xbf"', b'"\x7f"']
    ),
    st.integers(0, 40_000).map(lambda n: b'"' + b"x" * n + b'"'),
)


def rfc3339(moment: datetime, separator: str, digits: int, fraction: int, zone: str, minutes: int) -> str:
    text = f"{moment.year:04d}-{moment:%m-%d}{separator}{moment:%H:%M:%S}"
    if digits:
        text += "." + str(fraction).rjust(digits, "0")[:digits]
    if zone == "offset":
        return text + ("-" if minutes < 0 else "+") + f"{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text + zone


# RFC 3339 times anywhere in years 1..9999 as written (the shift to UTC may leave them), in every form
rfc3339_times = st.builds(
    rfc3339,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["T", "t", " "]),
    st.integers(0, 12),
    st.integers(0, 10**12),
    st.sampled_from(["Z", "z", "offset"]),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)
# RFC 3339 and its near misses, part by part: the valid values, the bounds and past them
grammar_times = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["0000", "0001", "1970", "2016", "2024", "9999", "\uff12026", "12026", "-001"]),
    st.sampled_from(["-", "-", "", "/"]),
    st.sampled_from(["00", "01", "02", "12", "13"]),
    st.just("-"),
    st.sampled_from(["00", "01", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " ", "_", ""]),
    st.sampled_from(["00", "23", "24"]),
    st.sampled_from([":00", ":59", ":60", "", "00"]),
    st.sampled_from([":00", ":59", ":60", ":61", ""]),
    st.sampled_from(["", ".", ".1", ".123", ".999", ".9999999", ".123456789012", ",123"]),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+14:00", "-14:00", "+23:59", "+24:00", "+01:00:30"])
    | st.sampled_from(["+0100", "+01", "", "UTC", " Z", "Z\x00", "\u2212" + "01:00"]),
)
times = weighted((3, rfc3339_times), (1, grammar_times)).map(orjson.dumps)
nestings = st.sampled_from([2, 10, 256, 511, 512, 513, 1000, 3000]).map(edge_records.nested)
storable = st.one_of(
    numbers, strings, times, nestings, st.sampled_from([b"null", b"true", b"false", b"{}", b"[]"])
)
# what no storable event holds: near misses of JSON's grammar, control characters, bad UTF-8, lone surrogates
unstorable = st.one_of(
    st.sampled_from([b"01", b"1.", b".5", b"+1", b"NaN", b"Infinity", b"-Infinity", b"1e", b"0x10", b"tru"]),
    st.sampled_from(
        [b'"a\x00b"', b'"a\x1fb"', b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"']
    ),
    st.sampled_from([b'"\\ud800"', b'"\\udfff"', b'"\\ude00\\ud83d"', b'"\\x"', b'"\\u12"', b'"\\U0041"']),
)
values = weighted((9, storable), (1, unstorable))

OTHER_FIELDS = [n for n in [*events.FIELDS, *events.OPTIONAL_FIELDS] if n not in events.REQUIRED_FIELDS]
good_keys = st.sampled_from([*OTHER_FIELDS, "", "extra", "event_id ", "\u0000", "\ufeff"]).map(orjson.dumps)
escaped_keys = st.sampled_from(
    [b'"event\\u005fid"', b'"event_\\u0074ime"', b'"\\u0065vent_type"', b'"_kafka"']
)
keys = weighted((16, good_keys), (2, escaped_keys), (1, st.sampled_from([b'"\\ud800"', b'"\xff"', b"1"])))
# the fields the writer reads, at their edges: mostly of their type
required = st.one_of(
    st.tuples(st.just("set"), st.just(b'"event_time"'), times),
    st.tuples(st.sampled_from(["set", "twice"]), st.sampled_from([b'"event_id"', b'"event_type"']), strings),
    st.tuples(
        st.sampled_from(["set", "twice", "drop"]),
        st.sampled_from(events.REQUIRED_FIELDS).map(orjson.dumps),
        values,
    ),
)
# a typed column's field set to a number at an edge, the rest of the event left fitting its columns
NUMERIC = [n for n, types in {**events.FIELDS, **events.OPTIONAL_FIELDS}.items() if int in types]
typed = st.tuples(st.just("set"), st.sampled_from(NUMERIC).map(orjson.dumps), numbers)
mutations = st.lists(
    st.one_of(
        typed,
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("twice"), keys, values),
        st.tuples(st.just("drop"), keys, st.just(b"")),
        required,
    ),
    min_size=1,
    max_size=3,
)
layouts = st.sampled_from(
    [
        (b" : ", b" , ", b" \t", b"\r\n"),
        (b":\n  ", b",\n", b"\n", b"\n"),
        (b":", b",", b"\xef\xbb\xbf", b""),  # a byte order mark
        (b":", b",", b"", b" x"),  # something after the object
    ]
)
BASES = [
    orjson.loads(v)
    for v in (
        edge_records.raw("b"),
        b'{"event_id":"b","event_time":"2026-01-01T00:00:00Z","event_type":"click"}',
    )
]


@st.composite
def edge_values(draw: st.DrawFn) -> bytes:
    """One record: a valid event with members mutated toward an edge, perhaps laid out oddly, perhaps
    with a few bytes changed."""
    event_id = draw(st.uuids()).hex
    fields = edge_records.members(event_id, draw(st.sampled_from(BASES)))
    for action, key, value in draw(mutations):
        if action == "drop":
            fields = [(k, v) for k, v in fields if k != key]
        elif action == "twice" or not any(k == key for k, _ in fields):
            fields.insert(draw(st.integers(0, len(fields))), (key, value))
        else:
            fields = [(k, value if k == key else v) for k, v in fields]
    colon, comma, before, after = draw(weighted((9, st.just((b":", b",", b"", b""))), (1, layouts)))
    value = before + edge_records.join(fields, colon, comma) + after
    if draw(st.sampled_from(range(10))) == 9:  # a few bytes changed
        data = bytearray(value)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data)))
            byte = draw(st.sampled_from([*b'{}[]",:\\0e.-+ ', 0, 0x80, 0xC0, 0xFF, 0xED]))
            operation = draw(st.sampled_from(["insert", "replace", "delete"]))
            if operation == "insert" or at == len(data):
                data[at:at] = bytes([byte])
            elif operation == "replace":
                data[at] = byte
            else:
                del data[at]
        value = bytes(data)
    return value


# ------------------------------------------------------------------------------- the oracle

TALLY: Counter[str] = Counter()


def python_reads(value: bytes) -> object:
    """The value as Python's json (an independent parser) reads it, or the reason it cannot."""
    try:
        return json.loads(value.decode("utf-8"), parse_int=str, parse_float=str, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        return exc


def _refuse(name: str) -> None:
    raise ValueError(name)


def check_dead_letter(value: bytes, kind: str, reason: str, error_class: str) -> None:
    assert kind in KINDS, kind
    assert reason and "\n" not in reason and len(reason) < 400
    assert error_class == "Rejection", f"an exception validation did not foresee: {reason}"
    if kind == "invalid-utf8":
        with pytest.raises(UnicodeDecodeError):
            value.decode("utf-8")
    elif kind == "invalid-json" and not value.startswith(b"\xef\xbb\xbf"):
        assert isinstance(python_reads(value), Exception), "valid JSON called invalid"


def depth(value: object) -> int:
    """How many levels a decoded JSON value nests (itself one, if an object or array)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_landed(value: bytes, record: dict, found: tuple[str, str, int]) -> None:
    read = python_reads(value)
    assert isinstance(read, dict), f"stored what Python's json does not read as an object: {read}"
    assert depth(read) <= events.MAX_DEPTH
    for name in events.REQUIRED_FIELDS:
        assert type(record[name]) is str and record[name] == read[name]  # the last one given, for both
    assert events.RESERVED_FIELD not in read
    ms = events.parse_event_time(record["event_time"])
    assert (*events.utc_date_hour(ms), ms) == found  # its folder and time are the time it holds
    date, hour, _ms = found
    assert layout.lake_partition("time", date, hour, 0) == f"dt={date}/hour={hour}"  # nothing to sanitise
    assert DATE.fullmatch(date) and 0 <= int(hour) <= 23


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(st.lists(edge_values(), min_size=1, max_size=3))
def test_every_edge_record_is_landed_alike_in_every_format_or_a_dead_letter(values):
    good = edge_records.raw("good")
    batch_values = [good, *values, good.replace(b'"good"', b'"good-2"')]
    routed = edge_records.route(batch_values, RECIPES["jsonl"])
    for rejected in routed.batch.rejected:
        check_dead_letter(rejected.value or b"", rejected.kind, rejected.reason, rejected.error_class)
        TALLY[f"dead letter {rejected.kind}"] += 1
    for offset, quick in routed.quick.items():
        if quick is not None:  # the short way agrees with the long one
            assert events.validate(batch_values[offset], MAX_BYTES) == quick
    by_partition = edge_records.route(batch_values, RECIPES["parquet"])
    assert by_partition.found == routed.found
    read = {
        name: edge_records.stored(routed, recipe) for name, recipe in RECIPES.items() if name != "parquet"
    }
    read["parquet"] = edge_records.stored(by_partition, RECIPES["parquet"])
    assert edge_records.same(read["jsonl"], read["json"]) and edge_records.same(read["json"], read["parquet"])
    assert set(read["jsonl"]) == set(routed.found)
    assert {0, len(batch_values) - 1} <= set(routed.found)
    for offset, record in read["jsonl"].items():
        assert edge_records.same(record, edge_records.expected(batch_values[offset], offset))
        check_landed(batch_values[offset], record, routed.found[offset])
    TALLY["landed"] += len(routed.found) - 2
    TALLY["examples"] += 1


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """The example count in CI's output: a line of pytest's terminal summary."""
    TALLY.clear()
    yield
    if not TALLY["examples"]:
        return
    landed, examples = TALLY.pop("landed"), TALLY.pop("examples")
    dead = sum(TALLY.values())
    kinds = ", ".join(f"{k.removeprefix('dead letter ')} {n}" for k, n in TALLY.most_common())
    line = (
        f"record fuzzer: {examples:,} examples, {landed + dead:,} edge records: {landed:,} landed alike "
        f"in jsonl, json and parquet, {dead:,} dead letters ({kinds}), none raised"
    )

    class Summary:
        @staticmethod
        def pytest_terminal_summary(terminalreporter) -> None:
            terminalreporter.write_line(line)

    request.config.pluginmanager.register(Summary(), "loglake-record-fuzzer-summary")
