"""The writer with an Iceberg table (`--iceberg-table`), on the real stack: pyiceberg's SQL catalog on
a real SQLite file or a real PostgreSQL server, the table's files in the real S3 server, real Kafka,
writers that are SIGKILLed, cut off from the lake, and rebalanced.

Each scenario ends with three checks that share nothing with the writer's bookkeeping but the table:
- every event id the topic holds is in the table exactly once, counted from a pyiceberg scan of the
  table (and every id the producer got an acknowledgement for);
- `verify --iceberg-table` (by the table's snapshot summaries) is OK to the end of every partition,
  and with `--deep` (every row's Kafka coordinates) too;
- `verify` of the files lake is OK: the table's data files are the lake's objects.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from loglake.stack.environment import ICEBERG_KEYS
from loglake.table.catalog import CatalogSettings
from loglake.table.schema import open_table
from loglake.verify import verify
from tests.conftest import extra_stack, record, settings_of
from tests.oracles import each_event_once
from tests.processes import Child, Processes
from tests.s3proxy import FlakyS3Proxy
from tests.tables import postgres_bin, scan_counts
from tests.test_faults import start_producer, topic_flags, wait_caught_up
from tests.test_faults_core import release_and_finish
from tests.waiting import wait_until

OBJECTS = re.compile(r" objects=(\d+) ")
TABLE_COMMIT = ": committed "  # tablecommit.py's line for a commit that added claims
REPAIRED = "are not in the table yet: they go into its next commit"


def catalog_of(env: dict[str, str]) -> CatalogSettings:
    """The catalog `loglake` a stack's environment names (as pyiceberg reads it from there)."""
    return CatalogSettings("loglake", {key: env[var] for key, var in ICEBERG_KEYS.items() if var in env})


def with_sqlite(env: dict[str, str], path: Path) -> dict[str, str]:
    """`env` with the catalog on a SQLite file of the test's own."""
    return env | {ICEBERG_KEYS["uri"]: f"sqlite:///{path}"}


def table_writer(processes: Processes, env: dict[str, str], topic: str, table: str, *extra: str) -> Child:
    flags = ["--format", "parquet", "--iceberg-table", table, "--progress-every", "1"]
    return processes.writer(env, *topic_flags(topic), *flags, *extra)


def landed_after_a_table_commit(writer: Child) -> bool:
    """Since the writer's last table commit, an object landed that the table does not hold yet (its
    progress lines after that commit show the object count growing)."""
    lines = writer.lines()
    commits = [i for i, line in enumerate(lines) if TABLE_COMMIT in line]
    if not commits:
        return False
    after = [int(m.group(1)) for line in lines[commits[-1] + 1 :] if (m := OBJECTS.search(line))]
    return len(after) >= 2 and after[-1] > after[0]


def table_exactly_once(
    env: dict[str, str], topic: str, table: str, acked: Path | None = None, dead: int = 0
) -> dict[str, int]:
    """The three checks of the module's text; the table's figures."""
    kafka, lake = settings_of(env)
    catalog = catalog_of(env)
    prefix, group = f"faults-{topic}", f"g-{topic}"
    for deep in (False, True):
        result = verify(kafka, lake, topic, prefix, group, iceberg_table=table, catalog=catalog, deep=deep)
        assert result.complete, (deep, result.totals(), [p.problems for p in result.partitions])
        assert result.totals()["dead"] == dead, result.totals()
    files = verify(kafka, lake, topic, prefix, group)
    assert files.complete, files.totals()
    rows, ids, coordinates = scan_counts(open_table(catalog, table, create=False))
    assert max(coordinates.values(), default=1) == 1, "an offset twice in the table"
    each_event_once(env, topic, ids, acked, "the table")
    snapshots = len(open_table(catalog, table, create=False).metadata.snapshots)
    return {"rows": rows, "snapshots": snapshots, **files.totals()}


@pytest.mark.faults
def test_three_sigkills_of_a_table_writer_during_300000_events_leave_every_event_once_in_the_table(
    processes, stack_env, new_topic, tmp_path
):
    """300,000 events at 5,000/s; a writer with the table is SIGKILLed three times, each time once it
    has landed objects after its last table commit (so the table lacks claims the lake has); the next
    writer finds them at resolution and commits them. Then one more writer to the end."""
    topic = new_topic(3)
    table = f"faults.t{uuid.uuid4().hex[:8]}"
    env = with_sqlite(stack_env, tmp_path / "catalog.db")
    ids = tmp_path / "acked.txt"
    began = time.monotonic()
    producer = start_producer(processes, env, topic, 300_000, 5_000, ids)
    flags = ("--batch-records", "20000", "--batch-age", "1", "--table-commit-interval", "5")
    killed = []
    for _ in range(3):
        w = table_writer(processes, env, topic, table, *flags)
        wait_until(
            lambda w=w: landed_after_a_table_commit(w), 120, "objects landed after a table commit", alive=[w]
        )
        w.kill()
        killed.append(w)
    assert producer.poll() is None, (
        "the producer finished before the third kill: the kills were not during the events"
    )
    code, _out, err = producer.finish(240)
    assert code == 0, err
    final = table_writer(processes, env, topic, table, *flags, "--exit-when-idle", "5")
    code, out, _err = final.finish(300)
    assert code == 0, final.text()[-3000:]
    assert "unlanded=0" in out, final.text()[-3000:]
    took = time.monotonic() - began
    repaired = [w for w in [*killed[1:], final] if REPAIRED in w.text()]
    assert repaired, "no restart found landed claims missing from the table: the kills missed the window"
    totals = table_exactly_once(env, topic, table, ids)
    assert totals["rows"] == 300_000
    record(
        "table on (SQLite catalog): a writer SIGKILLed 3 times with objects landed after its last table "
        f"commit; {len(repaired)} restarts committed the claims the table lacked",
        300_000,
        300_000,
        totals,
        f"{took:.0f} s in all; {totals['snapshots']} snapshots",
    )


@pytest.mark.faults
def test_a_rebalance_during_a_lake_outage_with_two_table_writers_leaves_every_event_once(
    processes, stack_env, new_topic, tmp_path
):
    """Writer A reaches the lake (its objects, and the table's files through pyiceberg) through a
    proxy that starts holding its requests; writer B joins, takes partitions from A, lands them and
    commits them to the table; then A's held requests reach S3 late."""
    topic = new_topic(3)
    table = f"faults.t{uuid.uuid4().hex[:8]}"
    env = with_sqlite(stack_env, tmp_path / "catalog.db")
    ids = tmp_path / "acked.txt"
    producer = start_producer(processes, env, topic, 40_000, 2_000, ids)
    flags = ("--batch-records", "2000", "--table-commit-interval", "3")
    with FlakyS3Proxy(stack_env["AWS_ENDPOINT_URL"], fail_rate=0, drop_rate=0, max_delay=0) as proxy:
        through_proxy = env | {"AWS_ENDPOINT_URL": proxy.url, ICEBERG_KEYS["s3.endpoint"]: proxy.url}
        a = table_writer(processes, through_proxy, topic, table, *flags)
        a.wait_for("assigned partitions [0, 1, 2]", 60)
        a.wait_for(TABLE_COMMIT, 60)
        proxy.mode = "hold"  # from here A's requests hang, and will reach S3 later
        a.wait_for("failed", 60)  # an upload or a table commit of A timed out
        b = table_writer(processes, env, topic, table, *flags)
        a.wait_for("revoked", 90)
        b.wait_for(TABLE_COMMIT, 90)  # B lands what it got and commits it to the table
        held, late_answers, recovered = release_and_finish(proxy, producer, env, topic, [a, b])
    assert held >= 1, proxy.counts
    totals = table_exactly_once(env, topic, table, ids)
    assert totals["rows"] == 40_000
    record(
        f"table on: rebalance while one writer's lake and table requests hang ({held} held, answers "
        f"{late_answers}), two writers",
        40_000,
        40_000,
        totals,
        f"caught up {recovered:.1f} s after the link came back; {totals['snapshots']} snapshots",
    )


@pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL's server is not installed (apt-get install postgresql)"
)
def test_two_table_writers_on_a_postgresql_catalog_through_a_lake_outage_and_a_sigkill_leave_every_event_once(
    processes, tmp_path
):
    """The shared catalog: a stack of its own with PostgreSQL (`scripts/stack up --postgres`), two
    writers on one table. A reaches S3 (its objects and the table's files) through a proxy that starts
    holding its requests; B joins and takes partitions from A during the outage; the held requests
    reach S3 late; then A is SIGKILLed with objects landed after its last table commit, and C joins."""
    with extra_stack("pgtable", "--postgres") as env:
        assert env[ICEBERG_KEYS["uri"]].startswith("postgresql+psycopg://"), env[ICEBERG_KEYS["uri"]]
        from tests.conftest import create_topic

        topic = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3)
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, name=topic + ".dlq")
        table = f"faults.t{uuid.uuid4().hex[:8]}"
        ids = tmp_path / "acked.txt"
        producer = start_producer(processes, env, topic, 60_000, 2_000, ids)
        flags = ("--batch-records", "2000", "--batch-age", "1", "--table-commit-interval", "3")
        with FlakyS3Proxy(env["AWS_ENDPOINT_URL"], fail_rate=0, drop_rate=0, max_delay=0) as proxy:
            through_proxy = env | {"AWS_ENDPOINT_URL": proxy.url, ICEBERG_KEYS["s3.endpoint"]: proxy.url}
            a = table_writer(processes, through_proxy, topic, table, *flags)
            a.wait_for(TABLE_COMMIT, 90)
            proxy.mode = "hold"
            a.wait_for("failed", 60)
            b = table_writer(processes, env, topic, table, *flags)
            a.wait_for("revoked", 90)
            b.wait_for(TABLE_COMMIT, 90)
            held = proxy.counts["held"]
            proxy.mode = "pass"  # A's held requests reach S3 now, after B's
            wait_until(
                lambda: landed_after_a_table_commit(a), 90, "A landing after its last table commit", alive=[a]
            )
            a.kill()
        code, _out, err = producer.finish(120)
        assert code == 0, err
        c = table_writer(processes, env, topic, table, *flags)
        wait_caught_up(env, topic)
        for w in (b, c):
            code, _out, _err = w.stop()
            assert code == 0, w.text()[-3000:]
        assert held >= 1, proxy.counts
        assert any(REPAIRED in w.text() for w in (b, c)), "A's landed claims were not found for the table"
        totals = table_exactly_once(env, topic, table, ids)
        assert totals["rows"] == 60_000
        record(
            f"table on a PostgreSQL catalog, two writers: A's lake and table requests held ({held}) while B "
            "takes partitions, then A SIGKILLed with objects landed after its last table commit, C to the end",
            60_000,
            60_000,
            totals,
            f"{totals['snapshots']} snapshots",
        )


@pytest.mark.faults
def test_table_snapshots_are_bounded_by_the_commit_interval_not_by_the_batches(
    processes, stack_env, new_topic, tmp_path
):
    """40 s at 300 events/s with batches cut every second: the table takes one snapshot per 5 s
    interval of the writer's life (and one when it drains), while the lake gets an object per
    partition and batch."""
    topic = new_topic(3)
    table = f"faults.t{uuid.uuid4().hex[:8]}"
    env = with_sqlite(stack_env, tmp_path / "catalog.db")
    interval = 5.0
    producer = start_producer(processes, env, topic, 300 * 40, 300, tmp_path / "acked.txt")
    w = table_writer(
        processes, env, topic, table, "--batch-age", "1", "--table-commit-interval", str(interval)
    )
    code, _out, err = producer.finish(120)
    assert code == 0, err
    wait_caught_up(env, topic)
    code, out, _err = w.stop()
    assert code == 0, w.text()[-3000:]
    objects = int(re.search(r"objects=(\d+)", out).group(1))
    table_commits = int(re.search(r"table_commits=(\d+)", out).group(1))
    lived = float(re.search(r"elapsed=([\d.]+)s", out).group(1))
    snapshots = len(open_table(catalog_of(env), table, create=False).metadata.snapshots)
    assert snapshots == table_commits
    assert snapshots <= lived // interval + 1, (snapshots, lived)  # one per interval, and the drain's
    assert objects >= 5 * snapshots, (objects, snapshots)  # an object per partition and batch: many more
    totals = table_exactly_once(env, topic, table)
    assert totals["rows"] == 12_000
    record(
        f"table on: {lived:.0f} s of a writer at 300 events/s, batches every second, commit interval "
        f"{interval:g} s: {objects} objects, {snapshots} snapshots",
        12_000,
        12_000,
        totals,
        "snapshots bounded by the interval",
    )


@pytest.mark.integration
def test_a_transactional_topic_leaves_offsets_without_records_that_the_table_counts_absent(
    processes, stack_env, new_topic, tmp_path
):
    """Transactions leave offsets no consumer sees (their commit and abort markers, the aborted
    records): the table's summary counts them absent, and verify --iceberg-table is OK."""
    from confluent_kafka import Producer

    from loglake.table.progress import progress_of

    topic = new_topic(3)
    table = f"faults.t{uuid.uuid4().hex[:8]}"
    env = with_sqlite(stack_env, tmp_path / "catalog.db")
    assert start_producer(processes, env, topic, 3_000, 0, tmp_path / "acked.txt").finish(120).returncode == 0
    producer = Producer(
        {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "transactional.id": f"tx-{topic}"}
    )
    producer.init_transactions(30)
    for n, commit in enumerate(
        (True, False, True)
    ):  # a committed transaction, an aborted one, a committed one
        producer.begin_transaction()
        for i in range(30):
            event = (
                b'{"event_id":"tx-%d-%d","event_time":"2026-12-01T10:00:00Z","event_type":"page_view"}'
                % (n, i)
            )
            producer.produce(topic, event, partition=i % 3)
        assert producer.flush(30) == 0  # in the log before the abort, or the abort leaves no trace
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
    assert start_producer(processes, env, topic, 1_000, 0, tmp_path / "more.txt").finish(120).returncode == 0
    w = table_writer(processes, env, topic, table, "--exit-when-idle", "3", "--table-commit-interval", "2")
    code, _out, _err = w.finish(180)
    assert code == 0, w.text()[-3000:]
    progress = progress_of(open_table(catalog_of(env), table, create=False).metadata, topic)
    assert sum(progress.absent.values()) >= 3 * 3 + 30, (
        progress
    )  # a marker per partition and transaction, 30 aborted
    assert sum(progress.lost.values()) == 0 and sum(progress.records.values()) == 4_000 + 60
    totals = table_exactly_once(env, topic, table)
    assert totals["rows"] == 4_060
