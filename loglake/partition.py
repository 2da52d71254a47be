"""One Kafka partition owned by the lake writer: its batches, its one flight, and how a flight lands.

State of an owned partition (`PartitionState`), changed only on the writer's loop thread:

    position  the next offset this writer expects; records below it are stale and ignored
    batch     records being gathered, from the end of the previous batch on
    follow    a claim found in the lake that the batch starting at its start must reproduce
    sealed    a following batch that reached its claim's end while a flight was still going
    flight    the one batch being landed (at most one: no commit can pass an unresolved upload)

    gather --(policy due / claim end reached)--> launch flight --(Landed)------> commit, next batch
                                                         |---(Reposition)--> seek, drop, follow
                                                         |---(retriable)---> retry after backoff
    revoke: land what can be landed within a grace period, then forget; lost: forget at once.

A flight (`land`, run on a worker thread) claims the batch in the lake (loglake/ledger.py), uploads
the claim's objects, hands the rejected records to the dead letters, and reports what happened.
A flight whose partition left the writer is abandoned: its outcome is ignored, and whatever it still
uploads is what the claim says, so it cannot harm the new owner.
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
from loglake.batch import Batch, Rejected
from loglake.body import Body
from loglake.errors import LoglakeError
from loglake.lake import LakeRetriable, ObjectStore
from loglake.ledger import Claim, Ledger, claim_of, object_metadata

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


@dataclass(frozen=True)
class Reposition:
    """The lake holds other claims from this batch's start on: read again from `offset`, landing
    `follow` (None: nothing to land there, the range before `offset` is landed; commit it)."""

    offset: int
    follow: Claim | None
    why: str


Outcome = Landed | Reposition


@dataclass
class Flight:
    batch: Batch
    claim: Claim  # the claim to create, or (following) the one found in the lake
    following: bool  # the claim is in the lake already
    check_chain: bool  # the group had no commit: find the partition's last claim before claiming
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
    chain_checked: bool  # False for a group without a committed offset (see Flight.check_chain)
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


def land(flight: Flight, with_: Landing) -> Outcome:
    """Land one batch (runs on a worker thread). Raises LakeRetriable / KafkaUnavailable for a retry,
    LoglakeError for what a user must fix."""
    batch, claim = flight.batch, flight.claim
    ledger = with_.ledger
    if flight.check_chain:
        last = ledger.last(batch.partition)
        if last is not None and last.end > batch.start:
            return _reposition_to(last, with_, f"the lake holds claims up to offset {last.end}")
    if not flight.following:
        held = ledger.create(claim)
        if not held.same_batch(claim):
            return _reposition_to(held, with_, f"offsets {held.start}..{held.end - 1} are claimed already")
    elif ledger.landed(claim) and not claim.dead_letters:
        return Landed(claim, 0, 0)  # a predecessor landed it all; nothing to write
    else:
        mine = claim_of(batch, claim.recipe, with_.prefix, with_.group)
        if not mine.same_batch(claim):
            if ledger.landed(claim):
                log.warning(
                    "claim %s: records differ from the lake's, but its objects are stored", claim.start
                )
                return Landed(claim, 0, 0)
            raise LoglakeError(
                f"partition {batch.partition} offsets {claim.start}..{claim.end - 1}: this writer turns them "
                f"into other objects than the claim in the lake says ({ledger.key(batch.partition, claim.start)}); "
                "land them with the loglake version that made the claim"
            )
    stored = _upload(batch, claim, with_.store)
    _dead_letters(batch.rejected, with_)
    return Landed(claim, stored, len(claim.objects))


def _reposition_to(held: Claim, with_: Landing, why: str) -> Reposition:
    if not held.dead_letters and with_.ledger.landed(held):
        return Reposition(held.end, None, why + ", and landed")
    return Reposition(held.start, held, why + ", not all landed")


def _upload(batch: Batch, claim: Claim, store: ObjectStore) -> int:
    codec = claim.recipe.codec
    stored = 0
    for entry in claim.objects:
        body = codec.encode(batch.topic, batch.partition, batch.folders[entry.folder], claim.recipe)
        store.put(entry.key, replace(body, metadata=object_metadata(claim, entry)))
        stored += len(body.data)
    return stored


def _dead_letters(letters: list[Rejected], with_: Landing) -> None:
    """Hand the rejected records to the dead-letter topic; what it refuses for good is stored in the
    lake under `_loglake/dead-letters/` instead, with the reason: never dropped, never stuck."""
    if not letters:
        return
    for letter, why in with_.dead.deliver(letters):
        key = layout.dead_letter_key(with_.prefix, letter.topic, letter.partition, letter.offset)
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
            "error": {"kind": letter.kind, "reason": letter.reason},
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
