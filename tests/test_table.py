"""The Iceberg table layer (loglake/table/) against the stack's real S3 server and a real SQL catalog
on a SQLite file: the schema and partitioning, every column type of the Parquet encoder registered and
read back, exactly-once commits proven by the snapshot summaries (repeats are no-ops, a lost race is
re-checked, two sinks racing from threads and from processes add each claim once), refusals in one
sentence, retriable versus user errors."""

from __future__ import annotations

import io
import subprocess
from dataclasses import replace

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loglake import columnar
from loglake.errors import LakeRetriable, LoglakeError
from loglake.ledger import Claim
from loglake.table.catalog import catalog_settings, open_catalog, split_identifier
from loglake.table.commit import Backoff, ClaimOrderError, TableSink
from loglake.table.errors import TableRetriable, TableUnavailable
from loglake.table.progress import OFFSETS, RECORDS, STARTS, progress_of
from loglake.table.schema import NAME_MAPPING, REQUIRED_PROPERTIES, iceberg_schema, open_table
from tests.conftest import PYTHON, REPO, s3_client
from tests.tables import (
    PARQUET,
    data_files,
    fresh_table,
    lake_settings,
    land,
    race,
    race_processes,
    scan_counts,
    sqlite_catalog,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(stack_env, tmp_path):
    return sqlite_catalog(stack_env, tmp_path / "catalog.db")


def sink_for(catalog, identifier, topic, env, **kwargs) -> TableSink:
    return TableSink(catalog, identifier, topic, env["LAKE_BUCKET"], **kwargs)


def snapshots(sink: TableSink) -> int:
    return len(sink._refresh().metadata.snapshots)


# ------------------------------------------------------------------------------------ the table


def test_the_table_is_created_with_its_namespace_schema_partitioning_and_properties(stack_env, catalog):
    identifier = fresh_table()
    table = open_table(catalog, identifier)
    assert split_identifier(identifier)[0] in [n[0] for n in open_catalog(catalog).list_namespaces()]
    schema = table.schema()
    assert [f.name for f in schema.fields] == list(columnar.SCHEMA.names)
    assert [f.field_id for f in schema.fields] == list(range(1, len(columnar.SCHEMA) + 1))
    kinds = {f.name: str(f.field_type) for f in schema.fields}
    assert (kinds["event_time"], kinds["status"], kinds["seq"], kinds["bytes_sent"]) == (
        "timestamptz",
        "int",
        "int",
        "long",
    )
    assert (kinds["latency_ms"], kinds["amount"], kinds["event_type"]) == (
        "decimal(9, 1)",
        "decimal(18, 2)",
        "string",
    )
    assert schema.find_field("_kafka").required and not schema.find_field("event_id").required
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("event_time_day", "day")]
    assert all(table.properties[k] == v for k, v in REQUIRED_PROPERTIES.items())
    assert "event_time" in table.properties[NAME_MAPPING]
    assert table.location().startswith(f"s3://{stack_env['LAKE_BUCKET']}/iceberg/")
    again = open_table(catalog, identifier)  # opened, not created twice
    assert again.metadata.table_uuid == table.metadata.table_uuid


def test_a_table_with_another_schema_is_refused_in_one_sentence(catalog):
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    identifier = fresh_table()
    namespace, _ = split_identifier(identifier)
    other = open_catalog(catalog)
    other.create_namespace(namespace)
    other.create_table(
        identifier, Schema(NestedField(1, "event_id", StringType()), NestedField(2, "n", LongType()))
    )
    with pytest.raises(TableUnavailable) as refused:
        open_table(catalog, identifier)
    sentence = str(refused.value)
    assert "has another schema than the writer's Parquet files" in sentence and "\n" not in sentence
    assert "lacks _kafka struct" in sentence and "has n long" in sentence


def test_a_missing_table_is_refused_where_it_must_exist(catalog):
    with pytest.raises(TableUnavailable, match="does not exist"):
        open_table(catalog, fresh_table(), create=False)


def test_every_column_type_of_the_encoder_is_registered_and_read_back_exactly(stack_env, catalog, unique):
    """Dictionary-encoded strings, int16, int32, decimals stored as INT32/INT64, ms timestamps, the
    `_kafka` struct, and `_raw` for an event the columns cannot hold: what pyiceberg reads from the
    table is what the encoder wrote, and the manifests' event_time bounds are the objects' own."""
    topic = f"types-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=3_000)
    misfit = _misfit_claim(stack_env, landed.claims[0])
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    sink.commit([landed.claims[0], misfit])
    table = sink.table.refresh()
    got = table.scan().to_arrow().sort_by([("event_id", "ascending")])
    s3 = s3_client(stack_env)
    written = pa.concat_tables(
        pq.read_table(io.BytesIO(s3.get_object(Bucket=stack_env["LAKE_BUCKET"], Key=e.key)["Body"].read()))
        for c in (landed.claims[0], misfit)
        for e in c.objects
    ).sort_by([("event_id", "ascending")])
    assert got.num_rows == written.num_rows == 3_001
    for name in columnar.SCHEMA.names:
        mine, theirs = got.column(name).combine_chunks(), written.column(name).combine_chunks()
        if pa.types.is_dictionary(theirs.type):
            theirs = theirs.cast(theirs.type.value_type)
        if pa.types.is_dictionary(mine.type):
            mine = mine.cast(mine.type.value_type)
        assert mine.cast(theirs.type).equals(theirs), name  # us -> ms and int32 -> int16 are exact here
    assert pc.count(got.column("_raw")).as_py() == 1
    assert got.column("latency_ms").type == pa.decimal128(9, 1) and got.column("status").type == pa.int32()
    for entry in data_files_with_bounds(table):
        assert entry["lower"] >= entry["min_ms"] * 1000 and entry["upper"] <= (entry["max_ms"] + 1) * 1000
        assert entry["lower"] // 3_600_000_000 == entry["upper"] // 3_600_000_000  # one hour each


def _misfit_claim(env, after: Claim) -> Claim:
    """One claim after `after` holding one event the typed columns cannot hold (`status` as a string)."""
    from loglake.fake import FakeLogs
    from tests.tables import _claim

    event = FakeLogs(seed=9).events(1, 1_767_225_600_000, 1.0)[0] | {"status": "200"}
    record = (b"k", orjson.dumps(event), 1_767_225_600_000)
    from loglake.lake import S3Store

    store = S3Store(lake_settings(env))
    try:
        prefix = after.objects[0].key.split("/", 1)[0]
        claim, _ids = _claim(store, prefix, after.topic, after.partition, after.end, [record])
    finally:
        store.close()
    return claim


def data_files_with_bounds(table):
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import TimestamptzType

    field_id = table.schema().find_field("event_time").field_id
    out = []
    for row in table.inspect.files().to_pylist():
        lower = from_bytes(TimestamptzType(), dict(row["lower_bounds"])[field_id])
        upper = from_bytes(TimestamptzType(), dict(row["upper_bounds"])[field_id])
        times = row["readable_metrics"]["event_time"]
        out.append(
            {
                "lower": lower,
                "upper": upper,
                "min_ms": int(times["lower_bound"].timestamp() * 1000),
                "max_ms": int(times["upper_bound"].timestamp() * 1000),
            }
        )
    assert out
    return out


def test_a_query_of_one_hour_reads_only_that_hours_files(stack_env, catalog, unique):
    """Pruning without listing: the day partition, then the files' event_time bounds."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    topic = f"prune-{unique}"
    landed = land(
        stack_env, topic, partitions=2, claims_per_partition=3, records_per_claim=4_000, step_ms=900
    )
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    sink.commit(landed.claims)
    table = sink.table.refresh()
    hour = And(
        GreaterThanOrEqual("event_time", "2026-01-01T02:00:00+00:00"),
        LessThan("event_time", "2026-01-01T03:00:00+00:00"),
    )
    planned = list(table.scan(row_filter=hour).plan_files())
    in_hour = [e for c in landed.claims for e in c.objects if e.folder == "dt=2026-01-01/hour=02"]
    assert len(in_hour) >= 2 and len(planned) == len(in_hour) < landed.objects
    rows = table.scan(row_filter=hour).to_arrow()
    assert rows.num_rows == sum(e.records for e in in_hour)


# ------------------------------------------------------------------------------------- exactly once


def test_each_claim_is_committed_once_and_repeats_are_no_ops(stack_env, catalog, unique):
    topic = f"once-{unique}"
    landed = land(stack_env, topic, partitions=3, claims_per_partition=4, records_per_claim=1_500)
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    assert sink.offsets() == {}
    first = [c for c in landed.claims if c.start < 3_000]  # two claims of each partition
    result = sink.commit(first)
    assert result.offsets == {0: 3_000, 1: 3_000, 2: 3_000}
    assert (result.claims, result.records) == (6, 9_000)
    assert snapshots(sink) == 1
    assert sink.commit(first).claims == 0 and snapshots(sink) == 1  # nothing to add: no snapshot
    result = sink.commit(landed.claims)  # the first six again, and six more
    assert (result.claims, result.records) == (6, 9_000)
    assert result.files == sum(len(c.objects) for c in landed.claims if c.start >= 3_000)
    assert result.offsets == {0: 6_000, 1: 6_000, 2: 6_000}
    assert snapshots(sink) == 2
    rows, ids, coordinates = scan_counts(sink.table)
    assert rows == landed.records == 18_000
    assert set(ids.values()) == {1} and set(ids) == set(landed.event_ids)
    assert set(coordinates.values()) == {1}
    assert len(data_files(sink.table)) == landed.objects
    summary = sink.table.current_snapshot().summary
    assert orjson.loads(summary[OFFSETS + topic]) == {"0": 6_000, "1": 6_000, "2": 6_000}
    assert orjson.loads(summary[STARTS + topic]) == {"0": 0, "1": 0, "2": 0}
    assert orjson.loads(summary[RECORDS + topic]) == {"0": 6_000, "1": 6_000, "2": 6_000}
    assert int(summary["total-records"]) == 18_000
    # a new sink (a restarted writer) reads the same offsets from the table alone
    assert sink_for(catalog, sink.identifier, topic, stack_env).offsets() == result.offsets


def test_a_table_holding_a_topic_refuses_another_topic_of_the_same_name(stack_env, catalog, unique):
    """The first commit binds the topic's name to Kafka's topic id (a table property); a writer of a
    topic deleted and created again (another id, offsets begun anew) is refused in one sentence."""
    topic = f"id-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=100)
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    assert sink.offsets_of("first-id") == {}
    assert sink.commit(landed.claims).offsets == {0: 100}
    again = sink_for(catalog, sink.identifier, topic, stack_env)
    assert again.offsets_of("first-id") == {0: 100} and again.offsets_of("") == {0: 100}
    with pytest.raises(
        TableUnavailable, match=r"topic id first-id.*topic id second-id.*another --iceberg-table"
    ):
        sink_for(catalog, sink.identifier, topic, stack_env).offsets_of("second-id")


def test_a_claim_of_dead_letters_only_advances_the_offsets_without_a_file(stack_env, catalog, unique):
    """A batch whose records were all dead letters has a claim without objects: committing it moves
    the table's offset past them (the summary says those offsets are handled) and adds no file."""
    topic = f"dead-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=2, records_per_claim=300)
    first, second = landed.claims
    letters = replace(second, start=first.end, end=first.end + 25, objects=(), dead_letters=25)
    after = replace(second, start=letters.end, end=letters.end + 300)  # its objects' own offsets aside
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    assert sink.commit([first, letters]).offsets == {0: 325}
    progress = progress_of(sink.table.metadata, topic)
    assert progress.records == {0: 300} and progress.starts == {0: 0}
    assert len(data_files(sink.table)) == len(first.objects)
    assert sink.commit([first, letters, after]).claims == 1 and sink.offsets() == {0: 625}


def test_claims_that_would_leave_a_hole_or_overlap_are_refused(stack_env, catalog, unique):
    topic = f"order-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=3, records_per_claim=500)
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    sink.commit(landed.claims[:1])
    with pytest.raises(ClaimOrderError, match="leaves a hole after the table's offset 500"):
        sink.commit(landed.claims[2:])
    shifted = replace(landed.claims[1], start=400)
    with pytest.raises(ClaimOrderError, match="overlaps the table's offset 500"):
        sink.commit([shifted])
    assert sink.offsets() == {0: 500} and snapshots(sink) == 1
    json_claim = replace(landed.claims[1], recipe=replace(PARQUET, format="jsonl"))
    with pytest.raises(TableUnavailable, match="only Parquet objects"):
        sink.commit([json_claim])


def test_a_commit_that_lost_the_race_rechecks_the_offsets_and_adds_nothing_twice(stack_env, catalog, unique):
    """Deterministic: sink A plans its commit on the table as it last saw it, before sink B committed
    two of the same claims; the catalog refuses A's snapshot (CommitFailedException), A reads the
    table again and adds only the two claims B had not."""
    topic = f"race1-{unique}"
    landed = land(stack_env, topic, partitions=2, claims_per_partition=2, records_per_claim=800)
    identifier = fresh_table()
    a = sink_for(catalog, identifier, topic, stack_env)
    b = sink_for(sqlite_catalog(stack_env, _path_of(catalog)), identifier, topic, stack_env)
    assert a.offsets() == {}  # a reads the table before b commits: its first attempt builds on that
    b.commit(landed.claims[:2])
    result = a.commit(landed.claims)
    assert result.attempts == 2  # the first attempt lost to b's snapshot
    assert len(a.table.metadata.snapshots) == 2  # b's, then a's
    assert result.claims == 2  # the two claims b had not committed
    rows, ids, _ = scan_counts(a.table)
    assert rows == landed.records and set(ids.values()) == {1}
    assert len(data_files(a.table)) == landed.objects


def test_claims_that_continue_another_sinks_commit_are_not_taken_for_a_hole(stack_env, catalog, unique):
    """Sink A last saw the table at claim 0; sink B has since committed claim 1; A is handed claim 2.
    Judged by A's old view that would leave a hole: A reads the table again before saying so."""
    topic = f"moved-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=3, records_per_claim=200)
    identifier = fresh_table()
    a = sink_for(catalog, identifier, topic, stack_env)
    b = sink_for(sqlite_catalog(stack_env, _path_of(catalog)), identifier, topic, stack_env)
    a.commit(landed.claims[:1])
    b.commit(landed.claims[:2])
    assert a.commit(landed.claims[2:]).offsets == {0: 600}
    with pytest.raises(ClaimOrderError, match="leaves a hole"):  # a real hole is still refused
        a.commit([replace(landed.claims[2], start=700, end=900)])
    rows, ids, _ = scan_counts(a.table)
    assert rows == landed.records and set(ids.values()) == {1}


def _path_of(catalog) -> str:
    return catalog.properties["uri"].removeprefix("sqlite:///")


def test_two_sinks_racing_from_threads_commit_each_claim_once(stack_env, catalog, unique):
    """Two catalogs on one SQLite file, two threads released together, committing the same claims in
    the same rounds (as a zombie and the partition's new owner would)."""
    topic = f"race2-{unique}"
    landed = land(stack_env, topic, partitions=3, claims_per_partition=6, records_per_claim=400)
    identifier = fresh_table()
    open_table(catalog, identifier)
    sinks = [
        sink_for(
            sqlite_catalog(stack_env, _path_of(catalog)), identifier, topic, stack_env, backoff=Backoff(20)
        )
        for _ in range(2)
    ]
    rounds = [[c for c in landed.claims if c.start // 400 == r] for r in range(6)]
    results = race(sinks, rounds)
    added = [r.claims for r in results]
    assert sum(added) == len(landed.claims)  # each claim added by exactly one of the two
    rows, ids, coordinates = scan_counts(sinks[0].table)
    assert rows == landed.records and set(ids.values()) == {1} and set(coordinates.values()) == {1}
    assert len(data_files(sinks[0].table)) == landed.objects
    assert sinks[1].offsets() == {0: 2_400, 1: 2_400, 2: 2_400}
    retried = sum(r.attempts - 1 for r in results)
    print(f"two threads: {retried} commits lost a race and were re-checked; claims added {added}")


def test_two_processes_racing_commit_each_claim_once(stack_env, catalog, unique):
    topic = f"race3-{unique}"
    landed = land(stack_env, topic, partitions=2, claims_per_partition=5, records_per_claim=300)
    identifier = fresh_table()
    open_table(catalog, identifier)
    rounds = [[c for c in landed.claims if c.start // 300 == r] for r in range(5)]
    added = race_processes(catalog, identifier, topic, stack_env["LAKE_BUCKET"], rounds)
    assert sum(added) == len(landed.claims)
    table = open_table(catalog, identifier)
    rows, ids, _ = scan_counts(table)
    assert rows == landed.records and set(ids.values()) == {1}
    assert len(data_files(table)) == landed.objects


def test_offsets_are_found_behind_a_snapshot_of_another_program(stack_env, catalog, unique):
    """A snapshot without loglake's keys (another program's append) does not hide the offsets: they
    are read from the newest ancestor that has them, and the next commit carries them on."""
    topic, other = f"foreign-{unique}", f"other-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=2, records_per_claim=500)
    foreign = land(stack_env, other, partitions=1, claims_per_partition=1, records_per_claim=100)
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    sink.commit(landed.claims[:1])
    paths = [f"s3://{stack_env['LAKE_BUCKET']}/{e.key}" for e in foreign.claims[0].objects]
    sink.table.refresh().add_files(paths)  # pyiceberg's own add_files: no loglake keys in its summary
    assert OFFSETS + topic not in sink.table.refresh().current_snapshot().summary.additional_properties
    assert sink.offsets() == {0: 500}
    assert sink.commit(landed.claims).claims == 1
    assert sink.offsets() == {0: 1_000}
    progress = progress_of(sink.table.metadata, topic)
    assert (
        progress.records == {0: 1_000} and progress.snapshot_id == sink.table.current_snapshot().snapshot_id
    )


def test_offsets_of_a_topic_whose_snapshots_vanished_are_not_guessed(stack_env, catalog, unique):
    topic = f"vanished-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=200)
    sink = sink_for(catalog, fresh_table(), topic, stack_env)
    sink.commit(landed.claims)
    table = sink.table.refresh()
    foreign = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=50, seed=3)
    table.add_files([f"s3://{stack_env['LAKE_BUCKET']}/{e.key}" for e in foreign.claims[0].objects])
    table = table.refresh()
    first = table.metadata.snapshots[0].snapshot_id
    table.maintenance.expire_snapshots().by_id(first).commit()  # what another tool's expiry could do
    with pytest.raises(TableUnavailable, match="the writer will not guess"):
        sink.offsets()


# ------------------------------------------------------------------------------------------ errors


def test_the_catalogs_and_storages_failures_are_retriable_or_one_sentence(stack_env, tmp_path, unique):
    topic = f"errors-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=100)
    lake = lake_settings(stack_env)

    def commit_with(given: dict[str, str]) -> None:
        settings = catalog_settings(lake, {"uri": f"sqlite:///{tmp_path / 'c.db'}"} | given)
        TableSink(settings, fresh_table(), topic, stack_env["LAKE_BUCKET"], Backoff(1)).commit(landed.claims)

    with pytest.raises(TableUnavailable, match="refused these credentials"):
        commit_with({"s3.secret-access-key": "wrong"})
    with pytest.raises(TableRetriable, match="did not answer") as down:
        commit_with(
            {"s3.endpoint": "http://127.0.0.1:9", "s3.connect-timeout": "1", "s3.request-timeout": "2"}
        )
    assert isinstance(down.value, LakeRetriable)
    with pytest.raises(TableUnavailable, match="refused us"):
        commit_with({"uri": f"sqlite:///{tmp_path}/no/such/folder/c.db"})
    with pytest.raises(TableUnavailable, match="is not one SQLAlchemy can open"):
        commit_with({"uri": "nosuchdb://x/y", "type": "sql"})
    with pytest.raises(LoglakeError, match="not a table name"):
        TableSink(catalog_settings(lake, {}), "no_namespace", topic, "b").offsets()


def test_maintain_reports_a_missing_table_in_one_sentence(stack_env, tmp_path):
    env = {
        "PYICEBERG_CATALOG__LOGLAKE__URI": f"sqlite:///{tmp_path / 'c.db'}",
        "AWS_ENDPOINT_URL": stack_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": stack_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": stack_env["AWS_SECRET_ACCESS_KEY"],
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [PYTHON, "-m", "loglake", "table", "maintain", "--table", "nope.events"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: table nope.events in catalog 'loglake' (sql, sqlite:///")
    assert done.stderr.count("\n") == 1 and "does not exist" in done.stderr
    bad = subprocess.run(
        [PYTHON, "-m", "loglake", "table", "maintain", "--table", "a.b", "--orphans-older-than", "5m"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "under 1h" in bad.stderr


def test_the_catalog_falls_back_to_the_lakes_settings():
    lake = lake_settings(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "LAKE_BUCKET": "b",
        }
    )
    embedded = catalog_settings(lake, {})
    assert (
        embedded.properties["type"] == "sql" and embedded.properties["uri"] == "sqlite:///loglake-catalog.db"
    )
    assert (
        embedded.properties["warehouse"] == "s3://b/iceberg"
        and embedded.properties["s3.region"] == "eu-west-1"
    )
    shared = catalog_settings(lake, {"uri": "postgresql+psycopg://u:pw@db/cat", "s3.endpoint": "http://x"})
    assert shared.properties["type"] == "sql" and shared.properties["s3.endpoint"] == "http://x"
    assert "pw" not in shared.describe() and "u:***@db" in shared.describe()
    rest = catalog_settings(lake, {"uri": "http://rest:8181"})
    assert "type" not in rest.properties  # pyiceberg infers REST from the URI


def test_pyiceberg_reads_the_catalog_from_its_environment_variables(monkeypatch):
    from loglake.stack.environment import ICEBERG_KEYS
    from loglake.table.catalog import configured

    for name in ICEBERG_KEYS.values():  # scripts/test exports its stack's catalog
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYICEBERG_CATALOG__LOGLAKE__URI", "sqlite:///x.db")
    monkeypatch.setenv("PYICEBERG_CATALOG__LOGLAKE__S3__ACCESS_KEY_ID", "key")
    monkeypatch.setenv("PYICEBERG_CATALOG__LOGLAKE__S3__ENDPOINT", "http://e:1")
    assert configured() == {"uri": "sqlite:///x.db", "s3.access-key-id": "key", "s3.endpoint": "http://e:1"}


def test_the_iceberg_schema_follows_the_encoders_columns():
    """Unit: a column added to the encoder appears in the table's schema, typed, with a new id."""
    schema = iceberg_schema()
    assert len(schema.fields) == len(columnar.SCHEMA)
    ids = [f.field_id for f in schema.fields] + [
        f.field_id for f in schema.find_field("_kafka").field_type.fields
    ]
    assert sorted(ids) == list(range(1, len(ids) + 1))
    assert str(schema.find_field("_kafka").field_type) == (
        "struct<37: topic: optional string, 38: partition: optional int, 39: offset: optional long, "
        "40: timestamp: optional timestamptz>"
    )
