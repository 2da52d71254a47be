"""The lake as an Iceberg table, from the writer's loop (issue #25): landed claims wait, one table
commit per interval adds them all, and only then do Kafka's offsets follow.

Without a table, a landed claim's end is committed to Kafka at once (`KafkaOnly`). With one
(`TableCommits`, `--iceberg-table`), the loop hands each landed claim here instead:

1. It joins its partition's pending list (claims of one partition arrive in offset order: one flight
   per partition). With it goes the Parquet footer of each object the flight encoded, read from the
   body in memory on the flight's thread, so the commit need not read it back from S3.
2. Every `--table-commit-interval` (and at once while draining, and within the grace of a revoke for
   the partitions revoked) ONE commit adds every pending claim to the table (loglake/table/commit.py
   `TableSink.commit`, on a worker thread, one in flight at a time, at most MAX_COMMIT_OBJECTS objects;
   a longer backlog is committed in turns, one right after the other).
3. Only after the table took them does each partition's Kafka offset follow, up to what the table now
   holds of it: Kafka's committed offset never passes the table's, so the table is the truth of what is
   landed (and `verify --iceberg-table` compares it with Kafka).
4. A failed commit (`TableRetriable`: the catalog or S3 down, commits lost to other writers eight times)
   is retried with backoff; Kafka commits nothing meanwhile; the lake's health line says the table is
   not answering, once, and when it is back. Batches keep landing in the files lake meanwhile.

Repair. A crash between landing claims and committing them leaves them out of the table, and the
writer resumes after the lake's last claim, so it would never read them again: at resolution
(loglake/resume.py) the claims the lake landed after the table's offset of the partition come back and
join the pending list first. A partition the table has never seen gets all of the lake's claims of it
(backfilled, in bounded commits), except any before the last claim the table cannot hold (JSON objects,
or objects of layout partition, left by a writer with other settings): the table starts after it, and
the log says so. After the table holds a partition, such a claim stops the writer in one sentence.

Two writers adding the same claim (a zombie and the partition's new owner, both landed it or found it
landed) add it once: the table's offsets in its snapshot summaries decide (loglake/table/commit.py).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from loglake.body import Body
from loglake.errors import LakeRetriable, LoglakeError
from loglake.health import LakeHealth
from loglake.lake import ObjectStore
from loglake.ledger import Claim
from loglake.partition import backoff
from loglake.settings import WriterSettings
from loglake.table.errors import TableUnavailable
from loglake.workers import Workers

log = logging.getLogger("loglake.consume")

MAX_COMMIT_OBJECTS = 2_000  # objects (data files) per table commit: a backlog is committed in turns
MAX_FOOTERS = 500  # footers kept in memory for pending claims; beyond, the commit reads them from S3

Footers = Mapping[str, tuple[Any, int]]  # object key -> (its Parquet footer, its size in bytes)


class CommitOutcome(Protocol):
    offsets: dict[int, int]
    claims: int
    files: int
    records: int


class TableSinkLike(Protocol):
    """loglake/table/commit.py `TableSink` (the deterministic tests: an in-memory table)."""

    where: str

    def offsets(self) -> dict[int, int]: ...

    def commit(self, claims: Sequence[Claim], footers: Footers | None = None) -> CommitOutcome: ...


def holdable(claim: Claim) -> bool:
    """Whether the table can hold the claim's objects: Parquet, each in one hour of event time."""
    return claim.recipe.format == "parquet" and claim.recipe.layout == "time"


def footers_of(claim: Claim, bodies: dict[str, Body]) -> dict[str, tuple[Any, int]]:
    """The footer and size of each object of `claim` from its body (runs on the flight's thread)."""
    if not holdable(claim):
        return {}
    from loglake.table.datafiles import footer_of

    return {e.key: (footer_of(bodies[e.folder].data), len(bodies[e.folder].data)) for e in claim.objects}


def commits(
    table: TableSinkLike | None,
    s: WriterSettings,
    store: ObjectStore,
    workers: Workers,
    commit: Callable[[int, int], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    jitter: Callable[[], float],
) -> KafkaOnly | TableCommits:
    """Where the writer's landed claims go: to `table`, then Kafka; or (None) straight to Kafka."""
    if table is None:
        return KafkaOnly(commit)
    return TableCommits(
        table, store, workers, commit, s.table_commit_interval, s.max_retry_time, clock, sleep, jitter
    )


class KafkaOnly:
    """No table: a landed claim's end is committed to Kafka at once."""

    footers = None
    read = None  # nothing to read at start
    idle = True
    commits = 0

    def __init__(self, commit: Callable[[int, int], None]) -> None:
        self.commit = commit

    def started(self, offsets: dict[int, int] | None) -> None:
        pass

    def resume_from(self, partition: int) -> int | None:
        return None

    def repair(self, partition: int, claims: Sequence[Claim]) -> None:
        pass

    def landed(self, partition: int, claim: Claim, footers: object = None) -> None:
        self.commit(partition, claim.end)

    def step(self, draining: bool) -> None:
        pass

    def finish(self, partitions: list[int], deadline: float) -> None:
        pass

    def forget(self, partitions: list[int]) -> None:
        pass


class TableCommits:
    """The pending claims of the writer's partitions, and the one table commit in flight."""

    footers = staticmethod(footers_of)

    def __init__(
        self,
        sink: TableSinkLike,
        store: ObjectStore,
        workers: Workers,
        commit: Callable[[int, int], None],
        interval: float,
        max_retry_time: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
    ) -> None:
        self.sink = sink
        self.workers = workers
        self.commit = commit  # (partition, offset): Kafka's commit of an owned partition
        self.interval = interval
        self.max_retry_time = max_retry_time
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.health = LakeHealth(store, clock, sink.where)
        self.offsets: dict[int, int] = {}  # the table's, as of the last commit (or the start)
        self.pending: dict[int, list[Claim]] = {}
        self.kept: dict[str, tuple[Any, int]] = {}  # footers of pending claims' objects
        self.flight: Future[CommitOutcome] | None = None
        self.taken: dict[int, int] = {}  # partition -> how many of its pending claims the flight adds
        self.cut_short = False  # the flight left pending claims out (MAX_COMMIT_OBJECTS)
        self.next_at = clock() + interval
        self.attempts = 0
        self.retry_at = 0.0
        self.failing_since = 0.0
        self.commits = 0  # commits that added claims (snapshots made)

    @property
    def idle(self) -> bool:
        return self.flight is None and not any(self.pending.values())

    @property
    def read(self) -> Callable[[str], dict[int, int]]:
        """What start-up calls (patiently), with Kafka's topic id, to learn where the table's
        partitions end (the table refuses a topic id other than the one it holds the topic of)."""
        return self.sink.offsets_of

    def started(self, offsets: dict[int, int] | None) -> None:
        self.offsets = dict(offsets or {})
        log.info("%s holds %s of the topic", self.sink.where, _ends(self.offsets) or "nothing")

    def resume_from(self, partition: int) -> int | None:
        """Where the table's claims of `partition` end, for resolution to list the ones after."""
        return self.offsets.get(partition, 0)

    # -- claims in ---------------------------------------------------------------------------------
    def repair(self, partition: int, claims: Sequence[Claim]) -> None:
        """Claims the lake landed that the table lacks, found where `partition` resumes: first in line."""
        found = list(claims)
        cannot = [i for i, c in enumerate(found) if not holdable(c)]
        if cannot:
            if self._seen(partition):
                raise self._cannot_hold(found[cannot[0]])
            skipped = found[cannot[-1]]
            log.warning(
                "partition %d: claim %d..%d of the lake is %s objects of layout %s, which the table cannot "
                "hold; the table starts the partition after it, at offset %d",
                partition,
                skipped.start,
                skipped.end - 1,
                skipped.recipe.format,
                skipped.recipe.layout,
                skipped.end,
            )
            found = found[cannot[-1] + 1 :]
        if found:
            log.info(
                "partition %d: %d landed claims (offsets %d..%d) are not in the table yet: they go into its "
                "next commit",
                partition,
                len(found),
                found[0].start,
                found[-1].end - 1,
            )
        self.pending[partition] = found + self.pending.get(partition, [])

    def landed(self, partition: int, claim: Claim, footers: object = None) -> None:
        """A claim of `partition` is landed (by this writer's flight, or found landed): it waits for
        the next commit, and so does Kafka's offset."""
        if not holdable(claim):
            self._not_holdable(partition, claim)
            return
        self.pending.setdefault(partition, []).append(claim)
        if isinstance(footers, dict) and len(self.kept) < MAX_FOOTERS:
            self.kept.update(footers)

    def _seen(self, partition: int) -> bool:
        return partition in self.offsets or partition in self.taken

    def _not_holdable(self, partition: int, claim: Claim) -> None:
        """A claim the table cannot hold, landed by this writer (one a predecessor with other settings
        left unlanded): before the table's first claim of the partition it is where the table starts."""
        if self._seen(partition):
            raise self._cannot_hold(claim)
        dropped = self.pending.pop(partition, [])
        log.warning(
            "partition %d: claim %d..%d is %s objects of layout %s, which the table cannot hold; the table "
            "starts the partition after it%s",
            partition,
            claim.start,
            claim.end - 1,
            claim.recipe.format,
            claim.recipe.layout,
            f" (leaving out the {len(dropped)} claims before it)" if dropped else "",
        )
        self._drop_footers(dropped)
        self.commit(partition, claim.end)

    def _cannot_hold(self, claim: Claim) -> LoglakeError:
        return TableUnavailable(
            f"partition {claim.partition} offsets {claim.start}..{claim.end - 1} were landed as "
            f"{claim.recipe.format} objects of layout {claim.recipe.layout} (by a writer of the group "
            f"without --iceberg-table or with other settings), which {self.sink.where} cannot hold after "
            "the offsets it holds of the partition; run every writer of the group with --format parquet "
            "--layout time --iceberg-table"
        )

    # -- commits -----------------------------------------------------------------------------------
    def step(self, draining: bool) -> None:
        """Take a finished commit; start the next one when it is due."""
        if self.flight is not None and self.flight.done():
            self._settle()
        now = self.clock()
        due = draining or now >= self.next_at
        if self.flight is None and due and now >= self.retry_at and any(self.pending.values()):
            self._launch()

    def _launch(self) -> None:
        """ONE commit of the pending claims: every partition's, in order, at most MAX_COMMIT_OBJECTS
        objects shared out between the partitions (at least one claim each)."""
        waiting = [p for p in sorted(self.pending) if self.pending[p]]
        share = max(1, MAX_COMMIT_OBJECTS // len(waiting))
        claims: list[Claim] = []
        self.taken = {}
        for p in waiting:
            objects = 0
            for c in self.pending[p]:
                if self.taken.get(p) and objects + len(c.objects) > share:
                    break
                claims.append(c)
                objects += len(c.objects)
                self.taken[p] = self.taken.get(p, 0) + 1
        self.cut_short = any(len(self.pending[p]) > n for p, n in self.taken.items())
        keys = [e.key for c in claims for e in c.objects]
        footers = {k: self.kept[k] for k in keys if k in self.kept}
        self.flight = self.workers.submit(self.sink.commit, claims, footers)
        self.next_at = self.clock() + self.interval

    def _settle(self) -> None:
        future, taken = self.flight, self.taken
        assert future is not None and future.done()
        self.flight, self.taken = None, {}
        try:
            result = future.result()
        except LakeRetriable as exc:  # TableRetriable: the claims stay pending
            self._failed(exc)
            return
        self.health.answered()
        self.attempts, self.failing_since, self.retry_at = 0, 0.0, 0.0
        self.offsets.update(result.offsets)
        if result.claims:
            self.commits += 1
            log.info(
                "%s: committed %d claims, %d files, %d records; its offsets now %s",
                self.sink.where,
                result.claims,
                result.files,
                result.records,
                _ends({p: result.offsets[p] for p in taken if p in result.offsets}),
            )
        for p, n in taken.items():
            done, self.pending[p] = self.pending[p][:n], self.pending[p][n:]
            self._drop_footers(done)
            if p in result.offsets:
                self.commit(p, result.offsets[p])
        if self.cut_short:
            self.next_at = self.clock()  # a backlog (a backfill, an outage): the next turn at once

    def _failed(self, exc: BaseException) -> None:
        now = self.clock()
        self.health.failed(exc)
        self.attempts += 1
        self.failing_since = self.failing_since or now
        down_for = now - self.failing_since
        if self.max_retry_time and down_for > self.max_retry_time:
            raise LoglakeError(
                f"committing to {self.sink.where} failed for {down_for:.0f} s (--max-retry-time "
                f"{self.max_retry_time:g}); Kafka's offsets were committed only up to the table's: {exc}"
            )
        delay = backoff(self.attempts, self.jitter)
        self.retry_at = now + delay
        self.next_at = now  # due again once the backoff has passed, not a whole interval later
        log.warning(
            "committing %d landed claims to the table failed (%s); retrying in %.1f s, Kafka's offsets wait",
            sum(len(cs) for cs in self.pending.values()),
            exc,
            delay,
        )

    # -- partitions leaving ------------------------------------------------------------------------
    def finish(self, partitions: list[int], deadline: float) -> None:
        """Revoked `partitions`: commit their pending claims to the table before `deadline` (the grace
        of the revoke), and so their Kafka offsets; what is left, their next owner commits."""
        mine = set(partitions)
        while (left := deadline - self.clock()) > 0:
            waiting = any(self.pending.get(p) for p in mine)
            if self.flight is not None:
                if not waiting and not mine & set(self.taken):
                    return
                self.workers.wait([self.flight], left)
                if self.flight.done():
                    self._settle()
                continue
            if not waiting:
                return
            if self.clock() < self.retry_at:
                self.sleep(min(self.retry_at - self.clock(), left))
                continue
            self._launch()

    def forget(self, partitions: list[int]) -> None:
        """`partitions` left this writer: their pending claims are its next owner's (found at its
        resolution); a commit in flight still adds what it carries, but commits no Kafka offset of them."""
        for p in partitions:
            dropped = self.pending.pop(p, [])
            self.taken.pop(p, None)
            self._drop_footers(dropped)
            if dropped:
                log.info(
                    "partition %d: %d landed claims not committed to the table here; its next owner commits them",
                    p,
                    len(dropped),
                )

    def _drop_footers(self, claims: list[Claim]) -> None:
        for c in claims:
            for e in c.objects:
                self.kept.pop(e.key, None)


def _ends(offsets: Mapping[int, int]) -> str:
    return ", ".join(f"partition {p} to {o}" for p, o in sorted(offsets.items()))
