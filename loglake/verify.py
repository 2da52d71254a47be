"""Reconcile the lake with the topic: every offset exactly once, in the lake or in the dead letters.

`python -m loglake verify [--topic log-data] [--prefix topics] [--group G] [--to-committed] [--deep]`

What it proves, per partition, for every offset from where the group's landing began (its first
claim; or, with `--from-earliest`, the first offset Kafka still holds) up to the end of the
partition (or, with `--to-committed`, up to the group's committed offset):
- the offset is stored exactly once: in a lake object, as a dead letter on the dead-letter topic (by
  its `loglake.source.*` headers; that topic is at-least-once, so its copies count once), or as a
  dead letter in the lake (`_loglake/dead-letters/`); never in two of them, never twice in the lake;
- below the committed offset nothing is missing (a hole there is a *lost* event);
- the claims of the partition (loglake/ledger.py) do not overlap, every claim's objects are in the
  lake with the metadata the claim gives them (offset range, record count, claim), and every object
  in the lake is named by a claim.

How it knows what an object holds. By default from metadata: the claims (one small document per
batch: its offset range, its objects with their offsets and record counts, its dead letters) and a
HEAD request per object, so its cost grows with the number of objects, not of events; a claim's
offsets count as stored when all its objects are there and agree with it, and its record and dead
letter counts add up to its range. With `--deep` it reads every record of every object back (by the
`_kafka` coordinates each one carries, in every format) and also reports objects whose content and
metadata disagree (count, first or last offset, partition).

Offsets from the committed offset to the end of the partition that are not in the lake yet are
*pending*: not an error, but not landed either; the exit status says so.
Exit status: 0 everything up to the end is landed exactly once; 3 nothing is wrong but some offsets
are pending (run the writer, or verify with --to-committed); 1 something is lost, duplicated, or
in the lake without a claim, or a claim's objects are missing below the committed offset.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import orjson

from loglake import defaults, formats, layout
from loglake.deadletter import source_of
from loglake.errors import KafkaUnavailable, LoglakeError, run_cli, setup_logging
from loglake.kafka import ClientErrors, confluent_config, list_metadata
from loglake.lake import ObjectStore, S3Store
from loglake.ledger import Claim, Entry, Ledger, object_metadata
from loglake.settings import KafkaSettings, LakeSettings, Parser, VerifySettings, parser_for, values_of

if TYPE_CHECKING:
    from loglake.table.catalog import CatalogSettings

log = logging.getLogger(__name__)

EXIT_PENDING = 3


@dataclass
class PartitionReport:
    partition: int
    low: int
    committed: int  # the group's committed offset (low watermark when it has none)
    end: int  # exclusive: the high watermark, or the committed offset with --to-committed
    in_lake: int = 0
    dead: int = 0
    missing: int = 0  # below the committed offset, stored nowhere: lost
    pending: int = 0  # from the committed offset on, not stored yet
    duplicated: int = 0
    first_missing: int | None = None
    problems: list[str] = field(default_factory=list)  # claims and objects that break the design
    notes: list[str] = field(default_factory=list)  # what is pending, and why

    @property
    def expected(self) -> int:
        return max(0, self.end - self.low)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and not self.problems

    def lost(self, offset: int, count: int = 1) -> None:
        self.missing += count
        if self.first_missing is None or offset < self.first_missing:
            self.first_missing = offset


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

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.partitions)

    @property
    def complete(self) -> bool:
        return self.ok and not any(p.pending for p in self.partitions)

    def totals(self) -> dict[str, int]:
        keys = ("expected", "in_lake", "dead", "missing", "pending", "duplicated")
        return {k: sum(getattr(p, k) for p in self.partitions) for k in keys}


@dataclass
class LakeContents:
    """What the lake holds of a topic. `deep`: `offsets` counts every record read back; otherwise the
    offsets of `landed` claims count as stored (their objects are there and agree with them)."""

    deep: bool = True
    offsets: dict[int, Counter[int]] = field(default_factory=dict)  # partition -> offset -> records
    dead: dict[int, set[int]] = field(default_factory=dict)  # dead letters stored in the lake
    claims: dict[int, list[Claim]] = field(default_factory=dict)
    landed: dict[int, list[Claim]] = field(default_factory=dict)  # every object stored and agreeing
    unlanded: dict[int, list[tuple[Claim, list[str]]]] = field(default_factory=dict)  # with missing keys
    problems: dict[int, list[str]] = field(default_factory=dict)
    objects: int = 0
    lines: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)

    def problem(self, partition: int, text: str) -> None:
        self.problems.setdefault(partition, []).append(text)


def read_lake(
    store: ObjectStore,
    prefix: str,
    topic: str,
    partitions: list[int],
    collect_ids: bool = False,
    deep: bool = False,
) -> LakeContents:
    """Every claim, object and lake dead letter of `topic` under `prefix`: objects by their metadata,
    or with `deep` (implied by `collect_ids`) by every record they hold."""
    found = LakeContents(deep=deep or collect_ids)
    ledger = Ledger(store, prefix, topic)
    named: dict[str, tuple[Claim, Entry]] = {}
    for p in partitions:
        claims = found.claims[p] = list(ledger.all(p))
        for before, after in pairwise(claims):
            if after.start < before.end:
                found.problem(
                    p, f"claims {before.start}..{before.end - 1} and {after.start}..{after.end - 1} overlap"
                )
        for claim in claims:
            for entry in claim.objects:
                named[entry.key] = (claim, entry)
    listed = _list_objects(store, prefix, topic, found)
    for key in listed:
        if key not in named:
            found.problem(layout.partition_of_object(key), f"object {key} is named by no claim")
    heads = _heads(store, [key for key in named if key in listed])
    for p in partitions:
        for claim in found.claims[p]:
            absent = [e.key for e in claim.objects if e.key not in listed]
            if absent:
                found.unlanded.setdefault(p, []).append((claim, absent))
                continue
            disagree = [_metadata_disagrees(claim, e, heads[e.key]) for e in claim.objects]
            for text in filter(None, disagree):
                found.problem(p, text)
            if not any(disagree):
                found.landed.setdefault(p, []).append(claim)
    if found.deep:
        for key in listed:
            _read_records(store, key, named.get(key), found, collect_ids)
    return found


def _list_objects(store: ObjectStore, prefix: str, topic: str, found: LakeContents) -> list[str]:
    """The lake objects of `topic` (lake dead letters go into `found.dead`; bookkeeping is skipped)."""
    bookkeeping = layout.topic_prefix(prefix, topic) + layout.BOOKKEEPING
    dead_prefix = layout.dead_letters_prefix(prefix, topic)
    objects = []
    for key, _size in store.list(layout.topic_prefix(prefix, topic)):
        if key.startswith(dead_prefix):
            source = orjson.loads(store.get(key) or b"{}").get("source", {})
            found.dead.setdefault(source.get("partition", -1), set()).add(source.get("offset", -1))
        elif not key.startswith(bookkeeping) and formats.format_of_key(key) is not None:
            objects.append(key)
    found.objects = len(objects)
    return objects


def _heads(store: ObjectStore, keys: list[str]) -> dict[str, dict[str, str] | None]:
    """The S3 metadata of `keys` (HEAD requests, a few at a time)."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="head") as pool:
        return dict(zip(keys, pool.map(store.head, keys), strict=True))


def _metadata_disagrees(claim: Claim, entry: Entry, meta: dict[str, str] | None) -> str | None:
    """Why an object's S3 metadata does not match its claim, or None."""
    if meta is None:
        return f"object {entry.key} vanished while verify read the lake"
    want = dict(object_metadata(claim, entry))
    keys = (
        "loglake-claim",
        "loglake-records",
        "loglake-first-offset",
        "loglake-last-offset",
        "loglake-format",
    )
    wrong = [k for k in keys if meta.get(k) != want[k]]
    if not wrong:
        return None
    said = ", ".join(f"{k.removeprefix('loglake-')}={meta.get(k)}" for k in wrong)
    told = ", ".join(f"{k.removeprefix('loglake-')}={want[k]}" for k in wrong)
    return f"object {entry.key}: its metadata says {said}, its claim {told}"


def _read_records(
    store: ObjectStore, key: str, owner: tuple[Claim, Entry] | None, found: LakeContents, collect_ids: bool
) -> None:
    """Count every record of object `key`, and say where its content disagrees with its metadata."""
    codec = formats.format_of_key(key)
    assert codec is not None
    offsets: list[int] = []
    partitions: set[int] = set()
    for record in codec.decode(store.get(key) or b""):
        meta = record["_kafka"]
        found.offsets.setdefault(meta["partition"], Counter())[meta["offset"]] += 1
        offsets.append(meta["offset"])
        partitions.add(meta["partition"])
        if collect_ids:
            found.event_ids[record.get("event_id")] += 1
    found.lines += len(offsets)
    if owner is None:
        return
    claim, entry = owner
    held = (len(offsets), min(offsets, default=-1), max(offsets, default=-1), partitions)
    said = (entry.records, entry.first, entry.last, {claim.partition})
    if held != said:
        found.problem(
            claim.partition,
            f"object {key} holds {held[0]} records of offsets {held[1]}..{held[2]} of partitions "
            f"{sorted(held[3])}; its metadata says {said[0]} records of {said[1]}..{said[2]} of partition "
            f"{claim.partition}",
        )


def read_dead_letters(kafka: KafkaSettings, dlq_topic: str, topic: str) -> dict[int, set[int]]:
    """Source offsets per partition of the dead letters of `topic`, read to the end of the DLQ."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = Consumer(
        confluent_config(kafka)
        | {"group.id": "loglake-verify", "enable.auto.commit": False, "error_cb": errors}
    )
    found: dict[int, set[int]] = {}
    try:
        metadata = list_metadata(consumer, kafka, errors, dlq_topic)
        info = metadata.topics.get(dlq_topic)
        if info is None or info.error is not None:
            return found
        remaining = {}
        for p in info.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(dlq_topic, p), timeout=kafka.connect_timeout
            )
            if high > low:
                remaining[p] = high
        consumer.assign([TopicPartition(dlq_topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is not None:
                    continue
                if m.offset() + 1 >= remaining.get(m.partition(), 0):
                    remaining.pop(m.partition(), None)
                source = source_of(m.headers())
                if source and source[0] == topic:
                    found.setdefault(source[1], set()).add(source[2])
        if remaining:
            raise KafkaUnavailable(f"could not read the dead-letter topic {dlq_topic!r} to its end")
    except KafkaException as exc:
        raise KafkaUnavailable(f"could not read {dlq_topic!r}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    return found


def kafka_ranges(kafka: KafkaSettings, topic: str, group: str) -> dict[int, tuple[int, int, int]]:
    """(low watermark, committed offset or low, high watermark) per partition."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = Consumer(
        confluent_config(kafka) | {"group.id": group, "enable.auto.commit": False, "error_cb": errors}
    )
    try:
        info = list_metadata(consumer, kafka, errors, topic).topics.get(topic)
        if info is None or info.error is not None:
            raise LoglakeError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        parts = [TopicPartition(topic, p) for p in sorted(info.partitions)]
        committed = {
            tp.partition: tp.offset for tp in consumer.committed(parts, timeout=kafka.connect_timeout)
        }
        ranges = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=kafka.connect_timeout)
            done = committed.get(tp.partition, -1)
            ranges[tp.partition] = (low, min(high, max(low, done)), high)
        return ranges
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"could not read {topic!r} at {kafka.bootstrap_servers}: {exc.args[0].str()}"
        ) from None
    finally:
        consumer.close()


def lake_owner(store: ObjectStore, prefix: str, topic: str) -> str | None:
    text = store.get(layout.owner_key(prefix, topic))
    return orjson.loads(text).get("group") if text else None


def reconcile(
    ranges: dict[int, tuple[int, int, int]],
    lake: LakeContents,
    dead_topic: dict[int, set[int]],
    to_committed: bool = False,
    from_earliest: bool = False,
) -> list[PartitionReport]:
    """The per-partition verdicts from what Kafka, the lake and the dead letters hold."""
    reports = []
    for p, (low, committed, high) in sorted(ranges.items()):
        claims = lake.claims.get(p)
        if claims and not from_earliest:  # a group that started later (--start-from) began there
            low = min(max(low, claims[0].start), high)
        committed = max(committed, low)
        end = committed if to_committed else high
        report = PartitionReport(p, low, committed, end, problems=list(lake.problems.get(p, [])))
        dead_here = {o for o in dead_topic.get(p, set()) | lake.dead.get(p, set()) if low <= o < end}
        for claim, absent in lake.unlanded.get(p, []):
            if claim.start >= end:
                continue
            text = f"claim {claim.start}..{claim.end - 1}: {len(absent)} of its {len(claim.objects)} objects are not in the lake ({absent[0]})"
            (report.problems if claim.end <= committed else report.notes).append(text)
        if lake.deep:
            _count_records(report, lake.offsets.get(p, Counter()), dead_here)
        else:
            _count_claims(report, lake.landed.get(p, []), dead_here)
        report.dead = len(dead_here)
        reports.append(report)
    return reports


def _count_records(report: PartitionReport, in_lake: Counter[int], dead: set[int]) -> None:
    """Offset by offset, from the records read back."""
    for offset in range(report.low, report.end):
        count = in_lake.get(offset, 0) + (1 if offset in dead else 0)
        if count == 0:
            if offset < report.committed:
                report.lost(offset)
            else:
                report.pending += 1
        elif count > 1:
            report.duplicated += 1
    report.in_lake = sum(n for o, n in in_lake.items() if report.low <= o < report.end)


def _count_claims(report: PartitionReport, landed: list[Claim], dead: set[int]) -> None:
    """Claim by claim: a landed claim's range is stored when its records and dead letters add up to
    it; the offsets between landed claims are lost below the commit, pending from it on."""
    position = report.low
    for claim in landed:
        if claim.end <= report.low or claim.start >= report.end:
            continue
        if claim.start > position:
            _not_stored(report, position, claim.start, dead)
        if claim.start < position:
            report.duplicated += min(claim.end, position) - claim.start  # overlap (a problem already)
        letters = sum(1 for o in dead if claim.start <= o < claim.end)
        short = (claim.end - claim.start) - claim.records - letters
        if short < 0:
            report.duplicated -= short
            report.problems.append(
                f"claim {claim.start}..{claim.end - 1}: {-short} more records and dead letters than offsets"
            )
        elif short > 0:
            why = f"claim {claim.start}..{claim.end - 1}: {short} of its {claim.dead_letters} dead letters are in no dead-letter store"
            if claim.end <= report.committed:
                report.lost(claim.start, short)
                report.problems.append(why)
            else:
                report.pending += short
                report.notes.append(why)
        report.in_lake += claim.records
        position = max(position, claim.end)
    if position < report.end:
        _not_stored(report, position, report.end, dead)


def _not_stored(report: PartitionReport, start: int, end: int, dead: set[int]) -> None:
    """Offsets start..end-1 are in no landed claim: dead letters there count, the rest are lost or pending."""
    letters = sorted(o for o in dead if start <= o < end)
    below = max(0, min(end, report.committed) - start)
    above = (end - start) - below
    lost = below - sum(1 for o in letters if o < report.committed)
    if lost:
        first = next(o for o in range(start, min(end, report.committed)) if o not in dead)
        report.lost(first, lost)
    report.pending += above - sum(1 for o in letters if o >= report.committed)


def verify(
    kafka: KafkaSettings,
    lake_settings: LakeSettings,
    topic: str = defaults.TOPIC,
    prefix: str = "topics",
    group: str | None = None,
    dlq_topic: str | None = None,
    to_committed: bool = False,
    collect_ids: bool = False,
    from_earliest: bool = False,
    deep: bool = False,
    iceberg_table: str = "",
    catalog: CatalogSettings | None = None,
) -> VerifyResult:
    """Reconcile the lake (or, with `iceberg_table`, that table of `catalog`) with the topic; `deep`
    (implied by `collect_ids`) reads every record."""
    store = S3Store(lake_settings)
    try:
        group = group or lake_owner(store, prefix, topic) or defaults.CONSUMER_GROUP
        ranges = kafka_ranges(kafka, topic, group)
        if iceberg_table:  # the table's side: loglake/table/check.py
            from loglake.table.catalog import catalog_settings
            from loglake.table.check import table_side

            catalog = catalog or catalog_settings(lake_settings, {})
            lake, ranges = table_side(catalog, iceberg_table, topic, ranges, collect_ids, deep)
        else:
            lake = read_lake(store, prefix, topic, sorted(ranges), collect_ids, deep)
    finally:
        store.close()
    dead = read_dead_letters(kafka, dlq_topic or topic + defaults.DEAD_LETTER_SUFFIX, topic)
    reports = reconcile(ranges, lake, dead, to_committed, from_earliest)
    claims = sum(len(c) for c in lake.claims.values())
    return VerifyResult(topic, group, reports, lake.objects, lake.lines, claims, lake.event_ids, lake.deep)


def render(result: VerifyResult) -> str:
    rows = [
        f"{'partition':>9} {'from':>10} {'committed':>10} {'to':>10} {'expected':>9} {'in lake':>9} "
        f"{'dead':>6} {'missing':>8} {'pending':>8} {'dups':>6}  status"
    ]
    for p in result.partitions:
        if not p.ok:
            status = f"FAIL (first missing: {p.first_missing})" if p.missing else "FAIL"
        else:
            status = f"ok, {p.pending} not landed yet" if p.pending else "ok"
        rows.append(
            f"{p.partition:>9} {p.low:>10} {p.committed:>10} {p.end:>10} {p.expected:>9} {p.in_lake:>9} "
            f"{p.dead:>6} {p.missing:>8} {p.pending:>8} {p.duplicated:>6}  {status}"
        )
        rows.extend(f"          partition {p.partition}: {problem}" for problem in p.problems)
        rows.extend(f"          partition {p.partition} (pending): {note}" for note in p.notes)
    t = result.totals()
    verdict = "OK" if result.complete else "PENDING" if result.ok else "FAILED"
    read = f"records={result.lines}" if result.deep else "read=metadata"
    rows.append(
        f"verify topic={result.topic} group={result.group} objects={result.objects} claims={result.claims} "
        f"expected={t['expected']} in_lake={t['in_lake']} dead_letters={t['dead']} missing={t['missing']} "
        f"pending={t['pending']} duplicated={t['duplicated']} {read} result={verdict}"
    )
    return "\n".join(rows) + "\n"


def build_parser(prog: str = "python -m loglake verify") -> Parser:
    return parser_for(VerifySettings, prog, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: list[str] | None = None) -> int:
    s = values_of(VerifySettings, build_parser().parse_args(argv))
    setup_logging(quiet=True)
    result = verify(
        s.kafka,
        s.lake,
        s.topic,
        s.prefix,
        s.group or None,
        s.dead_letter_topic or None,
        s.to_committed,
        from_earliest=s.from_earliest,
        deep=s.deep,
        iceberg_table=s.iceberg_table,
        catalog=_catalog(s),
    )
    sys.stdout.write(render(result))
    if not result.ok:
        return 1
    return 0 if result.complete else EXIT_PENDING


def _catalog(s: VerifySettings) -> CatalogSettings | None:
    """pyiceberg's configuration of catalog `loglake` over the lake's settings (--iceberg-table only)."""
    if not s.iceberg_table:
        return None
    from loglake.table.catalog import catalog_settings, configured

    return catalog_settings(s.lake, configured())


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)
