"""Helpers of the Iceberg table tests (tests/test_table*.py): the writer's objects made by the real
Parquet encoder and stored in the stack's S3 server, the claims that describe them, a catalog on a
SQLite file (or PostgreSQL) whose warehouse is that server, and counts read back from the table."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from loglake import layout
from loglake.batch import FolderRecords
from loglake.events import validate
from loglake.fake import FakeLogs
from loglake.formats import FORMATS, Recipe
from loglake.lake import S3Store
from loglake.ledger import Claim, Entry, object_metadata
from loglake.settings import LakeSettings, Secret
from loglake.table.catalog import CatalogSettings, catalog_settings

PARQUET = Recipe(layout="time", format="parquet", compression="zstd")
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: long closed, as compaction wants


def lake_settings(env: dict[str, str], bucket: str | None = None) -> LakeSettings:
    return LakeSettings(
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=Secret(env["AWS_SECRET_ACCESS_KEY"]),
        region=env["AWS_DEFAULT_REGION"],
        bucket=bucket or env["LAKE_BUCKET"],
    )


def sqlite_catalog(env: dict[str, str], path: Path, warehouse: str | None = None) -> CatalogSettings:
    """Catalog `loglake` on the SQLite file `path`, its warehouse in the stack's S3 server."""
    lake = lake_settings(env)
    given = {"uri": f"sqlite:///{path}"}
    if warehouse:
        given["warehouse"] = warehouse
    return catalog_settings(lake, given)


def fresh_table() -> str:
    return f"t{uuid.uuid4().hex[:8]}.events"


@dataclass
class Landed:
    """Objects stored and the claims that describe them, as the writer leaves them."""

    topic: str
    claims: list[Claim]
    event_ids: list[str]

    def of(self, partition: int) -> list[Claim]:
        return [c for c in self.claims if c.partition == partition]

    @property
    def records(self) -> int:
        return sum(c.records for c in self.claims)

    @property
    def objects(self) -> int:
        return sum(len(c.objects) for c in self.claims)


def land(
    env: dict[str, str],
    topic: str,
    partitions: int = 3,
    claims_per_partition: int = 4,
    records_per_claim: int = 2_000,
    step_ms: float = 500.0,
    prefix: str | None = None,
    seed: int = 1,
    start_ms: int = START_MS,
) -> Landed:
    """Generated events encoded by the real Parquet encoder into the objects of claims (one object
    per hour folder per claim, as the writer cuts them), stored in the stack's bucket."""
    prefix = prefix or f"tbl-{uuid.uuid4().hex[:8]}"
    generator = FakeLogs(seed=seed)
    store = S3Store(lake_settings(env))
    claims, ids = [], []
    try:
        for p in range(partitions):
            offset = 0
            at_ms = start_ms
            for _ in range(claims_per_partition):
                records = generator.records(records_per_claim, at_ms, step_ms)
                at_ms += int(records_per_claim * step_ms)
                claim, claim_ids = _claim(store, prefix, topic, p, offset, records)
                claims.append(claim)
                ids.extend(claim_ids)
                offset = claim.end
    finally:
        store.close()
    return Landed(topic, claims, ids)


def _claim(
    store: S3Store,
    prefix: str,
    topic: str,
    partition: int,
    start: int,
    records: list[tuple[bytes, bytes, int]],
) -> tuple[Claim, list[str]]:
    folders: dict[str, FolderRecords] = {}
    ids = []
    for i, (_key, value, timestamp) in enumerate(records):
        date, hour, event_ms = validate(value, PARQUET.max_record_bytes)
        folder = layout.lake_partition("time", date, hour, partition)
        if folder not in folders:
            folders[folder] = FolderRecords(first=start + i)
        folders[folder].append(start + i, timestamp, event_ms, value)
        ids.append(orjson.loads(value)["event_id"])
    entries = []
    bodies = []
    for folder, found in sorted(folders.items(), key=lambda item: item[1].first):
        key = layout.object_key(prefix, topic, folder, partition, found.first, PARQUET.extension)
        entries.append(Entry(key, folder, found.first, found.last, len(found), found.min_ms, found.max_ms))
        bodies.append(FORMATS["parquet"].encode(topic, partition, found, PARQUET))
    claim = Claim(topic, partition, start, start + len(records), PARQUET, tuple(entries), 0, "test", "test")
    for entry, body in zip(entries, bodies, strict=True):
        store.put(entry.key, _with_metadata(body, claim, entry))
    return claim, ids


def _with_metadata(body, claim: Claim, entry: Entry):
    from dataclasses import replace

    return replace(body, metadata=object_metadata(claim, entry))


def scan_counts(table) -> tuple[int, Counter[str], Counter[tuple[int, int]]]:
    """(rows, event id -> count, (partition, offset) -> count) of a full pyiceberg scan."""
    rows = table.refresh().scan(selected_fields=("event_id", "_kafka")).to_arrow()
    kafka = rows.column("_kafka").combine_chunks()
    coordinates = zip(kafka.field("partition").to_pylist(), kafka.field("offset").to_pylist(), strict=True)
    return rows.num_rows, Counter(rows.column("event_id").to_pylist()), Counter(coordinates)


def data_files(table) -> list[str]:
    return table.refresh().inspect.files().column("file_path").to_pylist()


def arrow_rows(table) -> pa.Table:
    return table.refresh().scan().to_arrow()


def race(sinks: list, rounds: list[list[Claim]]) -> list:
    """Each sink commits the same `rounds` of claims from its own thread, all released together at
    each round (as a zombie and a partition's new owner would); the CommitResults of every sink."""
    import threading

    barrier = threading.Barrier(len(sinks))
    results: list[list] = [[] for _ in sinks]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for claims in rounds:
                barrier.wait(timeout=60)
                results[i].append(sinks[i].commit(claims))
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sinks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return [r for rs in results for r in rs]


RACER = """
import sys, orjson
from loglake.ledger import Claim
from loglake.table.catalog import CatalogSettings
from loglake.table.commit import Backoff, TableSink
spec = orjson.loads(sys.stdin.buffer.read())
sink = TableSink(CatalogSettings("loglake", spec["catalog"]), spec["table"], spec["topic"], spec["bucket"], Backoff(20))
added = 0
for claims in spec["rounds"]:
    added += sink.commit([Claim.from_json(orjson.dumps(c)) for c in claims]).claims
print(added)
"""


def race_processes(catalog, identifier: str, topic: str, bucket: str, rounds: list[list[Claim]]) -> list[int]:
    """Two processes commit the same `rounds` of claims to the table, each with its own catalog
    connection; how many claims each added."""
    from tests.conftest import PYTHON, REPO

    spec = orjson.dumps(
        {
            "catalog": dict(catalog.properties),
            "table": identifier,
            "topic": topic,
            "bucket": bucket,
            "rounds": [[orjson.loads(c.to_json()) for c in claims] for claims in rounds],
        }
    )
    racers = [
        subprocess.Popen(
            [PYTHON, "-c", RACER],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(spec, timeout=300) for r in racers]
    assert all(r.returncode == 0 for r in racers), [o[1].decode()[-2000:] for o in outputs]
    return [int(o[0]) for o in outputs]


def maintain_while_writing(
    writer, rounds: list[list[Claim]], maintenance, pause: float = 0.0
) -> tuple[list, list]:
    """A thread commits `rounds` through `writer` (pausing `pause` s between them) while `maintenance()`
    runs again and again until the thread is done, and at least once; (maintenance reports, commits)."""
    import threading
    import time

    done = threading.Event()
    failures: list[BaseException] = []
    results = []

    def write() -> None:
        try:
            for claims in rounds:
                results.append(writer.commit(claims))
                time.sleep(pause)  # paces the commits so that maintenance runs between them
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reports = []
    while not done.is_set() or not reports:
        reports.append(maintenance())
    thread.join(300)
    assert not failures, failures
    return reports, results


# ------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres(port: int, password: str = "loglake-test") -> Iterator[str]:
    """A throwaway PostgreSQL from Debian's package on 127.0.0.1:`port` (password auth), wiped after;
    yields the SQLAlchemy URI of its database `catalog`."""
    binaries = postgres_bin()
    assert binaries is not None, "PostgreSQL is not installed (apt-get install postgresql)"
    root = Path(tempfile.mkdtemp(prefix="loglake-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data = root / "data"
    secret = root / "pw"
    secret.write_text(password)
    if as_user:
        shutil.chown(secret, "postgres")
    run = lambda *args: subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        made = run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "loglake",
            "--auth=scram-sha-256",
            f"--pwfile={secret}",
        )
        assert made.returncode == 0, made.stderr
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
        started = run(
            str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        )
        assert started.returncode == 0, started.stderr + (root / "log").read_text()
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=loglake password={password} dbname=postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE catalog")
        yield f"postgresql+psycopg://loglake:{password}@127.0.0.1:{port}/catalog"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
