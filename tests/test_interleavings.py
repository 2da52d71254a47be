"""The lake writer driven through chosen interleavings of polls, uploads, lake outages, rebalances,
zombies and restarts (tests/sim.py: a scripted consumer and an in-memory lake). Each scenario ends
with the oracle: every offset of the topic stored exactly once in the lake or the dead letters, and
the group never having committed past an offset that is not stored."""

from __future__ import annotations

import pytest

from loglake import layout
from loglake.body import Body
from loglake.errors import LoglakeError
from tests.sim import TOPIC, World, dead_letter_value


def steps(writer, n: int = 1) -> None:
    for _ in range(n):
        writer.step()


def settle(world: World, *pairs, rounds: int = 60) -> None:
    """Let writers poll and their flights run until nothing changes (everything that can land did)."""
    for _ in range(rounds):
        for writer, workers in pairs:
            writer.step()
            workers.run_all()
        world.clock.sleep(1.0)


def landed_everything(world: World) -> None:
    assert world.problems() == []
    assert world.commit_problems() == []
    assert world.cluster.committed == {p: len(r) for p, r in enumerate(world.cluster.log) if r}


# -- the two sequences of the issue -----------------------------------------------------------------


@pytest.mark.parametrize("late_upload_first", [False, True], ids=["newer-owner-first", "late-upload-first"])
def test_rebalance_during_a_lake_outage_never_duplicates_or_loses(late_upload_first):
    """Writer A's upload of 10..19 fails; while it waits to retry, the partition moves to B, which
    cuts other batches (10..14, 15..19, 20..24); then A's retry reaches the lake, before or after B's
    uploads. (A landed 0..9 first, so both start from a committed offset.)"""
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=3)
    assert w.cluster.committed == {0: 10}
    w.cluster.produce(0, 10)
    steps(a, 2)  # 10..19 gathered, the batch is full: its flight is queued
    assert len(wa.queue) == 1
    w.store.down = True
    wa.run()  # the upload fails
    a.step()  # ...and is scheduled again after a backoff
    w.clock.sleep(1)
    a.step()  # the retry is in the air (queued: the lake is slow)
    assert len(wa.queue) == 1
    wa.run_on_wait = False  # A's revoke grace runs out while the lake is still down
    w.cluster.revoke(0)
    a.step()
    assert 0 not in a.parts and w.cluster.committed == {0: 10}
    w.cluster.produce(0, 5)
    w.store.down = False  # the lake is back (A's retry still waits in its queue)
    b, cb, wb = w.writer(batch_records=5)
    w.cluster.give(cb, 0)
    if late_upload_first:
        wa.run_all()  # A's abandoned retry lands first: claim 10..19 and its object
    settle(w, (b, wb))
    wa.run_all()  # ...or last: it finds B's claim at offset 10 and writes nothing
    landed_everything(w)
    ranges = [(c.start, c.end) for c in w.claims(0)]
    assert (
        ranges == [(0, 10), (10, 20), (20, 25)]
        if late_upload_first
        else [(0, 10), (10, 15), (15, 20), (20, 25)]
    )


def test_no_commit_past_an_unresolved_upload_even_when_a_revoke_flushes():
    """A failed flight of 0..9 is unresolved while 10..19 gathers; a revoke lands what it can: the
    retry first, then the newer batch, each commit after its own objects, in order."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10, idle_flush=1000)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.down = True
    wa.run()  # 0..9 fails
    steps(a, 2)  # 10..19 gathered meanwhile (its flight must wait for 0..9)
    assert a.parts[0].batch is not None and a.parts[0].batch.handled == 10
    assert w.cluster.committed == {}
    w.store.down = False
    w.cluster.revoke(0)
    a.step()  # the revoke waits out the backoff, lands 0..9, commits 10, lands 10..19, commits 20
    assert [c for _, _, c in w.cluster.commit_history] == [10, 20]
    landed_everything(w)


def test_revoke_while_the_lake_stays_down_commits_nothing_and_the_next_owner_lands_all():
    w = World(partitions=1)
    w.cluster.produce(0, 25)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.down = True
    wa.run()
    steps(a, 3)
    w.cluster.revoke(0)
    a.step()  # grace spent retrying against a dead lake
    assert w.cluster.committed == {} and w.commit_problems() == []
    w.store.down = False
    b, cb, wb = w.writer(batch_records=8)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    wa.run_all()
    landed_everything(w)


def test_a_commit_refused_while_the_partition_is_still_ours_is_asked_again():
    w = World(partitions=1)
    w.cluster.produce(0, 5)
    a, ca, wa = w.writer(batch_records=5)
    w.cluster.give(ca, 0)
    ca.refuse_commits = True  # e.g. kafka-python refuses commits while its member rejoins
    settle(w, (a, wa), rounds=3)
    assert w.cluster.committed == {} and len(w.claims(0)) == 1
    ca.refuse_commits = False
    settle(w, (a, wa), rounds=2)
    landed_everything(w)


# -- zombies, lost partitions, restarts ---------------------------------------------------------------


@pytest.mark.parametrize("zombie_batch", [10, 7], ids=["same-cuts", "other-cuts"])
def test_zombie_paused_past_its_session_keeps_uploading_harmlessly(zombie_batch):
    """A is paused past its session timeout (SIGSTOP): the group gives its partition to B. A wakes up
    and, before it hears it lost the partition, lands what it had gathered, with other batch cuts."""
    w = World(partitions=1)
    w.cluster.produce(0, 30)
    a, ca, wa = w.writer(batch_records=zombie_batch)
    w.cluster.give(ca, 0)
    steps(a, 3)
    wa.run_all()
    a.step()  # A landed its first batch and committed
    steps(a, 2)  # ...and gathered the next one, whose flight is queued
    assert wa.queue, "the zombie must freeze with an upload in flight"
    w.cluster.expire(0)
    ca.deaf = True  # has not noticed
    b, cb, wb = w.writer(batch_records=10)
    w.cluster.give(cb, 0)
    for _ in range(30):  # the two interleave: polls and uploads of each, in turn
        b.step()
        a.step()
        if wb.queue:
            wb.run()
        if wa.queue:
            wa.run()
        w.clock.sleep(1)
    ca.deaf = False
    settle(w, (a, wa), (b, wb))
    assert 0 not in a.parts
    assert all(name == cb.name for name, _, _ in w.cluster.commit_history[1:])
    landed_everything(w)


def test_lost_partitions_mid_upload_are_forgotten_and_the_late_uploads_are_harmless():
    """A's session expires while both its flights are queued: the group drops it (all its partitions,
    as Kafka does), A hears of it at its next poll and forgets them; its late uploads land harmlessly."""
    w = World(partitions=2)
    for p in (0, 1):
        w.cluster.produce(p, 12)
    a, ca, wa = w.writer(batch_records=6)
    w.cluster.give(ca, 0)
    w.cluster.give(ca, 1)
    steps(a, 2)
    assert len(wa.queue) == 2  # both uploads in flight when the session expires
    w.cluster.expire(0)
    a.step()  # hears it at once: lost, forgotten
    assert a.parts == {}
    b, cb, wb = w.writer(batch_records=4)
    w.cluster.give(cb, 0)
    w.cluster.give(cb, 1)
    settle(w, (b, wb))
    wa.run_all()  # A's flights land late
    settle(w, (a, wa), (b, wb))
    landed_everything(w)


@pytest.mark.parametrize(
    "changed",
    [
        {"batch_records": 3},
        {"fmt": "json", "compression": "none"},
        {"fmt": "parquet"},
        {"compression": "none"},
        {"layout": "partition"},
        {"max_record_bytes": 60},
    ],
    ids=["batch-records", "format", "parquet", "compression", "layout", "max-record-bytes"],
)
@pytest.mark.parametrize("crash_after", ["claim", "objects"])
def test_restart_with_other_settings_lands_the_claim_in_flight_with_its_own_recipe(changed, crash_after):
    """A crashes after claiming 0..9 (with or without its objects stored, never committed); B starts
    with other settings, lands A's claim as A would have, then goes on with its own."""
    w = World(partitions=1)
    w.cluster.produce(0, 20, bad_every=4)
    a, ca, wa = w.writer(batch_records=10, max_record_bytes=1000)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.objects_fail = crash_after == "claim"  # the claim is created, its objects are not
    wa.run()
    w.store.objects_fail = False
    assert w.claims(0)[0].end == 10 and w.cluster.committed == {}  # A dies here
    b, cb, wb = w.writer(**changed)
    w.cluster.owner[0] = None
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    landed_everything(w)
    first, *rest = w.claims(0)
    assert (first.start, first.end, first.recipe) == (0, 10, a.recipe)
    assert rest and all(c.recipe == b.recipe for c in rest)


def test_a_group_whose_offsets_expired_resumes_after_the_lakes_last_claim():
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=5)
    assert w.cluster.committed == {0: 20}
    w.cluster.committed.clear()  # offsets.retention.minutes passed while no writer ran
    w.cluster.owner[0] = None
    w.cluster.produce(0, 5)
    b, cb, wb = w.writer(batch_records=4)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    landed_everything(w)


def test_a_group_without_commits_starting_inside_a_landed_claim_resumes_after_the_last_claim():
    """Offsets expired and retention deleted the first records: the group starts at 5, inside the
    claim 0..9. It must not claim 5..8 (that would store them twice): it finds the last claim first."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=5)
    w.cluster.committed.clear()
    w.cluster.owner[0] = None
    w.cluster.low[0] = 5
    w.cluster.produce(0, 3)
    b, cb, wb = w.writer(batch_records=4)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    assert [(c.start, c.end) for c in w.claims(0)] == [(0, 10), (10, 20), (20, 23)]
    assert w.problems() == [] and w.cluster.committed == {0: 23}


def test_records_fetched_before_a_seek_are_not_gathered_again():
    """The client may still hand out records it fetched before a seek: they are skipped."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)  # A gathered 0..9; its flight waits in its queue
    w.cluster.expire(0)
    ca.deaf = True  # A is a zombie now
    b, cb, wb = w.writer(batch_records=5)
    cb.stale_after_seek = True
    w.cluster.give(cb, 0)
    b.step()  # B: new to the lake, reads from the start, gathers 0..4, launches it
    assert len(wb.queue) == 1
    wa.run_all()  # the zombie's claim 0..9 lands first
    wb.run_all()  # B's claim meets it, landed: skip to 10
    b.step()
    assert b.parts[0].position == 10
    b.step()  # the poll brings 5..9 (fetched before the seek) and then 10..14
    state = b.parts[0]
    gathered = state.batch or (state.flight.batch if state.flight else None)
    assert gathered is not None and (gathered.start, gathered.next) == (10, 15)
    settle(w, (b, wb))
    landed_everything(w)


def test_a_writer_about_to_exit_on_idle_first_lands_the_claim_it_must_read_again():
    """A claim in the lake (its objects never stored) must be read again; the re-read is slow (no
    records for longer than --exit-when-idle): the writer waits for it instead of leaving it unlanded."""
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.objects_fail = True
    wa.run_all()  # the claim 0..9 is in the lake, its object is not; A dies
    w.store.objects_fail = False
    w.cluster.owner[0] = None
    b, cb, wb = w.writer(batch_records=100, exit_when_idle=3, idle_flush=1)
    cb.silent = True  # the re-read is slow
    w.cluster.give(cb, 0)
    b.step()  # assigned: the lake says to read 0..9 again, as the claim says
    assert b.parts[0].follow is not None and b.parts[0].position == 0
    w.clock.sleep(5)
    assert not b.step()  # no records for 5 s, but a claim waits to be read: it does not exit
    cb.silent = False
    for _ in range(10):
        if b.step():
            break
        wb.run_all()
    landed_everything(w)


# -- dead letters ---------------------------------------------------------------------------------------


def test_a_dead_letter_too_large_for_the_dead_letter_topic_is_kept_in_the_lake():
    w = World(partitions=1)
    w.dead.limit = 100
    w.cluster.produce(0, 5)
    w.cluster.log[0].append(type(w.cluster.log[0][0])(0, 5, b"x" * 5000))  # the poison pill
    w.cluster.produce(0, 5)
    a, ca, wa = w.writer(batch_records=4, max_record_bytes=1000)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    landed_everything(w)
    key = layout.dead_letter_key("topics", TOPIC, 0, 5)
    assert dead_letter_value(w.store.objects[key][0]) == b"x" * 5000


def test_dead_letter_topic_down_holds_the_commit_until_the_letters_are_acknowledged():
    w = World(partitions=1)
    w.cluster.produce(0, 10, bad_every=2)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    w.dead.down = True
    settle(w, (a, wa), rounds=5)
    assert w.cluster.committed == {}
    w.dead.down = False
    settle(w, (a, wa), rounds=20)
    landed_everything(w)


# -- start-up ----------------------------------------------------------------------------------------------


def test_two_groups_cannot_both_claim_a_prefix():
    w = World(partitions=1)
    w.writer(group="first")
    with pytest.raises(LoglakeError, match="is landed by group 'first'"):
        w.writer(group="second")


def test_a_store_that_ignores_conditional_writes_is_refused():
    w = World(partitions=1)
    w.store.put_if_absent = lambda key, body: w.store.put(key, body) or True  # overwrites, claims success
    with pytest.raises(LoglakeError, match="ignores conditional writes"):
        w.writer()


def test_idle_partitions_flush_and_sigterm_drains():
    w = World(partitions=2)
    w.cluster.produce(0, 3)
    a, ca, wa = w.writer(batch_records=100, idle_flush=5)
    w.cluster.give(ca, 0)
    w.cluster.give(ca, 1)
    steps(a, 2)
    assert not wa.queue  # not full, not idle yet
    w.clock.sleep(6)
    a.step()
    assert len(wa.queue) == 1  # idle: flushed
    wa.run_all()
    w.cluster.produce(1, 4)
    steps(a, 2)
    a.stop.set()
    for _ in range(5):
        if a.step():
            break
        wa.run_all()
    else:
        pytest.fail("the writer did not finish draining")
    landed_everything(w)


def test_a_stray_object_written_by_hand_is_not_counted_as_landed():
    """The oracle itself: an extra copy of an offset is caught (the checks can fail)."""
    w = World(partitions=1)
    w.cluster.produce(0, 4)
    a, ca, wa = w.writer(batch_records=4)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=3)
    landed_everything(w)
    data = w.store.objects[w.claims(0)[0].objects[0].key][0]
    w.store.put("topics/t/dt=2026-01-01/hour=00/t+0+00000000000000000099.jsonl.gz", Body(data))
    assert w.problems() == [f"partition 0 offset {o}: 2 copies" for o in range(4)]


def test_the_same_topic_name_from_another_kafka_cluster_is_refused():
    """After a regional failover, west's own `log-data` has other records at the same offsets."""
    w = World(partitions=1)
    w.writer()
    w.cluster.id = "west-cluster"
    with pytest.raises(LoglakeError, match="of Kafka cluster sim-cluster, and this is cluster west-cluster"):
        w.writer()
