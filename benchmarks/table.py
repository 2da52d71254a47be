"""`python -m benchmarks.table`: the CPU a table commit costs the writer's process, per commit and per
registered file, on the running stack (`eval "$(scripts/stack env)"` first; S3 from the stack, the
catalog on a SQLite file in a temporary folder).

Objects are made by the real Parquet encoder (tests/tables.py `land`: generated events, one object per
claim), then committed in three ways, each timed by the process's CPU time (all threads; the S3
server's own CPU is not counted):
- one claim of one object per commit, `--commits` times in a row: the fixed cost of a snapshot, as
  the table's history grows (its metadata file lists every snapshot);
- `--files` objects in one commit, footers read from S3 (as a restarted writer repairs): the cost
  per file is (this - one file's commit) / (files - 1);
- the same with the footers handed in from memory (as the writer can, having just encoded them).
Then `table maintain` compacts what was committed, timed the same way.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import cpu_model, say
from loglake.settings import LakeSettings
from loglake.table.catalog import catalog_settings
from loglake.table.commit import TableSink
from loglake.table.datafiles import footer_of
from loglake.table.maintain import MaintainOptions, maintain


def cpu_ms(action) -> tuple[float, float]:
    """(CPU ms, wall ms) of `action()`."""
    cpu, wall = time.process_time(), time.perf_counter()
    action()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=60, help="commits of one file each")
    parser.add_argument("--files", type=int, default=60, help="files in the one large commit")
    parser.add_argument("--records", type=int, default=2_000, help="events per object")
    args = parser.parse_args()
    from loglake.flags import parser_for, values_of

    lake = values_of(LakeSettings, parser_for(LakeSettings, "x", "").parse_args([]))
    from tests.tables import land

    env = {
        "AWS_ENDPOINT_URL": lake.endpoint_url,
        "AWS_ACCESS_KEY_ID": lake.access_key_id,
        "AWS_SECRET_ACCESS_KEY": lake.secret_access_key.get(),
        "AWS_DEFAULT_REGION": lake.region,
        "LAKE_BUCKET": lake.bucket,
    }
    say(f"machine: {cpu_model()}")
    started = time.perf_counter()
    small = land(env, f"bench-{uuid.uuid4().hex[:6]}", 1, args.commits, args.records, step_ms=1.0)
    large = land(env, f"bench-{uuid.uuid4().hex[:6]}", 1, args.files, args.records, step_ms=1.0)
    memory = land(env, f"bench-{uuid.uuid4().hex[:6]}", 1, args.files, args.records, step_ms=1.0)
    say(
        f"encoded and stored {small.objects + large.objects + memory.objects} objects in {time.perf_counter() - started:.0f} s"
    )
    with tempfile.TemporaryDirectory() as folder:
        catalog = catalog_settings(lake, {"uri": f"sqlite:///{Path(folder) / 'catalog.db'}"})
        one = TableSink(catalog, f"bench{uuid.uuid4().hex[:6]}.events", small.topic, lake.bucket)
        one.offsets()  # creates the table: not timed
        times = [cpu_ms(lambda c=c: one.commit([c])) for c in small.claims]
        cpu = [t[0] for t in times]
        say(
            f"one file per commit, {len(cpu)} commits: CPU ms median {statistics.median(cpu):.1f}, "
            f"wall ms median {statistics.median(t[1] for t in times):.1f}; CPU ms median by snapshots "
            "already in the table: "
            + ", ".join(
                f"{i}-{min(i + 50, len(cpu)) - 1}: {statistics.median(cpu[i : i + 50]):.1f}"
                for i in range(0, len(cpu), 50)
            )
        )
        base = statistics.median(cpu[:10])
        many = TableSink(catalog, f"bench{uuid.uuid4().hex[:6]}.events", large.topic, lake.bucket)
        many.offsets()
        cpu_many, wall_many = cpu_ms(lambda: many.commit(large.claims))
        say(
            f"{args.files} files in one commit, footers read from S3: CPU {cpu_many:.0f} ms, wall {wall_many:.0f} ms; "
            f"per file {(cpu_many - base) / (args.files - 1):.2f} ms CPU"
        )
        footers = _footers(env, memory)
        mem = TableSink(catalog, f"bench{uuid.uuid4().hex[:6]}.events", memory.topic, lake.bucket)
        mem.offsets()
        cpu_mem, wall_mem = cpu_ms(lambda: mem.commit(memory.claims, footers))
        say(
            f"{args.files} files in one commit, footers from memory: CPU {cpu_mem:.0f} ms, wall {wall_mem:.0f} ms; "
            f"per file {(cpu_mem - base) / (args.files - 1):.2f} ms CPU"
        )
        later = datetime(2026, 1, 3, tzinfo=UTC)
        report = None

        def compact() -> None:
            nonlocal report
            report = maintain(catalog, one.identifier, MaintainOptions(), now=later)

        cpu_c, wall_c = cpu_ms(compact)
        done = [c for c in report.compactions if c.snapshot_id is not None]
        say(
            f"maintain of the one-file-per-commit table: {sum(c.files_in for c in done)} files "
            f"({sum(c.bytes_in for c in done) / 2**20:.1f} MiB, {sum(c.rows for c in done)} rows) into "
            f"{sum(c.files_out for c in done)}: CPU {cpu_c:.0f} ms, wall {wall_c:.0f} ms"
        )
    return 0


def _footers(env: dict[str, str], landed) -> dict:
    """key -> (footer, size) of the landed objects, read once here as the writer would hold them."""
    from tests.conftest import s3_client

    s3 = s3_client(env)
    found = {}
    for claim in landed.claims:
        for entry in claim.objects:
            body = s3.get_object(Bucket=env["LAKE_BUCKET"], Key=entry.key)["Body"].read()
            found[entry.key] = (footer_of(body), len(body))
    return found


if __name__ == "__main__":
    raise SystemExit(main())
