"""Exactly-once commits of landed claims to the Iceberg table, proven by the table itself.

`TableSink(catalog, "NS.TABLE", topic, bucket).commit(claims)` registers the objects of landed claims
(loglake/ledger.py) as data files of the table, in ONE snapshot, and returns the table's offsets
{partition: next offset}, which is what the writer may then commit to Kafka. The rules:

1. The table's offsets are read from its snapshot summaries (loglake/table/progress.py): a claim
   whose `end` is at or below its partition's offset is in the table already and is skipped. A commit
   that would add nothing makes no snapshot. The table read is the one this sink last saw (re-read
   after a lost race, rule 4): a snapshot built on a table that has moved on is refused by rule 3.
2. The claims added start exactly at their partition's offset and follow each other without a gap
   (claims tile a partition: loglake/ledger.py); anything else would leave a hole or a duplicate, and
   is refused (a bug, or claims of another prefix).
3. The snapshot carries the advanced offsets of its topic and every other loglake key of the snapshot
   it builds on; the catalog accepts it only if the branch still points at that snapshot
   (pyiceberg's `AssertRefSnapshotId`, one conditional UPDATE in the SQL catalog).
4. When another commit won (`CommitFailedException`: a second writer, a zombie, `table maintain`),
   nothing of ours is in the table: the table is re-read, the claims are checked again against its
   new offsets (those the other commit added are now skipped), and the rest is committed on top,
   after a backoff, a bounded number of times. pyiceberg's own retry, which would replay the same
   files blind, is off for our tables (loglake/table/schema.py).

So two writers racing with the same claims (the ledger makes their claims identical) add each claim
once: whichever commits second sees the first one's offsets. A crash between landing objects and
committing leaves the table's offsets behind the ledger; the next `commit` of those claims repairs it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from loglake.errors import LoglakeError
from loglake.table import progress as summary_keys
from loglake.table.catalog import CatalogSettings
from loglake.table.datafiles import claim_data_files
from loglake.table.errors import TableRetriable, TableUnavailable, translated
from loglake.table.progress import Progress, carried, committed_topics, progress_of
from loglake.table.schema import open_table
from loglake.table.transaction import CachedTransaction

if TYPE_CHECKING:
    import pyarrow.parquet as pq
    from pyiceberg.table import Table

    from loglake.ledger import Claim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """How often and how long to retry after losing a commit to another one."""

    attempts: int = 8
    first: float = 0.05  # seconds, doubled each time, with jitter
    most: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.most, self.first * 2**attempt)
        return base * (0.5 + random.random())  # jitter: racing writers do not retry in step


RETRY = Backoff()


@dataclass(frozen=True)
class CommitResult:
    """What one `commit` did: the table's offsets afterwards, and what it added (nothing: a no-op)."""

    offsets: dict[int, int]
    claims: int = 0
    files: int = 0
    records: int = 0
    snapshot_id: int | None = None
    attempts: int = 1


class ClaimOrderError(LoglakeError):
    """Claims that do not continue the table's partitions (a hole or an overlap): never committed."""


def claims_to_add(claims: Sequence[Claim], offsets: Mapping[int, int], topic: str, where: str) -> list[Claim]:
    """The claims a table whose partitions end at `offsets` lacks (rule 1), checked to continue each
    partition exactly where it ends (rule 2). The rule of every table sink, the deterministic tests'
    in-memory one included."""
    todo = []
    position = dict(offsets)
    for c in sorted(claims, key=lambda c: (c.partition, c.start)):
        at = position.get(c.partition)
        if at is not None and c.end <= at:
            continue  # in the table already
        if at is not None and c.start != at:
            what = "overlaps" if c.start < at else "leaves a hole after"
            raise ClaimOrderError(
                f"claim {c.partition}:{c.start}..{c.end - 1} {what} the table's offset {at} of partition "
                f"{c.partition} of {topic!r} in {where}; it is not committed"
            )
        todo.append(c)
        position[c.partition] = c.end
    return todo


class TableSink:
    """The Iceberg table of one topic's claims. Not thread-safe: one per writer (or per thread)."""

    def __init__(
        self,
        catalog: CatalogSettings,
        identifier: str,
        topic: str,
        bucket: str,
        backoff: Backoff = RETRY,
        create: bool = True,
    ) -> None:
        self.catalog = catalog
        self.identifier = identifier
        self.topic = topic
        self.topic_id = ""  # Kafka's id of the topic, once the writer said it (offsets_of)
        self.bucket = bucket
        self.backoff = backoff
        self.create = create
        self.where = f"table {identifier} in {catalog.describe()}"
        self._table: Table | None = None

    @property
    def table(self) -> Table:
        """The table, opened (and created when missing) on first use; refreshed by each commit."""
        if self._table is None:
            self._table = open_table(self.catalog, self.identifier, self.create)
        return self._table

    def _refresh(self) -> Table:
        with translated(self.where):
            if self._table is None:
                return self.table
            self._table = self._table.refresh()
            return self._table

    def progress(self) -> Progress:
        """What the table holds of the topic, as of now."""
        table = self._refresh()
        return progress_of(table.metadata, self.topic)

    def offsets(self) -> dict[int, int]:
        """The table's {partition: next offset} of the topic: where the writer resumes."""
        return self.progress().offsets

    def offsets_of(self, topic_id: str) -> dict[int, int]:
        """`offsets`, for the topic with Kafka's id `topic_id` ("" if unknown). A table that holds the
        topic's offsets for another id holds another topic of the same name (deleted and created again,
        its offsets begun anew): refused in one sentence, since its offsets would hide the new records."""
        self.topic_id = topic_id
        table = self._refresh()
        held = table.properties.get(summary_keys.TOPIC_ID + self.topic, "")
        if held and topic_id and held != topic_id:
            raise TableUnavailable(
                f"{self.where} holds topic {self.topic!r} with topic id {held}, and Kafka's {self.topic!r} "
                f"now has topic id {topic_id}: the topic was deleted and created again and its offsets "
                "start over; land it into another --iceberg-table"
            )
        return progress_of(table.metadata, self.topic).offsets

    def commit(
        self,
        claims: Sequence[Claim],
        footers: Mapping[str, tuple[pq.FileMetaData, int]] | None = None,
    ) -> CommitResult:
        """Add the landed `claims` (in offset order per partition, of any partitions of the topic)
        that the table does not hold yet, in one snapshot; returns the table's offsets afterwards.
        `footers` (object key -> (Parquet footer, size)) spares reading footers from the lake."""
        from pyiceberg.exceptions import CommitFailedException

        self._check_claims(claims)
        files: dict[str, object] = {}  # key -> DataFile, kept across attempts: a footer does not change
        for attempt in range(self.backoff.attempts):
            # The table as this sink last saw it: a commit on a stale table cannot land (the catalog
            # checks that the branch still points where it did), so reading the metadata again is
            # needed only after losing a race; it costs a parse of every snapshot's entry.
            maybe_stale = attempt == 0 and self._table is not None
            table = self.table if attempt == 0 else self._refresh()
            with translated(self.where):
                done = progress_of(table.metadata, self.topic)
                try:
                    todo = self._todo(claims, done)
                except ClaimOrderError:
                    if not maybe_stale:
                        raise
                    table = (
                        self._refresh()
                    )  # other writers may have moved the offsets on: judge by the table now
                    done = progress_of(table.metadata, self.topic)
                    todo = self._todo(claims, done)
                if not todo:
                    return CommitResult(dict(done.offsets), attempts=attempt + 1)
                missing = [c for c in todo if any(e.key not in files for e in c.objects)]
                built = claim_data_files(table.metadata, table.io, self.bucket, missing, footers)
                files.update(zip([e.key for c in missing for e in c.objects], built, strict=True))
                after = done.advanced(todo)
                try:
                    snapshot_id = self._append(table, after, [files[e.key] for c in todo for e in c.objects])
                except CommitFailedException as exc:
                    wait = self.backoff.delay(attempt)
                    log.info(
                        "%s: another commit came first (%s); checking the offsets again in %.2f s",
                        self.where,
                        exc,
                        wait,
                    )
                    time.sleep(wait)
                    continue
            added = sum(len(c.objects) for c in todo)
            records = sum(c.records for c in todo)
            log.debug("%s: committed %d claims, %d files, %d records", self.where, len(todo), added, records)
            return CommitResult(dict(after.offsets), len(todo), added, records, snapshot_id, attempt + 1)
        raise TableRetriable(
            f"{self.where}: {self.backoff.attempts} commits in a row lost to other commits; will try again"
        )

    def _check_claims(self, claims: Sequence[Claim]) -> None:
        for c in claims:
            if c.topic != self.topic:
                raise ClaimOrderError(
                    f"a claim of topic {c.topic!r} was handed to the table sink of {self.topic!r}"
                )
            if c.recipe.format != "parquet":
                raise TableUnavailable(
                    f"claim {c.partition}:{c.start}..{c.end - 1} is {c.recipe.format}; only Parquet objects "
                    "can be table data files (--format parquet)"
                )
            if c.recipe.layout != "time":
                raise TableUnavailable(
                    f"claim {c.partition}:{c.start}..{c.end - 1} has layout {c.recipe.layout!r}; the table "
                    "needs objects that each lie in one hour of event time (--layout time)"
                )

    def _todo(self, claims: Sequence[Claim], done: Progress) -> list[Claim]:
        return claims_to_add(claims, done.offsets, self.topic, self.where)

    def _append(self, table: Table, after: Progress, data_files: list[object]) -> int:
        """One fast-append snapshot of `data_files` carrying `after`; the new snapshot's id."""
        summary = carried(table.metadata) | after.summary()
        transaction = CachedTransaction(table)
        topics = committed_topics(table.metadata)
        properties = {}
        if self.topic not in topics:
            properties[summary_keys.TOPICS_PROPERTY] = orjson.dumps(sorted([*topics, self.topic])).decode()
        if self.topic_id and summary_keys.TOPIC_ID + self.topic not in table.properties:
            properties[summary_keys.TOPIC_ID + self.topic] = self.topic_id  # which topic of that name
        if properties:
            transaction.set_properties(properties)
        with transaction.update_snapshot(snapshot_properties=summary).fast_append() as append:
            for data_file in data_files:
                append.append_data_file(data_file)  # type: ignore[arg-type]
            snapshot_id = append.snapshot_id
        self._table = transaction.commit_transaction()
        return snapshot_id
