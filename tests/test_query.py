"""The DuckDB examples of docs/lake-writer.md run as written against the native stack: the writer lands
a seeded topic as JSON Lines and as Parquet, and every command of the docs' block runs; both formats
answer the same, and the answers are the events'. verify passes on both lakes, by metadata and --deep."""

from __future__ import annotations

import re
import shlex
import uuid
from collections import Counter

import duckdb
import orjson
import pytest

from benchmarks.lakesql import QUERIES, connect
from loglake.events import EVENT_TYPES
from loglake.fake import FakeLogs
from loglake.settings import LakeSettings, Secret
from tests.conftest import REPO, create_topic
from tests.processes import Processes

pytestmark = pytest.mark.integration

EVENTS = 20_000
SEED_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, where a seeded run starts
DOCS = (REPO / "docs" / "lake-writer.md").read_text()


def docs_commands() -> list[str]:
    section = DOCS[DOCS.index("## Query the lake with DuckDB") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [
        line.split("  #")[0].strip() for line in block.splitlines() if line and not line.startswith("eval ")
    ]


def run(processes: Processes, command: str, env: dict[str, str]) -> str:
    """A command of the docs as written (tests/processes.py); its stdout once it has exited 0."""
    code, out, err = processes.command(shlex.split(command), env, "docs").finish(300)
    assert code == 0, f"{command}\n{out}\n{err}"
    return out


def table(output: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of scripts/lake-sql's output (columns apart by two spaces or more)."""
    lines = [line for line in output.splitlines() if not line.startswith(("(", "CREATE VIEW"))]
    header, *rows = [re.split(r"\s{2,}", line.strip()) for line in lines]
    return header, rows


@pytest.fixture(scope="module")
def outputs(stack_env: dict[str, str], module_processes: Processes) -> dict[str, str]:
    """Each command of the docs' block -> its output, run against a fresh topic and a fresh bucket."""
    topic = create_topic(stack_env["KAFKA_BOOTSTRAP_SERVERS"], 3)
    env = stack_env | {"LOGLAKE_TOPIC": topic, "LAKE_BUCKET": f"query-{uuid.uuid4().hex[:8]}"}
    producer = module_processes.producer(env, "--count", str(EVENTS), "--rate", "0", "--seed", "1", "--quiet")
    code, _out, err = producer.finish(300)
    assert code == 0, err
    found = {command: run(module_processes, command, env) for command in docs_commands()}
    for prefix in ("topics", "parquet"):
        for how in ([], ["--deep"]):
            checked = run(
                module_processes, f"python -m loglake verify --prefix {prefix} {' '.join(how)}", env
            )
            assert f"in_lake={EVENTS} " in checked and "result=OK" in checked, checked
    return found


def expected_events() -> list[dict]:
    generator = FakeLogs(seed=1)
    return [orjson.loads(v) for _k, v, _t in generator.records(EVENTS, SEED_START_MS, 1.0)]


def test_the_docs_show_the_queries_the_benchmark_times():
    for sql in QUERIES.values():
        assert sql in DOCS
    assert sum(c.startswith("scripts/lake-sql") for c in docs_commands()) == 5


def test_both_formats_count_the_events_by_type(outputs):
    by_type = [outputs[c] for c in outputs if QUERIES["events by type"] in c]
    assert len(by_type) == 2
    jsonl, parquet = (table(o) for o in by_type)
    assert jsonl == parquet
    counts = {event_type: int(n) for event_type, n in jsonl[1]}
    assert sum(counts.values()) == EVENTS
    assert counts["error"] > 0 and set(counts) <= set(EVENT_TYPES)


def test_both_formats_find_the_same_errors_of_one_user_in_one_hour(outputs):
    found = [outputs[c] for c in outputs if QUERIES["errors of one user in one hour"] in c]
    assert len(found) == 2
    (jsonl_header, jsonl_rows), (parquet_header, parquet_rows) = (table(o) for o in found)
    assert jsonl_header == parquet_header == ["event_time", "path", "status", "error_code"]
    assert jsonl_rows and [r[1:] for r in jsonl_rows] == [r[1:] for r in parquet_rows]
    assert [r[0][:23] for r in jsonl_rows] == [r[0][:23] for r in parquet_rows]  # same instants


def test_generated_events_need_no_raw_copy_and_the_view_is_shown(outputs):
    (output,) = [outputs[c] for c in outputs if "--show-view" in c]
    assert output.startswith("CREATE VIEW events AS SELECT * FROM read_parquet(['s3://")
    assert table(output)[1] == [["0"]]


def test_the_view_names_objects_because_a_glob_fails_on_the_native_s3_server(outputs, stack_env):
    """What the docs say of globs: DuckDB reads the `+` of keys listed by versitygw as a space. Should
    this start to pass, the view can go back to a glob (and the docs should say so)."""
    (output,) = [outputs[c] for c in outputs if "--show-view" in c]
    files = output.splitlines()[0].split("read_parquet(", 1)[1]
    assert "*" not in files and files.count(".parquet'") == 3
    bucket = re.search(r"s3://([^/]+)/", files).group(1)
    settings = LakeSettings(
        endpoint_url=stack_env["AWS_ENDPOINT_URL"],
        access_key_id=stack_env["AWS_ACCESS_KEY_ID"],
        secret_access_key=Secret(stack_env["AWS_SECRET_ACCESS_KEY"]),
        bucket=bucket,
    )
    con = connect(settings)
    with pytest.raises(duckdb.HTTPException, match="404"):
        con.execute(f"SELECT count(*) FROM read_parquet('s3://{bucket}/parquet/*/*/*/*.parquet')").fetchall()


def test_the_counts_are_the_events(outputs):
    """What DuckDB counts is what the producer sent (the same seeded events, regenerated here)."""
    (jsonl, _parquet) = [outputs[c] for c in outputs if QUERIES["events by type"] in c]
    want = Counter(e["event_type"] for e in expected_events())
    got = {t: int(n) for t, n in table(jsonl)[1]}
    assert sum(want.values()) == sum(got.values()) == EVENTS
    assert got == dict(want)
