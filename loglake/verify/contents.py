"""What the lake holds of a topic: its claims, which of them are landed, the objects, the lake's dead
letters and the claims noted lost; read from metadata (claims and a HEAD per object) or, `deep`,
record by record."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

import orjson

from loglake import formats, layout
from loglake.lake import ObjectStore
from loglake.ledger import Claim, Entry, Ledger, LostClaim, object_metadata


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
    noted_lost: dict[int, dict[int, LostClaim]] = field(default_factory=dict)  # by claim start
    # offsets lost to retention that a claim counts without naming their ranges (an Iceberg table's
    # summary: loglake/verify/table_side.py), by claim start: (how many at most, what they are)
    counted_lost: dict[int, dict[int, tuple[int, str]]] = field(default_factory=dict)
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
    generation: int = 1,
    older: tuple[int, ...] = (),
) -> LakeContents:
    """Every claim, object and lake dead letter of `topic` (key generation `generation`) under `prefix`:
    objects by their metadata, or with `deep` (implied by `collect_ids`) by every record they hold.
    The objects of `older` generations (a topic created again) are named by their own claims and are
    otherwise left out."""
    found = LakeContents(deep=deep or collect_ids)
    ledger = Ledger(store, prefix, topic, generation)
    named: dict[str, tuple[Claim, Entry]] = {}
    for p in partitions:
        claims = found.claims[p] = list(ledger.all(p))
        found.noted_lost[p] = ledger.lost(p)
        ends = {
            c.start: found.noted_lost[p][c.start].cut if c.start in found.noted_lost[p] else c.end
            for c in claims
        }
        for before, after in pairwise(claims):
            if (
                after.start < ends[before.start]
            ):  # a claim noted lost ends where what Kafka kept was claimed anew
                found.problem(
                    p, f"claims {before.start}..{before.end - 1} and {after.start}..{after.end - 1} overlap"
                )
        for claim in claims:
            for entry in claim.objects:
                named[entry.key] = (claim, entry)
    earlier = _named_by(store, prefix, topic, older)
    listed = _list_objects(store, prefix, topic, generation, found)
    for key in listed:
        if key not in named and key not in earlier:
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
            if key not in earlier:
                _read_records(store, key, named.get(key), found, collect_ids)
    return found


def _named_by(store: ObjectStore, prefix: str, topic: str, generations: tuple[int, ...]) -> set[str]:
    """The object keys the claims of older key generations name."""
    keys: set[str] = set()
    for generation in generations:
        root = layout.bookkeeping(prefix, topic, generation) + "claims/"
        for key, _size in store.list(root):
            data = store.get(key)
            if data is not None:
                keys.update(e.key for e in Claim.from_json(data).objects)
    return keys


def _list_objects(
    store: ObjectStore, prefix: str, topic: str, generation: int, found: LakeContents
) -> list[str]:
    """The lake objects of `topic` (this generation's lake dead letters go into `found.dead`;
    bookkeeping is skipped)."""
    bookkeeping = layout.topic_prefix(prefix, topic) + layout.BOOKKEEPING
    dead_prefix = layout.dead_letters_prefix(prefix, topic, generation)
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
