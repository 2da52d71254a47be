"""Writer benchmark: `scripts/bench writer [--events N] [--format jsonl|json|parquet]` (N: 1,000,000).

1. fills a fresh 3-partition topic with N generated events (faking_data.py --rate 0 --seed 1);
2. receive_faking_data.py (defaults and --format, but --idle-flush 1 so the tail is not held back by
   the idle timer) lands them: the time from its start until the group's committed offsets cover
   all N (so everything is in the lake and committed), in events/s and MB/s of event JSON; the
   writer's CPU seconds (user + system, all its threads) per million events and peak RSS (sampled);
3. Kafka's own kafka-consumer-perf-test from the same jars reads the same topic, same N, with a
   fresh group, in the same run;
4. python -m loglake verify on the result, by metadata and with --deep, timed (the figures only
   count if both pass); the lake's bytes per event (the objects' sizes, listed);
5. the query examples of docs/lake-writer.md (benchmarks/lakesql.py QUERIES) in DuckDB over the
   lake just written, timed (median of 3).

The last line is `ratio=<ours / Kafka's tool> ...`. It brings nothing up: it uses the stack of the
environment (KAFKA_BOOTSTRAP_SERVERS, AWS_*; `scripts/bench` takes it from `scripts/stack env`, of
the instance LOGLAKE_STACK_NAME names) and deletes the topics it created; the lake it wrote stays
under the prefix `bench-<topic>`. The machine's load average is printed before and after: the
figures are only comparable between runs on an equally loaded machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.producer import delete_topics, machine, new_topic, say, topic_size  # noqa: E402


class Committed:
    """The group's committed offsets, summed over the topic's 3 partitions (one client, reused:
    a new client per look would take CPU from the writer being measured)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.parts = [TopicPartition(topic, p) for p in range(3)]
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})

    def total(self) -> int:
        return sum(max(0, tp.offset) for tp in self.consumer.committed(self.parts, timeout=10))

    def close(self) -> None:
        self.consumer.close()


def peak_rss(proc: psutil.Process, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        try:
            out.append(proc.memory_info().rss / 2**20)
        except psutil.Error:
            return
        time.sleep(0.2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(bootstrap: str, topic: str, events: int, extra: list[str]) -> tuple[float, float, float, float, str]:
    """(seconds until all committed, CPU seconds, peak RSS MiB, objects, group) for receive_faking_data.py."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    cpu_before = children_cpu()
    args = [
        sys.executable,
        "receive_faking_data.py",
        "--topic",
        topic,
        "--group",
        group,
        "--prefix",
        f"bench-{topic}",
        "--quiet",
        "--exit-when-idle",
        "3",
        *extra,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[float] = []
    stop = threading.Event()
    threading.Thread(target=peak_rss, args=(psutil.Process(proc.pid), stop, samples), daemon=True).start()
    done_at = None
    committed = Committed(bootstrap, topic, group)
    while proc.poll() is None:
        if done_at is None and committed.total() >= events:
            done_at = time.monotonic()
        time.sleep(0.1)
    committed.close()
    stop.set()
    out, err = proc.communicate()
    cpu = children_cpu() - cpu_before  # the writer is the only child waited for since cpu_before
    if proc.returncode != 0:
        raise SystemExit(f"the writer failed: {err.strip()[-500:]}")
    done_at = done_at or time.monotonic()
    objects = float(re.search(r"objects=(\d+)", out).group(1))
    return done_at - started, cpu, max(samples, default=0.0), objects, group


def verify_seconds(topic: str, group: str, *how: str) -> float:
    """Seconds `python -m loglake verify` takes on the benchmark's lake; exits if it does not pass."""
    args = ["--topic", topic, "--prefix", f"bench-{topic}", "--group", group, *how]
    started = time.monotonic()
    verify = subprocess.run(
        [sys.executable, "-m", "loglake", "verify", *args], cwd=REPO, capture_output=True, text=True
    )
    took = time.monotonic() - started
    say(verify.stdout.strip().splitlines()[-1] if verify.stdout.strip() else verify.stderr.strip())
    if verify.returncode != 0:
        raise SystemExit("verify failed: the figures do not count")
    return took


def lake_bytes(topic: str, fmt: str) -> int:
    """Bytes of the objects of format `fmt` the benchmark's writer stored."""
    from loglake import formats, layout
    from loglake.lake import S3Store
    from loglake.settings import LakeSettings, Parser, values_of

    lake = values_of(LakeSettings, Parser(LakeSettings, prog="bench").parse_args([]))
    store = S3Store(lake)
    try:
        listed = store.list(layout.topic_prefix(f"bench-{topic}", topic))
        codec = formats.FORMATS[fmt]
        return sum(size for key, size in listed if formats.format_of_key(key) is codec)
    finally:
        store.close()


def query_seconds(topic: str, fmt: str) -> dict[str, float]:
    """Median seconds of 3 runs of each query of the docs, on the benchmark's lake."""
    from benchmarks.lakesql import QUERIES, LakeSqlSettings, connect, timed, view_sql
    from loglake.settings import Parser, values_of

    s = values_of(LakeSqlSettings, Parser(LakeSqlSettings, prog="bench").parse_args([]))
    s = type(s)(lake=s.lake, topic=topic, prefix=f"bench-{topic}", fmt=fmt)
    con = connect(s.lake)
    con.execute(view_sql(s))
    found = {}
    for name, sql in QUERIES.items():
        runs = [timed(con, sql) for _ in range(3)]
        found[name] = statistics.median(took for _columns, _rows, took in runs)
        say(f"query {name!r} on {fmt}: {len(runs[0][1])} rows, {found[name]:.3f} s (median of 3)")
    return found


def kafka_tool(bootstrap: str, topic: str, events: int) -> tuple[float, float, float]:
    """(records/s, MB/s, MB read) of kafka-consumer-perf-test, as it reports them."""
    result = subprocess.run(
        [
            str(REPO / "scripts" / "stack"),
            "kafka",
            "kafka-consumer-perf-test",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            str(events),
            "--group",
            f"perf-{uuid.uuid4().hex[:8]}",
            "--timeout",
            "60000",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    rows = [line for line in result.stdout.splitlines() if re.match(r"^\d{4}-", line)]
    if result.returncode != 0 or not rows:
        raise SystemExit(f"kafka-consumer-perf-test failed: {result.stderr.strip()[-500:]}")
    fields = [f.strip() for f in rows[-1].split(",")]
    # start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
    return float(fields[5]), float(fields[3]), float(fields[2])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench writer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--format", default="jsonl", help="the writer's --format (default: jsonl)")
    p.add_argument("--writer-args", default="", help="extra flags for receive_faking_data.py")
    p.add_argument(
        "--kafka-client",
        choices=["confluent", "kafka-python"],
        default="confluent",
        help="the writer's Kafka client",
    )
    ns = p.parse_args(argv)
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    say(machine())
    say(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; 2 cores)")
    topic = new_topic(bootstrap, 3)
    dlq = topic + ".dlq"  # the writer creates it; deleted with the topic
    try:
        fill = subprocess.run(
            [
                sys.executable,
                "faking_data.py",
                "--topic",
                topic,
                "--count",
                str(ns.events),
                "--rate",
                "0",
                "--seed",
                "1",
                "--quiet",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if fill.returncode != 0:
            raise SystemExit(f"filling the topic failed: {fill.stderr.strip()[-300:]}")
        assert topic_size(bootstrap, topic) == ns.events
        writer_args = ["--format", ns.format, "--kafka-client", ns.kafka_client, *ns.writer_args.split()]
        seconds, cpu, rss, objects, group = ours(bootstrap, topic, ns.events, writer_args)
        tool_eps, tool_mbps, megabytes = kafka_tool(bootstrap, topic, ns.events)
        verify_s = verify_seconds(topic, group)
        verify_deep_s = verify_seconds(topic, group, "--deep")
    finally:
        delete_topics(bootstrap, [topic, dlq])
    stored = lake_bytes(topic, ns.format)
    queries = query_seconds(topic, ns.format)
    eps = ns.events / seconds
    cpu_per_million = cpu * 1_000_000 / ns.events
    say(
        f"writer --format {ns.format} --kafka-client {ns.kafka_client}: {ns.events:,} events ({megabytes:.0f} MB of JSON) landed and committed in "
        f"{seconds:.1f} s: {eps:,.0f} events/s, {megabytes / seconds:.1f} MB/s; {cpu_per_million:.1f} CPU-s per "
        f"million events; {objects:.0f} objects, {stored / ns.events:.1f} bytes per event in the lake; "
        f"peak RSS {rss:.0f} MiB"
    )
    say(f"verify: {verify_s:.1f} s by metadata, {verify_deep_s:.1f} s with --deep")
    say(f"kafka-consumer-perf-test: {tool_eps:,.0f} records/s, {tool_mbps:.1f} MB/s")
    say(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    q1, q2 = queries.values()
    say(
        f"ratio={eps / tool_eps:.2f} format={ns.format} ours_eps={eps:.0f} kafka_eps={tool_eps:.0f} "
        f"ours_mbps={megabytes / seconds:.1f} kafka_mbps={tool_mbps:.1f} events={ns.events} "
        f"cpu_s_per_million={cpu_per_million:.1f} writer_peak_rss_mib={rss:.0f} objects={objects:.0f} "
        f"lake_bytes_per_event={stored / ns.events:.1f} verify_s={verify_s:.1f} verify_deep_s={verify_deep_s:.1f} "
        f"query_by_type_s={q1:.3f} query_user_errors_s={q2:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
