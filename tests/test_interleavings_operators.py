"""What operators do every week, and what Kafka does by itself, driven through the writer's own logic
(tests/sim.py): offsets that are not dense, retention deleting what was not landed, expired group
offsets with --start-from latest, partitions added, a topic deleted and created again, a conditional
write that conflicts, a record the encoder cannot take, and a ledger grown large. Each ends with the
oracle (every record once in the lake or the dead letters) or with the loss named where Kafka deleted
records before anyone could land them. The same actions run on the real stack in
tests/test_operator_actions.py."""

from __future__ import annotations

import logging
from itertools import pairwise

import pytest

from loglake import formats, layout
from loglake.errors import LoglakeError
from loglake.ledger import Claim, Ledger
from loglake.verify import read_lake, reconcile
from tests.sim import TOPIC, World
from tests.test_interleavings import landed_everything, settle, steps


def verdicts(w: World, generation: int = 1):
    partitions = list(range(len(w.cluster.log)))
    ranges = {
        p: (w.cluster.low[p], w.cluster.committed.get(p, -1), len(w.cluster.log[p])) for p in partitions
    }
    dead: dict[int, set[int]] = {}
    for letter in w.dead.letters:
        dead.setdefault(letter.partition, set()).add(letter.offset)
    older = tuple(range(1, generation))
    lake = read_lake(w.store, "topics", TOPIC, partitions, deep=True, generation=generation, older=older)
    return reconcile(ranges, lake, dead)


def tiles(claims: list[Claim]) -> bool:
    return all(b.start == a.end for a, b in pairwise(claims))


def test_offsets_kafka_holds_no_record_for_are_absent_in_the_claims_and_the_claims_tile():
    """Transaction markers and aborted records leave offsets a consumer never sees, inside a batch,
    between batches and at the end: no claim may take them for losses, none may leave a gap."""
    w = World(partitions=1)
    w.cluster.produce(0, 5)
    w.cluster.marker(0)
    w.cluster.produce(0, 4)
    w.cluster.marker(0, 3)
    w.cluster.produce(0, 3)
    w.cluster.marker(0)
    a, ca, wa = w.writer(batch_records=4)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    claims = w.claims(0)
    assert tiles(claims) and claims[0].start == 0
    assert sum(c.absent for c in claims) == 4  # the last marker is after the last claim
    assert w.problems() == [] and w.cluster.committed == {0: claims[-1].end}
    (report,) = verdicts(w)
    assert report.ok and report.missing == 0 and report.tail == (claims[-1].end, 17)


def test_retention_that_deletes_what_no_claim_holds_is_named_lost_and_the_writer_goes_on():
    """The writer was down longer than retention.ms: offsets after the last claim are gone."""
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=4)
    assert w.cluster.committed == {0: 10}
    w.cluster.owner[0] = None  # A is gone
    w.cluster.produce(0, 20)
    w.cluster.low[0] = 15  # retention deleted 10..14 before anyone landed them
    b, cb, wb = w.writer(batch_records=8)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    assert b.lost_offsets == 5
    claims = w.claims(0)
    assert tiles(claims) and claims[1].start == 10 and claims[1].lost == ((10, 15),)
    assert w.cluster.committed == {0: 30}
    (report,) = verdicts(w)
    assert not report.ok and report.deleted == 5 and report.missing == 0
    assert any("10..14" in what for what in report.deleted_ranges)


def test_a_claim_kafka_deleted_part_of_before_it_landed_is_noted_and_the_rest_is_landed(caplog):
    """A claim whose objects were never stored, and whose first offsets retention deleted: only what
    Kafka deleted is lost (named); what it still holds of the claim is claimed anew and landed."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.objects_fail = True
    wa.run_all()  # the claim 0..9 is in the lake, its object is not; A dies
    w.store.objects_fail = False
    w.cluster.owner[0] = None
    w.cluster.low[0] = 4  # ...and retention deletes 0..3 before anyone lands the claim
    b, cb, wb = w.writer(batch_records=10)
    w.cluster.give(cb, 0)
    with caplog.at_level(logging.ERROR, "loglake.consume"):
        settle(w, (b, wb))
    assert "Kafka deleted offsets 0..3 (retention) before the claim of offsets 0..9 was landed" in caplog.text
    assert "offsets 0..3 are lost; offsets 4..9 are read again and landed" in caplog.text
    notes = Ledger(w.store, "topics", TOPIC).lost(0)
    assert list(notes) == [0] and notes[0].kafka_from == 4 and notes[0].cut == 4
    assert b.lost_offsets == 4 and w.cluster.committed == {0: 20}
    assert [c.start for c in w.claims(0)][:2] == [0, 4]
    (report,) = verdicts(w)
    assert report.deleted == 4 and report.missing == 0 and report.duplicated == 0 and report.problems == []
    assert w.problems() == [f"partition 0 offset {o}: 0 copies" for o in range(4)]  # named, not hidden


def test_a_claim_partly_stored_when_kafka_deleted_its_start_keeps_its_objects_and_loses_the_rest():
    """Some of the claim's objects are in the lake: their records stay the only copies; the rest of the
    claim's range is lost to retention (another claim of it would store those objects' records twice)."""
    w = World(partitions=1)
    for hour in (0, 1):
        w.cluster.produce(0, 5, hour=hour)  # two folders: two objects per claim of 0..9
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.fail_after_puts = 1  # the first object is stored, then the lake fails
    wa.run_all()
    w.store.fail_after_puts = -1
    w.cluster.owner[0] = None
    w.cluster.low[0] = 2
    b, cb, wb = w.writer(batch_records=10)
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    notes = Ledger(w.store, "topics", TOPIC).lost(0)
    assert len(notes[0].stored) == 1 and notes[0].cut == 10
    (report,) = verdicts(w)
    assert report.duplicated == 0 and report.missing == 0 and report.deleted == 5
    assert w.cluster.committed == {0: 20}


def test_expired_group_offsets_and_start_from_latest_resume_after_the_lakes_last_claim():
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=4)
    w.cluster.owner[0] = None
    w.cluster.produce(0, 10)  # 10..19 arrive while no writer runs
    w.cluster.committed.clear()  # offsets.retention.minutes passed
    b, cb, wb = w.writer(batch_records=10, start_from="latest")
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    landed_everything(w)


def test_start_from_latest_applies_to_a_topic_the_lake_has_never_seen():
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=5, start_from="latest")
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=3)
    w.cluster.produce(0, 5)
    settle(w, (a, wa))
    assert [(c.start, c.end) for c in w.claims(0)] == [(10, 15)]


def test_a_new_prefix_starts_where_the_group_committed_as_after_a_regional_failover():
    """West's copy of a topic, landed into a prefix of its own by a group whose offsets MirrorMaker
    translated: what east's lake holds is not landed again (--start-from committed, the default)."""
    w = World(partitions=1)
    w.cluster.produce(0, 12)
    w.cluster.committed[0] = 7  # translated from east's group
    a, ca, wa = w.writer(batch_records=5)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    assert w.claims(0)[0].start == 7 and w.cluster.committed == {0: 12}


def test_a_partition_added_while_the_writer_runs_is_read_from_its_first_offset():
    w = World(partitions=1)
    w.cluster.produce(0, 6)
    a, ca, wa = w.writer(batch_records=5, start_from="latest")
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=3)
    w.cluster.produce(0, 5)
    settle(w, (a, wa))
    p = w.cluster.add_partition()
    w.cluster.produce(p, 7)  # before the group sees the new partition
    w.cluster.give(ca, p)
    settle(w, (a, wa))
    assert [(c.start, c.end) for c in w.claims(p)] == [(0, 5), (5, 7)]
    assert w.cluster.committed[p] == 7


def test_a_topic_created_again_is_refused_until_asked_for_a_new_generation_of_keys():
    w = World(partitions=1)
    w.cluster.produce(0, 8)
    a, ca, wa = w.writer(batch_records=4)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    old = set(lake_objects(w))
    w.cluster.owner[0] = None
    w.cluster.recreate("sim-topic-2")
    w.cluster.produce(0, 6)
    with pytest.raises(LoglakeError, match=r"deleted and created again.*--new-generation"):
        w.writer()
    b, cb, wb = w.writer(batch_records=4, new_generation=True)
    assert b.ledger.generation == 2
    w.cluster.give(cb, 0)
    settle(w, (b, wb))
    new = set(lake_objects(w)) - old
    assert new and all(f"{TOPIC}+g2+0+" in k for k in new)
    claims = list(Ledger(w.store, "topics", TOPIC, 2).all(0))
    assert tiles(claims) and (claims[0].start, claims[-1].end) == (0, 6)
    (report,) = verdicts(w, generation=2)
    assert report.ok and report.in_lake == 6 and report.problems == []


def test_a_running_writer_stops_when_its_topic_is_created_again():
    w = World(partitions=1)
    w.cluster.produce(0, 4)
    a, ca, wa = w.writer(batch_records=4)
    w.cluster.give(ca, 0)
    settle(w, (a, wa), rounds=3)
    w.cluster.revoke(0)
    a.step()
    w.cluster.recreate("sim-topic-2")
    w.cluster.give(ca, 0)
    with pytest.raises(LoglakeError, match="deleted and created again while this writer ran"):
        steps(a, 2)


def test_a_conditional_write_that_conflicts_is_asked_again_not_taken_for_an_answer():
    """S3 answers 409 ConditionalRequestConflict while another create of the key is under way."""
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=5)
    w.cluster.give(ca, 0)
    w.store.conflicts = 2
    settle(w, (a, wa))
    landed_everything(w)
    assert w.store.conflicts == 0


def test_a_record_the_encoder_cannot_take_is_a_dead_letter_and_the_claim_holds_only_the_rest(monkeypatch):
    """The second line behind validation: whatever one record makes an encoder raise is found before
    the claim is written, and that record alone becomes a dead letter."""
    codec = formats.FORMATS["jsonl"]
    encode = codec.encode

    def picky(topic, partition, records, recipe):
        if any(b"e0-3" in records.value(i) for i in range(len(records))):
            raise OverflowError("this one does not fit")
        return encode(topic, partition, records, recipe)

    monkeypatch.setattr(codec, "encode", picky)
    w = World(partitions=1)
    w.cluster.produce(0, 8)
    a, ca, wa = w.writer(batch_records=8)
    w.cluster.give(ca, 0)
    settle(w, (a, wa))
    landed_everything(w)
    (claim,) = w.claims(0)
    assert claim.dead_letters == 1 and claim.records == 7
    (letter,) = w.dead.letters
    assert (letter.offset, letter.kind, letter.error_class) == (3, "unencodable", "OverflowError")
    assert "OverflowError: this one does not fit" in letter.reason


def test_finding_a_partitions_last_claim_costs_the_same_whatever_the_ledgers_size():
    w = World(partitions=1)
    ledger = Ledger(w.store, "topics", TOPIC)
    probe = Claim(TOPIC, 0, 0, 1, formats.Recipe(), (), 0)
    for n in (10, 5_000):
        for start in range(len(ledger_keys(w)), n):
            w.store.objects[ledger.key(0, start)] = (
                Claim(TOPIC, 0, start, start + 1, probe.recipe, (), 0).to_json(),
                {},
            )
        ledger.create(Claim(TOPIC, 0, n, n + 1, probe.recipe, (), 0))  # notes the head
        w.store.requests.clear()
        last = ledger.last(0)
        assert last is not None and last.start == n
        assert sum(w.store.requests.values()) <= 3, w.store.requests  # head note, one list, the claim


def lake_objects(w: World) -> list[str]:
    return [k for k in w.store.objects if formats.format_of_key(k) and layout.BOOKKEEPING not in k]


def ledger_keys(w: World) -> list[str]:
    return [k for k in w.store.objects if "/_loglake/claims/" in k]


def test_an_outage_shows_within_seconds_while_a_batch_waits(caplog):
    w = World(partitions=1)
    w.cluster.produce(0, 3)
    a, ca, wa = w.writer(batch_records=100, batch_age=600, idle_flush=600)
    w.cluster.give(ca, 0)
    steps(a, 2)
    w.store.down = True
    with caplog.at_level(logging.INFO, "loglake.consume"):
        for _ in range(8):
            w.clock.sleep(1)
            a.step()
            wa.run_all()
        assert "is not answering" in caplog.text and "nothing is committed until it is back" in caplog.text
        w.store.down = False
        for _ in range(8):
            w.clock.sleep(1)
            a.step()
            wa.run_all()
        assert "the lake is back after" in caplog.text
    # nothing was due yet: the lake holds no object, only the probes saw the outage
    assert not lake_objects(w)


def test_a_create_refused_as_existing_with_nothing_there_is_asked_again():
    """A conditional create answered "exists" while no claim can be read yet (another create of the
    key that then failed): the writer asks again; it never takes the claim for its own unseen."""
    w = World(partitions=1)
    w.cluster.produce(0, 10)
    a, ca, wa = w.writer(batch_records=5)
    w.cluster.give(ca, 0)
    w.store.refused_unseen = 1
    settle(w, (a, wa))
    landed_everything(w)
    (report,) = verdicts(w)
    assert report.ok and report.problems == []  # every object is named by a claim in the lake


def test_a_claim_met_at_a_batchs_start_that_is_not_landed_is_read_again_and_landed():
    """B reads on while a zombie A claims the same start (its objects never stored): B's create meets
    A's claim, not landed, so B reads its range again and lands it as A's claim says."""
    w = World(partitions=1)
    w.cluster.produce(0, 20)
    a, ca, wa = w.writer(batch_records=10)
    w.cluster.give(ca, 0)
    steps(a, 2)  # A gathered 0..9; its flight waits
    w.cluster.expire(0)
    ca.deaf = True
    b, cb, wb = w.writer(per_poll=3, batch_records=6)
    w.cluster.give(cb, 0)
    steps(b, 2)  # B resolves (nothing in the lake), gathers 0..5 and launches it
    assert len(wb.queue) == 1
    w.store.objects_fail = True
    wa.run_all()  # the zombie's claim 0..9 is created, its object is not stored
    w.store.objects_fail = False
    wb.run_all()  # B's claim of 0..5 meets it: not landed
    b.step()
    assert b.parts[0].follow is not None and b.parts[0].position == 0
    settle(w, (b, wb))
    landed_everything(w)
    assert [(c.start, c.end) for c in w.claims(0)][:1] == [(0, 10)]


def test_a_partition_assigned_while_the_lake_is_down_resumes_once_it_is_back():
    w = World(partitions=1)
    w.cluster.produce(0, 8)
    a, ca, wa = w.writer(batch_records=4)
    w.store.down = True
    w.cluster.give(ca, 0)
    for _ in range(3):
        a.step()
        wa.run_all()
        w.clock.sleep(2)
    assert not a.parts[0].resolved and w.cluster.committed == {}
    w.store.down = False
    settle(w, (a, wa))
    landed_everything(w)
