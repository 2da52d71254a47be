"""`scripts/lake-sql [--format jsonl|parquet] "SQL"`: DuckDB over the lake, with the writer's settings.

The lake's objects of one topic under one prefix become the view `events` (Hive folders `dt=` and
`hour=` as columns), and SQL runs on it in DuckDB (from requirements-dev.txt); the rows and the time
the query took are printed. It reads the same variables as the writer (`AWS_ENDPOINT_URL`, the
`AWS_*` keys, `LAKE_BUCKET`, `LOGLAKE_PREFIX`, `LOGLAKE_TOPIC`, `LOGLAKE_FORMAT`), so after
`eval "$(scripts/stack env)"` it queries the lake the writer fills.

DuckDB reads S3 through its `httpfs` extension, which it downloads on first use; here it is loaded
from the `duckdb-extension-httpfs` package instead (PyPI, pinned beside duckdb), so nothing is
downloaded at run time.

Where the view's objects come from depends on what the S3 server does with a listing's
`encoding-type=url`, which DuckDB sends when it expands a glob and then URL-decodes every key. MinIO
(and AWS) encode the keys and say so in the answer: the view is then a glob
(`s3://BUCKET/PREFIX/TOPIC/dt=*/hour=*/*.parquet`) and DuckDB lists the objects itself. versitygw,
the native stack's default S3 server, ignores the parameter and answers raw keys, which DuckDB would
decode wrongly (the `+` of our keys becomes a space): the view then names its objects one by one,
listed through boto3. One listing of at most one key, asking for the encoding, tells which (its
answer names `EncodingType` only when the server encoded); asking the server rather than guessing
from its name keeps this right for any other server. `--show-view` prints the view's SQL.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loglake import defaults, formats, layout  # noqa: E402
from loglake.errors import LoglakeError, run_cli, setup_logging  # noqa: E402
from loglake.flags import group, parser_for, values_of  # noqa: E402
from loglake.lake import LakeRetriable, S3Store, classify, s3_client  # noqa: E402
from loglake.settings import LakeSettings  # noqa: E402

_query = group("What to query")

# The queries docs/lake-writer.md shows and `scripts/bench writer` times (tests/test_query.py runs the
# docs' commands and checks they are these).
QUERIES = {
    "events by type": "SELECT event_type, count(*) AS events FROM events GROUP BY event_type ORDER BY events DESC",
    "errors of one user in one hour": "SELECT event_time, path, status, error_code FROM events "
    "WHERE user_id = 'u0000002' AND event_type = 'error' AND dt = DATE '2026-01-01' AND hour = 0 "
    "ORDER BY event_time",
}


@dataclass(frozen=True)
class LakeSqlSettings:
    lake: LakeSettings = LakeSettings()
    topic: str = _query(defaults.TOPIC, "--topic", "topic whose objects to query")
    prefix: str = _query("topics", "--prefix", "key prefix the writer used")
    fmt: str = _query("jsonl", "--format", "which objects to query", choices=tuple(formats.FORMATS))
    show_view: bool = _query(False, "--show-view", "print the SQL of the view `events` first", switch=True)
    iceberg: str = _query(
        "",
        "--iceberg",
        "query this Iceberg table (NAMESPACE.TABLE of catalog `loglake`) instead of the objects",
        env="LOGLAKE_ICEBERG_TABLE",
    )


def connect(lake: LakeSettings) -> Any:
    """A DuckDB connection that reads the lake's bucket."""
    import duckdb

    con = duckdb.connect()
    load_extensions(con, "httpfs")
    scheme, _, endpoint = lake.endpoint_url.partition("://")
    con.execute(
        "CREATE SECRET lake (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
        [lake.access_key_id, lake.secret_access_key.get(), lake.region, endpoint, scheme == "https"],
    )
    return con


# Each format's objects as one glob below a topic's Hive folders (`.gz` or not: DuckDB decompresses by
# the name). JSON's `*.json*` also matches JSON Lines objects: the view drops those by file name.
GLOBS = {"parquet": "*.parquet", "jsonl": "*.jsonl*", "json": "*.json*"}
READERS = {
    "parquet": "read_parquet",
    "jsonl": "read_json_auto",  # DuckDB reads the gzip by the name's .gz
    "json": "read_json_auto",
}
HIVE = "hive_partitioning = true, hive_types = {'dt': DATE, 'hour': INTEGER}"


def listing_is_url_encoded(lake: LakeSettings, prefix: str) -> bool:
    """Whether the server URL-encodes the keys of a listing that asks for it (`encoding-type=url`),
    as DuckDB's glob expects: one listing of at most one key."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(lake)
    try:
        answer = client.list_objects_v2(Bucket=lake.bucket, Prefix=prefix, MaxKeys=1, EncodingType="url")
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, lake) from None
    finally:
        client.close()
    return answer.get("EncodingType") == "url"


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load_extensions(con: Any, *names: str) -> None:
    """Load DuckDB extensions from their PyPI packages (`duckdb-extension-NAME`, pinned beside duckdb),
    so nothing is downloaded at run time; without the package, DuckDB installs it itself."""
    for name in names:
        spec = importlib.util.find_spec(f"duckdb_extension_{name}")
        if spec and spec.submodule_search_locations:
            extension = next(Path(spec.submodule_search_locations[0]).rglob(f"{name}.duckdb_extension"))
            con.execute(f"LOAD '{extension}'")
        else:
            con.execute(f"INSTALL {name}; LOAD {name};")


def iceberg_view_sql(s: LakeSqlSettings, con: Any) -> str:
    """`CREATE VIEW events` over the current snapshot of the Iceberg table `s.iceberg`, found through
    pyiceberg's catalog `loglake` (loglake/table/catalog.py), with the lake's `dt` and `hour` computed
    from event_time (UTC) so the same queries run on both. Loads DuckDB's iceberg extension (and avro,
    which it reads manifests with)."""
    from loglake.table.catalog import catalog_settings, configured
    from loglake.table.schema import open_table

    load_extensions(con, "avro", "iceberg")
    metadata = open_table(catalog_settings(s.lake, configured()), s.iceberg, create=False).metadata_location
    scan = "iceberg_scan('" + metadata.replace("'", "''") + "')"
    utc = "timezone('UTC', event_time)"
    return f"CREATE VIEW events AS SELECT *, CAST({utc} AS DATE) AS dt, hour({utc}) AS hour FROM {scan}"  # noqa: S608 - quoted


def view_sql(s: LakeSqlSettings) -> str:
    """`CREATE VIEW events` over the lake's objects of format `s.fmt`: a glob where the server encodes
    listings as DuckDB asks, else the objects named one by one."""
    prefix = layout.topic_prefix(s.prefix, s.topic)
    if listing_is_url_encoded(s.lake, prefix):
        source = (
            f"{READERS[s.fmt]}({quoted(f's3://{s.lake.bucket}/{prefix}dt=*/hour=*/{GLOBS[s.fmt]}')}, {HIVE}"
        )
        if s.fmt == "json":
            return (
                f"CREATE VIEW events AS SELECT * EXCLUDE (filename) FROM {source}, filename = true) "  # noqa: S608
                "WHERE filename NOT LIKE '%.jsonl%'"
            )
        return f"CREATE VIEW events AS SELECT * FROM {source})"  # noqa: S608 - quoted above
    codec = formats.FORMATS[s.fmt]
    store = S3Store(s.lake)
    try:
        keys = [
            key
            for key, _size in store.list(prefix)
            if layout.BOOKKEEPING not in key and formats.format_of_key(key) is codec
        ]
    finally:
        store.close()
    if not keys:
        raise no_objects(s)
    files = ", ".join(quoted(f"s3://{s.lake.bucket}/{key}") for key in keys)
    return f"CREATE VIEW events AS SELECT * FROM {READERS[s.fmt]}([{files}], {HIVE})"  # noqa: S608 - quoted above


def no_objects(s: LakeSqlSettings) -> LoglakeError:
    where = f"s3://{s.lake.bucket}/{layout.topic_prefix(s.prefix, s.topic)}"
    return LoglakeError(f"{where} holds no {s.fmt} objects")


def create_view(con: Any, s: LakeSqlSettings) -> str:
    """Create the view `events` on `con`; its SQL. A glob that matches nothing is said so, in one line."""
    import duckdb

    view = view_sql(s)
    try:
        con.execute(view)
    except duckdb.IOException as exc:
        if "No files found" in str(exc):
            raise no_objects(s) from None
        raise
    return view


def timed(con: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]], float]:
    """(column names, rows as text, seconds) of one query (the rows go through Arrow, as text)."""
    import pyarrow as pa

    started = time.perf_counter()
    table = con.execute(sql).to_arrow_table()
    took = time.perf_counter() - started
    columns = [
        c.cast(pa.string()) if not pa.types.is_nested(c.type) else pa.array(map(str, c.to_pylist()))
        for c in table.columns
    ]
    return table.column_names, list(zip(*(c.to_pylist() for c in columns), strict=True)), took


def render(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    table = [columns, *[[("" if v is None else str(v)) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    return "".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in table
    )


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(LakeSqlSettings, "scripts/lake-sql", __doc__.split("\n\n")[0])
    parser.add_argument("sql", help="the query; the lake's objects are the view `events`")
    ns = parser.parse_args(argv)
    s = values_of(LakeSqlSettings, ns)
    setup_logging(quiet=True)
    con = connect(s.lake)
    try:
        if s.iceberg:
            view = iceberg_view_sql(s, con)
            con.execute(view)
        else:
            view = create_view(con, s)
    except LakeRetriable as exc:
        raise LoglakeError(f"the lake at {s.lake.endpoint_url} did not answer: {exc}") from None
    if s.show_view:
        sys.stdout.write(view + ";\n")
    columns, rows, took = timed(con, ns.sql)
    sys.stdout.write(render(columns, rows))
    sys.stdout.write(f"({len(rows)} rows, {took:.3f} s, {'iceberg ' + s.iceberg if s.iceberg else s.fmt})\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
