"""Where an assigned partition resumes: the lake's claims decide, Kafka's committed offset only saves
reading them.

Claims of a partition tile its offsets, each created only after the one before it landed (or was noted
lost): so only the partition's last claim can be unlanded, and the partition resumes after it (landed)
or at its start (to land it). Finding it costs O(1) requests, whatever the lake's age (Ledger.last).
The group's committed offset is the end of a landed claim when all is well; when it is missing
(offsets expired, `offsets.retention.minutes`) or disagrees (reset by hand), the lake wins and the
log says so. A partition with no claim at all is new to the lake: it starts where `--start-from`
says (None here: `committed`, the default, is the group's committed offset when it has one), or, when
the lake already holds other partitions of the topic (partitions were added), from its first offset,
so that no record of a new partition is skipped.

With an Iceberg table (loglake/tablecommit.py), the table's offset of the partition is handed in too:
the claims landed after it (a crash between landing them and the table commit, or a partition the
table has never seen) come back with the answer, to be committed to the table, since the writer reads
on after the lake's last claim and would never see them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from loglake import layout
from loglake.ledger import Claim, Ledger, LostClaim
from loglake.source import EARLIEST, LATEST, SourceConsumer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    position: int | None  # None: new to the lake (see the module's text)
    follow: Claim | None  # the last claim, to be read again and landed from `position`
    why: str
    landed: tuple[Claim, ...] = ()  # with a table: the done claims it lacks, before `position`


def resume_point(
    ledger: Ledger,
    partition: int,
    committed: int,
    start_from: str | int = "committed",
    table_from: int | None = None,
) -> Resume:
    """Where `partition` resumes (runs on a worker thread: it reads the lake); with `table_from` (the
    table's offset of the partition, 0 when it has none), also the claims the table lacks."""
    where = _resume_point(ledger, partition, committed, start_from)
    if table_from is None or where.position is None:
        return where
    return replace(where, landed=done_between(ledger, partition, table_from, where.position))


def done_between(ledger: Ledger, partition: int, start: int, end: int) -> tuple[Claim, ...]:
    """The claims of `partition` from offset `start` (a claim boundary) up to `end` (where it resumes:
    every claim before is landed or noted lost); a claim noted lost as what the lake holds of it."""
    if end <= start:
        return ()
    claims = []
    for claim in ledger.all(partition, after=start - 1):
        if claim.start >= end:
            break
        claims.append(claim)
    notes = ledger.lost(partition) if claims else {}
    return tuple(notes[c.start].stored_part(c) if c.start in notes else c for c in claims)


def _resume_point(ledger: Ledger, partition: int, committed: int, start_from: str | int) -> Resume:
    last = ledger.last(partition)
    if last is None:
        if start_from == "committed" and committed >= 0:
            # new to this lake, but the group got this far already (into another prefix, or in another
            # region before a failover: MirrorMaker translated its offsets): go on from there
            return Resume(committed, None, "new to the lake: where the group committed")
        return Resume(None, None, "new to the lake")
    if committed == last.end:
        return Resume(last.end, None, "after the last claim, where the group committed")
    if committed > last.end:
        log.warning(
            "partition %d: the group's committed offset %d is past the lake's last claim, which ends at %d: "
            "resuming at %d (the lake's claims decide; offsets %d..%d are landed now)",
            partition,
            committed,
            last.end,
            last.end,
            last.end,
            committed - 1,
        )
    elif committed < 0:
        log.info(
            "partition %d: the group has no committed offset; resuming after the lake's last claim (%d..%d)",
            partition,
            last.start,
            last.end - 1,
        )
    return after(ledger, last)


def after(ledger: Ledger, last: Claim) -> Resume:
    """Resume after `last` if it is done (landed, or noted lost), else at its start to land it."""
    noted = ledger.store.get(
        layout.lost_key(ledger.prefix, ledger.topic, last.partition, last.start, ledger.generation)
    )
    if noted is not None:
        cut = LostClaim.from_json(noted).cut
        return Resume(cut, None, f"after what retention deleted of the last claim ({last.start}..{cut - 1})")
    if not last.dead_letters and ledger.landed(last):
        return Resume(last.end, None, f"after the last claim ({last.start}..{last.end - 1}), landed")
    return Resume(last.start, last, f"at the last claim ({last.start}..{last.end - 1}), to land it")


def seek_to(
    where: Resume,
    consumer: SourceConsumer,
    partition: int,
    start_from: str | int,
    lake_has_claims: bool,
    topic: str,
) -> None:
    """Position the consumer where `where` says (loop thread: the consumer is not thread-safe for this)."""
    if where.position is not None:
        consumer.seek(partition, where.position)
        log.info("partition %d resumes at offset %d: %s", partition, where.position, where.why)
    elif lake_has_claims or start_from in ("committed", "earliest"):
        if start_from not in ("committed", "earliest"):
            log.info(
                "partition %d is new to the lake, which holds others of %s: reading it from its first offset "
                "(--start-from %s applies to a topic the lake has never seen)",
                partition,
                topic,
                start_from,
            )
        consumer.seek(partition, EARLIEST)
    elif start_from == "latest":
        consumer.seek(partition, LATEST)
    else:
        assert isinstance(start_from, int)
        consumer.seek(partition, consumer.offset_for_time(partition, start_from))
