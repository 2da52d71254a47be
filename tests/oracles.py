"""What the real-stack tests check a lake against: verify (our code, reading the lake and Kafka) and
an independent count that shares nothing with the writer: the event_ids read straight from the topic
with a plain consumer, and the producer's acknowledged ids (`--acked-ids-file`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from loglake.verify import VerifyResult, verify
from tests.conftest import settings_of
from tests.waiting import records_to_end


def topic_event_ids(env: dict[str, str], topic: str) -> Counter[str]:
    """Every event_id read straight from the topic (valid JSON objects only; records keyed `junk-...`
    are garbage sent on purpose, dead letters to be)."""
    ids: Counter[str] = Counter()
    for m in records_to_end(env["KAFKA_BOOTSTRAP_SERVERS"], topic):
        if (m.key() or b"").startswith(b"junk-"):
            continue
        try:
            event = orjson.loads(m.value() or b"")
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            ids[event["event_id"]] += 1
    return ids


def exactly_once(
    env: dict[str, str],
    topic: str,
    prefix: str,
    group: str,
    acked_file: Path | None = None,
    dead: int | None = None,
) -> VerifyResult:
    """verify says every offset to the end of the topic is stored once (none pending), and the
    independent count agrees: the lake holds each event of the topic once and every acknowledged one."""
    kafka, lake = settings_of(env)
    result = verify(kafka, lake, topic, prefix=prefix, group=group, collect_ids=True)
    totals = result.totals()
    assert result.complete, totals
    each_event_once(env, topic, result.event_ids, acked_file)
    if dead is not None:
        assert totals["dead"] == dead, totals
    return result


def each_event_once(
    env: dict[str, str],
    topic: str,
    found: Counter[str],
    acked_file: Path | None = None,
    where: str = "the lake",
) -> None:
    """`found` (event id -> copies, read from `where`) holds each event of the topic once, and every
    event the producer got an acknowledgement for."""
    assert max(found.values(), default=1) == 1, (
        f"{sum(n > 1 for n in found.values())} events are twice in {where}"
    )
    in_topic = topic_event_ids(env, topic)
    assert set(found) == set(in_topic), (
        f"{where} and the topic hold different events: {len(set(in_topic) - set(found))} only in the "
        f"topic, {len(set(found) - set(in_topic))} only in {where}"
    )
    if acked_file is not None:
        acked = set(acked_file.read_text().split())
        assert acked <= set(found), f"{len(acked - set(found))} acknowledged events are not in {where}"
