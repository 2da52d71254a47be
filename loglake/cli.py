"""The lake writer's command line (`receive_faking_data.py`, `python -m loglake write`): flags ->
WriterSettings -> a Writer wired to confluent-kafka, S3 and the dead-letter topic."""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from loglake.errors import ConfigError, run_cli, setup_logging, stop_on_signals
from loglake.flags import Parser, parser_for, values_of
from loglake.settings import WriterSettings

if TYPE_CHECKING:
    from loglake.consume import Writer
    from loglake.table.commit import TableSink

log = logging.getLogger("loglake.consume")


def build_parser(prog: str = "receive_faking_data.py") -> Parser:
    return parser_for(
        WriterSettings,
        prog,
        "Consume log events from Kafka and land them in the S3 data lake as batched, compressed JSON "
        "(or Parquet) objects, exactly once.",
    )


def settings_from_args(ns: argparse.Namespace) -> WriterSettings:
    from loglake import formats

    s = values_of(WriterSettings, ns)
    problem = formats.check_recipe(formats.recipe_of(s))
    if problem:
        raise ConfigError(problem)
    if s.iceberg_table:
        from loglake.table.catalog import split_identifier

        split_identifier(s.iceberg_table)  # NAMESPACE.TABLE, or one sentence
        if s.fmt != "parquet" or s.layout != "time":
            raise ConfigError(
                f"--iceberg-table needs --format parquet and --layout time (the table's data files are the "
                f"Parquet objects, each in one hour of event time), not --format {s.fmt} --layout {s.layout}"
            )
    return s


def build_writer(s: WriterSettings, stop: threading.Event | None = None) -> Writer:
    """A Writer on the real clients; `stop` set asks it to flush and exit. The clients' modules load
    here, not when this module is imported, so that main() handles signals from its first line."""
    from loglake.consume import Writer
    from loglake.deadletter import DeadLetters
    from loglake.kafka.consumer import open_consumer
    from loglake.lake import S3Store
    from loglake.metrics import WriterMetrics

    return Writer(
        s,
        open_consumer(s.kafka, s.group, s.topic, s.start_from),
        S3Store(s.lake),
        DeadLetters(s.kafka, s.dlq_topic, s.topic),
        metrics=WriterMetrics(s.metrics_port, s.metrics_addr),
        stop=stop,
        table=table_sink(s),
    )


def table_sink(s: WriterSettings) -> TableSink | None:
    """The Iceberg table of --iceberg-table in pyiceberg's catalog `loglake` (its configuration, over
    the lake's settings: loglake/table/catalog.py), or None."""
    if not s.iceberg_table:
        return None
    from loglake.table.catalog import catalog_settings, configured
    from loglake.table.commit import TableSink

    return TableSink(catalog_settings(s.lake, configured()), s.iceberg_table, s.topic, s.lake.bucket)


def give_large_buffers_back() -> None:
    """Have glibc serve large allocations (a batch's buffer, an object's body) from their own mappings,
    returned to the system when freed, and reuse what is smaller. By default glibc raises that
    threshold after the first large free, and the heap then keeps what landed batches held; a fixed
    threshold gives that memory back. It is 2 MiB, not lower, so that the 1 MiB pieces boto3 reads a
    body in (to checksum and sign it) reuse memory instead of each being a fresh mapping, a page fault
    per 4 KiB; up to 4 MiB stays free at the top of a heap for the same reason. What each setting
    cost and saved: docs/performance.md. Elsewhere than glibc: nothing."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 2 * 1024 * 1024)
    mallopt(m_trim_threshold, 4 * 1024 * 1024)


def main(argv: list[str] | None = None, pending: Sequence[int] = ()) -> int:
    # A SIGTERM is a request to stop cleanly, also while the writer is still being built (a service
    # manager or a test may stop a writer it has just started): exit 0. `pending`: those that came
    # since the entry point's first line, before this handler (loglake/stopping.py).
    stop = threading.Event()
    with stop_on_signals(
        stop, lambda name: log.info("%s: flushing and stopping (again to stop at once)", name), pending
    ):
        s = settings_from_args(build_parser().parse_args(argv))
        setup_logging(verbose=s.verbose)
        give_large_buffers_back()
        writer = build_writer(s, stop)
        # What is loaded by now (boto3's models, the clients) lives as long as the process: out of
        # the collector's sight, full collections no longer walk it (docs/performance.md)
        gc.freeze()
        started = time.monotonic()
        try:
            code = writer.run()
        finally:
            writer.close()
    elapsed = time.monotonic() - started
    sys.stdout.write(
        f"landed topic={writer.s.topic} records={writer.records} objects={writer.objects} bytes={writer.bytes} "
        f"dead_letters={writer.dead_letters} commits={writer.commits} unlanded={writer.unlanded} "
        f"lost_to_retention={writer.lost_offsets} "
        + (f"table_commits={writer.table.commits} " if s.iceberg_table else "")
        + f"elapsed={elapsed:.1f}s "
        f"records_per_s={writer.records / elapsed if elapsed else 0:.0f}\n"
    )
    return code


def run(argv: list[str] | None = None, pending: Sequence[int] = ()) -> int:
    """The command: `pending` holds the SIGINT/SIGTERMs kept since the entry point's first line."""
    return run_cli(functools.partial(main, pending=pending), argv)


if __name__ == "__main__":
    sys.exit(run())
