"""The lake writer's command line (`receive_faking_data.py`, `python -m loglake write`): flags ->
WriterSettings -> a Writer wired to confluent-kafka (or kafka-python), S3 and the dead-letter topic."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from loglake import formats, settings
from loglake.consume import Writer
from loglake.deadletter import DeadLetters
from loglake.errors import ConfigError, run_cli, setup_logging, stop_on_signals
from loglake.kafka import open_consumer
from loglake.lake import S3Store
from loglake.metrics import WriterMetrics
from loglake.settings import WriterSettings

log = logging.getLogger("loglake.consume")


def build_parser(prog: str = "receive_faking_data.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Consume log events from Kafka and land them in the S3 data lake as batched, "
        "compressed JSON files, exactly once.",
    )
    settings.add_kafka_args(p)
    settings.add_lake_args(p)
    d = WriterSettings()
    add = settings.add
    g = p.add_argument_group("What to land, and where")
    add(g, "--topic", env="LOGLAKE_TOPIC", default=d.topic, help="topic to consume")
    add(
        g,
        "--group",
        env="LOGLAKE_GROUP",
        default=d.group,
        help="consumer group (writers sharing it share partitions)",
    )
    add(
        g,
        "--dead-letter-topic",
        env="LOGLAKE_DEAD_LETTER_TOPIC",
        default="",
        help="topic for records that are not valid events (default: <topic>.dlq)",
    )
    add(
        g,
        "--start-from",
        env="LOGLAKE_START_FROM",
        default=d.start_from,
        type=settings.start_position,
        help="where a group without committed offsets starts: committed (=earliest), earliest, latest, or an RFC 3339 time",
    )
    add(g, "--prefix", env="LOGLAKE_PREFIX", default=d.prefix, help="key prefix in the bucket")
    add(
        g,
        "--layout",
        env="LOGLAKE_LAYOUT",
        default=d.layout,
        choices=list(formats.LAYOUTS),
        help="time: dt=/hour= by event time (UTC); partition: partition=<n>",
    )
    add(
        g,
        "--format",
        env="LOGLAKE_LAKE_FORMAT",
        default=d.fmt,
        choices=list(formats.FORMATS),
        help="object format",
        dest="fmt",
    )
    add(
        g,
        "--compression",
        env="LOGLAKE_LAKE_COMPRESSION",
        default=d.compression,
        choices=formats.compressions(),
        help="object compression (gzip or none for jsonl/json)",
    )
    add(
        g,
        "--compression-level",
        env="LOGLAKE_LAKE_COMPRESSION_LEVEL",
        default=d.compression_level,
        type=_level,
        help="gzip level 1-9",
    )
    b = p.add_argument_group("Batching")
    add(
        b,
        "--batch-records",
        env="LOGLAKE_BATCH_RECORDS",
        default=d.batch_records,
        type=settings.positive_int,
        help="flush a partition at this many records",
    )
    add(
        b,
        "--batch-bytes",
        env="LOGLAKE_BATCH_BYTES",
        default=d.batch_bytes,
        type=settings.byte_size,
        help="... or at this many bytes (uncompressed)",
    )
    add(
        b,
        "--batch-age",
        env="LOGLAKE_BATCH_AGE",
        default=d.batch_age,
        type=settings.positive_float,
        help="... or when its oldest record waited this many seconds",
    )
    add(
        b,
        "--idle-flush",
        env="LOGLAKE_IDLE_FLUSH",
        default=d.idle_flush,
        type=settings.positive_float,
        help="flush everything after this many seconds without new records",
    )
    add(
        b,
        "--max-record-bytes",
        env="LOGLAKE_MAX_RECORD_BYTES",
        default=d.max_record_bytes,
        type=settings.byte_size,
        help="larger values are dead letters",
    )
    o = p.add_argument_group("Operation")
    add(
        o,
        "--max-retry-time",
        env="LOGLAKE_MAX_RETRY_TIME",
        default=d.max_retry_time,
        type=settings.non_negative_float,
        help="seconds the lake may fail before the writer exits non-zero without committing (0 = retry forever)",
    )
    settings.env_flag(
        o,
        "--no-create-bucket",
        env="LOGLAKE_NO_CREATE_BUCKET",
        help="fail if the bucket is missing instead of creating it",
    )
    add(
        o,
        "--exit-when-idle",
        env="LOGLAKE_EXIT_WHEN_IDLE",
        default=d.exit_when_idle,
        type=settings.non_negative_float,
        help="after this many seconds without new records, flush, commit and exit 0 (0 = run until stopped)",
    )
    add(
        o,
        "--metrics-port",
        env="LOGLAKE_METRICS_PORT",
        default=d.metrics_port,
        type=settings.non_negative_int,
        help="serve Prometheus metrics on this port (0 = off)",
    )
    add(
        o,
        "--metrics-addr",
        env="LOGLAKE_METRICS_ADDR",
        default=d.metrics_addr,
        help="address for --metrics-port",
    )
    add(
        o,
        "--progress-every",
        env="LOGLAKE_PROGRESS_EVERY",
        default=d.progress_every,
        type=settings.positive_float,
        help="seconds between status lines",
    )
    settings.env_flag(o, "-q", "--quiet", env="LOGLAKE_QUIET", help="no status lines")
    settings.env_flag(o, "-v", "--verbose", env="LOGLAKE_VERBOSE", help="debug logging")
    return p


def _level(text: str) -> int:
    value = settings.positive_int(text)
    if value > 9:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 to 9")
    return value


def settings_from_args(ns: argparse.Namespace) -> WriterSettings:
    s = WriterSettings(
        kafka=settings.kafka_from_args(ns),
        lake=settings.lake_from_args(ns),
        topic=ns.topic,
        group=ns.group,
        dead_letter_topic=ns.dead_letter_topic,
        start_from=ns.start_from,
        prefix=ns.prefix,
        layout=ns.layout,
        fmt=ns.fmt,
        compression=ns.compression,
        compression_level=ns.compression_level,
        batch_records=ns.batch_records,
        batch_bytes=ns.batch_bytes,
        batch_age=ns.batch_age,
        idle_flush=ns.idle_flush,
        max_record_bytes=ns.max_record_bytes,
        max_retry_time=ns.max_retry_time,
        create_bucket=not ns.no_create_bucket,
        exit_when_idle=ns.exit_when_idle,
        metrics_port=ns.metrics_port,
        metrics_addr=ns.metrics_addr,
        progress_every=ns.progress_every,
        quiet=ns.quiet,
    )
    problem = formats.check_recipe(s.recipe)
    if problem:
        raise ConfigError(problem)
    return s


def build_writer(s: WriterSettings) -> Writer:
    """A Writer on the real clients."""
    return Writer(
        s,
        open_consumer(s.kafka, s.group, s.topic, s.start_from),
        S3Store(s.lake),
        DeadLetters(s.kafka, s.dlq_topic, s.topic),
        metrics=WriterMetrics(s.metrics_port, s.metrics_addr),
    )


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    setup_logging(verbose=ns.verbose)
    writer = build_writer(settings_from_args(ns))
    started = time.monotonic()
    try:
        with stop_on_signals(
            writer.stop, lambda name: log.info("%s: flushing and stopping (again to stop at once)", name)
        ):
            code = writer.run()
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    sys.stdout.write(
        f"landed topic={writer.s.topic} records={writer.records} objects={writer.objects} bytes={writer.bytes} "
        f"dead_letters={writer.dead_letters} commits={writer.commits} unlanded={writer.unlanded} "
        f"elapsed={elapsed:.1f}s "
        f"records_per_s={writer.records / elapsed if elapsed else 0:.0f}\n"
    )
    return code


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
