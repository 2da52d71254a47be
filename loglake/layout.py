"""Where things live in the lake: object keys, claim keys, and the folders records go to.

Objects (layout `time`, the default, Hive style by event time in UTC):

    {prefix}/{topic}/dt=2026-11-24/hour=21/{topic}+{kafka partition}+{first offset:020d}.jsonl.gz

Layout `partition`: `{prefix}/{topic}/partition=2/{topic}+2+{first offset:020d}.jsonl.gz`.

An object's key is a pure function of its recipe and the first record it holds (folder, topic,
Kafka partition, offset); the folder is a function of the record alone (its event time, never the
clock). Which records an object holds is fixed by its batch's claim (loglake/ledger.py), so a key
always holds the same records, whoever writes it and however often.

Bookkeeping lives beside the data, under `{prefix}/{topic}/_loglake/`:

    _loglake/owner.json                          the consumer group that lands this prefix
    _loglake/claims/{partition}/{start:020d}.json   one per batch: its offset range, recipe, objects
    _loglake/dead-letters/{partition}/{offset:020d}  a dead letter the dead-letter topic refused
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
    prefix: str, topic: str, folder: str, kafka_partition: int, first_offset: int, ext: str
) -> str:
    safe_topic = sanitize(topic)
    return f"{topic_prefix(prefix, topic)}{folder}/{safe_topic}+{kafka_partition}+{first_offset:020d}.{ext}"


def owner_key(prefix: str, topic: str) -> str:
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}owner.json"


def claims_prefix(prefix: str, topic: str, kafka_partition: int) -> str:
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}claims/{kafka_partition}/"


def claim_key(prefix: str, topic: str, kafka_partition: int, start: int) -> str:
    return f"{claims_prefix(prefix, topic, kafka_partition)}{start:020d}.json"


def dead_letters_prefix(prefix: str, topic: str) -> str:
    return f"{topic_prefix(prefix, topic)}{BOOKKEEPING}dead-letters/"


def dead_letter_key(prefix: str, topic: str, kafka_partition: int, offset: int) -> str:
    return f"{dead_letters_prefix(prefix, topic)}{kafka_partition}/{offset:020d}"


def partition_of_object(key: str) -> int:
    """The Kafka partition in an object key (`.../{topic}+{partition}+{first offset}.{ext}`), or -1."""
    try:
        return int(key.rsplit("/", 1)[-1].rsplit("+", 2)[1])
    except (IndexError, ValueError):
        return -1
