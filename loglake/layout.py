"""Where things live in the lake: object keys, claim keys, and the folders records go to.

Objects (layout `time`, the default, Hive style by event time in UTC):

    {prefix}/{topic}/dt=2026-11-24/hour=21/{topic}+{kafka partition}+{first offset:020d}.jsonl.gz

Layout `partition`: `{prefix}/{topic}/partition=2/{topic}+2+{first offset:020d}.jsonl.gz`.

An object's key is a pure function of its recipe and the first record it holds (folder, topic,
Kafka partition, offset); the folder is a function of the record alone (its event time, never the
clock). Which records an object holds is fixed by its batch's claim (loglake/ledger.py), so a key
always holds the same records, whoever writes it and however often.

Bookkeeping lives beside the data, under `{prefix}/{topic}/_loglake/`:

    _loglake/owner.json                          the consumer group and Kafka cluster that land this prefix
    _loglake/generations/{generation:04d}.json   the Kafka topic (by its topic id) of each key generation
    _loglake/claims/{partition}/{start:020d}.json   one per batch: its offset range, recipe, objects
    _loglake/heads/{partition}.json              where the partition's newest claim is (a hint: start-up
                                                 reads it and lists only what came after it)
    _loglake/lost/{partition}/{start:020d}.json  a claim whose records Kafka deleted before it landed
    _loglake/dead-letters/{partition}/{offset:020d}  a dead letter the dead-letter topic refused

Generations. A topic deleted and created again under its name starts its offsets at 0 again: its
records must not meet the old topic's claims and keys. Generation 1 is the first topic the prefix
held (the keys above); a later generation g keeps its bookkeeping under `_loglake/g{g}/` and names
its objects `{topic}+g{g}+{partition}+{first offset}`, so the two never share a key.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")
BOOKKEEPING = "_loglake/"


def sanitize(segment: str) -> str:
    """A value from data made safe as one key segment: no `/`, no `..`, no control characters.

    Keeps letters, digits and `_ . = -`; anything else becomes `_`; a result that is empty or
    made only of dots becomes `_`, so it can never climb out of its folder.
    """
    cleaned = _UNSAFE.sub("_", segment)[:128]
    if not cleaned.strip("."):
        return "_"
    return cleaned.replace("..", "__")


def lake_partition(layout: str, date: str, hour: str, kafka_partition: int) -> str:
    """The folder of a record inside `{prefix}/{topic}/`."""
    if layout == "partition":
        return f"partition={kafka_partition}"
    return f"dt={sanitize(date)}/hour={sanitize(hour)}"


def topic_prefix(prefix: str, topic: str) -> str:
    """Every object of `topic` lies under this key prefix."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{sanitize(topic)}/"


def object_key(
    prefix: str,
    topic: str,
    folder: str,
    kafka_partition: int,
    first_offset: int,
    ext: str,
    generation: int = 1,
) -> str:
    name = sanitize(topic) if generation == 1 else f"{sanitize(topic)}+g{generation}"
    return f"{topic_prefix(prefix, topic)}{folder}/{name}+{kafka_partition}+{first_offset:020d}.{ext}"


def owner_key(prefix: str, topic: str) -> str:
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}owner.json"


def generations_prefix(prefix: str, topic: str) -> str:
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}generations/"


def generation_key(prefix: str, topic: str, generation: int) -> str:
    return f"{generations_prefix(prefix, topic)}{generation:04d}.json"


def bookkeeping(prefix: str, topic: str, generation: int = 1) -> str:
    """The bookkeeping folder of one key generation of `topic`."""
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}{'' if generation == 1 else f'g{generation}/'}"


def claims_prefix(prefix: str, topic: str, kafka_partition: int, generation: int = 1) -> str:
    return f"{bookkeeping(prefix, topic, generation)}claims/{kafka_partition}/"


def claim_key(prefix: str, topic: str, kafka_partition: int, start: int, generation: int = 1) -> str:
    return f"{claims_prefix(prefix, topic, kafka_partition, generation)}{start:020d}.json"


def head_key(prefix: str, topic: str, kafka_partition: int, generation: int = 1) -> str:
    return f"{bookkeeping(prefix, topic, generation)}heads/{kafka_partition}.json"


def lost_prefix(prefix: str, topic: str, kafka_partition: int, generation: int = 1) -> str:
    return f"{bookkeeping(prefix, topic, generation)}lost/{kafka_partition}/"


def lost_key(prefix: str, topic: str, kafka_partition: int, start: int, generation: int = 1) -> str:
    return f"{lost_prefix(prefix, topic, kafka_partition, generation)}{start:020d}.json"


def dead_letters_prefix(prefix: str, topic: str, generation: int = 1) -> str:
    return f"{bookkeeping(prefix, topic, generation)}dead-letters/"


def dead_letter_key(prefix: str, topic: str, kafka_partition: int, offset: int, generation: int = 1) -> str:
    return f"{dead_letters_prefix(prefix, topic, generation)}{kafka_partition}/{offset:020d}"


def partition_of_object(key: str) -> int:
    """The Kafka partition in an object key (`.../{topic}+{partition}+{first offset}.{ext}`), or -1."""
    try:
        return int(key.rsplit("/", 1)[-1].rsplit("+", 2)[1])
    except (IndexError, ValueError):
        return -1
