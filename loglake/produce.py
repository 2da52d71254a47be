"""Fake platform logs -> Kafka: rate, count, keys, headers and delivery accounting.

`produce(settings)` is the library call (tests and benchmarks use it); `main()` is the command
line behind `faking_data.py` and `python -m loglake produce`.

Every event is counted once as sent, then as acknowledged or failed from the client's delivery
callback. The run ends after `count` events, after `duration` seconds, or at SIGINT/SIGTERM;
then what is in flight is flushed and one summary line is printed. Exit status 0 only if every
event that was sent was acknowledged (and, without a signal, every event asked for was sent).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from loglake.errors import (
    ConfigError,
    KafkaUnavailable,
    LoglakeError,
    run_cli,
    setup_logging,
    stop_on_signals,
)
from loglake.events import event_id_of, record_headers
from loglake.fake import FakeLogs, SimClock
from loglake.flags import Parser, parser_for, rfc3339_ms, values_of
from loglake.kafka.clients import open_producer
from loglake.kafka.producer import LogProducer, ProducerTuning
from loglake.settings import ProducerSettings

log = logging.getLogger(__name__)

MAX_CHUNK = 1000  # events generated and handed to the client per step at full speed


class DeliveryFailed(LoglakeError):
    """Some events were not acknowledged."""


@dataclass
class DeliveryReport:
    """What happened to the events of one run. Counts come from the delivery callbacks."""

    requested: int | None
    topic: str
    sent: int = 0
    acked: int = 0
    failed: int = 0
    elapsed: float = 0.0
    first_error: str | None = None
    stopped_by: str | None = None  # signal name when a signal ended the run
    in_flight: int = 0  # neither acknowledged nor failed when the flush gave up
    acked_ids: list[str] | None = field(default=None, repr=False)

    @property
    def events_per_s(self) -> float:
        return self.acked / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Everything sent was acknowledged, and everything asked for was sent (unless stopped)."""
        complete = self.stopped_by is not None or self.requested is None or self.sent == self.requested
        return self.failed == 0 and self.in_flight == 0 and self.acked == self.sent and complete

    def count_acked(self, in_flight: int) -> None:
        """When the client reports failures only: each record sent was acknowledged, failed or is in flight."""
        self.acked = self.sent - self.failed - in_flight

    def summary(self) -> str:
        stopped = f" stopped_by={self.stopped_by}" if self.stopped_by else ""
        return (
            f"produced topic={self.topic} sent={self.sent} acked={self.acked} failed={self.failed}"
            f" in_flight={self.in_flight} elapsed={self.elapsed:.2f}s events_per_s={self.events_per_s:.0f}"
            f"{stopped}"
        )


class _Deliveries:
    """The delivery callback: counts results and records acknowledged event ids."""

    def __init__(self, report: DeliveryReport, ids_out: IO[str] | None, keep_ids: bool) -> None:
        self.report = report
        self._ids_out = ids_out
        if keep_ids:
            report.acked_ids = []
        self._ids = report.acked_ids
        self._track = ids_out is not None or keep_ids

    def __call__(self, error: str | None, value: bytes) -> None:
        report = self.report
        if error is None:
            report.acked += 1
            if self._track:
                event_id = event_id_of(value)
                if self._ids is not None:
                    self._ids.append(event_id)
                if self._ids_out is not None:
                    self._ids_out.write(event_id + "\n")
        else:
            report.failed += 1
            if report.first_error is None:
                report.first_error = error
                log.error("an event was not acknowledged: %s", error)


def default_producer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def chunk_size(rate: float) -> int:
    """Events per step: at most 50 ms worth of the rate, so pacing stays smooth."""
    return MAX_CHUNK if rate <= 0 else max(1, min(MAX_CHUNK, int(rate / 20)))


def produce(
    settings: ProducerSettings,
    stop: threading.Event | None = None,
    keep_acked_ids: bool = False,
    generator: FakeLogs | None = None,
    producer: LogProducer | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> DeliveryReport:
    """Generate and send events per `settings` until count, duration or `stop`; flush; report.

    Raises KafkaUnavailable when the cluster does not answer or the topic is missing (before
    anything is sent). `keep_acked_ids` collects acknowledged event ids in the report.
    `producer` (default: a client for `settings.kafka`) and `monotonic`, the clock that paces the
    run and times it, are there for tests and benchmarks.
    """
    stop = stop or threading.Event()
    start_ms = settings.start_time_ms
    if start_ms is None and settings.seed is not None:
        start_ms = rfc3339_ms(ProducerSettings.SEEDED_START)
    clock = SimClock(rate=settings.rate, start_ms=start_ms)
    tuning = ProducerTuning(
        compression=settings.compression,
        linger_ms=settings.linger_ms,
        batch_bytes=settings.batch_bytes,
        delivery_timeout=settings.delivery_timeout,
        # a report per acknowledged record only to write down its event id: each costs CPU
        report_successes=keep_acked_ids or bool(settings.acked_ids_file),
    )
    headers = record_headers(settings.producer_id or default_producer_id())
    report = DeliveryReport(requested=settings.count, topic=settings.topic)

    producer = producer or open_producer(settings.kafka, settings.topic, tuning, settings.kafka_client)
    try:
        partitions = producer.check_topic(settings.topic)
        log.info(
            "producing to %s (%d partitions) at %s, rate %s",
            settings.topic,
            partitions,
            settings.kafka.describe(),
            f"{settings.rate:g}/s" if settings.rate > 0 else "unlimited",
        )
        generator = generator or FakeLogs(seed=settings.seed)
        with _ids_file(settings.acked_ids_file) as ids_out:
            deliveries = _Deliveries(report, ids_out, keep_acked_ids)
            started = monotonic()
            _send_loop(settings, stop, generator, clock, producer, headers, deliveries, started, monotonic)
            if stop.is_set() and report.stopped_by is None:
                report.stopped_by = "stop"
            report.in_flight = producer.flush(settings.delivery_timeout)
            report.elapsed = monotonic() - started
            if not producer.reports_successes:
                report.count_acked(report.in_flight)
    finally:
        producer.close()
    return report


def _send_loop(
    settings: ProducerSettings,
    stop: threading.Event,
    generator: FakeLogs,
    clock: SimClock,
    producer: LogProducer,
    headers: list[tuple[str, bytes]],
    deliveries: _Deliveries,
    started: float,
    monotonic: Callable[[], float],
) -> None:
    report = deliveries.report
    rate = settings.rate
    chunk = chunk_size(rate)
    step_ms = clock.step_ms
    send_many = producer.send_many
    next_progress = started + settings.progress_every
    last_progress = (started, 0)
    while not stop.is_set():
        now = monotonic()
        if settings.count is not None and report.sent >= settings.count:
            break
        if settings.duration is not None and now - started >= settings.duration:
            break
        if rate > 0:
            wait = started + report.sent / rate - now  # when the next event is due
            if wait > 0:
                producer.poll(min(wait, 0.1))
                continue
        n = chunk if settings.count is None else min(chunk, settings.count - report.sent)
        send_many(generator.records(n, clock.chunk_start(report.sent), step_ms), headers, deliveries)
        report.sent += n
        producer.poll(0)
        if not settings.quiet and now >= next_progress:
            then, sent_then = last_progress
            if not producer.reports_successes:
                report.count_acked(producer.in_flight())
            log.info(
                "sent=%d acked=%d failed=%d rate=%.0f events/s",
                report.sent,
                report.acked,
                report.failed,
                (report.sent - sent_then) / (now - then),
            )
            last_progress = (now, report.sent)
            next_progress = now + settings.progress_every


@contextmanager
def _ids_file(path: str) -> Iterator[IO[str] | None]:
    if not path:
        yield None
        return
    try:
        out = open(path, "w", encoding="ascii", buffering=1 << 20)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write the acknowledged-ids file {path}: {exc.strerror}") from None
    try:
        yield out
    finally:
        out.close()


# ---------------------------------------------------------------------------------------
# Command line (every flag is declared in loglake/settings.py, ProducerSettings)


def build_parser(prog: str = "faking_data.py") -> Parser:
    return parser_for(
        ProducerSettings,
        prog,
        "Send realistic fake platform log events to a Kafka topic (key = user_id, value = JSON).",
    )


def settings_from_args(ns: argparse.Namespace) -> ProducerSettings:
    return values_of(ProducerSettings, ns)


def check_bounded(s: ProducerSettings) -> None:
    """An unpaced run without an end is refused unless asked for, and said at start when it is.

    Refused rather than warned about: at full speed one producer writes gigabytes a minute into Kafka,
    and a warning scrolls past while the disk fills. The flag that asks for it is one word, and the
    refusal names it together with the bounds that are usually meant (--count, --duration).
    """
    if s.rate > 0 or s.count is not None or s.duration is not None:
        return
    if not s.until_stopped:
        raise ConfigError(
            "--rate 0 without --count or --duration sends as fast as possible and never stops, which fills "
            "Kafka's disk within minutes: give --count N or --duration SECONDS, or --until-stopped to mean it"
        )
    log.warning(
        "sending as fast as possible until stopped (--until-stopped): only Ctrl-C or SIGTERM ends this run"
    )


def main(argv: list[str] | None = None, pending: Sequence[int] = ()) -> int:
    """`pending`: the SIGINT/SIGTERMs kept since the entry point's first line (loglake/stopping.py),
    taken as if they came now: a stop asked for before the first event is a run of 0 events, exit 0."""
    s = settings_from_args(build_parser().parse_args(argv))
    setup_logging(verbose=s.verbose, quiet=s.quiet)
    check_bounded(s)
    stop = threading.Event()
    caught: dict[str, str] = {}
    with stop_on_signals(stop, lambda name: caught.__setitem__("signal", name), pending):
        report = produce(s, stop=stop)
    if "signal" in caught:
        report.stopped_by = caught["signal"]
    sys.stdout.write(report.summary() + "\n")
    sys.stdout.flush()
    if not report.ok:
        not_acked = report.sent - report.acked
        detail = f"; first error: {report.first_error}" if report.first_error else ""
        if not_acked == 0 and report.requested is not None:
            raise DeliveryFailed(f"only {report.sent} of the {report.requested} events asked for were sent")
        raise DeliveryFailed(f"{not_acked} of {report.sent} events were not acknowledged{detail}")
    return 0


def run(argv: list[str] | None = None, pending: Sequence[int] = ()) -> int:
    """Entry point for scripts: errors become one sentence and an exit status."""
    return run_cli(functools.partial(main, pending=pending), argv)


__all__ = ["DeliveryReport", "KafkaUnavailable", "build_parser", "main", "produce", "run"]
