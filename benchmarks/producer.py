"""Producer benchmark: `scripts/bench producer [--events N] [--runs R]` (N defaults to 1,000,000).

1. generation alone, no Kafka: events/s on one core (FakeLogs.records, JSON encoding included);
2. faking_data.py (confluent-kafka) sending N events to a fresh topic, every one acknowledged:
   events/s, MB/s (JSON values), CPU-seconds per million events (user + system of the process, its
   start included) and peak RSS of the process (wait4);
3. Kafka's own kafka-producer-perf-test from the same jars, same number of records, same
   settings (acks=all, idempotence, compression, linger, batch size), twice: with payloads that are
   our events (--payload-file: same average size, same compressibility) and with --record-size
   <our average> (random letters, as the issue describes); the JVM's CPU and peak RSS too;
4. the same as 2 with --kafka-client kafka-python (at most 200,000 events unless told), and, in the
   first run, where its time goes (cProfile of the sending thread);
5. pacing accuracy: `--rate R` for `--pacing-seconds` s (R = 1,000 and 10,000), events sent as a share
   of R x seconds. The tests check only what holds on any machine (never more than R x seconds, each
   chunk sent when due on a fake clock); how close to 100 % a machine gets is this figure.

`--runs R` repeats 1-5 R times in one invocation (each on fresh topics), prints every figure per run
and the load average before and after each, then each figure's median and spread (min-max) over
the runs. The last line is `ratio=<median of ours / Kafka's tool with our payloads> ...` with the
medians. `--json FILE` also writes the figures to FILE's "producer" section (Image/bench-results.json
feeds Image/plot_bench.py). It brings nothing up: it uses the stack of the environment
(KAFKA_BOOTSTRAP_SERVERS) and deletes the topics it created.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402
from benchmarks.common import Figure, Runs, say  # noqa: E402
from loglake import defaults  # noqa: E402
from loglake.fake import FakeLogs  # noqa: E402

SETTINGS = {"compression": "lz4", "linger_ms": 10, "batch_bytes": 1_000_000}


@dataclass
class Run:
    events: int
    events_per_s: float
    mb_per_s: float
    peak_rss_mb: float = 0.0
    elapsed: float = 0.0
    cpu_s_per_million: float = 0.0


def generation(events: int) -> tuple[float, float]:
    """(events/s, average value bytes) of generation alone."""
    gen = FakeLogs(seed=1)
    gen.records(1000, 1_767_225_600_000, 1.0)  # warm up
    done = 0
    size = 0
    started = time.perf_counter()
    while done < events:
        records = gen.records(1000, 1_767_225_600_000 + done, 1.0)
        done += len(records)
        size += sum(len(v) for _, v, _ in records)
    return done / (time.perf_counter() - started), size / done


def new_topic(bootstrap: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def delete_topics(bootstrap: str, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    if names:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
        for future in admin.delete_topics(names).values():
            future.result(30)


def topic_size(bootstrap: str, topic: str) -> int:
    """Records in the topic, from its partitions' end offsets."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def ours(bootstrap: str, topic: str, events: int, client: str, avg_bytes: float) -> Run:
    """faking_data.py as a subprocess; rate from its summary line; CPU and peak RSS from wait4."""
    command = [
        sys.executable,
        str(REPO / "faking_data.py"),
        "--topic",
        topic,
        "--count",
        str(events),
        "--rate",
        "0",
        "--quiet",
        "--kafka-client",
        client,
        "--bootstrap-servers",
        bootstrap,
        "--compression",
        SETTINGS["compression"],
        "--linger-ms",
        str(SETTINGS["linger_ms"]),
        "--batch-size",
        str(SETTINGS["batch_bytes"]),
    ]
    usage, out = common.run_measured(command, "faking_data.py")
    summary = out.strip().splitlines()[-1:] or [""]
    fields = dict(re.findall(r"(\w+)=([\w.]+)", summary[0]))
    if int(fields["acked"]) != events:
        raise SystemExit(f"not every event was acknowledged: {summary[0]}")
    elapsed = float(fields["elapsed"].rstrip("s"))
    return Run(
        events=events,
        events_per_s=events / elapsed,
        mb_per_s=events * avg_bytes / elapsed / 1e6,
        peak_rss_mb=usage.peak_rss_mib,
        elapsed=elapsed,
        cpu_s_per_million=common.per_million(usage.cpu, events),
    )


def kafka_tool(bootstrap: str, topic: str, events: int, payload: str | int) -> Run:
    """kafka-producer-perf-test; payload: a payload file of our events, or a record size."""
    what = ["--payload-file", payload] if isinstance(payload, str) else ["--record-size", str(payload)]
    args = [
        "--topic",
        topic,
        "--num-records",
        str(events),
        *what,
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        f"compression.type={SETTINGS['compression']}",
        f"linger.ms={SETTINGS['linger_ms']}",
        f"batch.size={SETTINGS['batch_bytes']}",
    ]
    usage, out = common.run_measured(
        common.kafka_tool_argv("kafka-producer-perf-test", args), "kafka-producer-perf-test"
    )
    final = [line for line in out.splitlines() if "records sent" in line]
    match = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\)", final[-1] if final else "")
    if not match:
        raise SystemExit(f"kafka-producer-perf-test printed no result: {out.strip()[-500:]}")
    eps = float(match.group(1))
    return Run(
        events=events,
        events_per_s=eps,
        mb_per_s=float(match.group(2)) * 1.048576,
        elapsed=events / eps,
        peak_rss_mb=usage.peak_rss_mib,
        cpu_s_per_million=common.per_million(usage.cpu, events),
    )


def profile_kafka_python(bootstrap: str, topic: str, events: int) -> str:
    """Top functions of the thread that generates and sends, with kafka-python."""
    from loglake.produce import produce
    from loglake.settings import KafkaSettings, ProducerSettings

    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        kafka_client="kafka-python",
        topic=topic,
        count=events,
        rate=0,
        quiet=True,
        compression=SETTINGS["compression"],
        linger_ms=SETTINGS["linger_ms"],
        batch_bytes=SETTINGS["batch_bytes"],
    )
    generator = FakeLogs()  # built before profiling: the profile shows the sending, not Faker's start-up
    profiler = cProfile.Profile()
    profiler.enable()
    report = produce(settings, generator=generator)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(12)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return f"  ({report.summary()})\n" + "\n".join("  " + line for line in lines[start:])


PACING_RATES = (1_000, 10_000)


def pacing(bootstrap: str, topic: str, rate: int, seconds: float) -> tuple[int, float]:
    """(events sent, their share of rate x seconds) of one paced run of `seconds`, all acknowledged."""
    from loglake.produce import produce
    from loglake.settings import KafkaSettings, ProducerSettings

    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topic=topic,
        rate=rate,
        duration=seconds,
        quiet=True,
        compression=SETTINGS["compression"],
        linger_ms=SETTINGS["linger_ms"],
        batch_bytes=SETTINGS["batch_bytes"],
    )
    report = produce(settings, generator=FakeLogs(seed=3))
    if not report.ok:
        raise SystemExit(f"the paced run failed: {report.summary()}")
    return report.sent, report.sent / (rate * seconds)


FIGURES = [
    Figure("gen_eps", "generation alone, events/s"),
    Figure("ours_eps", "faking_data.py (confluent-kafka), events/s"),
    Figure("ours_mb_s", "faking_data.py, MB/s", ".1f"),
    Figure("ours_cpu_s_per_million", "faking_data.py, CPU-s per million events", ".1f"),
    Figure("ours_peak_rss_mib", "faking_data.py, peak RSS MiB"),
    Figure("kafka_eps", "kafka-producer-perf-test (our events), records/s"),
    Figure("kafka_cpu_s_per_million", "kafka-producer-perf-test, CPU-s per million", ".1f"),
    Figure("kafka_peak_rss_mib", "kafka-producer-perf-test, peak RSS MiB"),
    Figure("kafka_record_size_eps", "kafka-producer-perf-test (--record-size), records/s"),
    Figure("ratio", "ratio ours / Kafka's tool (our events)", ".2f"),
    Figure("ratio_record_size", "ratio ours / Kafka's tool (--record-size)", ".2f"),
    Figure("kafka_python_eps", "faking_data.py (kafka-python), events/s"),
    Figure("kafka_python_cpu_s_per_million", "faking_data.py (kafka-python), CPU-s per million", ".1f"),
    *(Figure(f"pacing_{rate}", f"pacing --rate {rate:,}, share sent", ".3f") for rate in PACING_RATES),
]


@dataclass
class Options:
    bootstrap: str
    events: int
    kafka_python_events: int  # 0: no kafka-python run
    pacing_seconds: float
    payloads: str  # a file of our events, one a line, for kafka-producer-perf-test


def one_run(o: Options, figures: dict[str, float], created: list[str], profile: bool) -> None:
    """Every figure of one run into `figures`, each printed as it is taken."""
    n = o.events

    def topic() -> str:
        created.append(new_topic(o.bootstrap))
        return created[-1]

    gen_eps, avg_bytes = generation(min(n, 300_000))
    figures["gen_eps"] = gen_eps
    say(
        f"generation alone (one core, JSON included): {gen_eps:,.0f} events/s; average event {avg_bytes:.0f} bytes"
    )

    name = topic()
    mine = ours(o.bootstrap, name, n, "confluent", avg_bytes)
    in_topic = topic_size(o.bootstrap, name)
    figures.update(
        ours_eps=mine.events_per_s,
        ours_mb_s=mine.mb_per_s,
        ours_cpu_s_per_million=mine.cpu_s_per_million,
        ours_peak_rss_mib=mine.peak_rss_mb,
    )
    say(
        f"faking_data.py (confluent-kafka): {n:,} events, all acked ({in_topic:,} in the topic), "
        f"{mine.elapsed:.2f} s, {mine.events_per_s:,.0f} events/s, {mine.mb_per_s:.1f} MB/s, "
        f"{mine.cpu_s_per_million:.1f} CPU-s per million events (process start included), "
        f"peak RSS {mine.peak_rss_mb:.0f} MiB"
    )

    tool = kafka_tool(o.bootstrap, topic(), n, o.payloads)
    figures.update(
        kafka_eps=tool.events_per_s,
        kafka_mb_s=tool.mb_per_s,
        kafka_cpu_s_per_million=tool.cpu_s_per_million,
        kafka_peak_rss_mib=tool.peak_rss_mb,
        ratio=mine.events_per_s / tool.events_per_s,
    )
    say(
        f"kafka-producer-perf-test, our events as payloads: {n:,} records, {tool.events_per_s:,.0f} records/s, "
        f"{tool.mb_per_s:.1f} MB/s, {tool.cpu_s_per_million:.1f} CPU-s per million (JVM start included), "
        f"peak RSS {tool.peak_rss_mb:.0f} MiB"
    )
    sized = kafka_tool(o.bootstrap, topic(), n, round(avg_bytes))
    figures.update(
        kafka_record_size_eps=sized.events_per_s, ratio_record_size=mine.events_per_s / sized.events_per_s
    )
    say(
        f"kafka-producer-perf-test, --record-size {round(avg_bytes)}: {n:,} records, "
        f"{sized.events_per_s:,.0f} records/s, {sized.mb_per_s:.1f} MB/s"
    )
    say(
        f"ratio ours / Kafka's tool: {figures['ratio']:.2f} with our events as payloads, "
        f"{figures['ratio_record_size']:.2f} against --record-size"
    )

    if o.kafka_python_events:
        kp = ours(o.bootstrap, topic(), o.kafka_python_events, "kafka-python", avg_bytes)
        figures.update(kafka_python_eps=kp.events_per_s, kafka_python_cpu_s_per_million=kp.cpu_s_per_million)
        say(
            f"faking_data.py (kafka-python): {o.kafka_python_events:,} events, all acked, {kp.elapsed:.2f} s, "
            f"{kp.events_per_s:,.0f} events/s, {kp.mb_per_s:.1f} MB/s, {kp.cpu_s_per_million:.1f} CPU-s per "
            f"million, peak RSS {kp.peak_rss_mb:.0f} MiB, ratio to Kafka's tool {kp.events_per_s / tool.events_per_s:.2f}"
        )
        if profile:
            say(
                "where the time goes with kafka-python (cProfile of the generating/sending thread, 30,000 events):"
            )
            say(profile_kafka_python(o.bootstrap, topic(), min(30_000, o.kafka_python_events)))
    for rate in PACING_RATES if o.pacing_seconds > 0 else ():
        sent, share = pacing(o.bootstrap, topic(), rate, o.pacing_seconds)
        figures[f"pacing_{rate}"] = share
        say(
            f"pacing, --rate {rate:,} for {o.pacing_seconds:g} s: {sent:,} events sent, "
            f"{share:.1%} of {rate * o.pacing_seconds:,.0f} (never more than 100 %)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench producer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per run (default 1,000,000)")
    parser.add_argument(
        "--kafka-python-events",
        type=int,
        default=None,
        help="events for kafka-python (default min(N, 200000))",
    )
    parser.add_argument("--compression", default="lz4", choices=["lz4", "zstd", "gzip", "snappy", "none"])
    parser.add_argument("--no-kafka-python", action="store_true", help="skip the kafka-python run")
    parser.add_argument(
        "--pacing-seconds", type=float, default=5.0, help="length of each paced run (default 5; 0 skips)"
    )
    common.add_run_options(parser, "producer")
    ns = parser.parse_args(argv)
    SETTINGS["compression"] = ns.compression
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{defaults.KAFKA_PORTS[0]}")
    n = ns.events
    kp_events = 0 if ns.no_kafka_python else (ns.kafka_python_events or min(n, 200_000))
    started = time.monotonic()
    machine_line = common.machine()
    say(machine_line)
    say(
        f"settings: acks=all, idempotence on, compression={ns.compression}, linger.ms={SETTINGS['linger_ms']}, "
        f"batch.size={SETTINGS['batch_bytes']}, topic of 3 partitions, broker {bootstrap}; {ns.runs} run(s)"
    )
    runs = Runs(FIGURES)
    created: list[str] = []
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as payloads:
        for _key, value, _ts in FakeLogs(seed=2).records(20_000, 1_767_225_600_000, 1.0):
            payloads.write(value + b"\n")
    options = Options(bootstrap, n, kp_events, ns.pacing_seconds, payloads.name)
    try:
        for number, figures in runs.each(ns):
            try:
                one_run(options, figures, created, profile=number == 1)
            finally:
                delete_topics(bootstrap, created)
                created.clear()
    finally:
        os.unlink(payloads.name)

    for line in runs.summary():
        say(line)
    took = time.monotonic() - started
    say(
        f"the invocation took {took:.0f} s ({took - runs.waited:.0f} s without waiting for a quieter machine)"
    )
    if ns.json:
        common.write_json(
            ns.json,
            "producer",
            {
                "machine": machine_line,
                "events": n,
                "compression": ns.compression,
                "seconds": took,
                **runs.as_json(),
            },
        )
    m = runs.median
    say(
        f"ratio={m('ratio'):.2f} runs={ns.runs} ratios={','.join(f'{r:.2f}' for r in runs.values('ratio'))} "
        f"ours_eps={m('ours_eps'):.0f} kafka_eps={m('kafka_eps'):.0f} ours_mb_s={m('ours_mb_s'):.1f} "
        f"kafka_mb_s={m('kafka_mb_s'):.1f} kafka_record_size_eps={m('kafka_record_size_eps'):.0f} "
        f"gen_eps={m('gen_eps'):.0f} cpu_s_per_million={m('ours_cpu_s_per_million'):.1f} "
        f"peak_rss_mib={m('ours_peak_rss_mib'):.0f} kafka_python_eps={m('kafka_python_eps'):.0f} events={n} "
        f"compression={ns.compression}"
        + "".join(
            f" pacing_{rate}={m(f'pacing_{rate}'):.3f}"
            for rate in PACING_RATES
            if runs.values(f"pacing_{rate}")
        )
        + " (medians)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
