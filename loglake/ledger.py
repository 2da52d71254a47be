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
- every writer starts where the group committed, which is always the end of a landed claim (or,
  for a group without commits, the end of the last claim in the lake), and claims only at the end
  of the claim before: the claims of a partition tile its offsets without overlap.

So object contents are a function of the claim alone: every upload of a key, early, late, repeated
or by a zombie, writes the same records. A late upload is harmless, a commit (ours or a zombie's
that the group accepted) never points past a claim whose objects are not all stored, and a restart
with other settings lands the claims in flight with their own recipe. What this rests on: the
store performs conditional creates atomically (checked at start), Kafka returns the same records at
the same offsets, and no one resets the group's offsets into the middle of a claim by hand.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace

import orjson

from loglake import layout
from loglake.batch import Batch
from loglake.body import Body
from loglake.events import format_event_time
from loglake.formats import Recipe
from loglake.lake import ObjectStore

CLAIM_VERSION = 1
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


@dataclass(frozen=True)
class Claim:
    topic: str
    partition: int
    start: int
    end: int  # exclusive: the offset committed once the claim is landed
    recipe: Recipe
    objects: tuple[Entry, ...]
    dead_letters: int
    writer: str = ""
    group: str = ""

    def same_batch(self, other: Claim) -> bool:
        """Whether `other` fixes the same records under the same keys (who made it aside)."""
        return replace(other, writer=self.writer, group=self.group) == self

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
                "writer": self.writer,
                "group": self.group,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        d = orjson.loads(data)
        return cls(
            d["topic"],
            d["partition"],
            d["start"],
            d["end"],
            Recipe.from_dict(d["recipe"]),
            tuple(Entry(**e) for e in d["objects"]),
            d["dead_letters"],
            d.get("writer", ""),
            d.get("group", ""),
        )

    @property
    def records(self) -> int:
        return sum(e.records for e in self.objects)


def claim_of(batch: Batch, recipe: Recipe, prefix: str, group: str) -> Claim:
    """The claim for `batch`: its range, its recipe and the objects it becomes."""
    ext = recipe.extension
    entries = tuple(
        Entry(
            layout.object_key(prefix, batch.topic, folder, batch.partition, records.first, ext),
            folder,
            records.first,
            records.last,
            len(records),
            records.min_ms,
            records.max_ms,
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


class Ledger:
    """The claims of one topic under one prefix."""

    def __init__(self, store: ObjectStore, prefix: str, topic: str) -> None:
        self.store = store
        self.prefix = prefix
        self.topic = topic

    def key(self, partition: int, start: int) -> str:
        return layout.claim_key(self.prefix, self.topic, partition, start)

    def create(self, claim: Claim) -> Claim:
        """Create `claim`; returns the claim that holds its start offset: `claim`, or the one that
        was there first."""
        body = Body(claim.to_json(), "application/json")
        if self.store.put_if_absent(self.key(claim.partition, claim.start), body):
            return claim
        existing = self.find(claim.partition, claim.start)
        if existing is None:  # created and gone again: only a person deleting claims does that
            raise RuntimeError(f"claim {self.key(claim.partition, claim.start)} vanished")
        return existing

    def find(self, partition: int, start: int) -> Claim | None:
        data = self.store.get(self.key(partition, start))
        return Claim.from_json(data) if data is not None else None

    def all(self, partition: int, after: int = -1) -> Iterator[Claim]:
        """Every claim of `partition` starting after offset `after`, in offset order."""
        prefix = layout.claims_prefix(self.prefix, self.topic, partition)
        start_after = self.key(partition, after) if after >= 0 else ""
        for key, _size in self.store.list(prefix, start_after):
            data = self.store.get(key)
            if data is not None:
                yield Claim.from_json(data)

    def last(self, partition: int) -> Claim | None:
        """The claim with the highest start (lists every claim key of the partition, reads one)."""
        prefix = layout.claims_prefix(self.prefix, self.topic, partition)
        keys = [key for key, _size in self.store.list(prefix)]
        if not keys:
            return None
        data = self.store.get(keys[-1])
        return Claim.from_json(data) if data is not None else None

    def landed(self, claim: Claim) -> bool:
        """Whether every object of `claim` is stored (dead letters cannot be checked from here)."""
        for entry in claim.objects:
            meta = self.store.head(entry.key)
            if meta is None or meta.get("loglake-records") != str(entry.records):
                return False
        return True
