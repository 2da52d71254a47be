"""Reconcile the lake with the topic: every offset exactly once, in the lake or in the dead letters.

`python -m loglake verify [--topic log-data] [--bucket datalake] [--prefix topics] [--group G]`

For each partition, every offset from the earliest one Kafka still holds (the low watermark) up to
the group's committed offset (or the end of the partition with `--to-end`) must be stored exactly
once: as a line of a lake object (found by the `_kafka` coordinates on every line) or as a dead
letter (found by its `loglake.source.*` headers). Dead letters are deduplicated by those coordinates
(the dead-letter topic is at-least-once); a duplicate in the lake, or an offset in both, is an error.
Lake lines past the committed offset are reported as "ahead" (written, not yet committed: the next
flush overwrites them) and are not errors.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loglake import consume, defaults, layout, settings
from loglake.deadletter import source_of
from loglake.errors import KafkaUnavailable, LoglakeError, run_cli, setup_logging
from loglake.kafka import ClientErrors, confluent_config, list_metadata
from loglake.lake import Lake
from loglake.settings import KafkaSettings, LakeSettings

log = logging.getLogger(__name__)


@dataclass
class PartitionReport:
    partition: int
    low: int
    end: int  # exclusive: committed offset (or high watermark)
    in_lake: int = 0
    dead: int = 0
    missing: int = 0
    duplicated: int = 0
    ahead: int = 0
    first_missing: int | None = None

    @property
    def expected(self) -> int:
        return max(0, self.end - self.low)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0


@dataclass
class VerifyResult:
    topic: str
    group: str
    partitions: list[PartitionReport]
    objects: int = 0
    lines: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.partitions)

    def totals(self) -> dict[str, int]:
        keys = ("expected", "in_lake", "dead", "missing", "duplicated", "ahead")
        return {k: sum(getattr(p, k) for p in self.partitions) for k in keys}


def read_lake(
    lake: Lake, prefix: str, topic: str, collect_ids: bool
) -> tuple[dict[int, Counter[int]], int, int, Counter[str]]:
    """Offsets per partition found on the lines of every object of `topic` (and event_ids)."""
    s3 = lake.client
    offsets: dict[int, Counter[int]] = {}
    ids: Counter[str] = Counter()
    objects = lines = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=lake.settings.bucket, Prefix=layout.topic_prefix(prefix, topic)):
        for item in page.get("Contents", []):
            key = item["Key"]
            if "/_loglake/" in key:
                continue
            body = s3.get_object(Bucket=lake.settings.bucket, Key=key)["Body"].read()
            if key.endswith(".gz"):
                body = gzip.decompress(body)
            records = orjson.loads(body) if key.endswith((".json", ".json.gz")) else _jsonl(body)
            objects += 1
            for record in records:
                meta = record["_kafka"]
                offsets.setdefault(meta["partition"], Counter())[meta["offset"]] += 1
                if collect_ids:
                    ids[record.get("event_id")] += 1
                lines += 1
    return offsets, objects, lines, ids


def _jsonl(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


def read_dead_letters(kafka: KafkaSettings, dlq_topic: str, topic: str) -> dict[int, set[int]]:
    """Source offsets per partition of the dead letters of `topic`, read to the end of the DLQ."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = Consumer(
        confluent_config(kafka)
        | {"group.id": "loglake-verify", "enable.auto.commit": False, "error_cb": errors}
    )
    found: dict[int, set[int]] = {}
    try:
        metadata = list_metadata(consumer, kafka, errors, dlq_topic)
        info = metadata.topics.get(dlq_topic)
        if info is None or info.error is not None:
            return found
        remaining = {}
        for p in info.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(dlq_topic, p), timeout=kafka.connect_timeout
            )
            if high > low:
                remaining[p] = high
        consumer.assign([TopicPartition(dlq_topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is not None:
                    continue
                if m.offset() + 1 >= remaining.get(m.partition(), 0):
                    remaining.pop(m.partition(), None)
                source = source_of(m.headers())
                if source and source[0] == topic:
                    found.setdefault(source[1], set()).add(source[2])
        if remaining:
            raise KafkaUnavailable(f"could not read the dead-letter topic {dlq_topic!r} to its end")
    except KafkaException as exc:
        raise KafkaUnavailable(f"could not read {dlq_topic!r}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    return found


def kafka_ranges(kafka: KafkaSettings, topic: str, group: str, to_end: bool) -> dict[int, tuple[int, int]]:
    """(low watermark, end) per partition; end = committed offset of `group`, or the high watermark."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    errors = ClientErrors()
    consumer = Consumer(
        confluent_config(kafka) | {"group.id": group, "enable.auto.commit": False, "error_cb": errors}
    )
    try:
        info = list_metadata(consumer, kafka, errors, topic).topics.get(topic)
        if info is None or info.error is not None:
            raise LoglakeError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        parts = [TopicPartition(topic, p) for p in sorted(info.partitions)]
        committed = {
            tp.partition: tp.offset for tp in consumer.committed(parts, timeout=kafka.connect_timeout)
        }
        ranges = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=kafka.connect_timeout)
            end = high if to_end else committed.get(tp.partition, -1)
            ranges[tp.partition] = (low, max(low, end) if end >= 0 else low)
        return ranges
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"could not read {topic!r} at {kafka.bootstrap_servers}: {exc.args[0].str()}"
        ) from None
    finally:
        consumer.close()


def lake_owner(lake: Lake, prefix: str, topic: str) -> str | None:
    text = lake.get_text(layout.topic_prefix(prefix, topic) + consume.OWNER_KEY)
    return orjson.loads(text).get("group") if text else None


def verify(
    kafka: KafkaSettings,
    lake_settings: LakeSettings,
    topic: str = defaults.TOPIC,
    prefix: str = "topics",
    group: str | None = None,
    dlq_topic: str | None = None,
    to_end: bool = False,
    collect_ids: bool = False,
) -> VerifyResult:
    lake = Lake(lake_settings)
    try:
        group = group or lake_owner(lake, prefix, topic) or defaults.CONSUMER_GROUP
        offsets, objects, lines, ids = read_lake(lake, prefix, topic, collect_ids)
    finally:
        lake.close()
    dead = read_dead_letters(kafka, dlq_topic or topic + defaults.DEAD_LETTER_SUFFIX, topic)
    reports = []
    for p, (low, end) in sorted(kafka_ranges(kafka, topic, group, to_end).items()):
        report = PartitionReport(p, low, end)
        in_lake = offsets.get(p, Counter())
        dead_here = dead.get(p, set())
        for offset in range(low, end):
            count = in_lake.get(offset, 0) + (1 if offset in dead_here else 0)
            if count == 0:
                report.missing += 1
                if report.first_missing is None:
                    report.first_missing = offset
            elif count > 1:
                report.duplicated += 1
        report.in_lake = sum(n for o, n in in_lake.items() if low <= o < end)
        report.dead = sum(1 for o in dead_here if low <= o < end)
        report.ahead = sum(1 for o in in_lake if o >= end)
        reports.append(report)
    return VerifyResult(topic, group, reports, objects, lines, ids)


def render(result: VerifyResult) -> str:
    rows = [
        f"{'partition':>9} {'from':>10} {'to':>10} {'expected':>9} {'in lake':>9} {'dead':>6} "
        f"{'missing':>8} {'dups':>6} {'ahead':>6}  status"
    ]
    for p in result.partitions:
        status = "ok" if p.ok else f"FAIL (first missing: {p.first_missing})" if p.missing else "FAIL"
        rows.append(
            f"{p.partition:>9} {p.low:>10} {p.end:>10} {p.expected:>9} {p.in_lake:>9} {p.dead:>6} "
            f"{p.missing:>8} {p.duplicated:>6} {p.ahead:>6}  {status}"
        )
    t = result.totals()
    rows.append(
        f"verify topic={result.topic} group={result.group} objects={result.objects} expected={t['expected']} "
        f"in_lake={t['in_lake']} dead_letters={t['dead']} missing={t['missing']} duplicated={t['duplicated']} "
        f"ahead={t['ahead']} result={'OK' if result.ok else 'FAILED'}"
    )
    return "\n".join(rows) + "\n"


def build_parser(prog: str = "python -m loglake verify") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    settings.add_kafka_args(p)
    settings.add_lake_args(p)
    add = settings.add
    add(p, "--topic", env="LOGLAKE_TOPIC", default=defaults.TOPIC, help="topic to check")
    add(p, "--prefix", env="LOGLAKE_PREFIX", default="topics", help="key prefix the writer used")
    add(
        p,
        "--group",
        env="LOGLAKE_GROUP",
        default="",
        help="writer group (default: the one that owns the prefix)",
    )
    add(p, "--dead-letter-topic", env="LOGLAKE_DEAD_LETTER_TOPIC", default="", help="default: <topic>.dlq")
    p.add_argument(
        "--to-end",
        action="store_true",
        help="check up to the end of each partition, not the committed offset",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    setup_logging(quiet=True)
    result = verify(
        settings.kafka_from_args(ns),
        settings.lake_from_args(ns),
        ns.topic,
        ns.prefix,
        ns.group or None,
        ns.dead_letter_topic or None,
        ns.to_end,
    )
    sys.stdout.write(render(result))
    return 0 if result.ok else 1


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)
