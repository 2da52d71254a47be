"""Unit tests of the formats: every format decodes to the same record dicts; Parquet's typed columns,
the rows they cannot hold (kept whole in `_raw`), compression inside the file, and its schema."""

from __future__ import annotations

import gzip
import io

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake import batch as batch_module
from loglake import columnar, events, formats
from loglake.batch import Batch, Buffers, FolderRecords
from loglake.events import validate
from loglake.fake import FakeLogs
from loglake.formats import Recipe

START_MS = 1_795_554_184_123  # 2026-11-24T21:03:04.123Z


def folder_of(values: list[bytes], first: int = 100) -> FolderRecords:
    records = FolderRecords(first=first)
    for i, value in enumerate(values):
        validate(value, 1 << 20)  # only validated events reach a format
        records.append(first + 2 * i, START_MS + i, START_MS + i, value)
    return records


def fake_values(n: int, seed: int = 7) -> list[bytes]:
    return [value for _key, value, _ts in FakeLogs(seed=seed).records(n, START_MS, 37.0)]


def expected(records: FolderRecords, topic: str = "log-data", partition: int = 1) -> list[dict]:
    return [
        {"_kafka": {"topic": topic, "partition": partition, "offset": o, "timestamp": t}, **events.decode(v)}
        for o, t, v in zip(
            records.offsets, records.timestamps, map(records.value, range(len(records))), strict=True
        )
    ]


def roundtrip(recipe: Recipe, records: FolderRecords) -> list[dict]:
    body = recipe.codec.encode("log-data", 1, records, recipe)
    return list(recipe.codec.decode(body.data))


ALL_RECIPES = [Recipe(format=f.name, compression=c) for f in formats.FORMATS.values() for c in f.compressions]


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda r: f"{r.format}-{r.compression}")
def test_every_format_decodes_generated_events_to_the_same_records(recipe):
    records = folder_of(fake_values(3000))
    assert roundtrip(recipe, records) == expected(records)


def parquet_table(records: FolderRecords, compression: str = "zstd") -> pa.Table:
    recipe = Recipe(format="parquet", compression=compression)
    return pq.read_table(io.BytesIO(recipe.codec.encode("log-data", 1, records, recipe).data))


def test_parquet_columns_are_typed_and_generated_events_need_no_raw_copy():
    table = parquet_table(folder_of(fake_values(2000)))
    schema = table.schema
    assert schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("status").type == pa.int16()
    assert schema.field("latency_ms").type == pa.decimal128(9, 1)
    assert schema.field("amount").type == pa.decimal128(18, 2)
    assert schema.field("event_type").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("_kafka").type.field("offset").type == pa.int64()
    assert table.column("_raw").null_count == table.num_rows
    assert table.column("query").null_count < table.num_rows  # optional fields are there when set


def test_parquet_stores_decimals_as_integers_and_compresses_inside_the_file():
    records = folder_of(fake_values(500))
    for compression, codec in (("zstd", "ZSTD"), ("snappy", "SNAPPY"), ("none", "UNCOMPRESSED")):
        recipe = Recipe(format="parquet", compression=compression)
        body = recipe.codec.encode("log-data", 1, records, recipe)
        assert body.content_encoding == "" and body.content_type == "application/vnd.apache.parquet"
        meta = pq.ParquetFile(io.BytesIO(body.data)).metadata
        assert meta.num_row_groups == 1 and meta.num_rows == 500
        columns = {meta.schema.column(i).name: meta.row_group(0).column(i) for i in range(meta.num_columns)}
        assert columns["latency_ms"].physical_type == "INT32"
        assert columns["amount"].physical_type == "INT64"
        assert {c.compression for c in columns.values()} == {codec}
        assert columns["status"].statistics.has_min_max  # what lets readers skip row groups


GOOD = {
    **orjson.loads(fake_values(1)[0]),
    "referrer": None,
}


def variant(**changes: object) -> bytes:
    event = dict(GOOD)
    for name, value in changes.items():
        if value is KeyError:
            event.pop(name, None)
        else:
            event[name] = value
    return orjson.dumps(event)


UNFIT = {
    "an unknown field": variant(new_field=1),
    "a wrong type": variant(status="200"),
    "a float for an int": variant(status=200.0),
    "status out of int16": variant(status=70_000),
    "a bool for a number": variant(bytes_sent=True),
    "latency with two decimals": variant(latency_ms=12.34),
    "latency past decimal(9,1)": variant(latency_ms=1e12),
    "amount with three decimals": variant(amount=1.005, currency="EUR"),
    "a required field missing": variant(host=KeyError),
    "referrer missing (not null)": variant(referrer=KeyError),
    "an optional field null": variant(query=None),
    "a required field null": variant(user_id=None),
    "event_time with an offset": variant(event_time="2026-11-24T23:03:04.123+02:00"),
    "event_time without millis": variant(event_time="2026-11-24T21:03:04Z"),
    "an array": variant(path=["a"]),
    "int past int64": variant(bytes_sent=2**64 - 1),
    "a key given twice": variant()[:-1] + b',"status":503}',
    "latency past a double's range": variant(latency_ms=0)[:-1] + b',"latency_ms":1e400}',
    "a leap second": variant(event_time="2016-12-31T23:59:60.500Z"),
    "negative zero latency (a decimal has no sign of zero)": variant(latency_ms=-0.0),
}
FITTING = {
    "referrer null": variant(referrer=None),
    "a string that says null": variant(path="/null/nullable", referrer="null"),
    "an int amount": variant(amount=12, currency="EUR"),
    "unicode and escapes": variant(path='/caf\u00e9/"q"\\\n'),
    "the first millisecond of year 1": variant(event_time="0001-01-01T00:00:00.000Z"),
    "the last millisecond of year 9999": variant(event_time="9999-12-31T23:59:59.999Z"),
}


@pytest.mark.parametrize("case", list(UNFIT))
def test_an_event_the_columns_cannot_hold_is_kept_whole_in_raw(case):
    records = folder_of([variant(), UNFIT[case], variant(referrer="https://x.example/")])
    assert roundtrip(Recipe(format="parquet", compression="zstd"), records) == expected(records)
    table = parquet_table(records)
    raw = table.column("_raw").to_pylist()
    assert raw[0] is None and raw[2] is None
    assert raw[1].encode() == UNFIT[case]  # the event as it came
    # what fits is still in the typed columns: an analyst finds the row by its type and id
    assert table.column("event_type").to_pylist()[1] == GOOD["event_type"]
    assert table.column("event_id").to_pylist()[1] == GOOD["event_id"]


@pytest.mark.parametrize("case", list(FITTING))
def test_an_event_the_columns_hold_exactly_has_no_raw_copy(case):
    records = folder_of([variant(), FITTING[case]])
    assert roundtrip(Recipe(format="parquet", compression="none"), records) == expected(records)
    assert parquet_table(records).column("_raw").null_count == 2


def test_pretty_printed_and_duplicate_key_events_come_back_as_the_json_formats_read_them():
    pretty = orjson.dumps(GOOD, option=orjson.OPT_INDENT_2)
    duplicate = variant()[:-1] + b',"status":503}'
    records = folder_of([pretty, duplicate, variant()])
    assert roundtrip(Recipe(format="parquet", compression="zstd"), records) == expected(records)
    assert roundtrip(Recipe(format="jsonl", compression="gzip"), records) == expected(records)


def test_parquet_reads_values_longer_than_arrows_block(monkeypatch):
    """Arrow's JSON reader takes a line only whole inside one block: the block grows to the longest."""
    monkeypatch.setattr(columnar, "BLOCK", 4096)
    monkeypatch.setattr(columnar, "_READ", pa_json.ReadOptions(use_threads=False, block_size=4096))
    values = fake_values(40)
    values[7] = variant(path="/" + "p" * 20_000)  # fits its column
    values[8] = variant(new_field="n" * 30_000)  # kept in _raw
    records = folder_of(values)
    assert roundtrip(Recipe(format="parquet", compression="zstd"), records) == expected(records)


def test_raw_rows_are_the_exception_the_fast_path_is_the_rule():
    """One unfit event among many: the others still need no copy."""
    values = fake_values(1000)
    values[500] = variant(new_field="x")
    table = parquet_table(folder_of(values))
    assert table.column("_raw").null_count == 999


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
field_names = st.sampled_from([*events.FIELDS, *events.OPTIONAL_FIELDS, "extra"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(field_names, json_values, max_size=6), min_size=1, max_size=6), st.data())
def test_any_event_comes_back_from_parquet_as_it_went_in(changes, data):
    """Random events (fields of any type, missing, null, unknown) around generated ones: whatever the
    typed columns make of them, decoding gives what the JSON formats give."""
    values = []
    for change in changes:
        event = {**GOOD, **change}
        event["event_id"] = data.draw(st.uuids()).hex
        event["event_type"] = data.draw(st.sampled_from(events.EVENT_TYPES))
        event["event_time"] = data.draw(
            st.sampled_from(
                ["2026-11-24T21:03:04.123Z", "2026-11-24T21:03:04Z", "2026-11-24T22:03:04.1+01:00"]
            )
        )
        values.append(orjson.dumps(event))
    records = folder_of(values)
    assert roundtrip(Recipe(format="parquet", compression="snappy"), records) == expected(records)


def test_every_event_field_has_a_column_and_every_refinement_names_a_field():
    names = [c.name for c in columnar.COLUMNS]
    assert names == [*events.FIELDS, *events.OPTIONAL_FIELDS]
    refined = columnar.CATEGORICAL | set(columnar.INTEGER_BITS) | set(columnar.DECIMALS)
    assert refined <= set(names), refined - set(names)
    assert columnar.SCHEMA.names == ["_kafka", *names, "_raw"]


def test_a_field_of_a_type_without_a_column_type_is_refused():
    with pytest.raises(TypeError, match="no column type"):
        columnar._column("flag", (bool,), True)


def test_older_objects_without_newer_columns_still_decode():
    records = folder_of(fake_values(20))
    table = parquet_table(records).drop_columns(["order_id", "_raw"])
    assert list(columnar.records_of(table)) == [
        {k: v for k, v in r.items() if k != "order_id"} for r in expected(records)
    ]


def test_parquet_keys_end_in_parquet_whatever_the_compression():
    for compression in formats.FORMATS["parquet"].compressions:
        recipe = Recipe(format="parquet", compression=compression)
        assert recipe.extension == "parquet"
        assert (
            formats.format_of_key(f"t/dt=x/hour=1/t+0+00000000000000000000.{recipe.extension}").name
            == "parquet"
        )
    assert formats.check_recipe(Recipe(format="parquet", compression="zstd")) is None
    assert "zstd or snappy or none" in formats.check_recipe(Recipe(format="parquet", compression="gzip"))


def test_columns_that_grow_row_by_row_are_delta_encoded_the_rest_dictionary_encoded():
    recipe = Recipe(format="parquet", compression="zstd")
    table_bytes = recipe.codec.encode("log-data", 1, folder_of(fake_values(800)), recipe)
    meta = pq.ParquetFile(io.BytesIO(table_bytes.data)).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    for name in columnar.DELTA_COLUMNS:
        assert "DELTA_BINARY_PACKED" in encodings[name], name
    assert "RLE_DICTIONARY" in encodings["event_type"] and "RLE_DICTIONARY" in encodings["user_id"]
    assert set(encodings) == set(columnar.DELTA_COLUMNS) | set(columnar.DICTIONARY_COLUMNS)


@pytest.mark.parametrize("name", ["jsonl", "json"])
def test_json_objects_are_the_stored_lines_joined_whatever_fills_the_scratch_buffer(name, monkeypatch):
    """Stored lines go through a small reusable buffer, compressed part by part; parts are cut at any
    record, and a run of records larger than the buffer goes around it. The object is the same bytes."""
    values = fake_values(40)
    big = orjson.loads(values[5])
    big["query"] = "x" * 9000  # larger than the buffer on its own
    values[5] = orjson.dumps(big)
    values[6] = orjson.dumps(orjson.loads(values[6]), option=orjson.OPT_INDENT_2)  # line breaks
    values[7] = b"{ " + values[7][1:]  # not `{"` first
    records = folder_of(values)
    envelope = formats.envelope_prefix("log-data", 1)
    lines = [
        formats.stored_line(envelope, o, t, records.value(i))
        for i, (o, t) in enumerate(zip(records.offsets, records.timestamps, strict=True))
    ]
    want = b"\n".join(lines) + b"\n" if name == "jsonl" else b"[" + b",\n".join(lines) + b"]\n"
    for scratch, run in ((4 << 20, 256), (3000, 3), (2500, 1), (9100, 7)):
        monkeypatch.setattr(formats, "SCRATCH_BYTES", scratch)
        monkeypatch.setattr(formats, "RUN", run)
        for compression in ("none", "gzip"):
            recipe = Recipe(format=name, compression=compression)
            body = recipe.codec.encode("log-data", 1, records, recipe)
            assert (gzip.decompress(body.data) if compression == "gzip" else body.data) == want
            assert list(recipe.codec.decode(body.data)) == expected(records)


def test_a_folder_whose_buffer_is_full_moves_to_a_larger_one(monkeypatch):
    monkeypatch.setattr(batch_module, "BUFFER_BYTES", 1500)  # two or three events
    values = fake_values(50)
    records = folder_of(values)
    assert len(records.data) >= sum(map(len, values)) > 1500
    assert [records.value(i) for i in range(len(records))] == values
    recipe = Recipe()
    assert roundtrip(recipe, records) == expected(records)


def test_a_landed_batchs_buffers_are_written_again_and_at_most_keep_wait():
    pool = Buffers(size=1 << 16, keep=1)
    first = Batch("t", 0, 0, buffers=pool)
    first.folder("a", 0).append(0, 1, 1, b'{"x":1}')
    first.folder("b", 1).append(1, 1, 1, b'{"x":2}')
    buffers = {id(records.data) for records in first.folders.values()}
    pool.give(first)
    assert first.folders == {} and pool.kept == 1  # one of the two is kept, the other freed
    second = Batch("t", 0, 2, buffers=pool)
    again = second.folder("a", 2)
    assert id(again.data) in buffers and again.data.tell() == 0
    again.append(2, 1, 1, b'{"y":3}')
    assert again.value(0) == b'{"y":3}'
    again.grow(1 << 17)  # a grown buffer is not the pool's size: freed, not kept
    pool.give(second)
    assert pool.kept == 0
    pool.clear()
