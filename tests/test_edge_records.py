"""Records at the edges of JSON and of the event's types (tests/edge_records.py: 56 classes), each
landed or dead-lettered by the rule of docs/lake-writer.md ("Edge records"), the same in every format:
first through the writer's own path in-process, then on the real stack, interleaved with good events,
in JSON Lines and in Parquet, where the writer must exit 0 and every record must be once in the lake
or once on the dead-letter topic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake import deadletter, events, formats
from loglake.formats import Recipe
from tests import edge_records
from tests.edge_records import EDGES, MAX_RECORD_BYTES, Edge
from tests.waiting import records_to_end

KINDS = {
    "empty-value",
    "too-large",
    "invalid-utf8",
    "invalid-json",
    "not-an-object",
    "too-deep",
    "lone-surrogate",
    "missing-field",
    "wrong-type",
    "bad-event-time",
    "reserved-field",
}
RECIPES = [
    Recipe(format="jsonl", compression="gzip", max_record_bytes=MAX_RECORD_BYTES),
    Recipe(format="json", compression="none", max_record_bytes=MAX_RECORD_BYTES),
    Recipe(format="parquet", compression="zstd", max_record_bytes=MAX_RECORD_BYTES),
]


def test_the_catalogue_has_more_than_20_classes_of_each_outcome_and_distinct_names():
    assert len({e.name for e in EDGES}) == len(EDGES)
    assert sum(e.kind is None for e in EDGES) >= 20 and sum(e.kind is not None for e in EDGES) >= 20
    assert {e.kind for e in EDGES} - {None} <= KINDS


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: e.name)
def test_an_edge_record_lands_the_same_in_every_format_or_is_a_dead_letter(edge: Edge):
    good = edge_records.raw("good-before")
    value = edge.build("edge-1")
    for recipe in RECIPES:
        routed = edge_records.route([good, value, edge_records.raw("good-after")], recipe)
        records = edge_records.stored(routed, recipe)
        assert set(records) >= {0, 2}  # the good events around it landed
        if edge.kind is not None:
            [rejected] = routed.batch.rejected
            assert (rejected.offset, rejected.kind, rejected.value) == (1, edge.kind, value)
            assert rejected.error_class == "Rejection"  # validation named it: no exception got through
            assert rejected.reason and "\n" not in rejected.reason
            assert 1 not in records
            continue
        assert not routed.batch.rejected, routed.batch.rejected[0].reason
        assert edge_records.same(records[1], edge_records.expected(value, 1)), recipe.format
        assert records[1]["event_id"] == edge.event_id("edge-1")
        # its folder is the time readers find in it (the last event_time given)
        date, hour, _ms = routed.found[1]
        ms = events.parse_event_time(records[1]["event_time"])
        assert events.utc_date_hour(ms) == (date, hour)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.integers(events.MIN_EVENT_MS, events.MAX_EVENT_MS), st.integers(-(23 * 60 + 59), 23 * 60 + 59))
def test_event_times_read_back_as_written_across_every_year_and_offset(ms, offset_minutes):
    """The time functions against Python's datetime (another implementation of the same calendar)."""
    text = events.format_event_time(ms)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert text == f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
    assert events.parse_event_time(text) == ms
    assert events.utc_date_hour(ms) == (f"{moment.year:04d}-{moment:%m-%d}", f"{moment.hour:02d}")
    sign = "-" if offset_minutes < 0 else "+"
    zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    try:
        local = moment + timedelta(minutes=offset_minutes)  # the same instant written at another offset
    except OverflowError:
        return  # written in year 0 or 10000: datetime has no such year to compare with
    written = f"{local.year:04d}-{local:%m-%dT%H:%M:%S}.{ms % 1000:03d}{zone}"
    assert events.parse_event_time(written) == ms


def test_an_unexpected_exception_while_validating_is_the_records_dead_letter(monkeypatch):
    """The boundary holds for what no check foresaw: a failure inside validation is a Rejection whose
    class names the exception, never the loop's exception."""

    def broken(_text: str) -> int:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(events, "parse_event_time", broken)
    value = edge_records.raw("e", event_time=b'"2026-11-24T21:03:04+02:00"')
    with pytest.raises(events.Rejection) as caught:
        events.validate(value, 1 << 20)
    assert caught.value.kind == "out-of-range"
    assert caught.value.error_class == "OverflowError"
    assert "OverflowError: date value out of range" in str(caught.value)
    letter = edge_records.route([value], Recipe()).batch.rejected[0]
    headers = dict(deadletter.headers_of(letter))
    assert headers[deadletter.HEADER_CLASS] == b"OverflowError"
    assert headers[deadletter.HEADER_KIND] == b"out-of-range"


def test_a_memory_error_is_not_taken_for_the_records_fault(monkeypatch):
    def exhausted(_value: bytes) -> None:
        raise MemoryError

    monkeypatch.setattr(events, "_decode_head", exhausted)
    with pytest.raises(MemoryError):
        events.validate(edge_records.raw("e"), 1 << 20)
    assert events.validate_quickly(edge_records.raw("e"), 1 << 20) is None  # never raises


# ------------------------------------------------------------------------------- the real stack


def produce_interleaved(bootstrap: str, topic: str) -> dict[int, tuple[str, bytes, Edge | None]]:
    """A good event, an edge record, a good event, ... into partition 0 of `topic`; returns offset ->
    (key, value, edge or None for a good event)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    sent: list[tuple[str, bytes, Edge | None]] = []
    for n, edge in enumerate(EDGES):
        sent.append((f"good-{n}", edge_records.raw(f"good-{n}"), None))
        sent.append((f"edge-{n}", edge.build(f"edge-{n}"), edge))
    sent.append(("good-last", edge_records.raw("good-last"), None))
    for key, value, _edge in sent:
        producer.produce(topic, value, key=key.encode(), partition=0)
    assert producer.flush(60) == 0
    return dict(enumerate(sent))


def lake_records(s3, bucket: str, prefix: str) -> tuple[Counter[int], dict[int, dict]]:
    """Every record of the lake objects under `prefix`, read back as `verify --deep` reads them:
    offset -> how many times it is there, and offset -> the record."""
    found: Counter[int] = Counter()
    read: dict[int, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            codec = formats.format_of_key(item["Key"])
            if codec is None or "/_loglake/" in item["Key"]:
                continue
            for record in codec.decode(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()):
                found[record["_kafka"]["offset"]] += 1
                read[record["_kafka"]["offset"]] = record
    return found, read


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_edge_records_between_good_events_land_or_are_dead_letters_exactly_once(
    processes, stack_env, new_topic, s3, fmt
):
    """56 classes of edge records (tests/edge_records.py), each between two good events, through the
    real writer: it exits 0; every offset is once in the lake or once on `.dlq` (the edges where the
    rule says, with the kind it names and the original bytes); every good event is in the lake;
    `verify --deep` is OK."""
    topic = new_topic(1)
    sent = produce_interleaved(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic)
    prefix = f"test-{topic}"
    flags = ["--topic", topic, "--group", f"g-{topic}", "--prefix", prefix, "--format", fmt]
    flags += ["--max-record-bytes", str(MAX_RECORD_BYTES), "--exit-when-idle", "3", "--quiet"]
    code, _out, err = processes.writer(stack_env, *flags).finish(240)
    assert code == 0, err[-3000:]

    in_lake, read = lake_records(s3, stack_env["LAKE_BUCKET"], f"{prefix}/")
    dead: Counter[int] = Counter()
    letters = {}
    for m in records_to_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic + ".dlq"):
        headers = dict(m.headers())
        offset = int(headers[deadletter.HEADER_OFFSET])
        dead[offset] += 1
        letters[offset] = (m.value(), headers)
    for offset, (key, value, edge) in sent.items():
        assert in_lake[offset] + dead[offset] == 1, (key, in_lake[offset], dead[offset])
        if edge is None or edge.kind is None:
            assert in_lake[offset] == 1, f"{key} ({edge.name if edge else 'good'}) is not in the lake"
            record = dict(read[offset])
            assert record.pop("_kafka")["topic"] == topic
            assert edge_records.same(record, events.decode(value)), key  # the same, whichever the format
            assert record["event_id"] == (edge.event_id(key) if edge else key)
        else:
            assert dead[offset] == 1, f"{key} ({edge.name}) is not a dead letter"
            original, headers = letters[offset]
            assert original == value
            assert headers[deadletter.HEADER_KIND].decode() == edge.kind, edge.name
            assert headers[deadletter.HEADER_CLASS] == b"Rejection"
            assert headers[deadletter.HEADER_ERROR]
    assert set(in_lake) | set(dead) == set(sent)

    flags = ["--topic", topic, "--prefix", prefix, "--group", f"g-{topic}", "--deep"]
    verify = processes.start(["-m", "loglake", "verify", *flags], stack_env, "verify").finish(300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
