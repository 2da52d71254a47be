"""The verdicts: per partition, every offset from where the lake's landing began up to the end (or the
committed offset) accounted for exactly once, from what Kafka, the lake and the dead letters hold.

An offset is accounted for by a record in a lake object, a dead letter (on the dead-letter topic or in
the lake), or its claim: offsets Kafka holds no record for (`absent`: transaction markers, aborted or
compacted records) and ranges Kafka deleted before they were read (`lost` to retention, named). What
is in no claim is, below Kafka's first offset, deleted by retention before it was landed (named); below
the group's committed offset, lost (a defect: the writer commits only what is stored); from there on,
pending (not landed yet).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from loglake.ledger import Claim, LostClaim
from loglake.verify.contents import LakeContents


@dataclass
class PartitionReport:
    partition: int
    low: int  # where the check begins: the first claim's start (or Kafka's first offset)
    committed: int  # the group's committed offset (`low` when it has none)
    end: int  # exclusive: the high watermark, or the committed offset with --to-committed
    kafka_low: int = 0  # the first offset Kafka still holds
    in_lake: int = 0
    dead: int = 0
    missing: int = 0  # below the committed offset, stored nowhere: lost
    pending: int = 0  # from the committed offset on, not stored yet
    duplicated: int = 0
    deleted: int = 0  # offsets Kafka deleted (retention) before they were landed: lost, and named
    deleted_ranges: list[str] = field(default_factory=list)
    first_missing: int | None = None
    tail: tuple[int, int] | None = None  # pending offsets after all the lake holds (checked in Kafka)
    problems: list[str] = field(default_factory=list)  # claims and objects that break the design
    notes: list[str] = field(default_factory=list)  # what is pending, and why

    @property
    def expected(self) -> int:
        return max(0, self.end - self.low)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.deleted == 0 and not self.problems

    def lost(self, offset: int, count: int = 1) -> None:
        self.missing += count
        if self.first_missing is None or offset < self.first_missing:
            self.first_missing = offset

    def deleted_before_landed(self, count: int, what: str) -> None:
        if count > 0:
            self.deleted += count
            self.deleted_ranges.append(what)


@dataclass
class VerifyResult:
    topic: str
    group: str
    partitions: list[PartitionReport]
    objects: int = 0
    lines: int = 0
    claims: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)
    deep: bool = True
    problems: list[str] = field(default_factory=list)  # about the topic as a whole

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.partitions) and not self.problems

    @property
    def complete(self) -> bool:
        return self.ok and not any(p.pending for p in self.partitions)

    def totals(self) -> dict[str, int]:
        keys = ("expected", "in_lake", "dead", "missing", "pending", "duplicated", "deleted")
        return {k: sum(getattr(p, k) for p in self.partitions) for k in keys}


class _Dead:
    """The dead letters of one partition, counted by range."""

    def __init__(self, offsets: set[int]) -> None:
        self.offsets = offsets
        self.sorted = sorted(offsets)

    def between(self, start: int, end: int) -> int:
        return bisect_left(self.sorted, end) - bisect_left(self.sorted, start)


def reconcile(
    ranges: dict[int, tuple[int, int, int]],
    lake: LakeContents,
    dead_topic: dict[int, set[int]],
    to_committed: bool = False,
    from_earliest: bool = False,
) -> list[PartitionReport]:
    """The per-partition verdicts. `ranges`: (Kafka's first offset, committed offset or -1, high
    watermark) per partition."""
    reports = []
    for p, (kafka_low, committed, high) in sorted(ranges.items()):
        claims = lake.claims.get(p) or []
        low = kafka_low
        if claims:  # the landing began there (a group may start later: --start-from)
            low = min(kafka_low, claims[0].start) if from_earliest else claims[0].start
        low = min(low, high)
        committed = max(committed, low)
        end = committed if to_committed else high
        report = PartitionReport(p, low, committed, end, kafka_low, problems=list(lake.problems.get(p, [])))
        dead = _Dead({o for o in dead_topic.get(p, set()) | lake.dead.get(p, set()) if low <= o < end})
        for claim, absent in lake.unlanded.get(p, []):
            if claim.start >= end or claim.start in lake.noted_lost.get(p, {}):
                continue
            text = f"claim {claim.start}..{claim.end - 1}: {len(absent)} of its {len(claim.objects)} objects are not in the lake ({absent[0]})"
            (report.problems if claim.end <= committed else report.notes).append(text)
        _Counting(report, lake, dead).run()
        report.dead = len(dead.offsets)
        reports.append(report)
    return reports


class _Counting:
    """One partition's offsets, claim by claim (stored records from the claims' metadata, or, deep,
    from the records read back), and what lies between and after the claims."""

    def __init__(self, report: PartitionReport, lake: LakeContents, dead: _Dead) -> None:
        self.report = report
        self.deep = lake.deep
        self.found = lake.offsets.get(report.partition, Counter())
        self.claims = lake.claims.get(report.partition, [])
        self.landed = {c.start for c in lake.landed.get(report.partition, [])}
        self.notes = lake.noted_lost.get(report.partition, {})
        self.counted_lost = lake.counted_lost.get(report.partition, {})
        self.dead = dead

    def run(self) -> None:
        r = self.report
        position = r.low
        for claim in self.claims:
            if claim.end <= r.low or claim.start >= r.end:
                continue
            if claim.start > position:
                self.not_stored(position, claim.start)
            if claim.start < position:
                r.duplicated += min(claim.end, position) - claim.start  # overlap (a problem already)
            if claim.start in self.landed:
                self.landed_claim(claim)
            elif claim.start in self.notes:
                self.lost_claim(claim, self.notes[claim.start])
                position = max(position, self.notes[claim.start].cut)
                continue
            else:
                self.not_stored(claim.start, claim.end)
            position = max(position, claim.end)
        if position < r.end:
            self.not_stored(position, r.end)

    def stored(self, start: int, end: int) -> tuple[int, int]:
        """(distinct offsets of start..end-1 read back from the lake, records beyond one per offset or
        also in the dead letters): deep only."""
        present = extra = 0
        for offset in range(start, end):
            copies = self.found.get(offset, 0)
            if copies:
                present += 1
                extra += copies - 1 + (offset in self.dead.offsets)
        return present, extra

    def landed_claim(self, claim: Claim) -> None:
        r = self.report
        start, end = max(claim.start, r.low), min(claim.end, r.end)
        letters = self.dead.between(start, end)
        if self.deep:
            present, extra = self.stored(start, end)
            r.in_lake += present + extra
            r.duplicated += extra
            unaccounted = (end - start) - present - letters + extra
        else:
            r.in_lake += claim.records
            unaccounted = (end - start) - claim.records - letters
        for a, b in claim.lost:
            r.deleted_before_landed(
                b - a, f"offsets {a}..{b - 1} (deleted by retention before they were read)"
            )
        short = unaccounted - claim.absent - claim.lost_offsets
        counted, what = self.counted_lost.get(claim.start, (0, ""))
        if counted and short > 0:  # up to that many are lost (a lost claim's dead letters may have arrived)
            r.deleted_before_landed(min(short, counted), what)
            short -= min(short, counted)
        if short < 0:
            r.duplicated -= short
            r.problems.append(
                f"claim {claim.start}..{claim.end - 1}: {-short} more records and dead letters than offsets"
            )
        elif short > 0:
            why = f"claim {claim.start}..{claim.end - 1}: {short} of its {claim.dead_letters} dead letters are in no dead-letter store"
            if claim.end <= r.committed:
                r.lost(claim.start, short)
                r.problems.append(why)
            else:
                r.pending += short
                r.notes.append(why)

    def lost_claim(self, claim: Claim, note: LostClaim) -> None:
        """A claim Kafka deleted records of before it landed. None of its objects stored: what Kafka
        deleted (start..kafka_from-1) is lost to retention, named, and the rest was claimed anew. Some
        stored: their records are in the lake; the rest of its range is lost to retention, named."""
        r = self.report
        end = note.cut
        if self.deep:
            present, extra = self.stored(claim.start, end)
            r.duplicated += extra
        else:
            present = sum(e.records for e in claim.objects if e.key in note.stored)
        r.in_lake += present
        letters = self.dead.between(claim.start, end)
        gaps = claim.absent + claim.lost_offsets if end == claim.end else 0
        r.deleted_before_landed(
            max((end - claim.start) - present - letters - gaps, 0),
            f"claim {claim.start}..{claim.end - 1} (Kafka deleted offsets from {claim.start} up to "
            f"{note.kafka_from - 1} before it was landed; noted by {note.noted_by} at {note.noted_at})",
        )

    def not_stored(self, start: int, end: int) -> None:
        """Offsets start..end-1 are in no landed claim: what was read back or is a dead letter counts;
        of the rest, those Kafka deleted are lost to retention, the others lost below the commit and
        pending from it on."""
        r = self.report
        start, end = max(start, r.low), min(end, r.end)
        if end <= start:
            return
        deleted_below = min(max(r.kafka_low, start), end)
        if not self.deep:
            self.unstored(start, end, deleted_below, letters=True)
            return
        run = -1  # where the current run of offsets stored nowhere began
        for offset in range(start, end):
            copies = self.found.get(offset, 0) + (offset in self.dead.offsets)
            r.in_lake += self.found.get(offset, 0)
            if copies > 1:
                r.duplicated += copies - 1
            if copies == 0 and run < 0:
                run = offset
            elif copies and run >= 0:
                self.unstored(run, offset, deleted_below)
                run = -1
        if run >= 0:
            self.unstored(run, end, deleted_below)

    def unstored(self, start: int, end: int, deleted_below: int, letters: bool = False) -> None:
        """Offsets start..end-1 (none stored; `letters`: some may be dead letters) by where they lie."""
        r = self.report
        gone = max(0, min(end, deleted_below) - start)
        if gone:
            gone -= self.dead.between(start, start + gone) if letters else 0
            r.deleted_before_landed(
                gone, f"offsets {start}..{start + gone - 1} (deleted by retention before they were landed)"
            )
        below = max(0, min(end, r.committed) - max(start, deleted_below))
        if below:
            first = max(start, deleted_below)
            lost = below - (self.dead.between(first, first + below) if letters else 0)
            if lost:
                if letters:
                    first = next(o for o in range(first, first + below) if o not in self.dead.offsets)
                r.lost(first, lost)
        above_from = max(start, deleted_below, r.committed)
        if end > above_from:
            r.pending += (end - above_from) - (self.dead.between(above_from, end) if letters else 0)
            r.tail = (above_from, end) if end == r.end else r.tail
