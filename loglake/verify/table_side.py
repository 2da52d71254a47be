"""The table's side of `verify --iceberg-table`: what the table holds of a topic, in the form
loglake/verify/verdicts.py reconciles with Kafka and the dead letters.

By default from the snapshot summaries alone (loglake/table/progress.py), no listing and no scan: per
Kafka partition the table holds offsets `starts[p]` .. `offsets[p] - 1` as `records[p]` rows, `absent[p]`
offsets Kafka holds no record for (transaction markers, aborted or compacted records) and `lost[p]`
offsets lost to retention before they were landed, and the rest of that range must be dead letters on
the dead-letter topic. That range becomes one claim-like span for verify's count (verdicts.py): fewer
rows, absent offsets and dead letters than offsets are lost to retention up to `lost[p]` (named: the
claims the lake noted lost, `_loglake/lost/`, read only then), and missing beyond; more is a duplicate. One check ties the summaries to the data: the table's `total-records` (which
Iceberg counts from the data files each snapshot adds and removes) must equal the rows the summaries
account for, over every topic; a file registered twice, or rows a compaction lost, break it.

With `--deep`, every row's `_kafka` partition and offset (and its event id) are read from a scan of
the table and counted offset by offset, as verify does with the objects' records.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pyarrow.compute as pc

from loglake.formats import Recipe
from loglake.ledger import Claim, Entry, Ledger
from loglake.table.catalog import CatalogSettings
from loglake.table.errors import translated
from loglake.table.progress import RECORDS, Progress, carried_snapshot, progress_of
from loglake.table.schema import open_table
from loglake.verify.contents import LakeContents

if TYPE_CHECKING:
    from pyiceberg.table import Table

SCAN_BATCH_COLUMNS = ("_kafka", "event_id")


def span(topic: str, progress: Progress, partition: int) -> Claim:
    """The offsets the table holds of one partition, as one claim for verify's count."""
    start, end = progress.starts[partition], progress.offsets[partition]
    rows = progress.records.get(partition, 0)
    absent, lost = progress.absent.get(partition, 0), progress.lost.get(partition, 0)
    entry = Entry("(iceberg table)", "", start, end - 1, rows, 0, 0)
    dead = (end - start) - rows - absent - lost
    return Claim(topic, partition, start, end, Recipe(format="parquet"), (entry,), dead, absent=absent)


def lost_named(ledger: Ledger | None, claim: Claim, lost: int) -> str:
    """What the table's `lost` offsets of a partition are: the claims the lake noted lost in its range,
    or (none noted) offsets deleted before they were read."""
    noted = ledger.lost(claim.partition) if ledger is not None else {}
    named = [
        f"claim {n.start}..{n.end - 1} (Kafka deleted offsets from {n.start} up to {n.kafka_from - 1} before it "
        f"was landed; noted by {n.noted_by} at {n.noted_at})"
        for n in sorted(noted.values(), key=lambda n: n.start)
        if claim.start <= n.start < claim.end
    ]
    return f"up to {lost} offsets of {claim.start}..{claim.end - 1} by the table's summary: " + (
        "; ".join(named) if named else "deleted by retention before they were read"
    )


def summary_contents(
    progress: Progress, partitions: list[int], ledger: Ledger | None = None, deep: bool = False
) -> LakeContents:
    """The table's contents as its summaries say (one span per partition), for verify's count."""
    found = LakeContents(deep=deep)
    for p in partitions:
        if p in progress.offsets:
            whole = span(progress.topic, progress, p)
            found.claims[p] = found.landed[p] = [whole]
            if progress.lost.get(p):
                found.counted_lost[p] = {
                    whole.start: (progress.lost[p], lost_named(ledger, whole, progress.lost[p]))
                }
    for p in sorted(set(progress.offsets) - set(partitions)):
        found.problem(p, f"the table holds offsets of partition {p}, which the topic does not have")
    return found


def accounted_rows(table: Table) -> tuple[int | None, int]:
    """(the table's total-records, the rows its loglake summaries account for over every topic)."""
    import orjson

    snapshot = table.current_snapshot()
    total = None
    if snapshot is not None and snapshot.summary is not None:
        text = snapshot.summary.get("total-records")
        total = int(text) if text is not None else None
    carrier = carried_snapshot(table.metadata)
    said = 0
    if carrier is not None and carrier.summary is not None:
        for key, value in carrier.summary.additional_properties.items():
            if key.startswith(RECORDS):
                said += sum(orjson.loads(value).values())
    return total, said


def read_table(
    catalog: CatalogSettings,
    identifier: str,
    topic: str,
    partitions: list[int],
    collect_ids: bool = False,
    deep: bool = False,
    ledger: Ledger | None = None,
) -> tuple[LakeContents, Progress]:
    """What the table holds of `topic`, for loglake.verify.reconcile, and its offsets; `ledger` (the
    lake's claims of the topic) names what the table counts as lost."""
    with translated(f"table {identifier} in {catalog.describe()}"):
        table = open_table(catalog, identifier, create=False)
        progress = progress_of(table.metadata, topic)
        found = summary_contents(progress, partitions, ledger, deep or collect_ids)
        total, said = accounted_rows(table)
        if total is not None and total != said:
            first = partitions[0] if partitions else 0
            found.problem(
                first,
                f"the table holds {total} rows but its snapshot summaries account for {said}: "
                f"{'rows registered twice' if total > said else 'rows lost'} (check with --deep)",
            )
        snapshot = table.current_snapshot()
        found.objects = (
            int(snapshot.summary.get("total-data-files") or 0) if snapshot and snapshot.summary else 0
        )
        if found.deep:
            _count_rows(table, topic, found, collect_ids)
        else:
            found.lines = sum(progress.records.values())
    return found, progress


def _count_rows(table: Table, topic: str, found: LakeContents, collect_ids: bool) -> None:
    """Every row's Kafka coordinates (and event id), counted offset by offset."""
    reader = table.scan(selected_fields=SCAN_BATCH_COLUMNS).to_arrow_batch_reader()
    for batch in reader:
        kafka = batch.column("_kafka")
        mine = pc.equal(kafka.field("topic").cast("string"), topic)
        partitions = pc.filter(kafka.field("partition"), mine).to_pylist()
        offsets = pc.filter(kafka.field("offset"), mine).to_pylist()
        for p, o in zip(partitions, offsets, strict=True):
            found.offsets.setdefault(p, Counter())[o] += 1
        found.lines += len(offsets)
        if collect_ids:
            found.event_ids.update(pc.filter(batch.column("event_id"), mine).to_pylist())


def table_side(
    catalog: CatalogSettings,
    identifier: str,
    topic: str,
    ranges: dict[int, tuple[int, int, int]],
    collect_ids: bool = False,
    deep: bool = False,
    ledger: Ledger | None = None,
) -> tuple[LakeContents, dict[int, tuple[int, int, int]]]:
    """verify's hook: the table's contents, and Kafka's ranges with the table's offsets as the
    committed ones (the table, not the group, is the truth of what is landed: Kafka's offsets are
    committed after the table's)."""
    found, progress = read_table(catalog, identifier, topic, sorted(ranges), collect_ids, deep, ledger)
    table_ranges = {
        p: (low, min(high, max(low, progress.offsets.get(p, low))), high)
        for p, (low, _c, high) in ranges.items()
    }
    return found, table_ranges
