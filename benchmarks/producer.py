"""Producer benchmark: `scripts/bench producer [--events N]` (N defaults to 1,000,000).

1. generation alone, no Kafka: events/s on one core (FakeLogs.records, JSON encoding included);
2. faking_data.py (confluent-kafka) sending N events to a fresh topic, every one acknowledged:
   events/s, MB/s (JSON values), peak RSS of the process;
3. Kafka's own kafka-producer-perf-test from the same jars, same number of records, same
   settings (acks=all, idempotence, compression, linger, batch size), twice: with payloads that are
   our events (--payload-file: same average size, same compressibility) and with --record-size
   <our average> (random letters, as the issue describes);
4. the same as 2 with --kafka-client kafka-python (at most 200,000 events unless told), and where
   its time goes (cProfile of the sending thread);
5. pacing accuracy: `--rate R` for `--pacing-seconds` s (R = 1,000 and 10,000), events sent as a share
   of R x seconds. The tests check only what holds on any machine (never more than R x seconds, each
   chunk sent when due on a fake clock); how close to 100 % a machine gets is this figure.

The last line is `ratio=<ours / Kafka's tool with our payloads> ...` with the figures. It brings
nothing up: it uses the stack of the environment (KAFKA_BOOTSTRAP_SERVERS) and deletes the
topics it created.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


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
    """faking_data.py as a subprocess; figures from its summary line; peak RSS from wait4."""
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
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=out, stderr=errors, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # wait4: the child's peak RSS
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        err = errors.read()[-2000:]
        out.seek(0)
        summary = out.read().strip().splitlines()[-1:] or [""]
    if process.returncode != 0:
        raise SystemExit(f"faking_data.py failed ({process.returncode}): {err.strip()}")
    fields = dict(re.findall(r"(\w+)=([\w.]+)", summary[0]))
    if int(fields["acked"]) != events:
        raise SystemExit(f"not every event was acknowledged: {summary[0]}")
    elapsed = float(fields["elapsed"].rstrip("s"))
    return Run(
        events=events,
        events_per_s=events / elapsed,
        mb_per_s=events * avg_bytes / elapsed / 1e6,
        peak_rss_mb=usage.ru_maxrss / 1024,
        elapsed=elapsed,
    )


def kafka_tool(bootstrap: str, topic: str, events: int, payload: str | int) -> Run:
    """kafka-producer-perf-test; payload: a payload file of our events, or a record size."""
    what = ["--payload-file", payload] if isinstance(payload, str) else ["--record-size", str(payload)]
    command = [
        str(REPO / "scripts" / "stack"),
        "kafka",
        "kafka-producer-perf-test",
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
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=REPO)
    final = [line for line in result.stdout.splitlines() if "records sent" in line]
    if result.returncode != 0 or not final:
        raise SystemExit(f"kafka-producer-perf-test failed: {result.stderr.strip() or result.stdout.strip()}")
    match = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\)", final[-1])
    assert match, final[-1]
    eps = float(match.group(1))
    return Run(
        events=events, events_per_s=eps, mb_per_s=float(match.group(2)) * 1.048576, elapsed=events / eps
    )


def profile_kafka_python(bootstrap: str, topic: str, events: int) -> str:
    """Top functions of the thread that generates and sends, with kafka-python."""
    from loglake.produce import produce
    from loglake.settings import KafkaSettings, ProducerSettings

    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client="kafka-python"),
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


def machine() -> str:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    java_version = (java.splitlines() or ["?"])[0]
    import confluent_kafka
    import kafka

    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = cpu
    return (
        f"machine: {model}, {os.cpu_count()} cores, Linux {platform.release()}; Python {platform.python_version()}; "
        f"confluent-kafka {metadata.version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}); "
        f"kafka-python {kafka.__version__}; Kafka {defaults.KAFKA_ZOOKEEPER_MODE_VERSION} broker and tool; "
        f"{java_version}"
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
    ns = parser.parse_args(argv)
    SETTINGS["compression"] = ns.compression
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{defaults.KAFKA_PORTS[0]}")
    n = ns.events
    say(machine())
    say(
        f"settings: acks=all, idempotence on, compression={ns.compression}, linger.ms={SETTINGS['linger_ms']}, "
        f"batch.size={SETTINGS['batch_bytes']}, topic of 3 partitions, broker {bootstrap}"
    )

    gen_eps, avg_bytes = generation(min(n, 300_000))
    say(
        f"generation alone (one core, JSON included): {gen_eps:,.0f} events/s; average event {avg_bytes:.0f} bytes"
    )

    created: list[str] = []
    try:
        topic = new_topic(bootstrap)
        created.append(topic)
        mine = ours(bootstrap, topic, n, "confluent", avg_bytes)
        in_topic = topic_size(bootstrap, topic)
        say(
            f"faking_data.py (confluent-kafka): {n:,} events, all acked ({in_topic:,} in the topic), "
            f"{mine.elapsed:.2f} s, {mine.events_per_s:,.0f} events/s, {mine.mb_per_s:.1f} MB/s, "
            f"peak RSS {mine.peak_rss_mb:.0f} MB"
        )

        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as payloads:
            for _key, value, _ts in FakeLogs(seed=2).records(20_000, 1_767_225_600_000, 1.0):
                payloads.write(value + b"\n")
        try:
            topic = new_topic(bootstrap)
            created.append(topic)
            tool = kafka_tool(bootstrap, topic, n, payloads.name)
        finally:
            os.unlink(payloads.name)
        say(
            f"kafka-producer-perf-test, our events as payloads: {n:,} records, {tool.events_per_s:,.0f} records/s, "
            f"{tool.mb_per_s:.1f} MB/s"
        )
        topic = new_topic(bootstrap)
        created.append(topic)
        sized = kafka_tool(bootstrap, topic, n, round(avg_bytes))
        say(
            f"kafka-producer-perf-test, --record-size {round(avg_bytes)}: {n:,} records, "
            f"{sized.events_per_s:,.0f} records/s, {sized.mb_per_s:.1f} MB/s"
        )

        kp_eps = 0.0
        if not ns.no_kafka_python:
            kp_n = ns.kafka_python_events or min(n, 200_000)
            topic = new_topic(bootstrap)
            created.append(topic)
            kp = ours(bootstrap, topic, kp_n, "kafka-python", avg_bytes)
            kp_eps = kp.events_per_s
            say(
                f"faking_data.py (kafka-python): {kp_n:,} events, all acked, {kp.elapsed:.2f} s, "
                f"{kp.events_per_s:,.0f} events/s, {kp.mb_per_s:.1f} MB/s, peak RSS {kp.peak_rss_mb:.0f} MB, "
                f"ratio to Kafka's tool {kp.events_per_s / tool.events_per_s:.2f}"
            )
            topic = new_topic(bootstrap)
            created.append(topic)
            say(
                "where the time goes with kafka-python (cProfile of the generating/sending thread, 30,000 events):"
            )
            say(profile_kafka_python(bootstrap, topic, min(30_000, kp_n)))
        paced: dict[int, float] = {}
        for rate in PACING_RATES if ns.pacing_seconds > 0 else ():
            topic = new_topic(bootstrap)
            created.append(topic)
            sent, paced[rate] = pacing(bootstrap, topic, rate, ns.pacing_seconds)
            say(
                f"pacing, --rate {rate:,} for {ns.pacing_seconds:g} s: {sent:,} events sent, "
                f"{paced[rate]:.1%} of {rate * ns.pacing_seconds:,.0f} (never more than 100 %)"
            )
    finally:
        delete_topics(bootstrap, created)

    ratio = mine.events_per_s / tool.events_per_s
    say(
        f"ratio={ratio:.2f} ours_eps={mine.events_per_s:.0f} kafka_eps={tool.events_per_s:.0f} "
        f"ours_mb_s={mine.mb_per_s:.1f} kafka_mb_s={tool.mb_per_s:.1f} "
        f"kafka_record_size_eps={sized.events_per_s:.0f} gen_eps={gen_eps:.0f} "
        f"peak_rss_mb={mine.peak_rss_mb:.0f} kafka_python_eps={kp_eps:.0f} events={n} "
        f"avg_bytes={avg_bytes:.0f} compression={ns.compression}"
        + "".join(f" pacing_{rate}={share:.3f}" for rate, share in paced.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
