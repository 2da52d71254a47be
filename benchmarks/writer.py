"""Writer benchmark: `scripts/bench writer [--events N] [--runs R] [--peers] [--format jsonl|json|parquet]
[--iceberg-table]`.

1. fills a fresh 3-partition topic with N generated events (faking_data.py --rate 0 --seed 1; N:
   1,000,000), once per invocation; then each run, with a fresh consumer group and lake prefix:
2. receive_faking_data.py (defaults and --format, but --idle-flush 1 so the tail is not held back by
   the idle timer) lands them: the time from its start until the group's committed offsets cover
   all N (so everything is in the lake and committed), in events/s and MB/s of event JSON; the
   writer's CPU seconds (user + system, all its threads) per million events and its peak RSS (wait4);
   and, from its progress lines (every 0.25 s), where the time went: start-up until the first
   records, the rate it reads at while landing, and the tail from the last record until all is in;
3. Kafka's own kafka-consumer-perf-test from the same jars reads the same topic, same N, with a
   fresh group, in the same run (its JVM's CPU and peak RSS too): its rate as it reports it (the
   ratio's, as issue #14 defines it: without the JVM's start) and from its start to its exit;
4. python -m loglake verify on the result, by metadata and with --deep, timed (the figures only
   count if both pass); the lake's bytes per event (the objects' sizes, listed);
5. the query examples of docs/lake-writer.md (benchmarks/lakesql.py QUERIES) in DuckDB over the
   lake just written, timed (median of 3);
6. with --iceberg-table (Parquet), in the same run, the writer again with an Iceberg table
   (`--iceberg-table`, a fresh table per run in pyiceberg's catalog `loglake` of the environment,
   `--table-commit-interval` as given here, 5 s by default, `--exit-when-idle 1`: its group's
   offsets follow the table's, so the end is when the table holds all N), timed and measured as
   the files-only run, then `verify --iceberg-table` on it (the figures only count if it passes);
   and the floor of the writer's own client (benchmarks/floor.py: confluent-kafka reading the topic
   with the writer's fetch settings, touching each value, nothing else), from its start to its
   exit; the table's cost against the files-only run in events/s and CPU-s per million events;
7. with --peers, the tools a user would pick instead land the same topic (benchmarks/peers.py):
   Quix Streams' S3FileSink, timed and measured the same way, its objects read back and its records
   and distinct event_ids counted; and a Kafka Connect S3 sink if Maven Central serves one (it says
   which it asked for when none is served). A comparison line per peer: ours / peer in events/s and
   in CPU-seconds per million events.

Each run prints its figures and the load average before and after it; then every figure's median
and spread (min-max) over the runs. The last line is `ratio=<median of ours / Kafka's tool> ...`.
`--json FILE` also writes the figures to FILE's "writer" section (Image/bench-results.json feeds
Image/plot_bench.py). It brings nothing up: it uses the stack of the environment
(KAFKA_BOOTSTRAP_SERVERS, AWS_*; `scripts/bench` takes it from `scripts/stack env`, of the instance
LOGLAKE_STACK_NAME names) and deletes the topics it created; the lakes stay under the prefixes
`bench-<topic>-<run>` (ours) and `peer_quix_<id>` (Quix Streams). The figures are only comparable
between runs on an equally loaded machine: the load average says how loaded it was.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common, peers  # noqa: E402
from benchmarks.common import Figure, Runs, say  # noqa: E402
from benchmarks.landing import land  # noqa: E402
from benchmarks.producer import delete_topics, new_topic, topic_size  # noqa: E402


@dataclass
class Options:
    bootstrap: str
    topic: str
    events: int
    megabytes: float  # of event JSON in the topic, as Kafka's tool counts them
    fmt: str
    writer_args: list[str]
    quix: list[str]  # the Quix Streams sinks to run (keys of peers.QUIX_SINKS); none without --peers
    table_interval: float = 0.0  # with --iceberg-table: the table run's --table-commit-interval (0: none)


def ours(o: Options, prefix: str, figures: dict[str, float], key: str = "ours", *extra: str) -> str:
    """receive_faking_data.py (with `extra` flags) lands the topic under `prefix`; its figures into
    `figures` under `key`; its group."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    argv = [
        sys.executable,
        "receive_faking_data.py",
        "--topic",
        o.topic,
        "--group",
        group,
        "--prefix",
        prefix,
    ]
    idle = "1" if extra else "3"  # with a table, the drain's commit is the last: exit as soon as idle
    argv += ["--progress-every", str(PROGRESS_EVERY), "--exit-when-idle", idle, *o.writer_args, *extra]
    landed = land("the writer", argv, o.bootstrap, o.topic, group, o.events)
    objects = int(re.search(r"objects=(\d+)", landed.stdout).group(1))
    figures.update(
        {
            f"{key}_eps": o.events / landed.seconds,
            f"{key}_cpu_s_per_million": common.per_million(landed.usage.cpu, o.events),
            f"{key}_peak_rss_mib": landed.usage.peak_rss_mib,
            "objects" if key == "ours" else f"{key}_objects": objects,
        }
    )
    if found := re.search(r"table_commits=(\d+)", landed.stdout):
        figures[f"{key}_commits"] = int(found.group(1))
    points = progress_points(landed.stderr, landed.started_at)
    figures.update(
        {k.replace("ours", key, 1): v for k, v in timeline(points, o.events, landed.seconds).items()}
    )
    return group


PROGRESS_EVERY = 0.25  # seconds between the writer's progress lines: the run's timeline comes from them
_PROGRESS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO loglake\.consume: records=(\d+) ", re.M)


def progress_points(stderr: str, started_at: float) -> list[tuple[float, int]]:
    """(seconds since the writer's start, records read by then) from its progress lines (its log's
    times are local wall-clock times to the millisecond)."""
    points = []
    for stamp, records in _PROGRESS.findall(stderr):
        moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        points.append((moment - started_at, int(records)))
    return points


def timeline(points: list[tuple[float, int]], events: int, landed_s: float) -> dict[str, float]:
    """Where a run's time went: until the first records were read (start-up: imports, clients,
    joining the group), the rate of reading between the first and the last progress line that
    saw part of the topic (the steady state, while landing), and the tail from the last record
    (estimated at that rate) until everything was landed and committed. Empty when too few lines
    fell inside the run to tell (a small --events)."""
    reading = [(t, r) for t, r in points if 0 < r < events]
    if len(reading) < 2 or reading[-1][1] == reading[0][1]:
        return {}
    (t0, r0), (t1, r1) = reading[0], reading[-1]
    steady = (r1 - r0) / (t1 - t0)
    last_record = t1 + (events - r1) / steady
    return {"ours_startup_s": t0, "ours_steady_eps": steady, "ours_tail_s": landed_s - last_record}


def table_and_floor(o: Options, figures: dict[str, float], number: int) -> None:
    """The writer with an Iceberg table, verified by the table; the floor of its Kafka client; each
    against the files-only run of the same run."""
    table = f"bench.w{o.topic.replace('-', '_')}_{number}"
    group = ours(
        o,
        f"bench-{o.topic}-table-{number}",
        figures,
        "table",
        "--iceberg-table",
        table,
        "--table-commit-interval",
        f"{o.table_interval:g}",
    )
    figures["table_verify_s"] = verify_seconds(
        o.topic, f"bench-{o.topic}-table-{number}", group, "--iceberg-table", table
    )
    usage, out = common.run_measured(
        [sys.executable, "-m", "benchmarks.floor", "--topic", o.topic, "--events", str(o.events)],
        "the client floor",
    )
    if f"records={o.events} " not in out:
        raise SystemExit(f"the client floor read other than {o.events:,} records: {out.strip()}")
    figures.update(
        floor_eps=o.events / usage.seconds,
        floor_cpu_s_per_million=common.per_million(usage.cpu, o.events),
        table_over_files_eps=figures["table_eps"] / figures["ours_eps"],
        table_over_files_cpu=figures["table_cpu_s_per_million"] / figures["ours_cpu_s_per_million"],
    )
    say(
        f"writer --iceberg-table (commit interval {o.table_interval:g} s) on {common.cpu_model()}: "
        f"{figures['table_eps']:,.0f} events/s, {figures['table_cpu_s_per_million']:.1f} CPU-s per million "
        f"events, {figures['table_objects']:.0f} objects in {figures.get('table_commits', 0):.0f} table commits, "
        f"peak RSS {figures['table_peak_rss_mib']:.0f} MiB; against the files-only run: "
        f"{figures['table_over_files_eps']:.2f} in events/s ({figures['ours_eps']:,.0f} files-only), "
        f"{figures['table_over_files_cpu']:.2f} in CPU-s per million ({figures['ours_cpu_s_per_million']:.1f} "
        f"files-only); verify --iceberg-table {figures['table_verify_s']:.1f} s"
    )
    if "table_steady_eps" in figures:
        say(
            f"writer --iceberg-table timeline: {figures['table_steady_eps']:,.0f} events/s read while landing "
            f"(files-only {figures.get('ours_steady_eps', 0):,.0f}); everything in the table and committed "
            f"{figures['table_tail_s']:.2f} s after the last record"
        )
    say(
        f"client floor (confluent-kafka, the writer's fetch settings, each value touched) on "
        f"{common.cpu_model()}: {figures['floor_eps']:,.0f} events/s from its start to its exit, "
        f"{figures['floor_cpu_s_per_million']:.1f} CPU-s per million events"
    )


def verify_seconds(topic: str, prefix: str, group: str, *how: str) -> float:
    """Seconds `python -m loglake verify` takes on the benchmark's lake; exits if it does not pass."""
    args = ["--topic", topic, "--prefix", prefix, "--group", group, *how]
    usage, out = common.run_measured(
        [sys.executable, "-m", "loglake", "verify", *args], "verify (the figures do not count)"
    )
    say(out.strip().splitlines()[-1] if out.strip() else "verify printed nothing")
    return usage.seconds


def lake_bytes(topic: str, prefix: str, fmt: str) -> int:
    """Bytes of the objects of format `fmt` the benchmark's writer stored."""
    from loglake import formats, layout
    from loglake.flags import Parser, values_of
    from loglake.lake import S3Store
    from loglake.settings import LakeSettings

    lake = values_of(LakeSettings, Parser(LakeSettings, prog="bench").parse_args([]))
    store = S3Store(lake)
    try:
        listed = store.list(layout.topic_prefix(prefix, topic))
        codec = formats.FORMATS[fmt]
        return sum(size for key, size in listed if formats.format_of_key(key) is codec)
    finally:
        store.close()


def query_seconds(topic: str, prefix: str, fmt: str) -> dict[str, float]:
    """Median seconds of 3 runs of each query of the docs, on the benchmark's lake."""
    from benchmarks.lakesql import QUERIES, LakeSqlSettings, connect, timed, view_sql
    from loglake.flags import Parser, values_of

    s = values_of(LakeSqlSettings, Parser(LakeSqlSettings, prog="bench").parse_args([]))
    s = type(s)(lake=s.lake, topic=topic, prefix=prefix, fmt=fmt)
    con = connect(s.lake)
    con.execute(view_sql(s))
    found = {}
    for name, sql in QUERIES.items():
        runs = [timed(con, sql) for _ in range(3)]
        found[name] = statistics.median(took for _columns, _rows, took in runs)
        say(f"query {name!r} on {fmt}: {len(runs[0][1])} rows, {found[name]:.3f} s (median of 3)")
    return found


def kafka_tool(o: Options, figures: dict[str, float]) -> None:
    """kafka-consumer-perf-test on the topic, as it reports itself; its JVM's CPU and peak RSS."""
    args = ["--bootstrap-server", o.bootstrap, "--topic", o.topic, "--messages", str(o.events)]
    args += ["--group", f"perf-{uuid.uuid4().hex[:8]}", "--timeout", "60000"]
    usage, out = common.run_measured(
        common.kafka_tool_argv("kafka-consumer-perf-test", args), "kafka-consumer-perf-test"
    )
    rows = [line for line in out.splitlines() if re.match(r"^\d{4}-", line)]
    if not rows:
        raise SystemExit(f"kafka-consumer-perf-test printed no result: {out.strip()[-500:]}")
    fields = [f.strip() for f in rows[-1].split(",")]
    # start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
    figures.update(
        kafka_eps=float(fields[5]),
        kafka_whole_eps=o.events / usage.seconds,  # from its JVM's start to its exit, as ours is timed
        kafka_mbps=float(fields[3]),
        kafka_cpu_s_per_million=common.per_million(usage.cpu, o.events),
        kafka_peak_rss_mib=usage.peak_rss_mib,
    )
    o.megabytes = float(fields[2])


def writer_figures(key: str, name: str) -> list[Figure]:
    """The figures `ours` takes of one writer run (under `key`)."""
    return [
        Figure(f"{key}_eps", f"{name}: events/s landed and committed"),
        Figure(f"{key}_cpu_s_per_million", f"{name}: CPU-s per million events", ".1f"),
        Figure(f"{key}_peak_rss_mib", f"{name}: peak RSS MiB"),
        Figure(f"{key}_startup_s", f"{name}: s until the first records were read", ".2f"),
        Figure(f"{key}_steady_eps", f"{name}: events/s read while landing (steady)"),
        Figure(f"{key}_tail_s", f"{name}: s from the last record to all committed", ".2f"),
    ]


FIGURES = [
    *writer_figures("ours", "writer"),
    Figure("ours_mbps", "writer: MB/s of event JSON", ".1f"),
    Figure("objects", "writer: objects"),
    Figure("lake_bytes_per_event", "writer: bytes per event in the lake", ".1f"),
    *writer_figures("table", "writer --iceberg-table"),
    Figure("table_commits", "writer --iceberg-table: table commits"),
    Figure("table_over_files_eps", "writer --iceberg-table / files-only: events/s", ".2f"),
    Figure("table_over_files_cpu", "writer --iceberg-table / files-only: CPU-s per million", ".2f"),
    Figure("table_verify_s", "verify --iceberg-table, s", ".1f"),
    Figure("floor_eps", "client floor: events/s from its start to its exit"),
    Figure("floor_cpu_s_per_million", "client floor: CPU-s per million", ".1f"),
    Figure("kafka_eps", "kafka-consumer-perf-test: records/s read"),
    Figure("kafka_whole_eps", "kafka-consumer-perf-test: records/s from its start to its exit"),
    Figure("kafka_cpu_s_per_million", "kafka-consumer-perf-test: CPU-s per million", ".1f"),
    Figure("kafka_peak_rss_mib", "kafka-consumer-perf-test: peak RSS MiB"),
    Figure("ratio", "ratio writer / Kafka's tool", ".2f"),
    Figure("ratio_whole", "ratio writer / Kafka's tool from its start", ".2f"),
    Figure("verify_s", "verify by metadata, s", ".1f"),
    Figure("verify_deep_s", "verify --deep, s", ".1f"),
    Figure("query_by_type_s", "query events by type, s", ".3f"),
    Figure("query_user_errors_s", "query a user's errors, s", ".3f"),
    *(
        figure
        for key, name in peers.QUIX_NAMES.items()
        for figure in (
            Figure(f"{key}_eps", f"{name}: events/s landed and committed"),
            Figure(f"{key}_cpu_s_per_million", f"{name}: CPU-s per million events", ".1f"),
            Figure(f"{key}_peak_rss_mib", f"{name}: peak RSS MiB"),
            Figure(f"{key}_records", f"{name}: records read back"),
            Figure(f"{key}_unique_ids", f"{name}: distinct event_ids read back"),
            Figure(f"{key}_bytes_per_event", f"{name}: bytes per event in the lake", ".1f"),
            Figure(f"ours_over_{key}_eps", f"ours / {name}: events/s", ".2f"),
            Figure(f"ours_over_{key}_cpu", f"ours / {name}: CPU-s per million", ".2f"),
        )
    ),
]


def compare(peer: str, ours_eps: float, ours_cpu: float, eps: float, cpu: float) -> str:
    return (
        f"ours / {peer}: {ours_eps / eps:.2f} in events/s ({ours_eps:,.0f} vs {eps:,.0f}), "
        f"{ours_cpu / cpu:.2f} in CPU-s per million events ({ours_cpu:.1f} vs {cpu:.1f})"
    )


def one_run(o: Options, figures: dict[str, float], number: int) -> None:
    """Every figure of one run into `figures`, each printed as it is taken."""
    prefix = f"bench-{o.topic}-{number}"
    group = ours(o, prefix, figures)
    kafka_tool(o, figures)
    figures["ours_mbps"] = figures["ours_eps"] * o.megabytes / o.events
    figures["ratio"] = figures["ours_eps"] / figures["kafka_eps"]
    figures["ratio_whole"] = figures["ours_eps"] / figures["kafka_whole_eps"]
    stored = lake_bytes(o.topic, prefix, o.fmt)
    figures["lake_bytes_per_event"] = stored / o.events
    say(
        f"writer --format {o.fmt}: {o.events:,} events ({o.megabytes:.0f} MB of JSON) landed and committed: "
        f"{figures['ours_eps']:,.0f} events/s, {figures['ours_mbps']:.1f} MB/s; "
        f"{figures['ours_cpu_s_per_million']:.1f} CPU-s per million events; {figures['objects']:.0f} objects, "
        f"{figures['lake_bytes_per_event']:.1f} bytes per event in the lake; peak RSS "
        f"{figures['ours_peak_rss_mib']:.0f} MiB"
    )
    if "ours_steady_eps" in figures:
        say(
            f"writer timeline: the first records read {figures['ours_startup_s']:.2f} s after its start; "
            f"{figures['ours_steady_eps']:,.0f} events/s read while landing; everything landed and committed "
            f"{figures['ours_tail_s']:.2f} s after the last record (--idle-flush 1 holds a partial batch a second)"
        )
    say(
        f"kafka-consumer-perf-test: {figures['kafka_eps']:,.0f} records/s, {figures['kafka_mbps']:.1f} MB/s, "
        f"{figures['kafka_cpu_s_per_million']:.1f} CPU-s per million (JVM start included), peak RSS "
        f"{figures['kafka_peak_rss_mib']:.0f} MiB; ratio writer / Kafka's tool {figures['ratio']:.2f}; "
        f"from its JVM's start to its exit (as the writer is timed from its start) "
        f"{figures['kafka_whole_eps']:,.0f} records/s, ratio {figures['ratio_whole']:.2f}"
    )
    figures["verify_s"] = verify_seconds(o.topic, prefix, group)
    figures["verify_deep_s"] = verify_seconds(o.topic, prefix, group, "--deep")
    say(f"verify: {figures['verify_s']:.1f} s by metadata, {figures['verify_deep_s']:.1f} s with --deep")
    queries = list(query_seconds(o.topic, prefix, o.fmt).values())
    figures["query_by_type_s"], figures["query_user_errors_s"] = queries
    if o.table_interval:
        table_and_floor(o, figures, number)
    for key in o.quix:
        peer = peers.quix(o.bootstrap, o.topic, o.events, peers.QUIX_SINKS[key])
        peer_figures(o, figures, peer)


def peer_figures(o: Options, figures: dict[str, float], peer: peers.PeerRun) -> None:
    k = peer.key
    figures.update(
        {
            f"{k}_eps": peer.events_per_s,
            f"{k}_cpu_s_per_million": peer.cpu_s_per_million,
            f"{k}_peak_rss_mib": peer.peak_rss_mib,
            f"{k}_records": peer.records,
            f"{k}_unique_ids": peer.unique_ids,
            f"{k}_bytes_per_event": peer.bytes_per_event,
            f"ours_over_{k}_eps": figures["ours_eps"] / peer.events_per_s,
            f"ours_over_{k}_cpu": figures["ours_cpu_s_per_million"] / peer.cpu_s_per_million,
        }
    )
    whole = "every event, once" if peer.records == peer.unique_ids == o.events else "NOT every event once"
    say(
        f"{peer.name}: {peer.events_per_s:,.0f} events/s landed and committed, {peer.cpu_s_per_million:.1f} "
        f"CPU-s per million events, peak RSS {peer.peak_rss_mib:.0f} MiB; read back: {peer.objects} objects, "
        f"{peer.records:,} records, {peer.unique_ids:,} distinct event_ids of {o.events:,} ({whole}), "
        f"{peer.bytes_per_event:.1f} bytes per event"
    )
    say(
        compare(
            peer.name,
            figures["ours_eps"],
            figures["ours_cpu_s_per_million"],
            peer.events_per_s,
            peer.cpu_s_per_million,
        )
    )


def connect_line() -> str:
    coords, tried = peers.connect_s3_sink()
    if coords:
        return f"Kafka Connect S3 sink: Maven resolved {coords}, but the benchmark has no runner for it yet: not run"
    return (
        "Kafka Connect S3 sink: not run: Maven Central serves none of the sinks asked for ("
        + "; ".join(tried)
        + "); not asked: Aiven's (not served here, issue #14), Confluent's (not on Maven Central), Lenses' "
        "stream-reactor (release archives, not Maven artifacts)"
    )


def fill(bootstrap: str, events: int) -> str:
    topic = new_topic(bootstrap, 3)
    argv = [sys.executable, "faking_data.py", "--topic", topic, "--count", str(events), "--rate", "0"]
    common.run_measured([*argv, "--seed", "1", "--quiet"], "filling the topic")
    if topic_size(bootstrap, topic) != events:
        raise SystemExit(f"the topic holds {topic_size(bootstrap, topic):,} events, not {events:,}")
    return topic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench writer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--format", default="jsonl", help="the writer's --format (default: jsonl)")
    p.add_argument("--writer-args", default="", help="extra flags for receive_faking_data.py")
    p.add_argument(
        "--peers", action="store_true", help="also land the topic with the peers (benchmarks/peers.py)"
    )
    p.add_argument(
        "--iceberg-table",
        action="store_true",
        help="also land it with an Iceberg table (implies --format parquet), and run the client floor",
    )
    p.add_argument(
        "--table-commit-interval",
        type=float,
        default=5.0,
        help="with --iceberg-table: the writer's --table-commit-interval (default 5 s)",
    )
    p.add_argument(
        "--quix",
        choices=["plain", "gzip", "both"],
        default="both",
        help="with --peers: Quix Streams' sink writing plain JSON Lines (its default), gzip'd ones, or both "
        "(default: both)",
    )
    common.add_run_options(p, "writer")
    ns = p.parse_args(argv)
    if ns.iceberg_table:
        if ns.format not in ("jsonl", "parquet"):  # jsonl: the default, not asked for
            raise SystemExit("--iceberg-table lands Parquet (--format parquet)")
        ns.format = "parquet"
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    started = time.monotonic()
    machine_line = common.machine()
    say(machine_line)
    connect = connect_line() if ns.peers else ""
    if connect:
        say(connect)
    topic = fill(bootstrap, ns.events)
    say(f"topic {topic}: {ns.events:,} events in 3 partitions; {ns.runs} run(s)")
    writer_args = ["--format", ns.format, "--idle-flush", "1"]
    o = Options(
        bootstrap,
        topic,
        ns.events,
        0.0,
        ns.format,
        [*writer_args, *ns.writer_args.split()],
        [k for k, gzip in peers.QUIX_SINKS.items() if ns.quix == "both" or gzip == (ns.quix == "gzip")]
        if ns.peers
        else [],
        ns.table_commit_interval if ns.iceberg_table else 0.0,
    )
    runs = Runs(FIGURES)
    try:
        for number, figures in runs.each(ns):
            one_run(o, figures, number)
    finally:
        delete_topics(bootstrap, [topic, topic + ".dlq"])  # the writer made the dead-letter topic

    for line in runs.summary():
        say(line)
    m = runs.median
    if ns.peers:
        say(connect)
    for k in o.quix:
        ours_eps, ours_cpu = m("ours_eps"), m("ours_cpu_s_per_million")
        say(
            "medians: "
            + compare(peers.QUIX_NAMES[k], ours_eps, ours_cpu, m(f"{k}_eps"), m(f"{k}_cpu_s_per_million"))
        )
    took = time.monotonic() - started
    say(
        f"the invocation took {took:.0f} s ({took - runs.waited:.0f} s without waiting for a quieter machine)"
    )
    if ns.json:
        content = {"machine": machine_line, "events": ns.events, "format": ns.format, "seconds": took}
        common.write_json(ns.json, "writer", {**content, "connect": connect, **runs.as_json()})
    say(
        f"ratio={m('ratio'):.2f} runs={ns.runs} ratios={','.join(f'{r:.2f}' for r in runs.values('ratio'))} "
        f"format={ns.format} ours_eps={m('ours_eps'):.0f} kafka_eps={m('kafka_eps'):.0f} "
        f"ours_mbps={m('ours_mbps'):.1f} kafka_mbps={m('kafka_mbps'):.1f} events={ns.events} "
        f"cpu_s_per_million={m('ours_cpu_s_per_million'):.1f} writer_peak_rss_mib={m('ours_peak_rss_mib'):.0f} "
        f"objects={m('objects'):.0f} lake_bytes_per_event={m('lake_bytes_per_event'):.1f} "
        f"verify_s={m('verify_s'):.1f} verify_deep_s={m('verify_deep_s'):.1f} "
        f"query_by_type_s={m('query_by_type_s'):.3f} query_user_errors_s={m('query_user_errors_s'):.3f}"
        + "".join(
            f" {k}_eps={m(f'{k}_eps'):.0f} {k}_cpu_s_per_million={m(f'{k}_cpu_s_per_million'):.1f}"
            for k in o.quix
        )
        + (
            f" table_eps={m('table_eps'):.0f} table_cpu_s_per_million={m('table_cpu_s_per_million'):.1f} "
            f"table_over_files_eps={m('table_over_files_eps'):.2f} "
            f"table_over_files_cpu={m('table_over_files_cpu'):.2f} floor_eps={m('floor_eps'):.0f} "
            f"floor_cpu_s_per_million={m('floor_cpu_s_per_million'):.1f}"
            if ns.iceberg_table
            else ""
        )
        + f" (medians; {common.cpu_model()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
