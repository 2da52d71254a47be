"""The lake writer's loop: poll -> route -> launch flights -> settle them -> commit.

One thread owns every piece of state; uploads run on worker threads as flights (loglake/partition.py)
and come back to this loop as outcomes. The consumer, the object store, the dead letters, the worker
pool and the clock are passed in behind small interfaces, so tests drive the same loop with a
scripted consumer and an in-memory lake through any interleaving they choose.

The rules this loop keeps (the why is in loglake/ledger.py):
1. Per owned partition, consecutive offsets are gathered into a batch; at most one batch of a
   partition is in flight, and a partition commits only the end of a landed claim, in order.
2. Records that are not storable events are rejected into the batch and become dead letters when
   the batch lands, before its commit. Nothing is auto-committed.
3. When the lake fails, the flight is retried with backoff and jitter; the partition keeps gathering
   until its next batch is full, then its fetching pauses (memory stays bounded); the consumer keeps
   polling, so the group does not evict it.
4. A revoked partition lands what it can within a grace period, then is forgotten with any flight
   still going; a lost partition is forgotten at once. Abandoned flights cannot harm the next owner.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

import orjson

from loglake import layout
from loglake.batch import Batch, Buffers, FlushPolicy, rejected_from
from loglake.body import Body
from loglake.errors import LoglakeError
from loglake.events import Rejection, validate, validate_quickly
from loglake.formats import recipe_of
from loglake.lake import LakeRetriable, ObjectStore, check_conditional_writes
from loglake.ledger import Claim, Ledger, claim_of
from loglake.metrics import WriterMetrics
from loglake.partition import (
    RETRIABLE,
    DeadLetterSink,
    Flight,
    Landed,
    Landing,
    PartitionState,
    Reposition,
    backoff,
    land,
)
from loglake.settings import WriterSettings
from loglake.source import SourceConsumer

log = logging.getLogger(__name__)

START_PATIENCE = 60.0  # seconds a lake may fail at start-up when --max-retry-time is 0 (forever)
REVOKE_GRACE = 10.0  # seconds a revoked partition may take to land what it gathered
POLL_RECORDS = 2_000  # per consume(): fewer message objects alive at once, and no slower


class Workers(Protocol):
    """Where flights run: a thread pool here, a hand-driven queue in tests."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def wait(self, futures: list[Future[Any]], timeout: float) -> None:
        """Return when one of `futures` is done or `timeout` seconds passed."""
        ...

    def shutdown(self) -> None: ...


class ThreadWorkers:
    def __init__(self, threads: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flight")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def wait(self, futures: list[Future[Any]], timeout: float) -> None:
        wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)

    def shutdown(self) -> None:
        # abandoned flights still finish (each S3 call is bounded by its timeouts); don't wait for them
        self._pool.shutdown(wait=False, cancel_futures=True)


class Writer:
    def __init__(
        self,
        s: WriterSettings,
        consumer: SourceConsumer,
        store: ObjectStore,
        dead: DeadLetterSink,
        workers: Workers | None = None,
        metrics: WriterMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
        stop: threading.Event | None = None,
    ) -> None:
        self.s = s
        self.recipe = recipe_of(s)
        self.policy = FlushPolicy(s.batch_records, s.batch_bytes, s.batch_age)
        self.consumer = consumer
        self.store = store
        self.dead = dead
        self.ledger = Ledger(store, s.prefix, s.topic)
        self.landing = Landing(self.ledger, store, dead, s.prefix, s.group)
        self.workers = workers or ThreadWorkers()
        self.metrics = metrics or WriterMetrics(0)
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.parts: dict[int, PartitionState] = {}
        # a batch stops growing once it holds batch_bytes, give or take a poll's records
        self.buffers = Buffers(s.batch_bytes + 8 * 1024 * 1024)
        self.ever_assigned = False
        self.draining = False
        self.stop = stop or threading.Event()  # set: flush, commit and exit (SIGTERM sets it)
        self.last_record = clock()
        self.records = self.objects = self.bytes = self.dead_letters = self.commits = 0
        self.unlanded = 0  # the group's lag when this writer exited
        self._next_progress = clock()
        # an idle writer about to exit flushes first, not later
        self._idle_flush = min(s.idle_flush, s.exit_when_idle or s.idle_flush)

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        partitions = self.consumer.check_topic()
        self._patiently(lambda: self.store.ensure_bucket(self.s.create_bucket))
        self._patiently(lambda: check_conditional_writes(self.store, layout.topic_prefix(self.s.prefix, "")))
        self._patiently(self._claim_prefix)
        self.dead.prepare(partitions)
        self.consumer.subscribe(self)
        log.info(
            "landing %s (%d partitions) into %s/%s as group %s, %s",
            self.s.topic,
            partitions,
            self.store.where,
            layout.topic_prefix(self.s.prefix, self.s.topic),
            self.s.group,
            self.recipe,
        )

    def _claim_prefix(self) -> None:
        """One consumer group of one Kafka cluster per prefix and topic, claimed with a conditional
        write (two groups starting together cannot both take it): another group's batches, or the
        same topic name in another cluster (other records at the same offsets), would store events
        twice or take the place of others."""
        key = layout.owner_key(self.s.prefix, self.s.topic)
        cluster = self.consumer.cluster_id()
        mine = orjson.dumps({"group": self.s.group, "topic": self.s.topic, "cluster": cluster})
        if self.store.put_if_absent(key, Body(mine, "application/json")):
            return
        owner = orjson.loads(self.store.get(key) or b"{}")
        where = f"s3://{self.s.lake.bucket}/{layout.topic_prefix(self.s.prefix, self.s.topic)}"
        if owner.get("group") != self.s.group:
            raise LoglakeError(
                f"{where} is landed by group {owner.get('group')!r}; landing it again as {self.s.group!r} would "
                f"store events twice: replay into another --prefix, or run with --group {owner.get('group')}"
            )
        if owner.get("cluster") and cluster and owner["cluster"] != cluster:
            raise LoglakeError(
                f"{where} holds {self.s.topic} of Kafka cluster {owner['cluster']}, and this is cluster {cluster}: "
                "the same offsets hold other records there; land this cluster's topic into another --prefix"
            )

    def _patiently(self, step: Callable[[], None]) -> None:
        """A start-up step against the lake, retried on passing failures for --max-retry-time (or
        START_PATIENCE s when that is 0): a lake slow to come up is waited for, a wrong endpoint
        still ends in one sentence."""
        limit = self.s.max_retry_time or START_PATIENCE
        first = self.clock()
        attempts = 0
        while True:
            try:
                step()
                return
            except LakeRetriable as exc:
                waited = self.clock() - first
                if waited >= limit:
                    raise LoglakeError(
                        f"the lake {self.store.where} did not answer for {waited:.0f} s: {exc}"
                    ) from None
                attempts += 1
                delay = min(backoff(attempts, lambda: 1.0), limit - waited)
                log.warning("the lake failed (%s); retrying in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    raise LoglakeError("stopped before the lake answered") from None

    # -- rebalance callbacks (called inside consumer.poll) -----------------------------------------
    def assigned(self, partitions: list[int]) -> None:
        try:
            committed = self.consumer.committed(partitions)
        except LoglakeError as exc:
            log.warning("could not read the group's committed offsets (%s); checking the lake's claims", exc)
            committed = {}
        for p in partitions:
            offset = committed.get(p, -1)
            self.parts[p] = PartitionState(p, chain_checked=offset >= 0, committed=offset, landed=offset)
        self.ever_assigned = True
        self.last_record = self.clock()
        if self.draining:
            self._set_paused([self.parts[p] for p in partitions], True)
        log.info("assigned partitions %s (now %s)", partitions, sorted(self.parts))

    def revoked(self, partitions: list[int]) -> None:
        deadline = self.clock() + REVOKE_GRACE
        for p in partitions:
            state = self.parts.get(p)
            if state is not None:
                self._finish(state, deadline)
        self._forget(partitions, "revoked")

    def lost(self, partitions: list[int]) -> None:
        self._forget(partitions, "lost")

    def _forget(self, partitions: list[int], why: str) -> None:
        for p in partitions:
            state = self.parts.pop(p, None)
            if state is None:
                continue
            left = state.buffered + (state.flight.batch.handled if state.flight else 0)
            if left:
                log.info(
                    "partition %d %s: %d records not landed here; its next owner reads them again",
                    p,
                    why,
                    left,
                )
        log.info("partitions %s %s (now %s)", partitions, why, sorted(self.parts))

    def _finish(self, state: PartitionState, deadline: float) -> None:
        """Land what `state` gathered before `deadline` (a revoke): the flight in the air, then the
        batch, unless it must reproduce a claim it has not read to the end."""
        while (left := deadline - self.clock()) > 0:
            flight = state.flight
            if flight is not None and flight.future is None and flight.retry_at > self.clock():
                self.sleep(min(flight.retry_at - self.clock(), left))
                continue
            if not self._launch(state, final=True):
                return  # nothing (more) to land
            flight = state.flight
            assert flight is not None and flight.future is not None
            self.workers.wait([flight.future], left)
            if flight.future.done():
                self._settle(state)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        while not self.step():
            pass
        self._progress()
        self._report_unlanded()
        return 0

    def step(self) -> bool:
        """One turn of the loop; True when the writer is done (drained after a stop or idleness)."""
        if self.stop.is_set() and not self.draining:
            self._drain("stopping")
        messages = self.consumer.poll(POLL_RECORDS, self._poll_timeout())
        now = self.clock()
        if messages:
            self._route(messages)
            self.last_record = now
        elif self.buffers.kept and all(state.idle for state in self.parts.values()):
            self.buffers.clear()  # nothing gathered or landing: an idle writer holds no batch memory
        for state in list(self.parts.values()):
            flight = state.flight
            if flight is not None and flight.future is not None and flight.future.done():
                self._settle(state)
        for state in list(self.parts.values()):
            self._launch(state)
            if state.landed > state.committed and now >= state.commit_again_at:
                self._commit(state, state.landed)
        self._pressure()
        if self.draining:
            self._drop_unfinishable()
            return all(state.idle for state in self.parts.values())
        if self.s.exit_when_idle and self._idle_for(now) >= self._idle_limit():
            log.info("no new records for %.0f s: exiting", self.s.exit_when_idle)
            self._drain("idle")
        if now >= self._next_progress:
            self._progress()
            self._next_progress = now + self.s.progress_every
        return False

    def _drop_unfinishable(self) -> None:
        """While draining: a batch that must reproduce a claim it has not read to the end cannot be
        landed (fetching is paused); drop it, its next reader lands the claim."""
        for state in self.parts.values():
            if state.flight is None and state.sealed is None and state.follow is not None:
                state.batch = state.follow = None

    def _poll_timeout(self) -> float:
        flying = [s.flight.future for s in self.parts.values() if s.flight and s.flight.future]
        if flying and all(f.done() for f in flying):
            return 0.0
        return 0.2

    def _idle_for(self, now: float) -> float:
        if any(not state.idle for state in self.parts.values()):
            return 0.0
        return now - self.last_record

    def _idle_limit(self) -> float:
        # a restarted writer may first wait for the group to evict its dead predecessor (session
        # timeout) before it gets partitions: the idle clock starts at the first assignment
        return self.s.exit_when_idle + (0 if self.ever_assigned else 60)

    def _drain(self, why: str) -> None:
        """Stop fetching; land what was gathered; the loop ends when every partition is idle."""
        log.info("%s: landing what was gathered", why)
        self.draining = True
        self._set_paused(list(self.parts.values()), True)

    def _route(self, messages: list[Any]) -> None:
        """Validate each record and add it to its partition's batch, or reject it (a dead letter to
        be). The hot loop (see docs/performance.md): the common record, a compact ASCII event of a
        second seen before landing in the folder of the record before it, takes the short way."""
        parts = self.parts
        quick = validate_quickly
        state: PartitionState | None = None
        last_p = -1
        records = None  # the FolderRecords the record before went to, and what decided it
        last_date = last_hour = ""
        add_offset = add_stamp = add_ms = add_end = data = None  # `records`' arrays and buffer
        for m in messages:
            p = m.partition()
            if p != last_p:
                state, last_p, records = parts.get(p), p, None
            if state is None:
                continue  # fetched before its partition left this writer: the next owner reads it
            offset = m.offset()
            position = state.position
            if position is not None and offset < position:
                continue  # handled already (fetched before a seek)
            batch = state.batch
            if batch is None:
                batch = self._open(state, offset)
                records = None
                if batch is None:
                    continue
            follow = state.follow
            recipe = follow.recipe if follow is not None else self.recipe
            value = m.value()
            found = quick(value, recipe.max_record_bytes)
            if found is None:
                try:
                    found = validate(value, recipe.max_record_bytes)
                except Rejection as why:
                    batch.reject(rejected_from(m, why.kind, str(why)))
                    self.dead_letters += 1
                    self.metrics.dead_letters.labels(why.kind).inc()
                    found = None
            if found is not None:
                date, hour, event_ms = found
                # the batch changes only through _open and _seal, which forget `records`
                if records is None or date is not last_date or hour is not last_hour:
                    records = batch.folder(layout.lake_partition(recipe.layout, date, hour, p), offset)
                    last_date, last_hour = date, hour
                    add_offset, add_stamp = records.offsets.append, records.timestamps.append
                    add_ms, add_end, data = records.event_ms.append, records.ends.append, records.data
                add_offset(offset)
                add_stamp(m.timestamp()[1])
                add_ms(event_ms)
                try:
                    data.write(value)
                except ValueError:  # its buffer is full: a larger one
                    data = records.grow(len(value))
                    data.write(value)
                add_end(data.tell())
                batch.next = offset + 1
            state.position = offset + 1
            if follow is not None and offset + 1 >= follow.end:
                self._seal(state)
                records = None
        self.records += len(messages)
        self.metrics.records.inc(len(messages))

    def _open(self, state: PartitionState, offset: int) -> Batch | None:
        expected = state.position if state.position is not None else state.committed
        if expected >= 0 and offset != expected:
            # offsets were skipped (deleted by retention, say): claims may start anywhere in the gap,
            # so the flight of this batch first finds where the partition's claims end
            state.chain_checked = False
        follow = state.follow
        if follow is not None and offset != follow.start:
            # the records a claim in the lake holds are no longer all in Kafka (retention): land
            # nothing of it, say so, and carry on after it
            log.error(
                "partition %d: offsets %d..%d of claim %s are no longer in Kafka (it starts at %d now); "
                "what of them is not in the lake is lost",
                state.partition,
                follow.start,
                offset - 1,
                self.ledger.key(state.partition, follow.start),
                offset,
            )
            state.follow = None
            if offset < follow.end:
                self._reposition(state, follow.end, None)
                return None
        state.batch = Batch(self.s.topic, state.partition, offset, created=self.clock(), buffers=self.buffers)
        return state.batch

    def _seal(self, state: PartitionState) -> None:
        """A following batch reached its claim's end: set it aside until the flight slot is free."""
        assert state.batch is not None and state.follow is not None and state.sealed is None
        state.sealed = state.batch
        state.sealed_claim = state.follow
        state.batch = None
        state.follow = None

    # -- flights -----------------------------------------------------------------------------------
    def _launch(self, state: PartitionState, final: bool = False) -> bool:
        """Start (or retry) the partition's flight when it is time; True if one is in the air."""
        flight = state.flight
        now = self.clock()
        if flight is not None:
            if flight.future is None and now >= flight.retry_at:
                self._submit(state, flight)
            return True
        if state.sealed is not None:
            claim, batch = state.sealed_claim, state.sealed
            state.sealed = state.sealed_claim = None
            assert claim is not None
            state.flight = Flight(batch, claim, following=True, check_chain=False)
        else:
            batch = state.batch
            if batch is None or state.follow is not None:
                return False  # nothing, or a claim not read to its end yet
            idle = now - self.last_record >= self._idle_flush
            if not (final or self.draining or idle or self.policy.due(batch, now)):
                return False
            state.batch = None
            claim = claim_of(batch, self.recipe, self.s.prefix, self.s.group)
            state.flight = Flight(batch, claim, following=False, check_chain=not state.chain_checked)
        self._submit(state, state.flight)
        return True

    def _submit(self, state: PartitionState, flight: Flight) -> None:
        flight.attempts += 1
        flight.future = self.workers.submit(land, flight, self.landing)

    def _settle(self, state: PartitionState) -> None:
        """Act on the outcome of the partition's finished flight."""
        flight = state.flight
        assert flight is not None and flight.future is not None
        try:
            outcome = flight.future.result()
        except RETRIABLE as exc:
            self._failed(state, flight, exc)
            return
        state.flight = None
        state.chain_checked = True
        if flight.failing_since:
            log.info("the lake is back after %.1f s", self.clock() - flight.failing_since)
        if isinstance(outcome, Landed):
            self.objects += outcome.objects
            self.bytes += outcome.stored_bytes
            self.metrics.flushed(outcome.objects, outcome.stored_bytes, self.clock() - flight.batch.created)
            self.buffers.give(flight.batch)
            self._commit(state, outcome.claim.end)
        else:
            assert isinstance(outcome, Reposition)
            log.info(
                "partition %d: %s; reading again from offset %d", state.partition, outcome.why, outcome.offset
            )
            self._reposition(state, outcome.offset, outcome.follow)

    def _failed(self, state: PartitionState, flight: Flight, exc: BaseException) -> None:
        now = self.clock()
        flight.future = None
        flight.failing_since = flight.failing_since or now
        flight.last_error = str(exc)
        down_for = now - flight.failing_since
        if self.s.max_retry_time and down_for > self.s.max_retry_time:
            raise LoglakeError(
                f"landing partition {state.partition} failed for {down_for:.0f} s (--max-retry-time "
                f"{self.s.max_retry_time:g}); nothing from offset {flight.batch.start} on was committed: {exc}"
            )
        delay = backoff(flight.attempts, self.jitter)
        flight.retry_at = now + delay
        log.warning(
            "landing partition %d offsets %d..%d failed (%s); retrying in %.1f s",
            state.partition,
            flight.batch.start,
            flight.batch.next - 1,
            exc,
            delay,
        )

    def _reposition(self, state: PartitionState, offset: int, follow: Claim | None) -> None:
        """Read the partition again from `offset`, landing `follow` first; with no claim to follow,
        everything before `offset` is landed: commit it."""
        state.batch = state.sealed = state.sealed_claim = None
        state.follow = follow
        state.position = offset
        self.consumer.seek(state.partition, offset)
        self.last_record = self.clock()  # records come again from there: not idle yet
        if follow is None:
            self._commit(state, offset)
        if state.paused and not self.draining:
            self._set_paused([state], False)

    def _commit(self, state: PartitionState, offset: int) -> None:
        """Commit `offset` (the end of a landed claim). A commit the group refuses while the partition
        is still ours (a rebalance going on) is asked again a second later, and by the next landing."""
        state.landed = max(state.landed, offset)
        if state.landed <= state.committed:
            return
        if self.consumer.commit(state.partition, state.landed):
            state.committed = state.landed
            self.commits += 1
        else:
            state.commit_again_at = self.clock() + 1.0

    def _pressure(self) -> None:
        """Pause a partition whose next batch is full while the one before is still landing."""
        if self.draining:
            return
        pause, resume = [], []
        for state in self.parts.values():
            busy = state.flight is not None or state.sealed is not None
            full = state.batch is not None and self.policy.full(state.batch)
            if busy and full and not state.paused:
                pause.append(state)
            elif state.paused and not (busy and full):
                resume.append(state)
        self._set_paused(pause, True)
        self._set_paused(resume, False)

    def _set_paused(self, states: list[PartitionState], paused: bool) -> None:
        if not states:
            return
        (self.consumer.pause if paused else self.consumer.resume)([s.partition for s in states])
        for state in states:
            state.paused = paused

    # -- reporting ---------------------------------------------------------------------------------
    def _progress(self) -> None:
        lags = self.consumer.lag(list(self.parts))
        for p, lag in lags.items():
            self.metrics.lag.labels(str(p)).set(lag)
        if not self.s.quiet:
            log.info(
                "records=%d buffered=%d objects=%d bytes=%d dead_letters=%d commits=%d lag=%d partitions=%s",
                self.records,
                sum(s.buffered for s in self.parts.values()),
                self.objects,
                self.bytes,
                self.dead_letters,
                self.commits,
                sum(lags.values()),
                sorted(self.parts),
            )

    def _report_unlanded(self) -> None:
        """A writer that stops while its group has records left says so (another member may be
        landing them; if none is, they wait in Kafka for the next run)."""
        try:
            lag = self.consumer.group_lag()
        except LoglakeError as exc:
            log.warning("could not read the group's lag at exit: %s", exc)
            return
        self.unlanded = sum(lag.values())
        if self.unlanded:
            behind = {p: n for p, n in sorted(lag.items()) if n}
            log.warning(
                "group %s still has %d records of %s not landed (per partition: %s); they wait in Kafka "
                "for a writer of the group",
                self.s.group,
                self.unlanded,
                self.s.topic,
                behind,
            )

    def close(self) -> None:
        # the consumer first: closing it revokes what it owns, and a revoke may still land a batch
        self.consumer.close()
        self.workers.shutdown()
        self.dead.close()
        self.store.close()
