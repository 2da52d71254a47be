"""The lake writer: poll -> route -> buffer -> flush -> commit, with rebalances, outages and shutdown.

The order that makes every event land exactly once (see loglake/layout.py for why the keys allow it):

1. Records are buffered per Kafka partition, consecutive offsets from the committed position.
2. A record that is not a storable event goes to the dead-letter topic; its offset counts as handled.
3. A flush uploads all objects of the partition's buffer (one per lake partition), waits until its
   dead letters are acknowledged, and only then commits `last offset + 1`. Never auto-commit.
4. While the lake fails, the upload is retried with backoff and jitter; fetching is paused but the
   consumer keeps polling so the group does not evict it; nothing is committed, buffers are kept.
5. On revoke, a partition's buffer is flushed once (or dropped if that fails: the next owner re-reads
   it from the committed offset); on lost, it is dropped; a flush that spanned a revoke commits nothing.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from loglake import layout, settings
from loglake.batch import FlushPolicy, ObjectFormat, PartitionBuffer, to_objects
from loglake.deadletter import DeadLetters
from loglake.errors import LoglakeError, run_cli, setup_logging, stop_on_signals
from loglake.events import Rejection, validate
from loglake.kafka import LakeConsumer
from loglake.lake import Lake, LakeRetriable
from loglake.metrics import WriterMetrics
from loglake.settings import WriterSettings

log = logging.getLogger(__name__)

OWNER_KEY = "_loglake/owner.json"
START_PATIENCE = 60.0  # seconds a lake may fail at start-up when --max-retry-time is 0 (forever)


@dataclass
class Flight:
    taken: list[tuple[PartitionBuffer, int]]
    objects: list[Any]
    future: Future[int]
    started: float = field(default_factory=time.monotonic)


class Writer:
    def __init__(self, s: WriterSettings, lake: Lake | None = None) -> None:
        self.s = s
        self.form = ObjectFormat(s.prefix, s.layout, s.fmt, s.compression, s.compression_level)
        self.policy = FlushPolicy(s.batch_records, s.batch_bytes, s.batch_age)
        self.lake = lake or Lake(s.lake)
        self.consumer = LakeConsumer(s.kafka, s.group, s.topic, s.start_from, self)
        self.metrics = WriterMetrics(s.metrics_port, s.metrics_addr)
        self.dead: DeadLetters | None = None
        self.buffers: dict[int, PartitionBuffer] = {}
        self.flying: dict[int, Flight] = {}  # partition -> its flush whose upload is under way
        self.flyer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flush")
        self.owned: set[int] = set()  # partitions assigned to this writer now
        self.last_activity = time.monotonic()
        # bumped when a partition leaves us: a flush that spans it must not commit
        self.epoch: dict[int, int] = {}
        self.ever_assigned = False
        self.paused = False
        self.stop = threading.Event()
        self.records = self.objects = self.bytes = self.dead_letters = self.commits = 0
        self._folders: dict[tuple[str, str, int], str] = {}
        self._prefixes: dict[int, bytes] = {}  # partition -> start of its stored lines

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._patiently(lambda: self.lake.ensure_bucket(self.s.create_bucket))
        self._patiently(self._claim_prefix)
        partitions = self.consumer.check_topic()
        self.dead = DeadLetters(self.s.kafka, self.s.dlq_topic, partitions, self.s.topic)
        self.consumer.subscribe()
        log.info(
            "landing %s (%d partitions) from %s into s3://%s/%s as group %s",
            self.s.topic,
            partitions,
            self.s.kafka.describe(),
            self.s.lake.bucket,
            layout.topic_prefix(self.s.prefix, self.s.topic),
            self.s.group,
        )

    def _claim_prefix(self) -> None:
        """One consumer group per prefix and topic: another group's batches would not line up with
        ours, so re-landing a range into the same prefix would store it twice. Refuse that."""
        key = layout.topic_prefix(self.s.prefix, self.s.topic) + OWNER_KEY
        text = self.lake.get_text(key)
        if text is None:
            self.lake.put_text(key, orjson.dumps({"group": self.s.group, "topic": self.s.topic}).decode())
            return
        owner = orjson.loads(text).get("group")
        if owner != self.s.group:
            raise LoglakeError(
                f"s3://{self.s.lake.bucket}/{layout.topic_prefix(self.s.prefix, self.s.topic)} is landed by group "
                f"{owner!r}; landing it again as {self.s.group!r} would store events twice: replay into another "
                f"--prefix, or run with --group {owner}"
            )

    def _patiently(self, step: Callable[[], None]) -> None:
        """Run a start-up step against the lake, retrying passing failures (refused connections,
        timeouts, 5xx) with backoff for --max-retry-time, or START_PATIENCE seconds when that is 0:
        a lake that is slow to come up is waited for, a wrong endpoint still ends in one sentence."""
        limit = self.s.max_retry_time or START_PATIENCE
        first = time.monotonic()
        delay = 0.5
        while True:
            try:
                step()
                return
            except LakeRetriable as exc:
                waited = time.monotonic() - first
                if waited >= limit:
                    raise LoglakeError(
                        f"the lake at {self.s.lake.endpoint_url} did not answer for {waited:.0f} s: {exc}"
                    ) from None
                log.warning("the lake failed (%s); retrying in %.1f s", exc, delay)
                if self.stop.wait(min(delay, limit - waited)):
                    raise LoglakeError("stopped before the lake answered") from None
                delay = min(delay * 2, 15.0)

    # -- rebalance callbacks (run inside consumer.poll_batch) ------------------------------------
    def assigned(self, partitions: list[int]) -> None:
        self.owned.update(partitions)
        self.last_activity = time.monotonic()
        self.ever_assigned = True
        if self.paused:
            self.consumer.pause(partitions)
        log.info("assigned partitions %s (now %s)", partitions, sorted(self.owned))

    def revoked(self, partitions: list[int]) -> None:
        mine = [p for p in partitions if p in self.buffers or p in self.flying]
        if mine:
            try:
                self._flush(mine, retry=False)
            except (LakeRetriable, LoglakeError) as exc:
                log.warning(
                    "could not flush revoked partitions %s (%s); their next owner re-reads them", mine, exc
                )
        self._leave(partitions, "revoked")

    def lost(self, partitions: list[int]) -> None:
        self._leave(partitions, "lost")

    def _leave(self, partitions: list[int], why: str) -> None:
        for p in partitions:
            self.owned.discard(p)
            self.epoch[p] = self.epoch.get(p, 0) + 1
            dropped = self.buffers.pop(p, None)
            if dropped is not None and not dropped.empty:
                log.info(
                    "partition %d %s: dropped %d buffered records (re-read by the next owner)",
                    p,
                    why,
                    dropped.records + dropped.dead_letters,
                )
        log.info("partitions %s %s (now %s)", partitions, why, sorted(self.owned))

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        now = time.monotonic()
        last_record = next_progress = self.last_activity = now
        idle_flush = min(self.s.idle_flush, self.s.exit_when_idle or self.s.idle_flush)
        while not self.stop.is_set():
            messages = self.consumer.poll_batch(10_000, 0.2)
            now = time.monotonic()
            if messages:
                self._route(messages)
                last_record = self.last_activity = now
            self._land()
            due = [p for p, b in self.buffers.items() if self.policy.due(b, now)]
            if not due and self.buffers and now - last_record >= idle_flush:
                due = list(self.buffers)
            if due:
                busy = [p for p in due if p in self.flying]
                self._launch(due)
                # backpressure: a partition whose next batch is full while the previous one is still
                # uploading waits for that upload, so a slow lake cannot make the buffers grow unbounded
                blocked = [p for p in busy if p in self.buffers and self.policy.full(self.buffers[p])]
                if blocked:
                    self._land(wait=True, partitions=blocked)
            # the idle clock starts at the first assignment: a restarted writer may first wait for
            # the group to evict its dead predecessor (session timeout) before it gets partitions
            idle_limit = self.s.exit_when_idle + (0 if self.ever_assigned else 60)
            idle = not self.buffers and not self.flying
            if self.s.exit_when_idle and now - self.last_activity >= idle_limit and idle:
                log.info("no new records for %.0f s: exiting", self.s.exit_when_idle)
                break
            if now >= next_progress:
                self._progress()
                next_progress = now + self.s.progress_every
        self._land(wait=True)
        if self.buffers:
            self._flush(list(self.buffers), retry=True)
        self._progress()
        return 0

    def _route(self, messages: list[Any]) -> None:
        """Validate each record and append it to its partition's buffer, or send it to the dead
        letters. The hot loop: ~3.5 µs per event here, see Performance in the README."""
        topic = self.s.topic
        max_bytes = self.s.max_record_bytes
        buffers = self.buffers
        folders = self._folders
        prefixes = self._prefixes
        line_of = layout.stored_line
        owned = self.owned
        for m in messages:
            p = m.partition()
            if p not in owned:
                continue  # fetched before its partition was revoked: the next owner reads it
            offset = m.offset()
            buffer = buffers.get(p)
            if buffer is None:
                buffer = buffers[p] = PartitionBuffer(topic, p, offset)
            value = m.value()
            try:
                date, hour, event_ms = validate(value, max_bytes)
            except Rejection as why:
                self._dead_letter(m, why)
                buffer.add_dead_letter(offset)
                continue
            folder = folders.get((date, hour, p))
            if folder is None:
                folder = folders[(date, hour, p)] = layout.lake_partition(self.s.layout, date, hour, p)
                prefixes[p] = layout.envelope_prefix(topic, p)
                if len(folders) > 10_000:
                    folders.clear()
            buffer.add(folder, offset, line_of(prefixes[p], offset, m.timestamp()[1], value), event_ms)
        self.records += len(messages)
        self.metrics.records.inc(len(messages))

    def _dead_letter(self, message: Any, why: Rejection) -> None:
        assert self.dead is not None
        self.dead.send(message, why.kind, str(why))
        self.dead_letters += 1
        self.metrics.dead_letters.labels(why.kind).inc()
        log.debug("dead letter %s/%d/%d: %s", message.topic(), message.partition(), message.offset(), why)

    # -- flush -------------------------------------------------------------------------------------
    # The usual flush is launched: its upload runs on a background thread while the loop keeps
    # consuming, and `_land` commits it once the upload succeeded (one flight per partition at a
    # time). A failed flight, a revoke and shutdown take the blocking path, `_flush`, which retries.

    def _take(self, partitions: list[int]) -> tuple[list[tuple[PartitionBuffer, int]], list[Any]]:
        taken = [(self.buffers.pop(p), self.epoch.get(p, 0)) for p in partitions if p in self.buffers]
        return taken, [o for b, _ in taken for o in to_objects(b, self.form, self.s.group)]

    def _launch(self, partitions: list[int]) -> None:
        ready = [p for p in partitions if p not in self.flying]
        taken, objects = self._take(ready)
        if not taken:
            return
        flight = Flight(taken, objects, self.flyer.submit(self.lake.put_all, objects, self.form))
        for buffer, _ in taken:
            self.flying[buffer.partition] = flight

    def _land(self, wait: bool = False, partitions: list[int] | None = None, retry: bool = True) -> None:
        """Commit the flights whose upload finished (or all of them / those of `partitions`, waiting)."""
        flights = {id(f): f for p, f in self.flying.items() if partitions is None or p in partitions}
        for flight in flights.values():
            if not wait and not flight.future.done():
                continue
            for buffer, _ in flight.taken:
                self.flying.pop(buffer.partition, None)
            try:
                try:
                    stored = flight.future.result()
                except LakeRetriable:
                    stored = self._upload(flight.objects, retry)  # blocks, pauses, retries (or raises)
            except BaseException:
                self._reread(flight.taken)
                raise
            self._commit(flight.taken, len(flight.objects), stored, flight.started)

    def _reread(self, taken: list[tuple[PartitionBuffer, int]]) -> None:
        """A flight that will not land: read its partitions again from where it started (the buffers
        that came after it are dropped too; they are read again as well)."""
        for buffer, _ in taken:
            if buffer.partition in self.owned:
                self.buffers.pop(buffer.partition, None)
                self.consumer.rewind(buffer.partition, buffer.start_offset)

    def _flush(self, partitions: list[int], retry: bool) -> None:
        """Blocking flush: upload the buffers of `partitions`, acknowledge their dead letters, commit."""
        self._land(wait=True, partitions=partitions, retry=retry)
        started = time.monotonic()
        taken, objects = self._take(partitions)
        try:
            stored = self._upload(objects, retry) if objects else 0
        except BaseException:
            for (
                b,
                _,
            ) in taken:  # keep them, so that shutdown or revoke sees them (their data is not committed)
                self.buffers.setdefault(b.partition, b)
            raise
        self._commit(taken, len(objects), stored, started)

    def _commit(
        self, taken: list[tuple[PartitionBuffer, int]], objects: int, stored: int, started: float
    ) -> None:
        if self.dead is not None and any(b.dead_letters for b, _ in taken):
            self.dead.flush()
        for buffer, epoch in taken:
            p = buffer.partition
            if self.epoch.get(p, 0) != epoch or p not in self.owned:
                log.info("partition %d left this writer during the flush: not committing it", p)
                continue
            if self.consumer.commit(p, buffer.next_offset):
                self.commits += 1
            elif p in self.owned:  # refused mid-rebalance, but still ours: read the batch again
                self._reread([(buffer, epoch)])
        self.objects += objects
        self.bytes += stored
        self.metrics.flushed(objects, stored, time.monotonic() - started)
        log.debug(
            "flushed %d objects (%d bytes) of partitions %s", objects, stored, [b.partition for b, _ in taken]
        )

    def _upload(self, objects: list[Any], retry: bool) -> int:
        delay = 0.5
        first_failure = 0.0
        while True:
            try:
                stored = self.lake.put_all(objects, self.form)
                break
            except LakeRetriable as exc:
                if not retry:
                    raise
                now = time.monotonic()
                first_failure = first_failure or now
                down_for = now - first_failure
                if self.s.max_retry_time and down_for > self.s.max_retry_time:
                    raise LoglakeError(
                        f"the lake at {self.s.lake.endpoint_url} failed for {down_for:.0f} s "
                        f"(--max-retry-time {self.s.max_retry_time:g}); nothing was committed: {exc}"
                    ) from None
                log.warning("lake upload failed (%s); retrying in %.1f s, fetching paused", exc, delay)
                self._pause()
                self._wait_polling(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 15.0)
        if first_failure:
            log.info("the lake is back after %.1f s", time.monotonic() - first_failure)
            self._resume()
        return stored

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.consumer.pause(self.owned)

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self.consumer.resume(self.owned)

    def _wait_polling(self, seconds: float) -> None:
        """Sleep while staying a live group member (records fetched before the pause are kept)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self.consumer.poll_batch(1000, min(0.2, max(0.0, deadline - time.monotonic())))
            if messages:
                self._route(messages)

    # -- reporting ---------------------------------------------------------------------------------
    def _progress(self) -> None:
        lags = self.consumer.lag(self.owned)
        for p, lag in lags.items():
            self.metrics.lag.labels(str(p)).set(lag)
        if not self.s.quiet:
            log.info(
                "records=%d buffered=%d objects=%d bytes=%d dead_letters=%d commits=%d lag=%d partitions=%s",
                self.records,
                sum(b.records + b.dead_letters for b in self.buffers.values()),
                self.objects,
                self.bytes,
                self.dead_letters,
                self.commits,
                sum(lags.values()),
                sorted(self.owned),
            )

    def close(self) -> None:
        self.flyer.shutdown(wait=True)
        self.consumer.close()
        if self.dead is not None:
            self.dead.close()
        self.lake.close()


# ------------------------------------------------------------------------------------------------
# Command line


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
        choices=layout.LAYOUTS,
        help="time: dt=/hour= by event time (UTC); partition: partition=<n>",
    )
    add(
        g,
        "--format",
        env="LOGLAKE_LAKE_FORMAT",
        default=d.fmt,
        choices=layout.FORMATS,
        help="object format",
        dest="fmt",
    )
    add(
        g,
        "--compression",
        env="LOGLAKE_LAKE_COMPRESSION",
        default=d.compression,
        choices=layout.COMPRESSIONS,
        help="object compression",
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
    return WriterSettings(
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


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    setup_logging(verbose=ns.verbose)
    writer = Writer(settings_from_args(ns))
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
        f"dead_letters={writer.dead_letters} commits={writer.commits} elapsed={elapsed:.1f}s "
        f"records_per_s={writer.records / elapsed if elapsed else 0:.0f}\n"
    )
    return code


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
