"""Unit tests of verify's verdicts (reconcile): what counts as lost, pending, duplicated, and from where."""

from __future__ import annotations

from collections import Counter

from loglake.formats import Recipe
from loglake.ledger import Claim
from loglake.verify import EXIT_PENDING, LakeContents, VerifyResult, reconcile


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
