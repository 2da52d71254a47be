"""`python -m loglake verify`: reads Kafka and the lake, reconciles them, prints the verdicts."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from loglake import defaults, owner
from loglake.errors import run_cli, setup_logging
from loglake.flags import Parser, parser_for, values_of
from loglake.lake import S3Store
from loglake.ledger import Ledger
from loglake.settings import KafkaSettings, LakeSettings, VerifySettings
from loglake.verify.contents import read_lake
from loglake.verify.kafka_side import kafka_ranges, read_dead_letters, records_in, topic_id
from loglake.verify.verdicts import PartitionReport, VerifyResult, reconcile

if TYPE_CHECKING:
    from loglake.table.catalog import CatalogSettings

log = logging.getLogger(__name__)

EXIT_PENDING = 3


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
    deep: bool = False,
    iceberg_table: str = "",
    catalog: CatalogSettings | None = None,
) -> VerifyResult:
    """Reconcile the lake (or, with `iceberg_table`, that table of `catalog`) with the topic; `deep`
    (implied by `collect_ids`) reads every record."""
    store = S3Store(lake_settings)
    problems = []
    try:
        group = group or owner.owning_group(store, prefix, topic) or defaults.CONSUMER_GROUP
        ranges = kafka_ranges(kafka, topic, group)
        now = topic_id(kafka, topic)
        generation = owner.current_generation(store, prefix, topic, now)
        if generation is None:
            newest = owner.generations(store, prefix, topic)[-1]
            problems.append(
                f"the lake holds topic {topic!r} with topic id {newest.topic_id}, and Kafka's {topic!r} has "
                f"topic id {now}: it was deleted and created again and no writer has landed it since (start "
                "the writer with --new-generation)"
            )
            generation = owner.Generation(newest.number + 1, now)
        older = tuple(range(1, generation.number))
        if iceberg_table:  # the table's side: loglake/verify/table_side.py
            from loglake.table.catalog import catalog_settings
            from loglake.verify.table_side import table_side

            catalog = catalog or catalog_settings(lake_settings, {})
            ledger = Ledger(store, prefix, topic, generation.number)
            lake, ranges = table_side(catalog, iceberg_table, topic, ranges, collect_ids, deep, ledger)
        else:
            lake = read_lake(
                store, prefix, topic, sorted(ranges), collect_ids, deep, generation.number, older
            )
    finally:
        store.close()
    dead = read_dead_letters(kafka, dlq_topic or topic + defaults.DEAD_LETTER_SUFFIX, topic)
    reports = reconcile(ranges, lake, dead, to_committed, from_earliest)
    _without_empty_tails(kafka, topic, reports)
    claims = sum(len(c) for c in lake.claims.values())
    return VerifyResult(
        topic, group, reports, lake.objects, lake.lines, claims, lake.event_ids, lake.deep, problems
    )


def _without_empty_tails(kafka: KafkaSettings, topic: str, reports: list[PartitionReport]) -> None:
    """Pending offsets after all the lake holds that hold no record in Kafka (a transaction's
    marker, aborted records) are not pending: nothing is there to land."""
    tails = {r.partition: r.tail for r in reports if r.tail is not None and r.pending > 0}
    if not tails:
        return
    counts = records_in(kafka, topic, tails)  # type: ignore[arg-type]
    for r in reports:
        if r.partition in counts and r.tail is not None:
            empty = (r.tail[1] - r.tail[0]) - counts[r.partition]
            if empty > 0:
                r.pending -= empty
                r.notes.append(
                    f"{empty} offsets of {r.tail[0]}..{r.tail[1] - 1} hold no record (transaction markers)"
                )


def render(result: VerifyResult) -> str:
    rows = [
        f"{'partition':>9} {'from':>10} {'committed':>10} {'to':>10} {'expected':>9} {'in lake':>9} "
        f"{'dead':>6} {'missing':>8} {'pending':>8} {'dups':>6}  status"
    ]
    for p in result.partitions:
        if p.deleted:
            status = f"LOST: {p.deleted} deleted by retention before they were landed"
        elif not p.ok:
            status = f"FAIL (first missing: {p.first_missing})" if p.missing else "FAIL"
        else:
            status = f"ok, {p.pending} not landed yet" if p.pending else "ok"
        rows.append(
            f"{p.partition:>9} {p.low:>10} {p.committed:>10} {p.end:>10} {p.expected:>9} {p.in_lake:>9} "
            f"{p.dead:>6} {p.missing:>8} {p.pending:>8} {p.duplicated:>6}  {status}"
        )
        rows.extend(
            f"          partition {p.partition}: lost to retention: {what}" for what in p.deleted_ranges
        )
        rows.extend(f"          partition {p.partition}: {problem}" for problem in p.problems)
        rows.extend(f"          partition {p.partition} (pending): {note}" for note in p.notes)
    rows.extend(f"          {problem}" for problem in result.problems)
    t = result.totals()
    verdict = "OK" if result.complete else "PENDING" if result.ok else "FAILED"
    read = f"records={result.lines}" if result.deep else "read=metadata"
    rows.append(
        f"verify topic={result.topic} group={result.group} objects={result.objects} claims={result.claims} "
        f"expected={t['expected']} in_lake={t['in_lake']} dead_letters={t['dead']} missing={t['missing']} "
        f"lost_to_retention={t['deleted']} pending={t['pending']} duplicated={t['duplicated']} {read} "
        f"result={verdict}"
    )
    return "\n".join(rows) + "\n"


def build_parser(prog: str = "python -m loglake verify") -> Parser:
    import loglake.verify

    return parser_for(
        VerifySettings, prog, loglake.verify.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )


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
        deep=s.deep,
        iceberg_table=s.iceberg_table,
        catalog=_catalog(s),
    )
    sys.stdout.write(render(result))
    if not result.ok:
        return 1
    return 0 if result.complete else EXIT_PENDING


def _catalog(s: VerifySettings) -> CatalogSettings | None:
    """pyiceberg's configuration of catalog `loglake` over the lake's settings (--iceberg-table only)."""
    if not s.iceberg_table:
        return None
    from loglake.table.catalog import catalog_settings, configured

    return catalog_settings(s.lake, configured())


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)
