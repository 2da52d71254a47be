"""Claims: the lake's own record of which offsets each batch holds, and why exactly-once follows.

The problem. A writer lands a batch (offsets s..e-1 of one Kafka partition) as one object per lake
folder, then commits e. A second writer can land the same offsets too: the new owner after a
rebalance, a restart after a crash, or a *zombie* — a writer that lost its partition (a rebalance
during a lake outage, a pause past the session timeout) while its upload was still going. If the
two cut their batches at different offsets (they do: cuts follow the clock and what each poll
returned), the late upload replaces the newer one's object with other records: duplicates or holes.

The rule. Before uploading a batch, the writer *claims* it: it creates
`_loglake/claims/{partition}/{s:020d}.json` with a conditional write (`If-None-Match: *`), holding
the range s..e, the recipe (format, compression, layout, record-size limit) and the objects it will
write. The store lets exactly one create of that key succeed. From then on the range starting at s
is that claim's, whoever made it:

- a writer whose claim was created uploads its objects, acknowledges its dead letters, commits e;
- a writer that finds a claim at s already there (412) lands *that* claim instead of its own: it
  reads s..e-1 again and writes the claim's objects with the claim's recipe, or skips them when they
  are all stored already;
- every writer resumes where the lake's claims say (the end of the partition's last landed claim;
  the group's committed offset only saves reading the chain from the start), and claims only at the
  end of the claim before: the claims of a partition tile its offsets without overlap or gap.

A claim accounts for every offset of its range: a record in one of its objects, a dead letter, an
offset Kafka holds no record for (`absent`: transaction markers, aborted or compacted records), or a
range Kafka deleted before anyone read it (`lost`: retention). A claim is written only for a batch
already encoded, so it always describes objects that can be stored (loglake/partition.py). A claim
whose records Kafka deleted before its objects were all stored is marked lost (`_loglake/lost/`),
with the offsets named, and the partition carries on after it.

So object contents are a function of the claim alone: every upload of a key, early, late, repeated
or by a zombie, writes the same records. A late upload is harmless, a commit (ours or a zombie's
that the group accepted) never points past a claim whose objects are not all stored, and a restart
with other settings lands the claims in flight with their own recipe. What this rests on: the
store performs conditional creates atomically (checked at start), Kafka returns the same records at
the same offsets (the lake records the topic's id: a topic created again under its name is refused,
or landed under a new generation of keys: loglake/layout.py), and no one deletes claims by hand.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import orjson

from loglake import layout
from loglake.batch import Batch
from loglake.body import Body
from loglake.errors import LakeRetriable
from loglake.events import format_event_time
from loglake.formats import Recipe
from loglake.lake import ObjectStore

CLAIM_VERSION = 2  # 2: `absent`, `lost` and each object's `size`; version 1 claims read as before
WRITER_ID = f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Entry:
    """One object of a claim."""

    key: str
    folder: str
    first: int
    last: int
    records: int
    min_ms: int
    max_ms: int
    size: int = field(default=0, compare=False)  # bytes as the claim's maker encoded them (0: unknown)


@dataclass(frozen=True)
class Claim:
    topic: str
    partition: int
    start: int  # where the batch began: the end of the claim before it (or the first record read)
    end: int  # exclusive: the offset committed once the claim is landed
    recipe: Recipe
    objects: tuple[Entry, ...]
    dead_letters: int
    writer: str = ""
    group: str = ""
    absent: int = 0  # offsets of start..end-1 with no record in Kafka (markers, aborted, compacted)
    lost: tuple[tuple[int, int], ...] = ()  # ranges [a, b) Kafka's retention deleted before they were read

    def same_batch(self, other: Claim) -> bool:
        """Whether `other` fixes the same records under the same keys (who made it aside)."""
        return replace(other, writer=self.writer, group=self.group) == self

    @property
    def records(self) -> int:
        return sum(e.records for e in self.objects)

    @property
    def lost_offsets(self) -> int:
        return sum(b - a for a, b in self.lost)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": CLAIM_VERSION,
                "topic": self.topic,
                "partition": self.partition,
                "start": self.start,
                "end": self.end,
                "recipe": self.recipe.to_dict(),
                "objects": [vars(e) for e in self.objects],
                "dead_letters": self.dead_letters,
                "absent": self.absent,
                "lost": [list(r) for r in self.lost],
                "writer": self.writer,
                "group": self.group,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        d = orjson.loads(data)
        return cls(
            topic=d["topic"],
            partition=d["partition"],
            start=d["start"],
            end=d["end"],
            recipe=Recipe.from_dict(d["recipe"]),
            objects=tuple(Entry(**e) for e in d["objects"]),
            dead_letters=d["dead_letters"],
            writer=d.get("writer", ""),
            group=d.get("group", ""),
            absent=d.get("absent", 0),
            lost=tuple((a, b) for a, b in d.get("lost", ())),
        )


def claim_of(
    batch: Batch,
    recipe: Recipe,
    prefix: str,
    group: str,
    sizes: dict[str, int] | None = None,
    generation: int = 1,
) -> Claim:
    """The claim for `batch`: its range, its recipe and the objects it becomes (`sizes`: bytes of each
    folder's encoded object)."""
    ext = recipe.extension
    entries = tuple(
        Entry(
            layout.object_key(prefix, batch.topic, folder, batch.partition, records.first, ext, generation),
            folder,
            records.first,
            records.last,
            len(records),
            records.min_ms,
            records.max_ms,
            (sizes or {}).get(folder, 0),
        )
        for folder, records in sorted(batch.folders.items(), key=lambda item: item[1].first)
    )
    return Claim(
        batch.topic,
        batch.partition,
        batch.start,
        batch.next,
        recipe,
        entries,
        len(batch.rejected),
        WRITER_ID,
        group,
        batch.absent,
        tuple(batch.lost),
    )


def object_metadata(claim: Claim, entry: Entry) -> tuple[tuple[str, str], ...]:
    """S3 metadata of one object: enough to audit the lake from listings and HEAD requests."""
    return (
        ("loglake-topic", claim.topic),
        ("loglake-partition", str(claim.partition)),
        ("loglake-first-offset", str(entry.first)),
        ("loglake-last-offset", str(entry.last)),
        ("loglake-records", str(entry.records)),
        ("loglake-min-event-time", format_event_time(entry.min_ms)),
        ("loglake-max-event-time", format_event_time(entry.max_ms)),
        ("loglake-format", claim.recipe.extension),
        ("loglake-claim", f"{claim.start}-{claim.end}"),
        ("loglake-group", claim.group),
    )


@dataclass(frozen=True)
class LostClaim:
    """A claim whose records Kafka deleted (retention) before its objects were all stored. When none of
    its objects was stored, only what Kafka deleted is lost (`start`..`kafka_from`-1): the partition
    is read again from `kafka_from` and what Kafka still holds of the range is claimed anew from there
    (`cut`). When some were, their records are in the lake, and the rest of the range is lost: another
    claim of the records those objects hold would store them twice."""

    partition: int
    start: int
    end: int
    kafka_from: int  # the first offset Kafka still held when this was found
    stored: tuple[str, ...]  # keys of the claim's objects that were in the lake
    noted_by: str
    noted_at: str

    @property
    def cut(self) -> int:
        """Where the partition goes on after this claim: the end of what the note covers."""
        return self.end if self.stored else min(max(self.kafka_from, self.start), self.end)

    def to_json(self) -> bytes:
        return orjson.dumps(vars(self) | {"stored": list(self.stored)}, option=orjson.OPT_INDENT_2)

    def stored_part(self, claim: Claim) -> Claim:
        """What the lake holds of `claim` (the claim this note is about), up to its `cut`: its stored
        objects and no dead letters; the rest of that range is lost (an Iceberg table counts it so:
        loglake/table/progress.py). With nothing stored, the range ends where Kafka's records began again."""
        kept = tuple(e for e in claim.objects if e.key in self.stored)
        if self.cut < claim.end:
            return replace(claim, end=self.cut, objects=kept, dead_letters=0, absent=0, lost=())
        return replace(claim, objects=kept, dead_letters=0)

    @classmethod
    def from_json(cls, data: bytes) -> LostClaim:
        d = orjson.loads(data)
        return cls(**(d | {"stored": tuple(d["stored"])}))


class Ledger:
    """The claims of one topic (one key generation of it) under one prefix."""

    def __init__(self, store: ObjectStore, prefix: str, topic: str, generation: int = 1) -> None:
        self.store = store
        self.prefix = prefix
        self.topic = topic
        self.generation = generation

    def key(self, partition: int, start: int) -> str:
        return layout.claim_key(self.prefix, self.topic, partition, start, self.generation)

    def create(self, claim: Claim) -> Claim:
        """Create `claim`; returns the claim that holds its start offset: `claim`, or the one that
        was there first. A create that did not happen and found nothing (a conflict with another
        create of the key still under way) is LakeRetriable: the flight asks again."""
        body = Body(claim.to_json(), "application/json")
        key = self.key(claim.partition, claim.start)
        if self.store.put_if_absent(key, body):
            self._point_head(claim)
            return claim
        existing = self.find(claim.partition, claim.start)
        if existing is None:
            raise LakeRetriable(f"claim {key} was refused as existing but cannot be read yet")
        return existing

    def _point_head(self, claim: Claim) -> None:
        """Note where the partition's newest claim is. A hint only: a late, lost or missing note costs
        the next start-up a listing of what came after it (all of the ledger when there is no note),
        never a wrong answer; that start-up writes the note again (`last`)."""
        head = layout.head_key(self.prefix, self.topic, claim.partition, self.generation)
        self.store.put(head, Body(orjson.dumps({"start": claim.start, "end": claim.end}), "application/json"))

    def find(self, partition: int, start: int) -> Claim | None:
        data = self.store.get(self.key(partition, start))
        return Claim.from_json(data) if data is not None else None

    def all(self, partition: int, after: int = -1) -> Iterator[Claim]:
        """Every claim of `partition` starting after offset `after`, in offset order."""
        prefix = layout.claims_prefix(self.prefix, self.topic, partition, self.generation)
        start_after = self.key(partition, after) if after >= 0 else ""
        for key, _size in self.store.list(prefix, start_after):
            data = self.store.get(key)
            if data is not None:
                yield Claim.from_json(data)

    def last(self, partition: int) -> Claim | None:
        """The claim with the highest start: the head note, then the keys listed after it (none when
        the note is current), so its cost does not grow with the lake's age."""
        prefix = layout.claims_prefix(self.prefix, self.topic, partition, self.generation)
        head = self.store.get(layout.head_key(self.prefix, self.topic, partition, self.generation))
        noted = orjson.loads(head)["start"] if head else None
        after = self.key(partition, noted) if noted is not None else ""
        newest = after or None
        for key, _size in self.store.list(prefix, after):
            newest = key
        if newest is None:
            return None
        data = self.store.get(newest)
        if data is None:  # the noted claim is gone (deleted by hand): look at every key once
            keys = [key for key, _size in self.store.list(prefix)]
            data = self.store.get(keys[-1]) if keys else None
        claim = Claim.from_json(data) if data is not None else None
        if claim is not None and claim.start != noted:
            self._point_head(claim)  # missing or behind (a lake from before notes): O(1) from the next start
        return claim

    def landed(self, claim: Claim) -> bool:
        """Whether every object of `claim` is stored (dead letters cannot be checked from here)."""
        return not self.unstored(claim)

    def unstored(self, claim: Claim) -> list[str]:
        """Keys of the claim's objects that are not stored (or not as the claim says)."""
        missing = []
        for entry in claim.objects:
            meta = self.store.head(entry.key)
            if meta is None or meta.get("loglake-records") != str(entry.records):
                missing.append(entry.key)
        return missing

    # -- claims lost to retention ------------------------------------------------------------------
    def note_lost(self, claim: Claim, kafka_from: int) -> LostClaim:
        """Record that Kafka deleted records of `claim` (it holds offsets from `kafka_from` on) before
        its objects were all stored. Idempotent: the first note stays."""
        stored = tuple(e.key for e in claim.objects if e.key not in set(self.unstored(claim)))
        note = LostClaim(
            claim.partition,
            claim.start,
            claim.end,
            kafka_from,
            stored,
            WRITER_ID,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        key = layout.lost_key(self.prefix, self.topic, claim.partition, claim.start, self.generation)
        if not self.store.put_if_absent(key, Body(note.to_json(), "application/json")):
            data = self.store.get(key)
            return LostClaim.from_json(data) if data else note
        return note

    def lost(self, partition: int) -> dict[int, LostClaim]:
        """The claims of `partition` noted lost, by start."""
        prefix = layout.lost_prefix(self.prefix, self.topic, partition, self.generation)
        notes = {}
        for key, _size in self.store.list(prefix):
            data = self.store.get(key)
            if data is not None:
                note = LostClaim.from_json(data)
                notes[note.start] = note
        return notes
