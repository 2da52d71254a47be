"""Where a batch lives in the lake: object keys, and the line format that traces every record back.

Key (layout `time`, the default, Hive style by event time in UTC):

    {prefix}/{topic}/dt=2026-11-24/hour=21/{topic}+{kafka partition}+{first offset:020d}.jsonl.gz

Key (layout `partition`): `{prefix}/{topic}/partition=2/{topic}+2+{first offset:020d}.jsonl.gz`.

Why these keys give exactly-once. A key is a pure function of the first record the object holds:
its lake partition, topic, Kafka partition and offset. A flush writes one object per lake partition
L from a buffer of consecutive offsets that starts at the committed offset s, then commits. After a
crash the retry starts at the same s, so for every L the first record of L at or after s is the same
record f, and the retry writes key L/+f again, overwriting it with a subset or superset of the same
consecutive records of L, never a second copy. Records of L beyond the retry's batch land in the
next batch's object L/+f', whose first record f' is again the first record of L after that batch
start. So the lake ends up holding each offset once, whatever the batch boundaries were.
This needs (1) Kafka returning the same bytes at the same offsets (it does) and (2) a lake partition
that is a function of the record alone (event time, never the clock): that is why a record without
a readable event time is a dead letter and not a "today" folder.

Line format: each stored line is the event with one field added first,
`{"_kafka":{"topic":"log-data","partition":2,"offset":12345,"timestamp":1732480000123},...event...}`,
so any record in the lake can be traced back to its topic, partition and offset.
"""

from __future__ import annotations

import re

import orjson

LAYOUTS = ["time", "partition"]
FORMATS = ["jsonl", "json"]
COMPRESSIONS = ["gzip", "none"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


def sanitize(segment: str) -> str:
    """A value from data made safe as one key segment: no `/`, no `..`, no control characters.

    Keeps letters, digits and `_ . = -`; anything else becomes `_`; a result that is empty or
    made only of dots becomes `_`, so it can never climb out of its folder.
    """
    cleaned = _UNSAFE.sub("_", segment)[:128]
    if not cleaned.strip("."):
        return "_"
    return cleaned.replace("..", "__")


def extension(fmt: str, compression: str) -> str:
    return fmt + (".gz" if compression == "gzip" else "")


def lake_partition(layout: str, date: str, hour: str, kafka_partition: int) -> str:
    """The folder of a record inside `{prefix}/{topic}/`."""
    if layout == "partition":
        return f"partition={kafka_partition}"
    return f"dt={sanitize(date)}/hour={sanitize(hour)}"


def object_key(
    prefix: str, topic: str, folder: str, kafka_partition: int, first_offset: int, ext: str
) -> str:
    safe_topic = sanitize(topic)
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{safe_topic}/{folder}/{safe_topic}+{kafka_partition}+{first_offset:020d}.{ext}"


def topic_prefix(prefix: str, topic: str) -> str:
    """Every object of `topic` lies under this key prefix."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{sanitize(topic)}/"


def envelope_prefix(topic: str, partition: int) -> bytes:
    """The start of every stored line of one Kafka partition, up to the offset."""
    return b'{"_kafka":{"topic":%b,"partition":%d,"offset":' % (orjson.dumps(topic), partition)


def stored_line(prefix: bytes, offset: int, timestamp_ms: int, value: bytes) -> bytes:
    """The event `value` (a validated JSON object) with the `_kafka` field spliced in first:
    `{"_kafka":{"topic":..,"partition":..,"offset":..,"timestamp":..},<the event's fields>}`.

    Byte splicing keeps the event exactly as produced. In valid JSON a raw line break can only be
    whitespace between tokens (never inside a string), so the line breaks of a pretty-printed value
    become spaces: one line stays one record and the event stays the same.
    """
    if not (value.startswith(b'{"') and b"\n" not in value and b"\r" not in value):
        value = value.replace(b"\n", b" ").replace(b"\r", b" ").strip()
        if value[1:].lstrip().startswith(b"}"):  # an empty object cannot pass validation; never emit `{..,}`
            return prefix + b'%d,"timestamp":%d}}' % (offset, timestamp_ms)
    # compact JSON, as producers write it; concatenation is the fastest way to build the line
    return prefix + b'%d,"timestamp":%d},' % (offset, timestamp_ms) + value[1:]
