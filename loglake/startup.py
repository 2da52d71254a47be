"""What the lake writer checks and learns before it reads a record: the bucket is there, the store
honours conditional writes (exactly-once rests on them: loglake/ledger.py), the prefix belongs to this
group of this Kafka cluster, which key generation holds the topic Kafka has now (loglake/owner.py),
whether the lake holds any claim of it yet, and, with an Iceberg table, where the table's partitions
end (the table is opened, and created when missing). A lake or catalog slow to come up is waited for; a
wrong endpoint or bad credentials end in one sentence."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from loglake import layout, owner
from loglake.errors import LakeRetriable, LoglakeError
from loglake.lake import ObjectStore, check_conditional_writes
from loglake.settings import WriterSettings
from loglake.source import SourceConsumer

log = logging.getLogger("loglake.consume")

START_PATIENCE = 60.0  # seconds a lake may fail at start-up when --max-retry-time is 0 (forever)


@dataclass(frozen=True)
class Lake:
    """What start-up learnt of the lake."""

    generation: int  # the key generation of the topic Kafka has now
    topic_id: str
    has_claims: bool  # any partition of the topic claimed already (partitions added start earliest)
    table_offsets: dict[int, int] | None = None  # the Iceberg table's, when the writer has one


def open_lake(
    s: WriterSettings,
    consumer: SourceConsumer,
    store: ObjectStore,
    stop: threading.Event,
    clock: Callable[[], float],
    backoff: Callable[[int], float],
    table_offsets: Callable[[str], dict[int, int]] | None = None,
) -> Lake:
    def patiently(step: Callable[[], object]) -> object:
        return _patiently(step, s.max_retry_time or START_PATIENCE, stop, clock, backoff, store.where)

    patiently(lambda: store.ensure_bucket(s.create_bucket))
    patiently(lambda: check_conditional_writes(store, layout.topic_prefix(s.prefix, "")))
    where = f"s3://{s.lake.bucket}/{layout.topic_prefix(s.prefix, s.topic)}"
    cluster = consumer.cluster_id()
    patiently(lambda: owner.take_prefix(store, s.prefix, s.topic, s.group, cluster, where))
    topic_id = consumer.topic_id()
    generation = patiently(
        lambda: owner.generation_for(store, s.prefix, s.topic, topic_id, s.new_generation, where)
    )
    assert isinstance(generation, int)
    claims = layout.bookkeeping(s.prefix, s.topic, generation) + "claims/"
    has_claims = patiently(lambda: next(iter(store.list(claims)), None) is not None)
    offsets = patiently(lambda: table_offsets(topic_id)) if table_offsets is not None else None
    assert offsets is None or isinstance(offsets, dict)
    return Lake(generation, topic_id, bool(has_claims), offsets)


def _patiently(
    step: Callable[[], object],
    limit: float,
    stop: threading.Event,
    clock: Callable[[], float],
    backoff: Callable[[int], float],
    where: str,
) -> object:
    """`step` against the lake, retried on passing failures for `limit` seconds."""
    first = clock()
    attempts = 0
    while True:
        try:
            return step()
        except LakeRetriable as exc:
            waited = clock() - first
            if waited >= limit:
                raise LoglakeError(f"the lake {where} did not answer for {waited:.0f} s: {exc}") from None
            attempts += 1
            delay = min(backoff(attempts), limit - waited)
            log.warning("the lake failed (%s); retrying in %.1f s", exc, delay)
            if stop.wait(delay):
                raise LoglakeError("stopped before the lake answered") from None
