"""The writer with an Iceberg table (loglake/tablecommit.py), driven through chosen interleavings of
tests/sim.py: an in-memory table whose commits follow the real sink's rule (claims the table holds are
skipped, the rest must continue its offsets), failing when told. Each scenario ends with the table's
own check (its files, decoded, hold each offset once, or the offset is a dead letter, absent or lost;
its summary agrees), Kafka's committed offsets never past the table's, and the lake's oracle.
The same table on a real catalog and real S3: tests/test_table_writer.py."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from loglake import tablecommit
from loglake.errors import LoglakeError
from loglake.ledger import Ledger
from loglake.verify import reconcile
from loglake.verify.table_side import summary_contents
from tests.sim import TOPIC, World
from tests.test_interleavings import steps
from tests.test_interleavings_property import WriterWorld


def run_flights(world: World, workers) -> None:
    """Run the queued uploads and lake reads, not the table's commits."""
    for i in reversed(range(len(workers.queue))):
        if workers.queue[i][1] != world.table.commit:
            workers.run(i)


def table_writer(w: World, records: int, steps: int = 0, partitions: int = 1, **settings):
    """A writer with the table owning the first `partitions` partitions, each holding `records` more
    records; it steps `steps` times, its uploads run, its table commits do not (yet)."""
    for p in range(partitions):
        w.cluster.produce(p, records)
    a, ca, wa = w.writer(table=True, **({"batch_records": 10, "table_commit_interval": 60.0} | settings))
    for p in range(partitions):
        w.cluster.give(ca, p)
    for _ in range(steps):
        a.step()
        run_flights(w, wa)
    return a, ca, wa


def table_commits_queued(world: World, workers) -> int:
    return sum(1 for _f, fn, _a in workers.queue if fn == world.table.commit)


def settle(world: World, *pairs, rounds: int = 90, seconds: float = 1.0, table: bool = True) -> None:
    """Writers poll, flights and commits run, `seconds` pass per round; with `table` (writers with the
    table), Kafka never passes the table."""
    for _ in range(rounds):
        for writer, workers in pairs:
            writer.step()
            workers.run_all()
            assert not table or world.table_ahead_of_kafka() == []
        world.clock.sleep(seconds)


def all_in_the_table(world: World) -> None:
    """The lake's oracle, the table's, and Kafka committed exactly up to the table's offsets."""
    ends = {p: len(r) for p, r in enumerate(world.cluster.log) if r}
    assert world.problems() == []
    assert world.table_problems() == []
    assert world.table_ahead_of_kafka() == []
    assert world.table.progress.offsets == ends
    assert world.cluster.committed == ends


def table_verdicts(world: World):
    """verify --iceberg-table's count (loglake/verify/table_side.py) on the in-memory table's summary."""
    partitions = list(range(len(world.cluster.log)))
    progress = world.table.progress
    ranges = {
        p: (world.cluster.low[p], progress.offsets.get(p, -1), len(world.cluster.log[p])) for p in partitions
    }
    dead: dict[int, set[int]] = {}
    for letter in world.dead.letters:
        dead.setdefault(letter.partition, set()).add(letter.offset)
    found = summary_contents(progress, partitions, Ledger(world.store, "topics", TOPIC))
    return reconcile(ranges, found, dead)


# -- commits: grouped, then Kafka ---------------------------------------------------------------------


def test_table_commits_are_grouped_by_the_interval_and_kafka_follows_each_one():
    """Records arrive for 3 minutes and batches land every few seconds; the table commits once per
    30 s interval, and Kafka's offsets move only when the table's did, never past them."""
    w = World(partitions=2)
    a, ca, wa = w.writer(table=True, batch_records=6, table_commit_interval=30.0)
    for p in (0, 1):
        w.cluster.give(ca, p)
    kafka_moves = 0
    for second in range(180):
        for p in (0, 1):
            w.cluster.produce(p, 2, bad_every=7 if second % 10 == 0 else 0)
        before = dict(w.cluster.committed)
        a.step()
        wa.run_all()
        a.step()
        moved = {p: o for p, o in w.cluster.committed.items() if before.get(p) != o}
        if moved:  # to exactly where the table's partitions end now
            kafka_moves += 1
            assert moved == {p: w.table.progress.offsets[p] for p in moved}
        assert w.table_ahead_of_kafka() == []
        w.clock.sleep(1.0)
    a.stop.set()
    settle(w, (a, wa), rounds=5)
    claims = sum(len(w.claims(p)) for p in (0, 1))
    assert claims >= 100  # batches of 6 records, 2 records a second per partition
    assert len(w.table.snapshots) <= 180 / 30 + 2  # one per interval, and the drain's
    assert kafka_moves <= len(w.table.snapshots)
    assert w.table.footers_used == sum(len(c.objects) for p in (0, 1) for c in w.claims(p))
    all_in_the_table(w)


def test_an_hour_of_the_compose_demo_takes_a_snapshot_per_interval_not_per_batch():
    """The compose demo's writer (LOGLAKE_BATCH_AGE=30, the default 60 s commit interval) for an hour
    of a fake clock, 3 partitions receiving records all the time (a record a second each: the demo's
    50 a second would cut its batches by age just the same): a batch every 30-31 s per partition, about
    350 in the hour (348 in the last run), and a snapshot per minute (59)."""
    w = World(partitions=3)
    a, ca, wa = w.writer(table=True, batch_records=200_000, batch_age=30.0)
    assert a.s.table_commit_interval == 60.0
    for p in range(3):
        w.cluster.give(ca, p)
    for _second in range(3600):
        for p in range(3):
            w.cluster.produce(p, 1)
        a.step()
        wa.run_all()
        w.clock.sleep(1.0)
    batches = sum(len(w.claims(p)) for p in range(3))
    assert 3 * 110 <= batches <= 3 * 120  # a batch is cut once its oldest record is 30 s old: every 30-31 s
    assert 59 <= len(w.table.snapshots) <= 3600 / 60 + 1
    assert w.table_problems() == [] and w.table_ahead_of_kafka() == []


def test_kafka_commits_only_after_the_table_commit_and_one_is_in_flight_at_a_time():
    w = World(partitions=1)
    a, _ca, wa = table_writer(w, 30, steps=6)
    assert [(c.start, c.end) for c in w.claims(0)] == [(0, 10), (10, 20), (20, 30)]
    assert w.cluster.committed == {} and w.table.calls == 0  # landed, waiting for the interval
    w.clock.sleep(60)
    a.step()
    assert table_commits_queued(w, wa) == 1 and w.cluster.committed == {}
    w.cluster.produce(0, 10)
    for _ in range(3):  # another interval passes while the commit is still out: no second commit
        w.clock.sleep(60)
        a.step()
        run_flights(w, wa)
    assert table_commits_queued(w, wa) == 1 and w.cluster.committed == {}
    wa.run_all()  # the commit of 0..29 lands in the table
    assert w.table.progress.offsets == {0: 30} and w.cluster.committed == {}
    a.step()  # ...and only then Kafka
    assert w.cluster.committed == {0: 30}
    a.step()  # the claim of 30..39 goes in the next commit, at once: its interval has passed
    wa.run_all()
    a.step()
    assert w.cluster.committed == {0: 40} and len(w.table.snapshots) == 2
    all_in_the_table(w)


def test_a_failed_table_commit_commits_nothing_and_is_retried_with_backoff(caplog):
    w = World(partitions=1)
    a, _ca, wa = table_writer(w, 20, table_commit_interval=5.0)
    w.table.down = True
    with caplog.at_level(logging.INFO, "loglake.consume"):
        for _ in range(40):  # 20 s of a catalog that does not answer
            a.step()
            wa.run_all()
            assert w.cluster.committed == {}
            w.clock.sleep(0.5)
        assert len(w.claims(0)) == 2 and w.table.snapshots == []
        calls = w.table.calls
        assert 4 <= calls <= 10  # retried with a growing backoff (0.5, 1, 2, 4, 8 s), not every step
        assert f"the lake {w.table.where} is not answering" in caplog.text
        assert caplog.text.count("is not answering") == 1  # said once, not at every retry
        assert "retrying in" in caplog.text and "Kafka's offsets wait" in caplog.text
        w.table.down = False
        settle(w, (a, wa), rounds=20)
        assert f"the lake {w.table.where} is back after" in caplog.text
    assert len(w.table.snapshots) == 1  # both claims in one commit
    all_in_the_table(w)


def test_a_table_down_longer_than_max_retry_time_stops_the_writer_with_nothing_committed():
    w = World(partitions=1)
    a, _ca, wa = table_writer(w, 10, table_commit_interval=1.0, max_retry_time=20.0)
    w.table.down = True
    with pytest.raises(
        LoglakeError, match=r"committing to table sim.events .* failed for \d+ s \(--max-retry-time 20\)"
    ):
        settle(w, (a, wa), rounds=60)
    assert w.cluster.committed == {} and len(w.claims(0)) == 1


# -- revokes, crashes, zombies ---------------------------------------------------------------------


def test_a_revoke_commits_the_pending_claims_to_the_table_then_kafka_within_the_grace():
    w = World(partitions=2)
    a, _ca, wa = table_writer(w, 25, steps=8, partitions=2)
    assert w.cluster.committed == {} and w.table.calls == 0
    w.cluster.revoke(0)
    a.step()  # the revoke lands partition 0's last batch, commits its claims to the table, then Kafka
    assert w.table.progress.offsets.get(0) == 25 and w.cluster.committed.get(0) == 25
    assert 0 not in a.parts and len(w.table.snapshots) == 1
    assert w.table_ahead_of_kafka() == []
    b, cb, wb = w.writer(table=True, batch_records=10, table_commit_interval=60.0)
    w.cluster.give(cb, 0)
    w.cluster.produce(0, 5)
    settle(w, (a, wa), (b, wb))
    all_in_the_table(w)


def test_a_revoke_while_the_table_is_down_commits_nothing_and_the_next_owner_commits_the_claims():
    w = World(partitions=1)
    a, _ca, _wa = table_writer(w, 30, steps=8)
    assert len(w.claims(0)) == 3 and w.cluster.committed == {}
    w.table.down = True
    w.cluster.revoke(0)
    a.step()  # its grace passes retrying a commit the catalog refuses
    assert w.cluster.committed == {} and w.table.snapshots == [] and w.table.calls >= 2
    w.table.down = False
    b, cb, wb = w.writer(table=True, batch_records=7, table_commit_interval=60.0)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    assert b.records == 0  # nothing read again: the claims came from the lake
    all_in_the_table(w)


@pytest.mark.parametrize("table_had", [0, 1], ids=["table-empty", "table-had-the-first-claim"])
def test_a_crash_between_landing_and_the_table_commit_is_repaired_on_the_next_start(table_had):
    """A lands claims and dies before the table holds them (SIGKILL); the next writer resumes after
    the lake's last claim and never reads them again: its resolution finds them in the lake and the
    table gets them, even though no record ever arrives again."""
    w = World(partitions=1)
    a, ca, wa = table_writer(w, 40, steps=3)
    if table_had:
        w.clock.sleep(60)
        a.step()
        wa.run_all()
        a.step()
        assert w.table.progress.offsets == {0: 10} and w.cluster.committed == {0: 10}
    for _ in range(8):
        a.step()
        run_flights(w, wa)
    assert len(w.claims(0)) == 4
    w.cluster.leave(ca)  # A is SIGKILLed: its pending claims are gone with it
    b, cb, wb = w.writer(table=True, batch_records=10, table_commit_interval=60.0)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    assert b.records == 0
    all_in_the_table(w)


@pytest.mark.parametrize("first", ["zombie", "new-owner"])
def test_a_zombie_and_the_new_owner_commit_the_same_claims_once(first):
    """A lands claims, then freezes past its session (a zombie) with them pending; B gets the
    partition and finds them in the lake at resolution. Both commit them to the table: the table
    holds them once, and the zombie's Kafka commit is fenced."""
    w = World(partitions=1)
    a, ca, wa = table_writer(w, 20, steps=5, table_commit_interval=30.0)
    assert len(w.claims(0)) == 2 and w.table.calls == 0
    w.cluster.expire(0)
    ca.deaf = True
    b, cb, wb = w.writer(table=True, batch_records=10, table_commit_interval=30.0)
    w.cluster.give(cb, 0)
    b.step()
    run_flights(w, wb)
    b.step()
    assert [c.end for c in b.table.pending[0]] == [10, 20]
    w.clock.sleep(30)
    order = [(a, wa), (b, wb)] if first == "zombie" else [(b, wb), (a, wa)]
    for writer, workers in order:
        writer.step()  # the commit is due: queued
        workers.run_all()  # ...and lands (or finds the claims in the table already)
        writer.step()
    assert w.table.calls == 2 and len(w.table.snapshots) == 1
    assert w.table.files == [e.key for c in w.claims(0) for e in c.objects]
    assert w.cluster.committed == {0: 20} and all(
        name == cb.name for name, _p, _o in w.cluster.commit_history
    )
    ca.deaf = False
    settle(w, (a, wa), (b, wb), rounds=20)
    all_in_the_table(w)


def test_a_claim_another_writer_landed_first_goes_into_the_table_of_the_writer_that_finds_it():
    """A zombie lands a claim where the new owner's batch starts (with other cuts); the new owner
    repositions after it, and its table commit adds that claim too: no hole in the table."""
    w = World(partitions=1)
    a, ca, wa = table_writer(w, 24, batch_records=12, table_commit_interval=30.0)
    for _ in range(4):
        a.step()
    assert len(wa.queue) == 1  # A's batch 0..14 (three polls of 5) is in flight, not run
    w.cluster.expire(0)
    ca.deaf = True
    b, cb, wb = w.writer(table=True, batch_records=8, table_commit_interval=30.0)
    w.cluster.give(cb, 0)
    b.step()
    run_flights(w, wb)  # B resolves: the lake is empty
    for _ in range(3):
        b.step()
    wa.run_all()  # A's late flight claims and lands 0..14
    settle(w, (b, wb), rounds=70)
    assert w.claims(0)[0].end == 15  # A's cut, not B's
    all_in_the_table(w)
    ca.deaf = False
    settle(w, (a, wa), (b, wb), rounds=5)
    all_in_the_table(w)


# -- what the table starts from ----------------------------------------------------------------------


def test_a_partition_the_table_has_never_seen_is_backfilled_from_the_lake_in_bounded_commits(monkeypatch):
    monkeypatch.setattr(tablecommit, "MAX_COMMIT_OBJECTS", 8)
    w = World(partitions=2)
    for p in (0, 1):
        w.cluster.produce(p, 60)
    a, ca, wa = w.writer(fmt="parquet", batch_records=4)  # a files-only writer: the lake, no table
    for p in (0, 1):
        w.cluster.give(ca, p)
    settle(w, (a, wa), rounds=30, table=False)
    assert w.cluster.committed == {0: 60, 1: 60} and w.table.calls == 0
    w.cluster.leave(ca)
    b, cb, wb = w.writer(table=True, batch_records=4, table_commit_interval=60.0)
    for p in (0, 1):
        w.cluster.give(cb, p)
    settle(w, (b, wb), rounds=70, table=False)  # Kafka committed 60 before the table began
    offsets_per_commit = [
        sum(o.values()) - sum(before.values())
        for before, o in zip([{}, *w.table.snapshots], w.table.snapshots, strict=False)
    ]
    claims = [len(w.claims(p)) for p in (0, 1)]
    assert claims == [12, 12] and all(len(c.objects) == 1 for c in w.claims(0) + w.claims(1))
    assert len(w.table.snapshots) == 3  # 24 objects, at most 8 a commit, one right after the other
    assert offsets_per_commit == [40, 40, 40]  # offsets: 4 claims of 5 offsets of each partition
    assert w.table.progress.starts == {0: 0, 1: 0}
    all_in_the_table(w)


def test_the_table_starts_a_partition_after_the_last_claim_it_cannot_hold(caplog):
    """The lake began as JSON Lines and went on as Parquet: the table holds the Parquet part and
    says where it starts. A JSON claim a predecessor left unlanded, landed by the table's writer, is
    where it starts too. Once the table holds the partition, such a claim stops the writer."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)  # JSON Lines
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=8, table=False)
    w.cluster.produce(0, 20)
    w.cluster.revoke(0)
    a.step()
    b, cb, wb = w.writer(fmt="parquet", batch_records=10)  # Parquet, no table yet
    w.cluster.give(cb, 0)
    settle(w, (b, wb), rounds=8, table=False)
    w.cluster.leave(cb)
    c, cc, wc = w.writer(table=True, batch_records=10, table_commit_interval=10.0)
    w.cluster.give(cc, 0)
    with caplog.at_level(logging.WARNING, "loglake.consume"):
        settle(w, (c, wc), rounds=15, table=False)  # Kafka committed 40 before the table began
    assert (
        "claim 10..19 of the lake is jsonl objects of layout time, which the table cannot hold" in caplog.text
    )
    assert w.table.progress.starts == {0: 20} and w.table.progress.offsets == {0: 40}
    assert w.cluster.committed == {0: 40} and w.table_problems() == []
    w.cluster.produce(0, 10)
    w.cluster.leave(cc)
    d, cd, wd = w.writer(batch_records=10)  # JSON Lines again, in the same group, by mistake
    w.cluster.give(cd, 0)
    steps(d, 3)
    w.store.objects_fail = True
    wd.run_all()
    w.store.objects_fail = False
    w.cluster.leave(cd)  # ...its claim of 40..49 is in the lake, its object not yet
    e, ce, we = w.writer(table=True, batch_records=10, table_commit_interval=10.0)
    w.cluster.give(ce, 0)
    with pytest.raises(
        LoglakeError, match=r"offsets 40\.\.49 were landed as jsonl objects .* run every writer"
    ):
        settle(w, (e, we), rounds=15, table=False)
    assert w.cluster.committed == {0: 40}


# -- what the table's summary accounts for -----------------------------------------------------------


def test_offsets_without_a_record_are_counted_absent_and_verify_of_the_table_is_ok():
    w = World(partitions=1)
    w.cluster.produce(0, 5)
    w.cluster.marker(0)
    w.cluster.produce(0, 4)
    w.cluster.marker(0, 3)
    w.cluster.produce(0, 3, bad_every=2)
    a, ca, wa = w.writer(table=True, batch_records=4, table_commit_interval=10.0)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=20)
    assert w.table.progress.absent == {0: 4} and w.table.progress.lost == {0: 0}
    all_in_the_table(w)
    (report,) = table_verdicts(w)
    assert report.ok and report.pending == 0 and report.dead == 2 and report.in_lake == 10


def test_offsets_lost_to_retention_are_counted_lost_and_verify_of_the_table_names_them():
    """Retention deletes the first records of a claim before its objects were stored (noted lost): the
    table holds what the lake holds (what Kafka still held of the claim, claimed anew), and its summary
    counts what retention deleted as lost."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(table=True, batch_records=10, table_commit_interval=10.0)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.objects_fail = True
    wa.run_all()  # the claim 0..9 is in the lake, its object is not; A dies
    w.store.objects_fail = False
    w.cluster.leave(ca)
    w.cluster.low[0] = 4  # retention deletes 0..3 before anyone lands the claim
    w.cluster.produce(0, 10)
    b, cb, wb = w.writer(table=True, batch_records=10, table_commit_interval=10.0)
    w.cluster.give(cb, 0)
    settle(w, (b, wb), rounds=40)
    assert w.table.progress.offsets == {0: 30} and w.table.progress.records == {0: 26}
    assert w.table.progress.lost == {0: 4}  # 0..3 deleted; 4..9 landed under a claim of their own
    assert w.table_problems() == [] and w.table_ahead_of_kafka() == []
    (report,) = table_verdicts(w)
    assert not report.ok and report.deleted == 4 and report.missing == 0 and report.duplicated == 0
    assert any("claim 0..9 (Kafka deleted offsets from 0 up to 3" in what for what in report.deleted_ranges)


def test_a_topic_created_again_is_refused_by_the_table_that_holds_the_old_one():
    """With --new-generation the lake lands a re-created topic under new keys, but the table keeps the
    old topic's offsets under its name: the new offsets, begun anew at 0, would hide below them. The
    table remembers the topic id it holds the topic of, and refuses another in one sentence."""
    w = World(partitions=1)
    w.cluster.produce(0, 6)
    a, ca, wa = w.writer(table=True, batch_records=3, table_commit_interval=1.0)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    assert w.table.progress.offsets == {0: 6} and w.table.held_topic_id == "sim-topic-1"
    w.cluster.leave(ca)
    w.cluster.recreate("sim-topic-2")
    w.cluster.produce(0, 4)
    with pytest.raises(LoglakeError, match="another topic id"):
        w.writer(table=True, new_generation=True)
    assert w.table.progress.offsets == {0: 6}  # nothing of the new topic was taken for the old


# -- random interleavings, with the table ---------------------------------------------------------------

TABLE_VARIANTS = [
    {"batch_records": 5, "table_commit_interval": 10.0},
    {"batch_records": 3, "compression": "snappy", "table_commit_interval": 3.0},
    {"batch_records": 8, "table_commit_interval": 60.0},
    {"batch_records": 4, "max_record_bytes": 90, "table_commit_interval": 5.0},
]
TABLE_EXAMPLES = int(os.environ.get("LOGLAKE_TABLE_INTERLEAVINGS", "200"))


class TableWriterWorld(WriterWorld):
    """tests/test_interleavings_property.py's world, every writer with the table, and a catalog that
    fails and recovers. After every step Kafka's committed offsets are not past the table's; at the end
    the table holds every offset once (by its files) and its summary accounts for them."""

    TABLE = True

    @initialize(
        first=st.sampled_from(TABLE_VARIANTS), second=st.sampled_from(TABLE_VARIANTS), n=st.integers(5, 20)
    )
    def two_writers_and_some_records(self, first, second, n):
        super().two_writers_and_some_records(first, second, n)

    @rule(variant=st.sampled_from(TABLE_VARIANTS))
    @precondition(lambda self: sum(x["alive"] for x in self.writers) < 3)
    def start_writer(self, variant):
        if not self.w.table.down:  # start-up would wait for the catalog
            super().start_writer(variant)

    @rule(down=st.booleans())
    def catalog(self, down):
        self.w.table.down = down

    @invariant()
    def kafka_never_passes_the_table(self):
        assert self.w.table_ahead_of_kafka() == []

    def teardown(self):
        self.w.table.down = False
        super().teardown()
        assert self.w.table_problems() == []
        assert self.w.table.progress.offsets == {p: len(r) for p, r in enumerate(self.w.cluster.log) if r}


TableWriterWorld.TestCase.settings = settings(
    max_examples=TABLE_EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_interleavings_with_the_table_hold_every_offset_once = pytest.mark.timeout(900)(
    TableWriterWorld.TestCase
)
