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
5. An assigned partition reads nothing until the lake says where it resumes (loglake/resume.py).
6. With an Iceberg table, a landed claim waits for the table's next commit, and Kafka's commit for
   that (loglake/tablecommit.py); without one, it is committed at once.

Why this module is longer than the others (about 500 lines): it is the one state machine of the loop
thread. Its rebalance callbacks, flight outcomes and commits change the same per-partition state in
an order exactly-once depends on, and reads best in one place. What can stand alone does: routing
(route.py), landing a batch (partition.py), start-up checks (startup.py), where a partition resumes
(resume.py), the lake's health (health.py), the worker threads (workers.py), the table (tablecommit.py).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from loglake import layout, owner
from loglake.batch import Buffers, FlushPolicy
from loglake.errors import LoglakeError
from loglake.formats import recipe_of
from loglake.health import LakeHealth
from loglake.lake import LakeRetriable, ObjectStore
from loglake.ledger import Claim, Ledger
from loglake.metrics import WriterMetrics
from loglake.partition import (
    RETRIABLE,
    DeadLetterSink,
    Flight,
    Landed,
    Landing,
    Lost,
    PartitionState,
    Reposition,
    backoff,
    land,
)
from loglake.resume import Resume, resume_point, seek_to
from loglake.route import Router
from loglake.settings import WriterSettings
from loglake.source import SourceConsumer
from loglake.startup import open_lake
from loglake.tablecommit import TableSinkLike, commits
from loglake.workers import ThreadWorkers, Workers

log = logging.getLogger(__name__)

REVOKE_GRACE = 10.0  # seconds a revoked partition may take to land what it gathered
RESOLVE_WAIT = 5.0  # seconds an assignment waits for the lake to say where partitions resume
TOPIC_CHECK_EVERY = 30.0  # seconds between checks that the topic is still the one the lake holds
POLL_RECORDS = 2_000  # per consume(): fewer message objects alive at once, and no slower


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
        table: TableSinkLike | None = None,
    ) -> None:
        self.s = s
        self.recipe = recipe_of(s)
        self.policy = FlushPolicy(s.batch_records, s.batch_bytes, s.batch_age)
        self.consumer = consumer
        self.store = store
        self.dead = dead
        self.ledger = Ledger(store, s.prefix, s.topic)  # its key generation is known after start()
        self.workers = workers or ThreadWorkers()
        self.table = commits(table, s, store, self.workers, self._commit_to, clock, sleep, jitter)
        self.landing = Landing(self.ledger, store, dead, s.prefix, s.group, self.recipe, self.table.footers)
        self.metrics = metrics or WriterMetrics(0)
        self.health = LakeHealth(store, clock)
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.parts: dict[int, PartitionState] = {}
        # a batch stops growing once it holds batch_bytes, give or take a poll's records
        self.buffers = Buffers(s.batch_bytes + 8 * 1024 * 1024)
        self.ever_assigned = False
        self.draining = False
        self.stop = stop or threading.Event()  # set: flush, commit and exit (SIGTERM sets it)
        self.failure: LoglakeError | None = None  # found inside a callback, raised by the loop
        self.topic_id = ""
        self.lake_has_claims = False  # any partition of the topic claimed: new partitions start earliest
        self.last_record = clock()
        self.router = Router(s.topic, self.recipe, self.parts, self.buffers, self.metrics, clock)
        self.objects = self.bytes = self.commits = 0
        self.unlanded = 0  # the group's lag when this writer exited
        self._next_progress = clock()
        self._next_topic_check = clock() + TOPIC_CHECK_EVERY
        # an idle writer about to exit flushes first, not later
        self._idle_flush = min(s.idle_flush, s.exit_when_idle or s.idle_flush)

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        partitions = self.consumer.check_topic()
        lake = open_lake(
            self.s,
            self.consumer,
            self.store,
            self.stop,
            self.clock,
            lambda n: backoff(n, lambda: 1.0),
            self.table.read,
        )
        self.table.started(lake.table_offsets)
        self.ledger.generation = lake.generation
        self.topic_id = lake.topic_id
        self.lake_has_claims = lake.has_claims
        self.dead.prepare(partitions)
        self.consumer.subscribe(self)
        log.info(
            "landing %s (%d partitions) into %s/%s as group %s, %s%s",
            self.s.topic,
            partitions,
            self.store.where,
            layout.topic_prefix(self.s.prefix, self.s.topic),
            self.s.group,
            self.recipe,
            f", key generation {lake.generation}" if lake.generation > 1 else "",
        )

    # counts of what was routed (loglake/route.py)
    @property
    def records(self) -> int:
        return self.router.records

    @property
    def dead_letters(self) -> int:
        return self.router.dead_letters

    @property
    def lost_offsets(self) -> int:
        return self.router.lost_offsets

    def _check_topic(self) -> None:
        """The topic must still be the one whose offsets the lake holds (not deleted and created again
        under its name while this writer ran): else stop, in one sentence."""
        self._next_topic_check = self.clock() + TOPIC_CHECK_EVERY
        now = self.consumer.topic_id()
        if now and self.topic_id and now != self.topic_id and self.failure is None:
            self.failure = owner.recreated_while_running(self.s.topic, self.topic_id, now)

    # -- rebalance callbacks (called inside consumer.poll) -----------------------------------------
    def assigned(self, partitions: list[int]) -> None:
        """New partitions: paused until the lake says where each resumes (resolve), then sought there."""
        self.consumer.pause(partitions)
        try:
            committed = self.consumer.committed(partitions)
        except LoglakeError as exc:
            log.warning("could not read the group's committed offsets (%s); the lake's claims decide", exc)
            committed = {}
        self._check_topic()
        states = []
        for p in partitions:
            offset = committed.get(p, -1)
            state = PartitionState(p, committed=offset, landed=offset, paused=True)
            self.parts[p] = state
            self._resolve(state)
            states.append(state)
        self.ever_assigned = True
        self.last_record = self.clock()
        deadline = self.clock() + RESOLVE_WAIT
        for state in states:
            while state.resolving is not None and (left := deadline - self.clock()) > 0:
                self.workers.wait([state.resolving], left)
                if state.resolving.done():
                    self._settle_resolve(state)
        log.info("assigned partitions %s (now %s)", partitions, sorted(self.parts))

    def deleted(self, partition: int, position: int, kafka_from: int) -> None:
        """The client found `position` out of range: Kafka now starts the partition at `kafka_from`
        (retention deleted what came before), and it reads on from there."""
        state = self.parts.get(partition)
        if state is None or not state.resolved:
            return  # not reading yet: the position the lake gives is sought (and checked) again
        state.deleted_below = max(state.deleted_below, kafka_from)
        log.debug(
            "partition %d: offsets below %d are deleted (asked for %d)", partition, kafka_from, position
        )

    def revoked(self, partitions: list[int]) -> None:
        deadline = self.clock() + REVOKE_GRACE
        for p in partitions:
            state = self.parts.get(p)
            if state is not None:
                self._finish(state, deadline)
        self.table.finish(partitions, deadline)
        self._forget(partitions, "revoked")

    def lost(self, partitions: list[int]) -> None:
        self._forget(partitions, "lost")

    def _forget(self, partitions: list[int], why: str) -> None:
        self.table.forget(partitions)
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

    # -- where a partition resumes -------------------------------------------------------------------
    def _resolve(self, state: PartitionState) -> None:
        state.resolve_attempts += 1
        state.resolving = self.workers.submit(
            resume_point,
            self.ledger,
            state.partition,
            state.committed,
            self.s.start_from,
            self.table.resume_from(state.partition),
        )

    def _settle_resolve(self, state: PartitionState) -> None:
        future = state.resolving
        assert future is not None and future.done()
        state.resolving = None
        try:
            where: Resume = future.result()
        except LakeRetriable as exc:
            self.health.failed(exc)
            state.resolve_at = self.clock() + backoff(state.resolve_attempts, self.jitter)
            return
        self.health.answered()
        state.resolved = True
        state.follow = where.follow
        state.position = where.position
        self.table.repair(state.partition, where.landed)
        seek_to(where, self.consumer, state.partition, self.s.start_from, self.lake_has_claims, self.s.topic)
        if not self.draining:
            self._set_paused([state], False)

    def _resolve_again(self) -> None:
        """Partitions whose lake read failed ask again after their backoff; finished reads are taken."""
        now = self.clock()
        for state in list(self.parts.values()):
            if state.resolving is not None and state.resolving.done():
                self._settle_resolve(state)
            elif not state.resolved and state.resolving is None and now >= state.resolve_at:
                self._resolve(state)

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
        if self.failure is not None:
            raise self.failure
        if self.stop.is_set() and not self.draining:
            self._drain("stopping")
        messages = self.consumer.poll(POLL_RECORDS, self._poll_timeout())
        now = self.clock()
        if messages:
            self.router.route(messages)
            self.last_record = now
        elif self.buffers.kept and all(state.idle for state in self.parts.values()):
            self.buffers.clear()  # nothing gathered or landing: an idle writer holds no batch memory
        self._resolve_again()
        for state in list(self.parts.values()):
            flight = state.flight
            if flight is not None and flight.future is not None and flight.future.done():
                self._settle(state)
        for state in list(self.parts.values()):
            self._launch(state)
            if state.landed > state.committed and now >= state.commit_again_at:
                self._commit(state, state.landed)
        self.table.step(self.draining)
        self._watch_lake()
        self._pressure()
        if now >= self._next_topic_check:
            self._check_topic()
        if self.draining:
            self._drop_unfinishable()
            return all(state.idle for state in self.parts.values()) and self.table.idle
        if self.s.exit_when_idle and self._idle_for(now) >= self._idle_limit():
            log.info("no new records for %.0f s: exiting", self.s.exit_when_idle)
            self._drain("idle")
        if now >= self._next_progress:
            self._progress()
            self._next_progress = now + self.s.progress_every
        return False

    def _watch_lake(self) -> None:
        """While batches wait, ask the lake now and then whether it answers (loglake/health.py)."""
        health = self.health
        if health.probing is not None and health.probing.done():
            health.settle_probe()
        waiting = any(not state.idle and state.flight is None for state in self.parts.values())
        if health.probe_due(waiting):
            health.probing_now(self.workers.submit(self.store.probe))

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
        if any(not state.idle or not state.resolved for state in self.parts.values()):
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
            state.flight = Flight(batch, claim)
        else:
            batch = state.batch
            if batch is None or state.follow is not None:
                return False  # nothing, or a claim not read to its end yet
            idle = now - self.last_record >= self._idle_flush
            if not (final or self.draining or idle or self.policy.due(batch, now)):
                return False
            state.batch = None
            state.flight = Flight(batch, None)
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
            if isinstance(exc, LakeRetriable):
                self.health.failed(exc)
            self._failed(state, flight, exc)
            return
        state.flight = None
        self.health.answered()
        if isinstance(outcome, Landed):
            self.objects += outcome.objects
            self.bytes += outcome.stored_bytes
            self.metrics.flushed(outcome.objects, outcome.stored_bytes, self.clock() - flight.batch.created)
            self.buffers.give(flight.batch)
            self.lake_has_claims = True
            self.table.landed(state.partition, outcome.claim, outcome.footers)
        elif isinstance(outcome, Lost):
            self.router.count_lost(state.partition, outcome.offsets, outcome.sentence(self.ledger))
            self.buffers.give(flight.batch)
            # what Kafka still holds of the claim (from its cut on) is claimed anew
            self._reposition(state, outcome.note.cut, None, outcome.note.stored_part(outcome.claim))
        else:
            assert isinstance(outcome, Reposition)
            log.info(
                "partition %d: %s; reading again from offset %d", state.partition, outcome.why, outcome.offset
            )
            self._reposition(state, outcome.offset, outcome.follow, outcome.landed)

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

    def _reposition(
        self, state: PartitionState, offset: int, follow: Claim | None, landed: Claim | None = None
    ) -> None:
        """Read the partition again from `offset`, landing `follow` first; with no claim to follow,
        everything before `offset` is landed (`landed`, another writer's claim, ends there): commit it."""
        state.batch = state.sealed = state.sealed_claim = None
        state.follow = follow
        state.position = offset
        self.consumer.seek(state.partition, offset)
        self.last_record = self.clock()  # records come again from there: not idle yet
        if follow is None:
            assert landed is not None and landed.end == offset
            self.table.landed(state.partition, landed)
        if state.paused and not self.draining:
            self._set_paused([state], False)

    def _commit_to(self, partition: int, offset: int) -> None:
        """Commit `offset` of `partition` if it is still ours (the table's commit came back)."""
        state = self.parts.get(partition)
        if state is not None:
            self._commit(state, offset)

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
            elif state.paused and state.resolved and not (busy and full):
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
        """The status line; `lag` is what the group has not committed: the partition's end minus the
        committed offset, as README defines it (not what this writer has not read yet)."""
        ends = self.consumer.ends(list(self.parts))
        lags = {
            p: max(0, end - max(self.parts[p].committed, 0)) for p, end in ends.items() if p in self.parts
        }
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
