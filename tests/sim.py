"""Stand-ins for Kafka, S3, the dead-letter topic, the Iceberg table, the worker threads and the clock,
so that the lake writer's own logic (loglake/consume.py, partition.py, ledger.py, tablecommit.py) can be
driven through any
interleaving a test chooses: which writer polls, which upload finishes, when the lake fails, when a
partition moves or is lost. They model what the writer relies on and nothing more: a topic of
partitions, a group that fences commits of a member that no longer owns a partition (as Kafka does
by generation), a store with atomic conditional creates (as S3 does), an at-least-once topic for
dead letters, a table whose commits are atomic and follow the real sink's rule (claims the table holds
are skipped, the rest must continue its offsets: loglake/table/commit.py `claims_to_add`). The real
clients are tested against the real stack elsewhere (tests/test_writer.py, tests/test_faults_core.py,
tests/test_table_writer.py: the table with pyiceberg on a real catalog and real S3).
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from loglake import formats, layout
from loglake.batch import Rejected
from loglake.body import Body
from loglake.consume import Writer
from loglake.lake import LakeRetriable
from loglake.ledger import Claim, Ledger
from loglake.metrics import WriterMetrics
from loglake.partition import DeadLettersPending
from loglake.settings import WriterSettings
from loglake.source import EARLIEST, LATEST
from loglake.table.commit import CommitResult, claims_to_add
from loglake.table.errors import TableRetriable, TableUnavailable
from loglake.table.progress import Progress

TOPIC = "t"


def good(partition: int, offset: int, hour: int = 0) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{partition}-{offset}",
            "event_time": f"2026-01-01T{hour:02d}:00:{offset % 60:02d}.000Z",
            "event_type": "click",
        }
    )


@dataclass
class Rec:
    """A record as the writer reads it (confluent_kafka.Message's accessors)."""

    _partition: int
    _offset: int
    _value: bytes | None
    _timestamp: int = 1_767_225_600_000

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return b"k"

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


# -- Kafka: one topic, one group -------------------------------------------------------------------


class Cluster:
    def __init__(self, partitions: int = 2, id: str = "sim-cluster") -> None:
        self.id = id
        self.topic_id = "sim-topic-1"
        self.log: list[list[Rec | None]] = [[] for _ in range(partitions)]  # None: an offset with no record
        self.low: dict[int, int] = dict.fromkeys(range(partitions), 0)  # retention deleted what is below
        self.committed: dict[int, int] = {}
        self.owner: dict[int, ScriptedConsumer | None] = dict.fromkeys(range(partitions))
        # The group, as Kafka's coordinator fences it: every rebalance starts a new generation; a commit
        # is accepted from a member of the group in the current generation, for any partition (the
        # coordinator does not check who owns it); a member whose session expired is out of the group.
        self.group_generation = 0
        self.members: set[ScriptedConsumer] = set()
        self.commit_history: list[tuple[str, int, int]] = []

    def produce(self, partition: int, count: int, bad_every: int = 0, hour: int = 0) -> None:
        records = self.log[partition]
        for _ in range(count):
            offset = len(records)
            bad = bad_every and offset % bad_every == bad_every - 1
            records.append(Rec(partition, offset, b"not json" if bad else good(partition, offset, hour)))

    def add_partition(self) -> int:
        """The topic grows by one partition (kafka-topics --alter --partitions)."""
        p = len(self.log)
        self.log.append([])
        self.low[p] = 0
        self.owner[p] = None
        return p

    def recreate(self, topic_id: str) -> None:
        """The topic is deleted and created again under its name: a new id, offsets from 0, no commits."""
        self.topic_id = topic_id
        self.log = [[] for _ in self.log]
        self.low = dict.fromkeys(self.low, 0)
        self.committed.clear()

    def marker(self, partition: int, count: int = 1) -> None:
        """Offsets that hold no record a consumer sees (transaction markers, aborted records)."""
        self.log[partition].extend([None] * count)

    def give(self, consumer: ScriptedConsumer, partition: int) -> None:
        """The group hands `partition` to `consumer` (a rebalance); its old owner, if any, must have
        let go first (revoke) or lost it (session expired)."""
        assert self.owner[partition] is None, f"partition {partition} is still owned"
        self.owner[partition] = consumer
        self.members.add(consumer)
        self.group_generation += 1
        consumer.events.append(("assigned", partition, self.group_generation))

    def revoke(self, partition: int) -> None:
        """A cooperative rebalance takes `partition` from its owner: the owner's next poll runs its
        revoke callback, after which the partition is free."""
        owner = self.owner[partition]
        assert owner is not None
        self.group_generation += 1
        owner.events.append(("revoked", partition, 0))

    def expire(self, partition: int) -> ScriptedConsumer:
        """The session of `partition`'s owner expired (paused past the timeout: a zombie): the group
        drops the member and moves all its partitions on at once; the zombie hears of it only at its
        next poll, or later, and its commits are refused until it has rejoined."""
        owner = self.owner[partition]
        assert owner is not None
        self.leave(owner)
        for p in self.owned_by(owner):
            self.owner[p] = None
        return owner

    def leave(self, consumer: ScriptedConsumer) -> list[int]:
        """`consumer` is out of the group (session expired, or its process is gone): its partitions are
        free, and it hears they were lost at its next poll."""
        self.members.discard(consumer)
        self.group_generation += 1
        freed = self.owned_by(consumer)
        for p in freed:
            self.owner[p] = None
            consumer.pending_loss.append(p)
        return freed

    def owned_by(self, consumer: ScriptedConsumer) -> list[int]:
        return [p for p, o in self.owner.items() if o is consumer]


class ScriptedConsumer:
    """One group member, as the writer's SourceConsumer."""

    def __init__(self, cluster: Cluster, name: str, per_poll: int = 7) -> None:
        self.cluster = cluster
        self.name = name
        self.per_poll = per_poll
        self.listener: Any = None
        self.events: deque[tuple[str, int, int]] = deque()
        self.pending_loss: list[int] = []
        self.deaf = False  # a zombie that has not noticed yet (SIGSTOP): no callbacks delivered
        self.positions: dict[int, int | None] = {}
        self.generation = -1  # the group generation this member last joined
        self.paused: set[int] = set()
        self.refuse_commits = False  # the group refuses commits for a while (a rebalance under way)
        self.silent = False  # polls return nothing (a slow fetch), rebalance callbacks still run
        self.stale_after_seek = False  # a seek does not purge one chunk fetched before it
        self._stale: dict[int, list[Rec]] = {}
        self.closed = False

    def check_topic(self) -> int:
        return len(self.cluster.log)

    def cluster_id(self) -> str:
        return self.cluster.id

    def subscribe(self, listener: Any) -> None:
        self.listener = listener

    def poll(self, max_records: int, timeout: float) -> list[Rec]:
        assert not self.closed
        if not self.deaf:
            self._deliver()
        found: list[Rec] = []
        if self.silent:
            return found
        for p in sorted(self.positions):
            if p in self.paused:
                continue
            found.extend(self._stale.pop(p, []))
            position = self.positions[p]
            if position is None:
                committed = self.cluster.committed.get(p, -1)
                position = committed if committed >= 0 else 0
            low = self.cluster.low[p]
            if position < low:  # out of range: said (auto.offset.reset=error), then read from the start
                self.listener.deleted(p, position, low)
                position = low
            chunk = self.cluster.log[p][position : position + self.per_poll]
            found.extend(r for r in chunk if r is not None)
            self.positions[p] = position + len(chunk)
        return found[:max_records]

    def _deliver(self) -> None:
        if self not in self.cluster.members and (self.pending_loss or self.events):
            self.cluster.members.add(self)  # a member dropped by the group joins again when it polls
        if self in self.cluster.members:
            self.generation = self.cluster.group_generation
        for p in self.pending_loss:
            if p in self.positions:
                del self.positions[p]
                self.listener.lost([p])
        self.pending_loss.clear()
        while self.events:
            kind, p, _generation = self.events.popleft()
            if kind == "assigned":
                self.positions[p] = None
                self.paused.discard(p)
                self.listener.assigned([p])
            elif kind == "revoked" and p in self.positions:
                self.listener.revoked([p])
                del self.positions[p]
                self.cluster.owner[p] = None

    def committed(self, partitions: list[int]) -> dict[int, int]:
        return {p: self.cluster.committed.get(p, -1001) for p in partitions}

    def commit(self, partition: int, next_offset: int) -> bool:
        c = self.cluster
        if self not in c.members or self.generation != c.group_generation:
            return False  # fenced, as Kafka fences a member out of the group or of an old generation
        if self.refuse_commits:
            return False
        c.committed[partition] = next_offset
        c.commit_history.append((self.name, partition, next_offset))
        return True

    def seek(self, partition: int, offset: int) -> None:
        if partition in self.positions:
            old = self.positions[partition]
            if self.stale_after_seek and old is not None:
                stale = self.cluster.log[partition][old : old + self.per_poll]
                self._stale[partition] = [r for r in stale if r is not None]
            if offset == EARLIEST:
                offset = self.cluster.low[partition]
            elif offset == LATEST:
                offset = len(self.cluster.log[partition])
            self.positions[partition] = offset

    def offset_for_time(self, partition: int, ms: int) -> int:
        for r in self.cluster.log[partition]:
            if r is not None and r._timestamp >= ms:
                return r._offset
        return LATEST

    def topic_id(self) -> str:
        return self.cluster.topic_id

    def ends(self, partitions: list[int]) -> dict[int, int]:
        return {p: len(self.cluster.log[p]) for p in partitions}

    def pause(self, partitions: list[int]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: list[int]) -> None:
        self.paused.difference_update(partitions)

    def group_lag(self) -> dict[int, int]:
        return {
            p: len(rs) - max(0, self.cluster.committed.get(p, 0)) for p, rs in enumerate(self.cluster.log)
        }

    def close(self) -> None:
        self.closed = True


# -- the lake, the dead letters, the workers ------------------------------------------------------


class MemoryStore:
    """A bucket with atomic conditional creates; `down` makes every call fail like a dead S3."""

    where = "memory://lake"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.down = False
        self.objects_fail = False  # plain puts (objects) fail, conditional creates (claims) work
        self.conflicts = 0  # conditional creates answered 409 (another create of the key under way)
        self.refused_unseen = 0  # conditional creates refused as existing, yet nothing is there to read
        self.fail_after_puts = -1  # >= 0: that many more plain puts succeed, then they fail
        self.puts: list[str] = []
        self.requests: Counter[str] = Counter()  # calls by method

    def _check(self) -> None:
        if self.down:
            raise LakeRetriable("the lake is down (simulated)")

    def put(self, key: str, body: Body) -> None:
        self._check()
        if self.objects_fail or self.fail_after_puts == 0:
            raise LakeRetriable("the upload failed (simulated)")
        if self.fail_after_puts > 0 and "/_loglake/" not in key:
            self.fail_after_puts -= 1
        self._store(key, body)

    def _store(self, key: str, body: Body) -> None:
        self.objects[key] = (body.data, dict(body.metadata))
        self.puts.append(key)

    def put_if_absent(self, key: str, body: Body) -> bool:
        self._check()
        if self.conflicts:
            self.conflicts -= 1
            raise LakeRetriable(f"a conditional write of {key} conflicted with another (409)")
        if self.refused_unseen:
            self.refused_unseen -= 1
            return False
        if key in self.objects:
            return False
        self._store(key, body)
        return True

    def get(self, key: str) -> bytes | None:
        self._check()
        self.requests["get"] += 1
        found = self.objects.get(key)
        return found[0] if found else None

    def head(self, key: str) -> dict[str, str] | None:
        self._check()
        self.requests["head"] += 1
        found = self.objects.get(key)
        return found[1] if found else None

    def list(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
        """In pages of 1,000 keys, as S3 lists (each page one request)."""
        self._check()
        keys = [k for k in sorted(self.objects) if k.startswith(prefix) and k > start_after]
        for i in range(0, max(len(keys), 1), 1000):
            self.requests["list"] += 1
            for key in keys[i : i + 1000]:
                yield key, len(self.objects[key][0])

    def ensure_bucket(self, create: bool) -> None:
        self._check()

    def probe(self) -> None:
        self._check()

    def close(self) -> None:
        pass


class MemoryDeadLetters:
    """The dead-letter topic: at-least-once, with a record-size limit."""

    def __init__(self, limit: int = 10**9) -> None:
        self.letters: list[Rejected] = []
        self.down = False
        self.limit = limit

    def prepare(self, partitions: int) -> None:
        pass

    def deliver(self, letters: list[Rejected]) -> list[tuple[Rejected, str]]:
        if self.down:
            raise DeadLettersPending("the dead-letter topic is down (simulated)")
        refused = []
        for letter in letters:
            if len(letter.value or b"") > self.limit:
                refused.append((letter, "Broker: Message size too large"))
            else:
                self.letters.append(letter)
        return refused

    def close(self) -> None:
        pass


class ManualWorkers:
    """Flights wait in a queue until the test runs them (in any order, or never)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.queue: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self.run_on_wait = True  # a writer blocking on a flight (revoke) gets it run, or times out

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.queue.append((future, fn, args))
        return future

    def run(self, index: int = 0) -> None:
        future, fn, args = self.queue.pop(index)
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    def run_all(self) -> None:
        while self.queue:
            self.run(0)

    def wait(self, futures: list[Future[Any]], timeout: float) -> None:
        if self.run_on_wait:
            for i, (future, _fn, _args) in enumerate(self.queue):
                if future in futures:
                    self.run(i)
                    return
        self.clock.sleep(timeout)

    def shutdown(self) -> None:
        pass  # abandoned flights stay in the queue: a test may still run them (late uploads)


class MemoryTable:
    """The Iceberg table: what its snapshot summaries would say (loglake/table/progress.py `Progress`)
    and the object keys its data files would name, one snapshot per commit that adds claims; `down`
    fails every call as an unreachable catalog does. Footers handed in are checked against the stored
    objects (the size and row count a data file would be registered with)."""

    where = "table sim.events in catalog 'sim'"

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.progress = Progress(TOPIC)
        self.files: list[str] = []
        self.snapshots: list[dict[int, int]] = []  # the offsets after each snapshot
        self.down = False
        self.calls = 0
        self.footers_used = 0
        self.topic_id = ""  # the id the writer said it lands
        self.held_topic_id = ""  # the id the table holds the topic of (set by its first commit)

    def offsets(self) -> dict[int, int]:
        if self.down:
            raise TableRetriable("the catalog is down (simulated)")
        return dict(self.progress.offsets)

    def offsets_of(self, topic_id: str) -> dict[int, int]:
        """As the real sink: a table that holds the topic for another topic id refuses it."""
        offsets = self.offsets()
        if self.held_topic_id and topic_id and self.held_topic_id != topic_id:
            raise TableUnavailable(f"{self.where} holds topic {TOPIC!r} with another topic id")
        self.topic_id = topic_id
        return offsets

    def commit(self, claims: list[Claim], footers: dict[str, tuple[Any, int]] | None = None) -> CommitResult:
        self.calls += 1
        if self.down:
            raise TableRetriable("the catalog is down (simulated)")
        todo = claims_to_add(claims, self.progress.offsets, TOPIC, self.where)
        if todo and not self.held_topic_id:
            self.held_topic_id = self.topic_id
        if not todo:
            return CommitResult(dict(self.progress.offsets))
        for c in todo:
            for e in c.objects:
                stored = self.store.objects.get(e.key)
                if stored is None:
                    raise TableUnavailable(
                        f"{e.key} is not in the lake: a claim names an object that is not stored"
                    )
                if e.key in (footers or {}):
                    footer, size = footers[e.key]
                    assert (footer.num_rows, size) == (e.records, len(stored[0])), e.key
                    self.footers_used += 1
        self.progress = self.progress.advanced(todo)
        self.files += [e.key for c in todo for e in c.objects]
        self.snapshots.append(dict(self.progress.offsets))
        records = sum(c.records for c in todo)
        files = sum(len(c.objects) for c in todo)
        return CommitResult(dict(self.progress.offsets), len(todo), files, records, len(self.snapshots))


# -- one writer and the world around it ----------------------------------------------------------


@dataclass
class World:
    partitions: int = 2
    clock: Clock = field(default_factory=Clock)
    store: MemoryStore = field(default_factory=MemoryStore)
    dead: MemoryDeadLetters = field(default_factory=MemoryDeadLetters)
    cluster: Cluster = field(init=False)
    table: MemoryTable = field(init=False)
    names: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.partitions)
        self.table = MemoryTable(self.store)

    def writer(
        self, per_poll: int = 5, table: bool = False, **settings: Any
    ) -> tuple[Writer, ScriptedConsumer, ManualWorkers]:
        """A writer of group `g`; `table`: with the world's table (--iceberg-table; Parquet, unless
        `settings` say otherwise)."""
        defaults = {"topic": TOPIC, "group": "g", "batch_records": 10, "batch_age": 60.0, "idle_flush": 5.0}
        if table:
            defaults |= {"fmt": "parquet", "iceberg_table": "sim.events"}
        s = WriterSettings(**(defaults | settings))
        consumer = ScriptedConsumer(self.cluster, f"w{next(self.names)}", per_poll)
        workers = ManualWorkers(self.clock)
        writer = Writer(
            s,
            consumer,
            self.store,
            self.dead,
            workers=workers,
            metrics=WriterMetrics(0),
            clock=self.clock,
            sleep=self.clock.sleep,
            jitter=lambda: 1.0,
            table=self.table if table else None,
        )
        writer.start()
        return writer, consumer, workers

    # -- the oracle --------------------------------------------------------------------------------
    def stored(self, prefix: str = "topics") -> tuple[Counter[tuple[int, int]], set[tuple[int, int]]]:
        """(partition, offset) -> copies in lake objects; and the set of dead letters (topic or lake)."""
        lines: Counter[tuple[int, int]] = Counter()
        dead = {(d.partition, d.offset) for d in self.dead.letters}
        dead_prefix = layout.dead_letters_prefix(prefix, TOPIC)
        for key, (data, _meta) in self.store.objects.items():
            if key.startswith(dead_prefix):
                source = orjson.loads(data)["source"]
                dead.add((source["partition"], source["offset"]))
                continue
            codec = formats.format_of_key(key)
            if codec is None or "/_loglake/" in key:
                continue
            for record in codec.decode(data):
                lines[(record["_kafka"]["partition"], record["_kafka"]["offset"])] += 1
        return lines, dead

    def problems(self, upto: dict[int, int] | None = None, prefix: str = "topics") -> list[str]:
        """Every offset below `upto` (default: the end of each partition) stored exactly once."""
        lines, dead = self.stored(prefix)
        found = []
        for p, records in enumerate(self.cluster.log):
            end = len(records) if upto is None else upto.get(p, 0)
            for offset in range(end):
                if offset < len(records) and records[offset] is None:
                    continue  # no record there: nothing to store
                copies = lines[(p, offset)] + ((p, offset) in dead)
                if copies != 1:
                    found.append(f"partition {p} offset {offset}: {copies} copies")
        stray = [(p, o) for (p, o), n in lines.items() if o >= len(self.cluster.log[p])]
        found.extend(f"offset {o} of partition {p} in the lake but not in Kafka" for p, o in stray)
        return found

    def commit_problems(self) -> list[str]:
        """The group never committed past an offset that is not stored."""
        committed = {p: max(0, o) for p, o in self.cluster.committed.items()}
        return self.problems(committed)

    def table_problems(self) -> list[str]:
        """The table's own check: its data files, decoded, hold each offset of `starts` .. `offsets - 1`
        once, or the offset is a dead letter, holds no record in Kafka, or was lost to retention before
        it was landed (deleted, or in a claim the lake noted lost); its summary counts the rows it
        holds, and accounts for every offset."""
        rows: Counter[tuple[int, int]] = Counter()
        for key in self.table.files:
            codec = formats.format_of_key(key)
            assert codec is not None, key
            for record in codec.decode(self.store.objects[key][0]):
                rows[(record["_kafka"]["partition"], record["_kafka"]["offset"])] += 1
        _lines, dead = self.stored()
        progress = self.table.progress
        found = []
        for p, end in progress.offsets.items():
            start, log, low = progress.starts[p], self.cluster.log[p], self.cluster.low[p]
            noted = [(n.start, n.end) for n in Ledger(self.store, "topics", TOPIC).lost(p).values()]
            for offset in range(start, end):
                held = rows[(p, offset)] + ((p, offset) in dead)
                lost = offset < low or any(a <= offset < b for a, b in noted)
                nothing = (offset < len(log) and log[offset] is None) or (lost and not held)
                if held + nothing != 1:
                    found.append(f"table: partition {p} offset {offset}: {held} copies")
            counted = sum(n for (q, _o), n in rows.items() if q == p)
            letters = sum(1 for q, o in dead if q == p and start <= o < end)
            said = progress.records.get(p, 0)
            accounted = said + progress.absent.get(p, 0) + progress.lost.get(p, 0) + letters
            if said != counted or accounted < end - start:
                found.append(
                    f"table: partition {p}: the summary says {said} rows, the files hold {counted}; "
                    f"{accounted} of the {end - start} offsets accounted for"
                )
        found += [
            f"table: partition {p} offset {o} after its offsets" for p, o in rows if o >= progress.offsets[p]
        ]
        return found

    def table_ahead_of_kafka(self) -> list[str]:
        """Kafka's committed offsets never pass the table's."""
        offsets = self.table.progress.offsets
        return [
            f"partition {p}: Kafka committed {o}, the table holds up to {offsets.get(p)}"
            for p, o in self.cluster.committed.items()
            if o > offsets.get(p, 0)
        ]

    def claims(self, partition: int, prefix: str = "topics", generation: int = 1) -> list[Claim]:
        return list(Ledger(self.store, prefix, TOPIC, generation).all(partition))


def dead_letter_value(document: bytes) -> bytes:
    return base64.b64decode(orjson.loads(document)["value"])
