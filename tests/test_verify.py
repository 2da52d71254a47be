"""Unit tests of verify's verdicts (reconcile): what counts as lost, pending, duplicated, and from where;
and of reading the lake by metadata (the default) and record by record (--deep)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from loglake import formats, layout
from loglake.batch import Rejected
from loglake.formats import Recipe
from loglake.ledger import Claim
from loglake.verify import EXIT_PENDING, LakeContents, VerifyResult, read_lake, reconcile
from tests.sim import TOPIC, World
from tests.test_interleavings import settle


def lake_with(offsets: dict[int, list[int]], claims_from: int | None = None) -> LakeContents:
    lake = LakeContents()
    for p, found in offsets.items():
        lake.offsets[p] = Counter(found)
        if claims_from is not None:
            lake.claims[p] = [Claim("t", p, claims_from, max(found) + 1, Recipe(), (), 0)]
    return lake


def test_below_the_commit_a_hole_is_lost_above_it_pending():
    (report,) = reconcile({0: (0, 6, 10)}, lake_with({0: [0, 1, 3, 4, 5, 6, 7]}), {0: {2}})
    assert (report.missing, report.pending, report.duplicated) == (0, 2, 0)  # 8, 9 not landed yet
    (report,) = reconcile({0: (0, 6, 10)}, lake_with({0: [0, 1, 4, 5, 6, 7]}), {})
    assert (report.missing, report.first_missing, report.pending) == (2, 2, 2)
    assert not report.ok


def test_an_offset_in_the_lake_and_in_the_dead_letters_is_a_duplicate():
    (report,) = reconcile({0: (0, 3, 3)}, lake_with({0: [0, 1, 2, 2]}), {0: {1}})
    assert report.duplicated == 2 and not report.ok


def test_to_committed_stops_at_the_commit():
    (report,) = reconcile({0: (0, 3, 10)}, lake_with({0: [0, 1, 2]}), {}, to_committed=True)
    assert (report.end, report.pending, report.ok) == (3, 0, True)


def test_a_group_that_started_later_is_checked_from_its_first_claim_unless_asked():
    ranges = {0: (0, 10, 10)}
    lake = lake_with({0: [5, 6, 7, 8, 9]}, claims_from=5)
    (report,) = reconcile(ranges, lake, {})
    assert (report.low, report.missing, report.ok) == (5, 0, True)
    (report,) = reconcile(ranges, lake, {}, from_earliest=True)
    assert (report.low, report.missing, report.ok) == (0, 5, False)


def test_problems_with_claims_fail_the_partition():
    lake = lake_with({0: [0]})
    lake.problem(0, "object x is named by no claim")
    (report,) = reconcile({0: (0, 1, 1)}, lake, {})
    assert not report.ok and report.problems == ["object x is named by no claim"]


def test_the_exit_status_separates_pending_from_failed():
    pending = VerifyResult("t", "g", reconcile({0: (0, 1, 2)}, lake_with({0: [0]}), {}))
    assert pending.ok and not pending.complete and EXIT_PENDING == 3


# -- metadata (default) and --deep, over a lake the writer made (tests/sim.py) ----------------------


def landed_world(fmt: str = "jsonl", bad_every: int = 4) -> World:
    w = World(partitions=2)
    w.cluster.produce(0, 23, bad_every=bad_every)
    w.cluster.produce(1, 17, hour=1)
    writer, consumer, workers = w.writer(batch_records=5, fmt=fmt)
    w.cluster.give(consumer, 0)
    w.cluster.give(consumer, 1)
    settle(w, (writer, workers))
    assert w.cluster.committed == {0: 23, 1: 17}
    return w


def check(w: World, deep: bool, committed: dict[int, int] | None = None) -> list:
    committed = committed if committed is not None else w.cluster.committed
    ranges = {p: (0, committed.get(p, 0), len(w.cluster.log[p])) for p in (0, 1)}
    dead: dict[int, set[int]] = {}
    for letter in w.dead.letters:
        dead.setdefault(letter.partition, set()).add(letter.offset)
    return reconcile(ranges, read_lake(w.store, "topics", TOPIC, [0, 1], deep=deep), dead)


def verdict(reports: list) -> tuple:
    return (
        sum(r.missing for r in reports),
        sum(r.pending for r in reports),
        sum(r.duplicated for r in reports),
        [t for r in reports for t in r.problems],
    )


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("deep", [False, True], ids=["metadata", "deep"])
def test_a_landed_lake_passes_both_ways(fmt, deep):
    w = landed_world(fmt)
    reports = check(w, deep)
    assert verdict(reports) == (0, 0, 0, [])
    assert sum(r.in_lake for r in reports) + sum(r.dead for r in reports) == 40
    assert sum(r.dead for r in reports) == len(w.dead.letters) > 0


def objects(w: World) -> list[str]:
    return sorted(k for k in w.store.objects if formats.format_of_key(k) and layout.BOOKKEEPING not in k)


@pytest.mark.parametrize("deep", [False, True], ids=["metadata", "deep"])
def test_a_claim_whose_object_is_missing_is_lost_below_the_commit_and_pending_above(deep):
    w = landed_world()
    key = objects(w)[1]
    del w.store.objects[key]
    missing, pending, _dups, problems = verdict(check(w, deep))
    assert missing > 0 and pending == 0
    assert any("objects are not in the lake" in t and key in t for t in problems)
    # the group had committed only up to that claim: its offsets are pending, not lost
    claim = next(c for c in w.claims(0) + w.claims(1) if any(e.key == key for e in c.objects))
    reports = check(w, deep, committed={claim.partition: claim.start, 1 - claim.partition: 0})
    missing, pending, _dups, problems = verdict(reports)
    assert missing == 0 and pending > 0 and problems == []
    assert any(key in note for r in reports for note in r.notes)


def test_only_deep_reads_objects_whose_content_and_metadata_disagree():
    """An object replaced by other records under the same key and metadata: invisible to metadata,
    reported by --deep."""
    w = landed_world(bad_every=0)
    first, second = objects(w)[:2]
    w.store.objects[first] = (w.store.objects[second][0], w.store.objects[first][1])
    assert verdict(check(w, deep=False)) == (0, 0, 0, [])
    _missing, _pending, _dups, problems = verdict(check(w, deep=True))
    assert any(t.startswith(f"object {first} holds") and "its metadata says" in t for t in problems)


def test_metadata_that_disagrees_with_the_claim_fails_both_ways():
    w = landed_world(bad_every=0)
    key = objects(w)[0]
    data, meta = w.store.objects[key]
    w.store.objects[key] = (data, meta | {"loglake-records": "1"})
    for deep in (False, True):
        problems = verdict(check(w, deep))[3]
        assert any(f"object {key}: its metadata says records=1, its claim records=" in t for t in problems)


def test_dead_letters_a_claim_counts_but_no_store_holds():
    w = landed_world(bad_every=4)
    lost = w.dead.letters.pop()
    reports = check(w, deep=False)
    missing, _pending, _dups, problems = verdict(reports)
    assert missing == 1 and any("dead letters are in no dead-letter store" in t for t in problems)
    assert verdict(check(w, deep=True))[0] == 1
    w.dead.letters.append(lost)
    w.dead.letters.append(replace(lost))  # the topic is at-least-once: a second copy counts once
    assert verdict(check(w, deep=False)) == (0, 0, 0, [])


def test_an_object_without_a_claim_fails_both_ways():
    w = landed_world(bad_every=0)
    stray = objects(w)[0].replace("+00000000000000000000.", "+00000000000000009999.")
    w.store.objects[stray] = w.store.objects[objects(w)[0]]
    for deep in (False, True):
        assert any(f"object {stray} is named by no claim" in t for t in verdict(check(w, deep))[3])


def test_claims_tile_or_the_gap_is_lost():
    w = landed_world(bad_every=0)
    claim = w.claims(0)[1]
    del w.store.objects[layout.claim_key("topics", TOPIC, 0, claim.start)]
    for e in claim.objects:
        del w.store.objects[e.key]
    for deep in (False, True):
        (report, _other) = check(w, deep)
        assert (report.missing, report.first_missing) == (claim.end - claim.start, claim.start)


def test_a_dead_letter_for_an_offset_also_in_an_object_is_a_duplicate():
    w = landed_world(bad_every=0)
    w.dead.letters.append(Rejected(TOPIC, 0, 3, 0, None, b"x", None, "invalid-json", "x"))
    for deep in (False, True):
        assert verdict(check(w, deep))[2] == 1


def test_the_store_is_read_per_object_not_per_record_without_deep():
    w = landed_world(bad_every=0)
    gets: list[str] = []
    original = w.store.get
    w.store.get = lambda key: gets.append(key) or original(key)  # type: ignore[method-assign]
    check(w, deep=False)
    assert gets and all(layout.BOOKKEEPING in key for key in gets)  # claims only, no object bodies
    gets.clear()
    check(w, deep=True)
    assert set(objects(w)) <= set(gets)


def test_an_unreachable_lake_is_one_sentence_not_a_traceback():
    import subprocess
    import sys

    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "loglake", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: the lake did not answer") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
