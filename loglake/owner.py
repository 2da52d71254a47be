"""Whose records a lake prefix holds: one consumer group of one Kafka cluster, and, per key generation,
one Kafka topic by its topic id.

Offsets mean something only for one topic of one cluster. A group that lands a prefix takes it with a
conditional write of `owner.json` (two groups starting together cannot both take it). The topic's id
(Kafka gives every topic one when it is created) is kept per key generation: a topic deleted and
created again under its name gets a new id and starts its offsets at 0 again, and landing it under
the old generation's keys would take its new records for landed ones, or mix them with the old ones.
The writer refuses it in one sentence, unless told (`--new-generation`) to land it under new keys
beside the old ones (loglake/layout.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson

from loglake import layout
from loglake.body import Body
from loglake.errors import LoglakeError
from loglake.lake import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    number: int
    topic_id: str  # "" when unknown (a cluster that does not give ids, or a lake from before ids)


def take_prefix(store: ObjectStore, prefix: str, topic: str, group: str, cluster: str, where: str) -> None:
    """Take the prefix for `group` of Kafka cluster `cluster`, or refuse in one sentence: another
    group's batches, or the same topic name in another cluster (other records at the same offsets),
    would store events twice or take the place of others."""
    key = layout.owner_key(prefix, topic)
    mine = orjson.dumps({"group": group, "topic": topic, "cluster": cluster})
    if store.put_if_absent(key, Body(mine, "application/json")):
        return
    owner = orjson.loads(store.get(key) or b"{}")
    if owner.get("group") != group:
        raise LoglakeError(
            f"{where} is landed by group {owner.get('group')!r}; landing it again as {group!r} would "
            f"store events twice: replay into another --prefix, or run with --group {owner.get('group')}"
        )
    if owner.get("cluster") and cluster and owner["cluster"] != cluster:
        raise LoglakeError(
            f"{where} holds {topic} of Kafka cluster {owner['cluster']}, and this is cluster {cluster}: "
            "the same offsets hold other records there; land this cluster's topic into another --prefix"
        )


def owning_group(store: ObjectStore, prefix: str, topic: str) -> str | None:
    text = store.get(layout.owner_key(prefix, topic))
    return orjson.loads(text).get("group") if text else None


def generations(store: ObjectStore, prefix: str, topic: str) -> list[Generation]:
    """Every key generation of the prefix's topic, oldest first."""
    found = []
    for key, _size in store.list(layout.generations_prefix(prefix, topic)):
        data = store.get(key)
        if data is not None:
            d = orjson.loads(data)
            found.append(Generation(d["generation"], d.get("topic_id", "")))
    return sorted(found, key=lambda g: g.number)


def _create(store: ObjectStore, prefix: str, topic: str, number: int, topic_id: str) -> Generation:
    body = orjson.dumps(
        {
            "generation": number,
            "topic": topic,
            "topic_id": topic_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    key = layout.generation_key(prefix, topic, number)
    if store.put_if_absent(key, Body(body, "application/json")):
        return Generation(number, topic_id)
    data = store.get(key)
    return Generation(number, orjson.loads(data).get("topic_id", "") if data else topic_id)


def generation_for(
    store: ObjectStore, prefix: str, topic: str, topic_id: str, new_generation: bool, where: str
) -> int:
    """The key generation that holds `topic` with id `topic_id`: the newest one when the ids agree (the
    first start records it), a new one when asked, else LoglakeError naming the choices."""
    known = generations(store, prefix, topic)
    newest = known[-1] if known else _create(store, prefix, topic, 1, topic_id)
    if not topic_id or not newest.topic_id or newest.topic_id == topic_id:
        return newest.number
    if not new_generation:
        raise LoglakeError(
            f"{where} holds topic {topic!r} with topic id {newest.topic_id}, and Kafka's {topic!r} now has "
            f"topic id {topic_id}: the topic was deleted and created again, and its offsets start over; "
            f"land it into another --prefix, or run with --new-generation to land it beside the old records "
            f"under new keys (generation {newest.number + 1})"
        )
    made = _create(store, prefix, topic, newest.number + 1, topic_id)
    if made.topic_id != topic_id:
        raise LoglakeError(
            f"{where}: generation {made.number} was just taken for topic id {made.topic_id}; start again"
        )
    log.warning(
        "topic %s has a new topic id (%s, was %s): landing it as key generation %d beside the old records",
        topic,
        topic_id,
        newest.topic_id,
        made.number,
    )
    return made.number


def current_generation(store: ObjectStore, prefix: str, topic: str, topic_id: str) -> Generation | None:
    """The generation holding the topic with id `topic_id` (the newest if ids are unknown), or None
    when the lake holds the topic under another id only (re-created and not landed since)."""
    known = generations(store, prefix, topic)
    if not known:
        return Generation(1, "")
    for g in reversed(known):
        if not topic_id or not g.topic_id or g.topic_id == topic_id:
            return g
    return None


def recreated_while_running(topic: str, was: str, now: str) -> LoglakeError:
    return LoglakeError(
        f"topic {topic!r} was deleted and created again while this writer ran (topic id {was}, now {now}): "
        "its offsets start over; what was landed before is in the lake; start the writer again with "
        "--new-generation to land the new topic beside it under new keys, or into another --prefix"
    )
