"""One Kafka partition owned by the lake writer: its batches, its one flight, and how a flight lands.

State of an owned partition (`PartitionState`), changed only on the writer's loop thread:

    resolved  whether the writer knows where to read: the lake's claims decide, at assignment
    position  the next offset this writer expects; records below it are stale and ignored
    batch     records being gathered, from the end of the previous batch on
    follow    a claim found in the lake that the batch starting at its start must reproduce
    sealed    a following batch that reached its claim's end while a flight was still going
    flight    the one batch being landed (at most one: no commit can pass an unresolved upload)

    assigned --(resolve: the lake's last claim)--> seek, gather
    gather --(policy due / claim end reached)--> launch flight --(Landed)------> commit, next batch
                                                         |---(Reposition)--> seek, drop, follow
                                                         |---(Lost)--------> say so, commit past it
                                                         |---(retriable)---> retry after backoff
    revoke: land what can be landed within a grace period, then forget; lost: forget at once.

A flight (`land`, run on a worker thread) first encodes the batch's objects: a record that cannot be
encoded becomes a dead letter there, so the claim it then writes (loglake/ledger.py) describes only
objects that can be stored. It uploads the claim's objects, hands the rejected records to the dead
letters, and reports what happened. A flight whose partition left the writer is abandoned: its
outcome is ignored, and whatever it still uploads is what the claim says, so it cannot harm the new
owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson

from loglake import layout
from loglake.batch import Batch, FolderRecords, Rejected
from loglake.body import Body
from loglake.errors import LoglakeError
from loglake.formats import Recipe
from loglake.lake import LakeRetriable, ObjectStore
from loglake.ledger import Claim, Ledger, LostClaim, claim_of, object_metadata

log = logging.getLogger(__name__)


class DeadLetterSink(Protocol):
    """Where rejected records go (loglake/deadletter.py; tests use an in-memory one)."""

    def prepare(self, partitions: int) -> None:
        """Make sure the sink exists (e.g. create the dead-letter topic), before the first letter."""
        ...

    def deliver(self, letters: list[Rejected]) -> list[tuple[Rejected, str]]:
        """Send `letters` and wait until each is acknowledged. Returns the ones the sink refused for
        good (too large for it, say) with why; raises DeadLettersPending when it should be retried."""
        ...

    def close(self) -> None: ...


# -- outcomes of a flight --------------------------------------------------------------------------


@dataclass(frozen=True)
class Landed:
    claim: Claim
    stored_bytes: int  # bytes uploaded by this flight (0 when the claim was landed already)
    objects: int
    footers: object = None  # what Landing.footers kept of the bodies this flight uploaded


@dataclass(frozen=True)
class Reposition:
    """The lake holds other claims from this batch's start on: read again from `offset`, landing
    `follow` (None: nothing to land there, the range before `offset` is landed; commit it)."""

    offset: int
    follow: Claim | None
    why: str
    landed: Claim | None = None  # with no claim to follow: the landed claim that ends at `offset`


@dataclass(frozen=True)
class Lost:
    """Kafka deleted records of a claim (retention) before its objects were all stored: the loss is
    noted in the lake (`note`), and the partition goes on after the claim."""

    claim: Claim
    note: LostClaim

    @property
    def offsets(self) -> int:
        """Offsets of the claim that are lost (at most: some of them may have held no record)."""
        if not self.note.stored:
            return self.note.cut - self.claim.start
        gone = [e for e in self.claim.objects if e.key not in self.note.stored]
        return sum(e.records for e in gone) + self.claim.dead_letters

    def sentence(self, ledger: Ledger) -> str:
        claim, note = self.claim, self.note
        key = layout.lost_key(ledger.prefix, ledger.topic, claim.partition, claim.start, ledger.generation)
        deleted = (
            f"Kafka deleted offsets {claim.start}..{note.kafka_from - 1} (retention) before the claim of "
        )
        deleted += f"offsets {claim.start}..{claim.end - 1} was landed"
        if not note.stored:
            rest = (
                f"; offsets {note.cut}..{claim.end - 1} are read again and landed"
                if note.cut < claim.end
                else ""
            )
            return f"{deleted}: none of its objects was stored, offsets {claim.start}..{note.cut - 1} are lost{rest} (noted in {key})"
        return (
            f"{deleted}: {len(note.stored)} of its {len(claim.objects)} objects are in the lake, up to "
            f"{self.offsets} records and dead letters of it are lost (noted in {key})"
        )


Outcome = Landed | Reposition | Lost


@dataclass
class Flight:
    batch: Batch
    follow: Claim | None  # the claim in the lake this batch reads again (None: claim the batch)
    future: Future[Outcome] | None = None
    attempts: int = 0
    failing_since: float = 0.0
    retry_at: float = 0.0
    last_error: str = ""


@dataclass(eq=False)
class PartitionState:
    """One period of ownership of one partition: a new assignment makes a new object, so a flight
    that outlives its partition's revocation refers to a state no one looks at any more."""

    partition: int
    resolved: bool = False  # the lake's claims were read: `position` and `follow` say where to go on
    resolving: Future[tuple[int | None, Claim | None]] | None = None
    resolve_attempts: int = 0
    resolve_at: float = 0.0
    position: int | None = None
    batch: Batch | None = None
    follow: Claim | None = None
    sealed: Batch | None = None
    sealed_claim: Claim | None = None
    flight: Flight | None = None
    paused: bool = False
    committed: int = -1
    landed: int = -1  # the end of the last claim landed: what the next commit says
    commit_again_at: float = 0.0  # a refused commit is asked again from then on
    deleted_below: int = -1  # Kafka said offsets below this were deleted (retention) after `position`
    last_record: float = field(default_factory=time.monotonic)

    @property
    def buffered(self) -> int:
        return sum(b.handled for b in (self.batch, self.sealed) if b is not None)

    @property
    def idle(self) -> bool:
        """Nothing gathered, sealed or in flight, and no claim waiting to be read again."""
        return self.batch is None and self.sealed is None and self.flight is None and self.follow is None


@dataclass
class Landing:
    """What a flight needs besides its batch."""

    ledger: Ledger
    store: ObjectStore
    dead: DeadLetterSink
    prefix: str
    group: str
    recipe: Recipe  # the writer's own: a batch it claims is encoded with it
    # what a landed claim keeps of the bodies it uploaded (the Iceberg table's footers: loglake/tablecommit.py)
    footers: Callable[[Claim, dict[str, Body]], object] | None = None

    def claim_of(self, batch: Batch, recipe: Recipe, sizes: dict[str, int]) -> Claim:
        return claim_of(batch, recipe, self.prefix, self.group, sizes, self.ledger.generation)


def land(flight: Flight, with_: Landing) -> Outcome:
    """Land one batch (runs on a worker thread). Raises LakeRetriable / DeadLettersPending for a retry,
    LoglakeError for what a user must fix."""
    batch, follow = flight.batch, flight.follow
    ledger = with_.ledger
    if follow is None:
        bodies = encode_batch(batch, with_.recipe)  # before the claim: it must describe storable objects
        claim = with_.claim_of(batch, with_.recipe, {f: len(b.data) for f, b in bodies.items()})
        held = ledger.create(claim)
        if not held.same_batch(claim):
            return _reposition_to(held, with_, f"offsets {held.start}..{held.end - 1} are claimed already")
    else:
        claim = follow
        if not claim.dead_letters and ledger.landed(claim):
            return Landed(claim, 0, 0)  # a predecessor landed it all; nothing to write
        bodies = encode_batch(batch, claim.recipe)
        mine = with_.claim_of(batch, claim.recipe, {f: len(b.data) for f, b in bodies.items()})
        if not mine.same_batch(claim):
            if ledger.landed(claim):
                log.warning(
                    "claim %s: records differ from the lake's, but its objects are stored", claim.start
                )
                return Landed(claim, 0, 0)
            if batch.lost:  # Kafka deleted records of the claim before anyone landed them
                return Lost(claim, ledger.note_lost(claim, batch.lost[-1][1]))
            raise LoglakeError(
                f"partition {batch.partition} offsets {claim.start}..{claim.end - 1}: this writer turns them "
                f"into other objects than the claim in the lake says ({ledger.key(batch.partition, claim.start)}); "
                "land them with the loglake version that made the claim"
            )
    stored = _upload(bodies, claim, with_.store)
    _dead_letters(batch.rejected, with_)
    return Landed(claim, stored, len(claim.objects), with_.footers(claim, bodies) if with_.footers else None)


def _reposition_to(held: Claim, with_: Landing, why: str) -> Reposition:
    if not held.dead_letters and with_.ledger.landed(held):
        return Reposition(held.end, None, why + ", and landed", held)
    return Reposition(held.start, held, why + ", not all landed")


def _upload(bodies: dict[str, Body], claim: Claim, store: ObjectStore) -> int:
    stored = 0
    for entry in claim.objects:
        body = bodies[entry.folder]
        store.put(entry.key, replace(body, metadata=object_metadata(claim, entry)))
        stored += len(body.data)
    return stored


# -- encoding: the one boundary past which a record's failure is its own dead letter ---------------


def encode_batch(batch: Batch, recipe: Recipe) -> dict[str, Body]:
    """The body of each folder's object. A record the format cannot encode (validation should have
    caught it: this is the second line) is moved to the batch's rejected records, so the batch that
    is claimed holds only what can be stored. Which records those are depends only on the records and
    the recipe: whoever encodes the batch again drops the same ones."""
    bodies = {}
    for folder, records in sorted(batch.folders.items()):
        try:
            bodies[folder] = recipe.codec.encode(batch.topic, batch.partition, records, recipe)
        except Exception as exc:  # noqa: BLE001 - whatever one record makes an encoder raise
            log.warning(
                "partition %d: an object of folder %s could not be encoded (%s: %s); finding the records",
                batch.partition,
                folder,
                type(exc).__name__,
                _one_line(exc),
            )
            kept = _without_unencodable(batch, folder, records, recipe)
            body = _encode_or_reject(batch, kept, recipe) if kept is not None else None
            if body is None:
                del batch.folders[folder]
            else:
                batch.folders[folder] = kept
                bodies[folder] = body
    batch.rejected.sort(key=lambda r: r.offset)
    return bodies


def _without_unencodable(
    batch: Batch, folder: str, records: FolderRecords, recipe: Recipe
) -> FolderRecords | None:
    """The records of `folder` that encode, each tried alone; the others become dead letters."""
    kept: FolderRecords | None = None
    for i in range(len(records)):
        one = _copy(records, [i])
        if _encode_or_reject(batch, one, recipe) is None:
            continue
        if kept is None:
            kept = FolderRecords(records.offsets[i])
        kept.append(records.offsets[i], records.timestamps[i], records.event_ms[i], records.value(i))
    return kept


def _encode_or_reject(batch: Batch, records: FolderRecords, recipe: Recipe) -> Body | None:
    """The body of `records`, or None when the encoder raises: then each of them is a dead letter
    (tried one record at a time first, so this fails for more than one only if they fail together)."""
    try:
        return recipe.codec.encode(batch.topic, batch.partition, records, recipe)
    except Exception as exc:  # noqa: BLE001 - the records' own failure: their dead letters
        reason = f"the {recipe.format} encoder failed on it: {type(exc).__name__}: {_one_line(exc)}"
        for i in range(len(records)):
            batch.rejected.append(
                Rejected(
                    batch.topic,
                    batch.partition,
                    records.offsets[i],
                    records.timestamps[i],
                    None,
                    records.value(i),
                    None,
                    "unencodable",
                    reason,
                    type(exc).__name__,
                )
            )
        return None


def _copy(records: FolderRecords, rows: list[int]) -> FolderRecords:
    copy = FolderRecords(records.offsets[rows[0]])
    for i in rows:
        copy.append(records.offsets[i], records.timestamps[i], records.event_ms[i], records.value(i))
    return copy


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _dead_letters(letters: list[Rejected], with_: Landing) -> None:
    """Hand the rejected records to the dead-letter topic; what it refuses for good is stored in the
    lake under `_loglake/dead-letters/` instead, with the reason: never dropped, never stuck."""
    if not letters:
        return
    for letter, why in with_.dead.deliver(letters):
        key = layout.dead_letter_key(
            with_.prefix, letter.topic, letter.partition, letter.offset, with_.ledger.generation
        )
        with_.store.put(key, Body(dead_letter_document(letter, why), "application/json"))
        log.warning(
            "dead letter %s/%d/%d refused by the dead-letter topic (%s): stored as %s",
            letter.topic,
            letter.partition,
            letter.offset,
            why,
            key,
        )


def dead_letter_document(letter: Rejected, refused: str) -> bytes:
    """A dead letter as a JSON document: the record's bytes in base64, its coordinates, both errors."""
    import base64

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    return orjson.dumps(
        {
            "source": {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
            "timestamp": letter.timestamp,
            "error": {"kind": letter.kind, "reason": letter.reason, "class": letter.error_class},
            "dead_letter_topic_refused": refused,
            "key": b64(letter.key),
            "value": b64(letter.value),
            "headers": [[k, b64(v)] for k, v in letter.headers or []],
        }
    )


class DeadLettersPending(Exception):
    """Dead letters not acknowledged yet (broker down, timeout): the flight is retried."""


RETRIABLE = (LakeRetriable, DeadLettersPending)


def backoff(attempts: int, jitter: Callable[[], float]) -> float:
    """Seconds before attempt `attempts + 1`: 0.5 s doubling to 15 s, times a jitter in 0.5..1.5."""
    return min(0.5 * 2 ** max(0, attempts - 1), 15.0) * jitter()
