"""Writer benchmark: `scripts/bench writer [--events N]` (N defaults to 1,000,000).

1. fills a fresh 3-partition topic with N generated events (faking_data.py --rate 0 --seed 1);
2. receive_faking_data.py (defaults, but --idle-flush 1 so the tail is not held back by the idle
   timer) lands them: the time from its start until the group's committed offsets
   cover all N (so everything is in the lake and committed), in events/s and MB/s of event JSON,
   and the writer's peak RSS (sampled);
3. Kafka's own kafka-consumer-perf-test from the same jars reads the same topic, same N, with a
   fresh group, in the same run;
4. python -m loglake verify on the result (the figures only count if it passes).

`--kafka-client confluent|kafka-python|both` picks the writer's Kafka client; `both` lands the same
topic once with each (a fresh group and prefix each, confluent first) and prints a line per client,
with the CPU seconds the writer process used (user + system) per million events.

The last line is `ratio=<ours / Kafka's tool> ...` (for the last client run). It brings nothing up:
it uses the stack of the environment (KAFKA_BOOTSTRAP_SERVERS, AWS_*) and deletes the topics it created.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(
    bootstrap: str, topic: str, events: int, extra: list[str], client: str
) -> tuple[float, float, float, float]:
    """(seconds until all committed, peak RSS MiB, objects, CPU seconds) for receive_faking_data.py."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{client}-{topic}"
    args = [
        sys.executable,
        "receive_faking_data.py",
        "--topic",
        topic,
        "--group",
        group,
        "--prefix",
        prefix,
        "--kafka-client",
        client,
        "--quiet",
        "--exit-when-idle",
        "3",
        *extra,
    ]
    cpu_before = children_cpu()
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
    cpu = children_cpu() - cpu_before
    if proc.returncode != 0:
        raise SystemExit(f"the writer failed: {err.strip()[-500:]}")
    done_at = done_at or time.monotonic()
    objects = float(re.search(r"objects=(\d+)", out).group(1))
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "loglake",
            "verify",
            "--topic",
            topic,
            "--prefix",
            prefix,
            "--group",
            group,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    say(verify.stdout.strip().splitlines()[-1])
    if verify.returncode != 0:
        raise SystemExit("verify failed: the figures do not count")
    return done_at - started, max(samples, default=0.0), objects, cpu


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
    p.add_argument("--writer-args", default="", help="extra flags for receive_faking_data.py")
    p.add_argument(
        "--kafka-client",
        choices=["confluent", "kafka-python", "both"],
        default="confluent",
        help="the writer's Kafka client (both: one run with each, same topic)",
    )
    ns = p.parse_args(argv)
    clients = ["confluent", "kafka-python"] if ns.kafka_client == "both" else [ns.kafka_client]
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    say(machine())
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
        runs = {
            client: ours(bootstrap, topic, ns.events, ns.writer_args.split(), client) for client in clients
        }
        tool_eps, tool_mbps, megabytes = kafka_tool(bootstrap, topic, ns.events)
    finally:
        delete_topics(bootstrap, [topic, dlq])
    ratios = []
    for client, (seconds, rss, objects, cpu) in runs.items():
        eps, mbps = ns.events / seconds, megabytes / seconds
        say(
            f"writer ({client}): {ns.events:,} events ({megabytes:.0f} MB of JSON) landed and committed in "
            f"{seconds:.1f} s: {eps:,.0f} events/s, {mbps:.1f} MB/s; {objects:.0f} objects; "
            f"peak RSS {rss:.0f} MiB; {cpu:.1f} CPU-s ({cpu / ns.events * 1e6:.1f} CPU-s per million events)"
        )
        ratios.append(
            f"ratio={eps / tool_eps:.2f} ours_eps={eps:.0f} kafka_eps={tool_eps:.0f} ours_mbps={mbps:.1f} "
            f"kafka_mbps={tool_mbps:.1f} events={ns.events} writer_peak_rss_mib={rss:.0f} objects={objects:.0f} "
            f"client={client} writer_cpu_s={cpu:.1f}"
        )
    say(f"kafka-consumer-perf-test: {tool_eps:,.0f} records/s, {tool_mbps:.1f} MB/s")
    for line in ratios:
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
