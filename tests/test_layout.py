"""Unit tests: object keys, key sanitising, the stored line, batching, claims, formats and validation."""

from __future__ import annotations

import gzip

import orjson
import pytest

from loglake import formats, layout
from loglake.batch import Batch, FlushPolicy, Rejected
from loglake.events import Rejection, validate, validate_quickly
from loglake.formats import Recipe, envelope_prefix, stored_line
from loglake.ledger import Claim, claim_of, object_metadata


def test_time_layout_key_is_hive_style_with_padded_first_offset():
    folder = layout.lake_partition("time", "2026-11-24", "21", 2)
    key = layout.object_key("topics", "log-data", folder, 2, 12345, "jsonl.gz")
    assert key == "topics/log-data/dt=2026-11-24/hour=21/log-data+2+00000000000000012345.jsonl.gz"


def test_partition_layout_key():
    folder = layout.lake_partition("partition", "2026-11-24", "21", 7)
    assert layout.object_key("", "log-data", folder, 7, 0, "json") == (
        "log-data/partition=7/log-data+7+00000000000000000000.json"
    )


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("2026-11-24", "2026-11-24"),
        ("../../etc", "______etc"),
        ("..", "_"),
        ("a/b", "a_b"),
        ("x\x00y\n", "x_y_"),
        ("", "_"),
        ("...", "_"),
        ("ok.name=1", "ok.name=1"),
    ],
)
def test_sanitize_never_lets_data_climb_out_of_its_folder(raw, safe):
    assert layout.sanitize(raw) == safe
    assert "/" not in layout.sanitize(raw) and ".." not in layout.sanitize(raw)


def test_stored_line_splices_kafka_coordinates_first_and_keeps_the_event():
    value = b'{"event_id":"e1","event_time":"2026-11-24T21:00:00.000Z","event_type":"click","n":1}'
    line = stored_line(envelope_prefix("log-data", 2), 99, 1700000000000, value)
    record = orjson.loads(line)
    assert next(iter(record)) == "_kafka"
    assert record["_kafka"] == {"topic": "log-data", "partition": 2, "offset": 99, "timestamp": 1700000000000}
    assert {k: v for k, v in record.items() if k != "_kafka"} == orjson.loads(value)


def test_stored_line_keeps_one_record_per_line_for_pretty_printed_json():
    value = b'{\n  "event_id": "e1",\n  "event_time": "2026-11-24T21:00:00Z",\n  "event_type": "x"\n}\n'
    line = stored_line(envelope_prefix("t", 0), 1, 5, value)
    assert b"\n" not in line
    assert orjson.loads(line)["event_id"] == "e1"


def test_flush_policy_by_records_bytes_and_age():
    batch = Batch("t", 0, 10, created=100.0)
    policy = FlushPolicy(max_records=2, max_bytes=1000, max_age=60)
    batch.add("dt=x/hour=y", 10, 0, b"{}", 1)
    assert not policy.due(batch, 100.0)
    batch.reject(Rejected("t", 0, 11, 0, None, b"?", None, "invalid-json", "not JSON"))
    assert policy.due(batch, 100.0)  # rejected records count as handled
    assert FlushPolicy(100, 2, 60).due(batch, 100.0)
    assert FlushPolicy(100, 1000, 5).due(batch, 105.0)
    assert not FlushPolicy(100, 1000, 5).due(batch, 104.9)


def sample_batch() -> Batch:
    batch = Batch("log-data", 1, 100)
    batch.add("dt=2026-11-24/hour=21", 100, 7, b'{"a":1}', 1_000)
    batch.reject(Rejected("log-data", 1, 101, 0, None, b"[]", None, "not-an-object", "an array"))
    batch.add("dt=2026-11-24/hour=22", 102, 8, b'{"a":2}', 5_000)
    batch.add("dt=2026-11-24/hour=21", 103, 9, b'{"a":3}', 2_000)
    return batch


def test_a_claim_names_one_object_per_lake_folder_with_its_range_and_recipe():
    batch = sample_batch()
    assert batch.next == 104 and batch.handled == 4
    claim = claim_of(batch, Recipe(), "topics", "g")
    assert (claim.start, claim.end, claim.dead_letters) == (100, 104, 1)
    first, second = claim.objects
    assert first.key == "topics/log-data/dt=2026-11-24/hour=21/log-data+1+00000000000000000100.jsonl.gz"
    assert (first.first, first.last, first.records) == (100, 103, 2)
    assert second.key == "topics/log-data/dt=2026-11-24/hour=22/log-data+1+00000000000000000102.jsonl.gz"
    metadata = dict(object_metadata(claim, first))
    assert metadata["loglake-first-offset"] == "100" and metadata["loglake-last-offset"] == "103"
    assert metadata["loglake-records"] == "2" and metadata["loglake-claim"] == "100-104"
    assert metadata["loglake-min-event-time"] == "1970-01-01T00:00:01.000Z"
    assert metadata["loglake-max-event-time"] == "1970-01-01T00:00:02.000Z"
    assert Claim.from_json(claim.to_json()) == claim


def test_claims_compare_by_what_they_hold_not_by_who_made_them():
    batch = sample_batch()
    mine = claim_of(batch, Recipe(), "topics", "g")
    theirs = Claim.from_json(mine.to_json().replace(mine.writer.encode(), b"other-host-1"))
    assert theirs.writer != mine.writer and theirs.same_batch(mine)
    assert not claim_of(batch, Recipe(compression="none"), "topics", "g").same_batch(mine)
    batch.add("dt=2026-11-24/hour=21", 104, 9, b'{"a":4}', 2_000)
    assert not claim_of(batch, Recipe(), "topics", "g").same_batch(mine)


@pytest.mark.parametrize(
    ("fmt", "compression"), [("jsonl", "gzip"), ("jsonl", "none"), ("json", "gzip"), ("json", "none")]
)
def test_every_format_decodes_what_it_encodes(fmt, compression):
    recipe = Recipe(format=fmt, compression=compression)
    records = sample_batch().folders["dt=2026-11-24/hour=21"]
    body = recipe.codec.encode("log-data", 1, records, recipe)
    assert (body.content_encoding == "gzip") == (compression == "gzip")
    decoded = list(recipe.codec.decode(body.data))
    assert [r["_kafka"]["offset"] for r in decoded] == [100, 103]
    assert [r["a"] for r in decoded] == [1, 3]
    key = layout.object_key("p", "log-data", "f", 1, 100, recipe.extension)
    assert formats.format_of_key(key) is recipe.codec
    if fmt == "jsonl" and compression == "gzip":
        assert gzip.decompress(body.data).endswith(b',"a":3}\n')


def test_recipes_that_cannot_work_are_one_sentence():
    assert formats.check_recipe(Recipe()) is None
    assert "compression gzip or none" in formats.check_recipe(Recipe(compression="zstd"))
    assert "layout 'x'" in formats.check_recipe(Recipe(layout="x"))


GOOD = b'{"event_id":"e","event_time":"2026-11-24T21:03:04.123Z","event_type":"click"}'


def test_validate_returns_utc_folder_values():
    assert validate(GOOD, 1000) == ("2026-11-24", "21", 1795554184123)
    other_zone = GOOD.replace(b"21:03:04.123Z", b"23:30:00+02:00")
    assert validate(other_zone, 1000)[:2] == ("2026-11-24", "21")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "empty-value"),
        (b"", "empty-value"),
        (b"\xff\xfe\xfd", "invalid-utf8"),
        (b'{"event_id": ', "invalid-json"),
        (b"[1,2]", "not-an-object"),
        (b'"text"', "not-an-object"),
        (b"null", "not-an-object"),
        (b'{"event_time":"2026-11-24T21:03:04Z","event_type":"x"}', "missing-field"),
        (b'{"event_id":5,"event_time":"2026-11-24T21:03:04Z","event_type":"x"}', "wrong-type"),
        (b'{"event_id":"e","event_time":"last tuesday","event_type":"x"}', "bad-event-time"),
        (b'{"event_id":"e","event_time":"2026-11-24T21:03:04","event_type":"x"}', "bad-event-time"),
        (GOOD[:-1] + b',"_kafka":1}', "reserved-field"),
        (GOOD[:-1] + b',"pad":"' + b"x" * 2000 + b'"}', "too-large"),
    ],
)
def test_validate_names_each_kind_of_bad_record(value, kind):
    with pytest.raises(Rejection) as caught:
        validate(value, 1000)
    assert caught.value.kind == kind
    assert str(caught.value)


def test_stored_line_keeps_numbers_exactly_as_produced():
    value = b'{"event_id":"e","n":1E400,"x":0.10000000000000001}'
    line = stored_line(envelope_prefix("t", 0), 3, 4, value)
    assert line.endswith(b',"event_id":"e","n":1E400,"x":0.10000000000000001}')
    assert line.startswith(b'{"_kafka":{"topic":"t","partition":0,"offset":3,"timestamp":4},')


def test_validate_fast_path_agrees_with_the_full_parse():
    # the second of a canonical event time is cached; later values of that second take the fast path
    first = validate(GOOD, 1000)
    later = GOOD.replace(b"04.123Z", b"04.999Z")
    assert validate(later, 1000) == (first[0], first[1], first[2] - 123 + 999)
    for bad_millis in (b"04.9x9Z", b"04.\xd9\xa3\xd9\xa3\xd9\xa3Z"):  # letters; Arabic-Indic digits
        with pytest.raises(Rejection) as caught:
            validate(GOOD.replace(b"04.123Z", bad_millis), 1000)
        assert caught.value.kind == "bad-event-time"


@pytest.mark.parametrize(
    "rest",
    [".123Z", ".000Z", ".999Z", ".12Z", ".1234Z", ".123z", ".123+00:00", ".123Z ", ",123Z", ".12aZ", "Z", ""],
)
def test_validate_quickly_takes_only_canonical_times_and_agrees_with_validate(rest):
    validate(GOOD, 1000)  # caches the second 2026-11-24T21:03:04
    value = GOOD.replace(b".123Z", rest.encode())
    quick = validate_quickly(value, 1000)
    if len(rest) == 5 and rest[0] == "." and rest[1:4].isdigit() and rest[4] == "Z":
        assert quick == validate(value, 1000) == ("2026-11-24", "21", 1795554184000 + int(rest[1:4]))
    else:
        assert quick is None  # the full check decides (it takes some of these, in other ways)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (
            b'{"event_id":"e","event_time":"2026-11-24T21:03:04Z","event_type":"x","s":"\xed\xa0\x80"}',
            "invalid-utf8",
        ),
        (b'{"event_id":"","event_time":"2026-11-24T21:03:04Z","event_type":"x"}', "wrong-type"),
        (
            b'{"event_id":"e","event_time":"2026-11-24T21:03:04Z","event_type":"x","_kafka":null}',
            "reserved-field",
        ),
        (b'{"event_id":"e","event_time":"2026-11-24T21:03:04Z","event_type":"x","a":[1,}', "invalid-json"),
        (b'{"event_id":"e","event_time":"2026-11-24T21:03:04Z","event_type":"x"} {}', "invalid-json"),
    ],
)
def test_validate_checks_the_fields_it_does_not_read(value, kind):
    with pytest.raises(Rejection) as caught:
        validate(value, 1000)
    assert caught.value.kind == kind
