"""Reconcile the lake with the topic: every offset exactly once, in the lake or in the dead letters.

`python -m loglake verify [--topic log-data] [--prefix topics] [--group G] [--to-committed]`

What it proves, per partition, for every offset from where the group's landing began (its first
claim; or, with `--from-earliest`, the first offset Kafka still holds) up to the end of the
partition (or, with `--to-committed`, up to the group's committed offset):
- the offset is stored exactly once: as a line of a lake object (read back, by the `_kafka`
  coordinates on every line), as a dead letter on the dead-letter topic (by its
  `loglake.source.*` headers; that topic is at-least-once, so its copies count once), or as a dead
  letter in the lake (`_loglake/dead-letters/`); never in two of them, never twice in the lake;
- below the committed offset nothing is missing (a hole there is a *lost* event);
- the claims of the partition (loglake/ledger.py) do not overlap, and every object in the lake is
  named by a claim, with the records its claim says.

Offsets from the committed offset to the end of the partition that are not in the lake yet are
*pending*: not an error, but not landed either; the exit status says so.
Exit status: 0 everything up to the end is landed exactly once; 3 nothing is wrong but some offsets
are pending (run the writer, or verify with --to-committed); 1 something is lost, duplicated, or
in the lake without a claim.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

import orjson

from loglake import defaults, formats, layout
from loglake.deadletter import source_of
from loglake.errors import KafkaUnavailable, LoglakeError, run_cli, setup_logging
from loglake.kafka import ClientErrors, confluent_config, list_metadata
from loglake.lake import ObjectStore, S3Store
from loglake.ledger import Claim, Ledger
from loglake.settings import KafkaSettings, LakeSettings, Parser, VerifySettings, parser_for, values_of

log = logging.getLogger(__name__)

EXIT_PENDING = 3


@dataclass
class PartitionReport:
    partition: int
    low: int
    committed: int  # the group's committed offset (low watermark when it has none)
    end: int  # exclusive: the high watermark, or the committed offset with --to-committed
    in_lake: int = 0
    dead: int = 0
    missing: int = 0  # below the committed offset, stored nowhere: lost
    pending: int = 0  # from the committed offset on, not stored yet
    duplicated: int = 0
    first_missing: int | None = None
    problems: list[str] = field(default_factory=list)  # claims and objects that break the design

    @property
    def expected(self) -> int:
        return max(0, self.end - self.low)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and not self.problems


@dataclass
class VerifyResult:
    topic: str
    group: str
    partitions: list[PartitionReport]
    objects: int = 0
    lines: int = 0
    claims: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.partitions)

    @property
    def complete(self) -> bool:
        return self.ok and not any(p.pending for p in self.partitions)

    def totals(self) -> dict[str, int]:
        keys = ("expected", "in_lake", "dead", "missing", "pending", "duplicated")
        return {k: sum(getattr(p, k) for p in self.partitions) for k in keys}


@dataclass
class LakeContents:
    offsets: dict[int, Counter[int]] = field(default_factory=dict)  # partition -> offset -> lines
    dead: dict[int, set[int]] = field(default_factory=dict)  # dead letters stored in the lake
    claims: dict[int, list[Claim]] = field(default_factory=dict)
    problems: dict[int, list[str]] = field(default_factory=dict)
    objects: int = 0
    lines: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)

    def problem(self, partition: int, text: str) -> None:
        self.problems.setdefault(partition, []).append(text)


def read_lake(
    store: ObjectStore, prefix: str, topic: str, partitions: list[int], collect_ids: bool
) -> LakeContents:
    """Every claim, object line and lake dead letter of `topic` under `prefix`."""
    found = LakeContents()
    ledger = Ledger(store, prefix, topic)
    named: dict[str, tuple[Claim, int]] = {}  # object key -> its claim and record count
    for p in partitions:
        claims = found.claims[p] = list(ledger.all(p))
        for before, after in pairwise(claims):
            if after.start < before.end:
                found.problem(
                    p, f"claims {before.start}..{before.end - 1} and {after.start}..{after.end - 1} overlap"
                )
        for claim in claims:
            for entry in claim.objects:
                named[entry.key] = (claim, entry.records)
    bookkeeping = layout.topic_prefix(prefix, topic) + layout.BOOKKEEPING
    dead_prefix = layout.dead_letters_prefix(prefix, topic)
    for key, _size in store.list(layout.topic_prefix(prefix, topic)):
        if key.startswith(dead_prefix):
            document = orjson.loads(store.get(key) or b"{}")
            source = document.get("source", {})
            found.dead.setdefault(source.get("partition", -1), set()).add(source.get("offset", -1))
            continue
        if key.startswith(bookkeeping):
            continue
        codec = formats.format_of_key(key)
        if codec is None:
            continue  # not written by loglake
        found.objects += 1
        lines = 0
        for record in codec.decode(store.get(key) or b""):
            meta = record["_kafka"]
            found.offsets.setdefault(meta["partition"], Counter())[meta["offset"]] += 1
            if collect_ids:
                found.event_ids[record.get("event_id")] += 1
            lines += 1
        found.lines += lines
        owner = named.get(key)
        if owner is None:
            found.problem(layout.partition_of_object(key), f"object {key} is named by no claim")
        elif owner[1] != lines:
            found.problem(
                owner[0].partition, f"object {key} holds {lines} records, its claim says {owner[1]}"
            )
    return found


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


def kafka_ranges(kafka: KafkaSettings, topic: str, group: str) -> dict[int, tuple[int, int, int]]:
    """(low watermark, committed offset or low, high watermark) per partition."""
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
            done = committed.get(tp.partition, -1)
            ranges[tp.partition] = (low, min(high, max(low, done)), high)
        return ranges
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"could not read {topic!r} at {kafka.bootstrap_servers}: {exc.args[0].str()}"
        ) from None
    finally:
        consumer.close()


def lake_owner(store: ObjectStore, prefix: str, topic: str) -> str | None:
    text = store.get(layout.owner_key(prefix, topic))
    return orjson.loads(text).get("group") if text else None


def reconcile(
    ranges: dict[int, tuple[int, int, int]],
    lake: LakeContents,
    dead_topic: dict[int, set[int]],
    to_committed: bool = False,
    from_earliest: bool = False,
) -> list[PartitionReport]:
    """The per-partition verdicts from what Kafka, the lake and the dead letters hold."""
    reports = []
    for p, (low, committed, high) in sorted(ranges.items()):
        claims = lake.claims.get(p)
        if claims and not from_earliest:  # a group that started later (--start-from) began there
            low = min(max(low, claims[0].start), high)
        committed = max(committed, low)
        end = committed if to_committed else high
        report = PartitionReport(p, low, committed, end, problems=list(lake.problems.get(p, [])))
        in_lake = lake.offsets.get(p, Counter())
        dead_here = dead_topic.get(p, set()) | lake.dead.get(p, set())
        for offset in range(low, end):
            count = in_lake.get(offset, 0) + (1 if offset in dead_here else 0)
            if count == 0:
                if offset < committed:
                    report.missing += 1
                    if report.first_missing is None:
                        report.first_missing = offset
                else:
                    report.pending += 1
            elif count > 1:
                report.duplicated += 1
        report.in_lake = sum(n for o, n in in_lake.items() if low <= o < end)
        report.dead = sum(1 for o in dead_here if low <= o < end)
        reports.append(report)
    return reports


def verify(
    kafka: KafkaSettings,
    lake_settings: LakeSettings,
    topic: str = defaults.TOPIC,
    prefix: str = "topics",
    group: str | None = None,
    dlq_topic: str | None = None,
    to_committed: bool = False,
    collect_ids: bool = False,
    from_earliest: bool = False,
) -> VerifyResult:
    store = S3Store(lake_settings)
    try:
        group = group or lake_owner(store, prefix, topic) or defaults.CONSUMER_GROUP
        ranges = kafka_ranges(kafka, topic, group)
        lake = read_lake(store, prefix, topic, sorted(ranges), collect_ids)
    finally:
        store.close()
    dead = read_dead_letters(kafka, dlq_topic or topic + defaults.DEAD_LETTER_SUFFIX, topic)
    reports = reconcile(ranges, lake, dead, to_committed, from_earliest)
    claims = sum(len(c) for c in lake.claims.values())
    return VerifyResult(topic, group, reports, lake.objects, lake.lines, claims, lake.event_ids)


def render(result: VerifyResult) -> str:
    rows = [
        f"{'partition':>9} {'from':>10} {'committed':>10} {'to':>10} {'expected':>9} {'in lake':>9} "
        f"{'dead':>6} {'missing':>8} {'pending':>8} {'dups':>6}  status"
    ]
    for p in result.partitions:
        if not p.ok:
            status = f"FAIL (first missing: {p.first_missing})" if p.missing else "FAIL"
        else:
            status = f"ok, {p.pending} not landed yet" if p.pending else "ok"
        rows.append(
            f"{p.partition:>9} {p.low:>10} {p.committed:>10} {p.end:>10} {p.expected:>9} {p.in_lake:>9} "
            f"{p.dead:>6} {p.missing:>8} {p.pending:>8} {p.duplicated:>6}  {status}"
        )
        rows.extend(f"          partition {p.partition}: {problem}" for problem in p.problems)
    t = result.totals()
    verdict = "OK" if result.complete else "PENDING" if result.ok else "FAILED"
    rows.append(
        f"verify topic={result.topic} group={result.group} objects={result.objects} claims={result.claims} "
        f"expected={t['expected']} in_lake={t['in_lake']} dead_letters={t['dead']} missing={t['missing']} "
        f"pending={t['pending']} duplicated={t['duplicated']} result={verdict}"
    )
    return "\n".join(rows) + "\n"


def build_parser(prog: str = "python -m loglake verify") -> Parser:
    return parser_for(VerifySettings, prog, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: list[str] | None = None) -> int:
    s = values_of(VerifySettings, build_parser().parse_args(argv))
    setup_logging(quiet=True)
    result = verify(
        s.kafka,
        s.lake,
        s.topic,
        s.prefix,
        s.group or None,
        s.dead_letter_topic or None,
        s.to_committed,
        from_earliest=s.from_earliest,
    )
    sys.stdout.write(render(result))
    if not result.ok:
        return 1
    return 0 if result.complete else EXIT_PENDING


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)
