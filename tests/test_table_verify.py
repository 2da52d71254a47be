"""The table end to end on the real stack: the real writer lands a topic as Parquet (with bad records
that become dead letters), its claims (read from the lake's ledger) are committed to the table, and
then `verify --iceberg-table` (by the snapshot summaries, and --deep by every row) agrees with Kafka
and with the independent count of tests/oracles.py; a file registered twice is caught; DuckDB's
`iceberg_scan` through `scripts/lake-sql --iceberg` answers as the objects do; the docs' five-line
pyiceberg scan to pandas runs as written."""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import pytest

from benchmarks.lakesql import QUERIES
from loglake.lake import S3Store
from loglake.ledger import Ledger
from loglake.table.commit import TableSink
from loglake.table.schema import open_table
from loglake.verify import verify
from tests.conftest import PYTHON, REPO, clean_env, create_topic, settings_of
from tests.oracles import topic_event_ids
from tests.tables import lake_settings, sqlite_catalog

pytestmark = pytest.mark.integration

EVENTS = 12_000
JUNK = 7
TABLE = "logs.events"  # the name the docs' examples use
DOCS = (REPO / "docs" / "lake-writer.md").read_text()


def run(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in ok, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def lake(stack_env, tmp_path_factory):
    """A topic landed by the real writer as Parquet, its claims, and a catalog on a SQLite file."""
    from confluent_kafka import Producer

    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = create_topic(bootstrap, 3)
    create_topic(bootstrap, 3, name=topic + ".dlq")
    env = clean_env(stack_env)
    run(
        [
            PYTHON,
            "faking_data.py",
            "--topic",
            topic,
            "--count",
            str(EVENTS),
            "--rate",
            "0",
            "--seed",
            "1",
            "--quiet",
        ],
        env,
    )
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(JUNK):
        producer.produce(topic, b'{"event_id": "broken', key=b"junk-%d" % i, partition=i % 3)
    assert producer.flush(30) == 0
    prefix, group = f"test-{topic}", f"g-{topic}"
    writer = [PYTHON, "receive_faking_data.py", "--topic", topic, "--group", group, "--prefix", prefix]
    run([*writer, "--format", "parquet", "--batch-records", "1500", "--exit-when-idle", "3", "--quiet"], env)
    store = S3Store(lake_settings(stack_env))
    try:
        ledger = Ledger(store, prefix, topic)
        claims = [c for p in range(3) for c in ledger.all(p)]
    finally:
        store.close()
    path = tmp_path_factory.mktemp("catalog") / "catalog.db"
    catalog = sqlite_catalog(stack_env, path)
    pyiceberg_env = env | {
        "PYICEBERG_CATALOG__LOGLAKE__URI": f"sqlite:///{path}",
        "PYICEBERG_CATALOG__LOGLAKE__S3__ENDPOINT": stack_env["AWS_ENDPOINT_URL"],
        "PYICEBERG_CATALOG__LOGLAKE__S3__ACCESS_KEY_ID": stack_env["AWS_ACCESS_KEY_ID"],
        "PYICEBERG_CATALOG__LOGLAKE__S3__SECRET_ACCESS_KEY": stack_env["AWS_SECRET_ACCESS_KEY"],
        "PYICEBERG_CATALOG__LOGLAKE__S3__REGION": stack_env["AWS_DEFAULT_REGION"],
        "PYICEBERG_CATALOG__LOGLAKE__WAREHOUSE": f"s3://{stack_env['LAKE_BUCKET']}/iceberg",
    }
    return SimpleNamespace(
        topic=topic,
        prefix=prefix,
        group=group,
        claims=claims,
        catalog=catalog,
        env=pyiceberg_env,
        stack=stack_env,
    )


def check(lake, identifier: str, **kwargs):
    kafka, lake_s = settings_of(lake.stack)
    return verify(
        kafka,
        lake_s,
        lake.topic,
        prefix=lake.prefix,
        group=lake.group,
        iceberg_table=identifier,
        catalog=lake.catalog,
        **kwargs,
    )


def test_verify_by_the_tables_summaries_then_by_every_row(lake):
    assert len(lake.claims) >= 6 and sum(c.dead_letters for c in lake.claims) == JUNK
    sink = TableSink(lake.catalog, TABLE, lake.topic, lake.stack["LAKE_BUCKET"])
    sink.commit([c for c in lake.claims if c.start == 0])  # the first claim of each partition
    half = check(lake, TABLE)
    totals = half.totals()
    assert half.ok and not half.complete and totals["pending"] > 0 and totals["missing"] == 0
    sink.commit(lake.claims)
    result = check(lake, TABLE)
    totals = result.totals()
    assert result.ok and result.complete, result.partitions
    assert (totals["expected"], totals["in_lake"], totals["dead"], totals["duplicated"]) == (
        EVENTS + JUNK,
        EVENTS,
        JUNK,
        0,
    )
    assert result.objects == sum(len(c.objects) for c in lake.claims)  # from the summary, not a listing
    deep = check(lake, TABLE, collect_ids=True)
    assert deep.ok and deep.complete and deep.lines == EVENTS
    assert deep.event_ids == topic_event_ids(lake.stack, lake.topic)  # each event of the topic, once
    output = run(
        [
            PYTHON,
            "-m",
            "loglake",
            "verify",
            "--topic",
            lake.topic,
            "--prefix",
            lake.prefix,
            "--iceberg-table",
            TABLE,
        ],
        lake.env,
    )
    assert (
        f"in_lake={EVENTS} dead_letters={JUNK} missing=0 lost_to_retention=0 pending=0 duplicated=0 "
        "read=metadata result=OK" in output
    )


def test_verify_catches_a_file_registered_twice(lake):
    identifier = "logs.twice"
    sink = TableSink(lake.catalog, identifier, lake.topic, lake.stack["LAKE_BUCKET"])
    sink.commit(lake.claims)
    entry = lake.claims[0].objects[0]
    table = open_table(lake.catalog, identifier)
    table.add_files([f"s3://{lake.stack['LAKE_BUCKET']}/{entry.key}"], check_duplicate_files=False)
    result = check(lake, identifier)
    assert not result.ok
    problems = [text for p in result.partitions for text in p.problems]
    assert any("rows registered twice" in text for text in problems), problems
    deep = check(lake, identifier, deep=True)
    assert not deep.ok and deep.totals()["duplicated"] == entry.records


def test_lake_sql_iceberg_answers_as_the_parquet_objects_do(lake):
    TableSink(lake.catalog, TABLE, lake.topic, lake.stack["LAKE_BUCKET"]).commit(lake.claims)
    env = lake.env | {"LOGLAKE_TOPIC": lake.topic, "LOGLAKE_PREFIX": lake.prefix}
    for sql in [*QUERIES.values(), "SELECT count(*), count(DISTINCT event_id), sum(amount) FROM events"]:
        from_table = run([PYTHON, "-m", "benchmarks.lakesql", "--iceberg", TABLE, sql], env)
        from_objects = run([PYTHON, "-m", "benchmarks.lakesql", "--format", "parquet", sql], env)
        assert from_table.rsplit("(", 1)[0] == from_objects.rsplit("(", 1)[0], (from_table, from_objects)
        assert from_table.rstrip().endswith(f"iceberg {TABLE})")
    counted = run(
        [PYTHON, "-m", "benchmarks.lakesql", "--iceberg", TABLE, "SELECT count(*) AS n FROM events"], env
    )
    assert re.search(rf"^{EVENTS}$", counted, re.M), counted


def test_the_docs_pyiceberg_scan_to_pandas_runs_as_written(lake):
    TableSink(lake.catalog, TABLE, lake.topic, lake.stack["LAKE_BUCKET"]).commit(lake.claims)
    section = DOCS[DOCS.index("## The Iceberg table") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(snippet.strip().splitlines()) <= 5 + 1  # five lines and the blank after the import
    readme = (REPO / "README.md").read_text()
    assert f"```python\n{snippet}```" in readme  # README's tutorial shows the lines this test runs
    output = run([PYTHON, "-c", snippet], lake.env)
    rows = [line.split() for line in output.splitlines() if re.fullmatch(r"[A-Z]{2}\s+[\d.]+", line.strip())]
    assert len(rows) == 5, output
    amounts = [float(amount) for _country, amount in rows]
    assert amounts == sorted(amounts, reverse=True) and amounts[0] > 0
    from benchmarks.lakesql import connect  # the same sums from DuckDB over the objects

    con = connect(lake_settings(lake.stack))
    keys = [f"s3://{lake.stack['LAKE_BUCKET']}/{e.key}" for c in lake.claims for e in c.objects]
    top = con.execute(
        "SELECT country, sum(amount) AS s FROM read_parquet(?) WHERE event_type = 'purchase' "
        "GROUP BY country ORDER BY s DESC LIMIT 5",
        [keys],
    ).fetchall()
    assert [(c, float(a)) for c, a in top] == [(c, float(a)) for c, a in rows]
