"""The shared catalog: pyiceberg's SQL catalog on a real PostgreSQL server (`postgresql+psycopg`), as
several writers on several machines would use it. A throwaway server from Debian's package, on
loopback at 5432 + LOGLAKE_TEST_PORT_OFFSET, wiped after (until scripts/stack starts one): two sinks
racing from threads and from processes add each claim once, compaction while a writer commits keeps
every row once, refused credentials are one sentence and a server that is down is retriable."""

from __future__ import annotations

import pytest

from loglake.table.catalog import catalog_settings
from loglake.table.commit import Backoff, TableSink
from loglake.table.errors import TableRetriable, TableUnavailable
from loglake.table.maintain import MaintainOptions, maintain
from loglake.table.schema import open_table
from tests.conftest import BASE_OFFSET
from tests.tables import (
    data_files,
    fresh_table,
    lake_settings,
    land,
    maintain_while_writing,
    port_free,
    postgres,
    postgres_bin,
    race,
    race_processes,
    scan_counts,
)
from tests.test_table_maintain import LATER

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        postgres_bin() is None, reason="PostgreSQL's server is not installed (apt-get install postgresql)"
    ),
]

PORT = 5432 + BASE_OFFSET


@pytest.fixture(scope="module")
def database():
    assert port_free(PORT), f"port {PORT} is taken: another PostgreSQL of this offset is running"
    with postgres(PORT) as uri:
        yield uri


def pg_catalog(env, uri):
    return catalog_settings(lake_settings(env), {"uri": uri})


def test_two_sinks_racing_on_postgresql_commit_each_claim_once(stack_env, database, unique):
    topic = f"pg-race-{unique}"
    landed = land(stack_env, topic, partitions=3, claims_per_partition=6, records_per_claim=400)
    identifier = fresh_table()
    open_table(pg_catalog(stack_env, database), identifier)
    sinks = [
        TableSink(pg_catalog(stack_env, database), identifier, topic, stack_env["LAKE_BUCKET"], Backoff(20))
        for _ in range(2)
    ]
    results = race(sinks, [[c for c in landed.claims if c.start // 400 == r] for r in range(6)])
    assert sum(r.claims for r in results) == len(landed.claims)
    rows, ids, coordinates = scan_counts(sinks[0].table)
    assert rows == landed.records and set(ids.values()) == {1} and set(coordinates.values()) == {1}
    assert len(data_files(sinks[0].table)) == landed.objects
    print(
        f"postgresql, two threads: {sum(r.attempts - 1 for r in results)} commits lost a race and were re-checked"
    )


def test_two_processes_racing_on_postgresql_commit_each_claim_once(stack_env, database, unique):
    topic = f"pg-proc-{unique}"
    landed = land(stack_env, topic, partitions=2, claims_per_partition=5, records_per_claim=300)
    identifier = fresh_table()
    catalog = pg_catalog(stack_env, database)
    open_table(catalog, identifier)
    rounds = [[c for c in landed.claims if c.start // 300 == r] for r in range(5)]
    assert sum(race_processes(catalog, identifier, topic, stack_env["LAKE_BUCKET"], rounds)) == len(
        landed.claims
    )
    rows, ids, _ = scan_counts(open_table(catalog, identifier))
    assert rows == landed.records and set(ids.values()) == {1}


def test_compaction_on_postgresql_while_a_writer_commits(stack_env, database, unique):
    topic = f"pg-compact-{unique}"
    landed = land(
        stack_env, topic, partitions=2, claims_per_partition=8, records_per_claim=500, step_ms=2_000
    )
    identifier = fresh_table()
    writer = TableSink(
        pg_catalog(stack_env, database), identifier, topic, stack_env["LAKE_BUCKET"], Backoff(30)
    )
    rounds = [[c for c in landed.claims if c.start // 500 == r] for r in range(8)]
    writer.commit(rounds[0])
    maintain_while_writing(
        writer,
        rounds[1:],
        lambda: maintain(
            pg_catalog(stack_env, database), identifier, MaintainOptions(), now=LATER, backoff=Backoff(30)
        ),
    )
    maintain(pg_catalog(stack_env, database), identifier, MaintainOptions(), now=LATER)
    rows, ids, _ = scan_counts(writer.table)
    assert rows == landed.records and set(ids) == set(landed.event_ids) and set(ids.values()) == {1}
    assert len(data_files(writer.table)) < landed.objects
    assert writer.offsets() == {0: 4_000, 1: 4_000}


def test_postgresql_refusals_are_one_sentence_and_an_outage_is_retriable(stack_env, database, unique):
    topic = f"pg-errors-{unique}"
    landed = land(stack_env, topic, partitions=1, claims_per_partition=1, records_per_claim=50)
    wrong = database.replace(":loglake-test@", ":wrong@")
    with pytest.raises(TableUnavailable) as refused:
        TableSink(pg_catalog(stack_env, wrong), fresh_table(), topic, "b", Backoff(1)).commit(landed.claims)
    sentence = str(refused.value)
    assert "refused us" in sentence and "password authentication failed" in sentence
    assert "wrong" not in sentence and "\n" not in sentence  # the password is never shown
    nobody = database.replace(f":{PORT}/", f":{PORT + 1}/")  # nothing listens there
    with pytest.raises(TableRetriable, match="did not answer"):
        TableSink(pg_catalog(stack_env, nobody), fresh_table(), topic, "b", Backoff(1)).commit(landed.claims)
