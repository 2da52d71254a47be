"""Table maintenance (loglake/table/maintain.py) on the stack's S3 server and a SQLite catalog:
compaction of closed hours and days (row count and event ids unchanged, fewer and larger files, the
offsets carried over, the writer's objects untouched), compaction while a writer commits, snapshot
expiry that leaves no unreferenced file under the table, young orphans kept, and the command line."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from loglake.table.commit import Backoff, TableSink
from loglake.table.maintain import (
    COMPACTION_KEY,
    MaintainOptions,
    delete_orphans,
    maintain,
    referenced_files,
    table_files,
)
from loglake.table.progress import OFFSETS, progress_of
from loglake.table.schema import open_table
from tests.conftest import PYTHON, REPO, s3_client
from tests.tables import data_files, fresh_table, land, maintain_while_writing, scan_counts, sqlite_catalog

pytestmark = pytest.mark.integration

LATER = datetime(2026, 1, 3, tzinfo=UTC)  # every generated hour and day (2026-01-01) is closed by then
NO_RETENTION = MaintainOptions(older_than=timedelta(0), orphans_older_than=timedelta(0))


@pytest.fixture
def catalog(stack_env, tmp_path):
    return sqlite_catalog(stack_env, tmp_path / "catalog.db")


def sink_for(catalog, topic, env, identifier=None, **kwargs) -> TableSink:
    return TableSink(catalog, identifier or fresh_table(), topic, env["LAKE_BUCKET"], **kwargs)


def objects_in_lake(env, landed) -> int:
    s3 = s3_client(env)
    keys = [e.key for c in landed.claims for e in c.objects]
    present = 0
    for key in keys:
        try:
            s3.head_object(Bucket=env["LAKE_BUCKET"], Key=key)
            present += 1
        except s3.exceptions.ClientError:
            pass
    return present


def test_compaction_of_closed_hours_keeps_every_row_in_fewer_larger_files(stack_env, catalog, unique):
    topic = f"compact-{unique}"
    # 3 partitions x 6 claims of 1,000 events 1.5 s apart: each claim spans 25 minutes, so ~6 hours
    landed = land(
        stack_env, topic, partitions=3, claims_per_partition=6, records_per_claim=1_000, step_ms=1_500
    )
    sink = sink_for(catalog, topic, stack_env)
    sink.commit(landed.claims)
    before_files = data_files(sink.table)
    rows_before, ids_before, _ = scan_counts(sink.table)
    offsets_before = sink.offsets()
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)  # the day is still open: hours are compacted
    report = maintain(catalog, sink.identifier, MaintainOptions(), now=now)
    hours = [c for c in report.compactions if c.snapshot_id is not None]
    assert hours and all(c.unit == "hour" for c in hours)
    after_files = data_files(sink.table)
    assert len(after_files) < len(before_files) == landed.objects
    assert len(after_files) == len({e.folder for c in landed.claims for e in c.objects})  # one per hour
    rows_after, ids_after, coordinates = scan_counts(sink.table)
    assert rows_after == rows_before == landed.records and ids_after == ids_before
    assert set(coordinates.values()) == {1}
    location = sink.table.refresh().location()
    assert all(path.startswith(location + "/data/") for path in after_files)
    table = sink.table.refresh()
    summary = table.current_snapshot().summary
    assert summary.operation.value == "overwrite" and COMPACTION_KEY in summary.additional_properties
    assert orjson.loads(summary[OFFSETS + topic]) == {str(p): o for p, o in offsets_before.items()}
    assert sink.offsets() == offsets_before
    sizes = table.inspect.files().column("file_size_in_bytes").to_pylist()
    assert min(sizes) > max(e for e in _sizes(stack_env, before_files))  # each output larger than any input
    assert objects_in_lake(stack_env, landed) == landed.objects  # the writer's objects stay in the files lake
    # the next day the closed day's hour files are merged into one
    report = maintain(catalog, sink.identifier, MaintainOptions(), now=LATER)
    assert [c.unit for c in report.compactions] == ["day"]
    assert len(data_files(sink.table)) == 1
    assert scan_counts(sink.table)[1] == ids_before
    assert maintain(catalog, sink.identifier, MaintainOptions(), now=LATER).compactions == []  # nothing left


def _sizes(env, paths):
    s3 = s3_client(env)
    for path in paths:
        bucket, key = path.removeprefix("s3://").split("/", 1)
        yield s3.head_object(Bucket=bucket, Key=key)["ContentLength"]


def test_an_open_hour_is_not_compacted(stack_env, catalog, unique):
    topic = f"open-{unique}"
    landed = land(stack_env, topic, partitions=2, claims_per_partition=2, records_per_claim=500, step_ms=100)
    sink = sink_for(catalog, topic, stack_env)
    sink.commit(landed.claims)
    early = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # the events' hour (00) has not ended
    assert maintain(catalog, sink.identifier, MaintainOptions(), now=early).compactions == []
    assert len(data_files(sink.table)) == landed.objects


def test_compaction_while_a_writer_commits_keeps_every_row_once(stack_env, catalog, unique, monkeypatch):
    """A writer commits claims while maintenance compacts the same hours. First in lockstep: each time
    compaction has written a group's new files, the writer commits a round before compaction commits,
    so every replace must lose its first commit and retry on top of the writer's. Then free-running: a
    thread commits the remaining rounds while maintenance runs again and again. In the end every event
    is in the table once, the offsets are the writer's, and the files are fewer than the objects."""
    from loglake.table import maintain as maintenance

    topic = f"concurrent-{unique}"
    landed = land(
        stack_env, topic, partitions=3, claims_per_partition=12, records_per_claim=600, step_ms=2_000
    )
    identifier = fresh_table()
    writer = sink_for(
        sqlite_catalog(stack_env, _path(catalog)), topic, stack_env, identifier, backoff=Backoff(30)
    )
    rounds = [[c for c in landed.claims if c.start // 600 == r] for r in range(12)]
    for claims in rounds[:3]:
        writer.commit(claims)
    pending = iter(rounds[3:])
    results = []
    real_rewrite = maintenance.rewrite

    def rewrite_then_let_the_writer_commit(table, data_files):
        written = real_rewrite(table, data_files)
        claims = next(pending, None)
        if claims is not None:  # from another thread, as a separate writer process would
            thread = threading.Thread(target=lambda: results.append(writer.commit(claims)))
            thread.start()
            thread.join(120)
        return written

    monkeypatch.setattr(maintenance, "rewrite", rewrite_then_let_the_writer_commit)
    lockstep = maintain(catalog, identifier, MaintainOptions(), now=LATER, backoff=Backoff(30))
    monkeypatch.setattr(maintenance, "rewrite", real_rewrite)
    replaced = [c for c in lockstep.compactions if c.snapshot_id is not None]
    assert results and replaced and all(c.attempts >= 2 for c in replaced), lockstep.compactions

    reports, commits = maintain_while_writing(
        writer,
        list(pending),
        lambda: maintain(catalog, identifier, MaintainOptions(), now=LATER, backoff=Backoff(30)),
        pause=0.2,
    )
    reports.insert(0, lockstep)
    results.extend(commits)
    reports.append(maintain(catalog, identifier, MaintainOptions(), now=LATER, backoff=Backoff(30)))
    rows, ids, coordinates = scan_counts(writer.table)
    assert rows == landed.records and set(ids) == set(landed.event_ids) and set(ids.values()) == {1}
    assert set(coordinates.values()) == {1}
    assert writer.offsets() == {0: 7_200, 1: 7_200, 2: 7_200}
    assert len(data_files(writer.table)) < landed.objects
    compactions = [c for r in reports for c in r.compactions if c.snapshot_id is not None]
    print(
        f"{len(reports)} maintenance runs replaced {len(compactions)} groups "
        f"(commit attempts {[c.attempts for c in compactions]}); "
        f"writer commits retried {sum(r.attempts - 1 for r in results)} times"
    )


def _path(catalog) -> str:
    return catalog.properties["uri"].removeprefix("sqlite:///")


def test_expiry_leaves_no_unreferenced_file_under_the_table(stack_env, catalog, unique):
    topic = f"expire-{unique}"
    landed = land(
        stack_env, topic, partitions=2, claims_per_partition=4, records_per_claim=500, step_ms=3_000
    )
    sink = sink_for(catalog, topic, stack_env)
    for r in range(4):
        sink.commit([c for c in landed.claims if c.start // 500 == r])
    maintain(
        catalog, sink.identifier, MaintainOptions(older_than=timedelta(days=3650)), now=LATER
    )  # compact only
    table = sink.table.refresh()
    assert len(table.metadata.snapshots) >= 5
    listed_before = {uri for uri, _ in table_files(table)}
    assert listed_before - referenced_files(table) == set()  # nothing unreferenced while snapshots live
    report = maintain(catalog, sink.identifier, NO_RETENTION, now=datetime.now(UTC) + timedelta(seconds=1))
    table = sink.table.refresh()
    assert report.expired >= 4 and len(table.metadata.snapshots) == 1
    listed = {uri for uri, _ in table_files(table)}
    referenced = referenced_files(table)
    assert listed - referenced == set(), listed - referenced
    assert report.deleted and all(uri in listed_before for uri in report.deleted)
    data_listed = {u for u in listed if "/data/" in u}
    assert data_listed == set(data_files(table))  # every data file under the table is a live one
    assert (
        objects_in_lake(stack_env, landed) == landed.objects
    )  # the writer's objects are not the table's to delete
    rows, ids, _ = scan_counts(table)
    assert rows == landed.records and set(ids.values()) == {1}
    assert progress_of(table.metadata, topic).offsets == {0: 2_000, 1: 2_000}


def test_a_young_unreferenced_file_is_kept(stack_env, catalog, unique):
    """A file not (yet) referenced may belong to a commit in flight: kept until it is old enough."""
    topic = f"young-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=100)
    sink = sink_for(catalog, topic, stack_env)
    sink.commit(landed.claims)
    table = sink.table.refresh()
    stray = f"{table.location()}/metadata/in-flight-{unique}.avro"
    with table.io.new_output(stray).create() as out:
        out.write(b"a manifest some commit is about to reference")
    deleted, young = delete_orphans(table, datetime.now(UTC) - timedelta(hours=1))
    assert (deleted, young) == ([], 1)
    deleted, young = delete_orphans(table, datetime.now(UTC) + timedelta(seconds=5))
    assert deleted == [stray] and young == 0


def test_the_maintain_command_compacts_and_expires(stack_env, tmp_path, unique):
    topic = f"cli-{unique}"
    landed = land(
        stack_env, topic, partitions=2, claims_per_partition=3, records_per_claim=400, step_ms=1_000
    )
    catalog = sqlite_catalog(stack_env, tmp_path / "catalog.db")
    sink = sink_for(catalog, topic, stack_env)
    for r in range(3):
        sink.commit([c for c in landed.claims if c.start // 400 == r])
    env = {
        "PATH": "/usr/bin:/bin",
        "PYICEBERG_CATALOG__LOGLAKE__URI": f"sqlite:///{tmp_path / 'catalog.db'}",
        "AWS_ENDPOINT_URL": stack_env["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": stack_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": stack_env["AWS_SECRET_ACCESS_KEY"],
        "LAKE_BUCKET": stack_env["LAKE_BUCKET"],
    }
    args = [PYTHON, "-m", "loglake", "table", "maintain", "--table", sink.identifier, "--older-than", "0s"]
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"maintained table={sink.identifier} compacted_groups=") and "\n" not in line
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    assert int(fields["files_in"]) == landed.objects and int(fields["rows_rewritten"]) == landed.records
    assert int(fields["expired_snapshots"]) >= 3 and fields["snapshots_left"] == "1"
    assert fields["deleted_files"] == "0"  # orphans younger than a day are kept by default
    assert int(fields["young_orphans_kept"]) > 0
    rows, ids, _ = scan_counts(open_table(catalog, sink.identifier))
    assert rows == landed.records and set(ids.values()) == {1}
