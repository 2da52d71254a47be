"""The cluster and its topics, through confluent-kafka: metadata with a one-sentence reason when the
brokers cannot be reached, a topic's record-size limit, and creating a topic that is missing."""

from __future__ import annotations

import logging
import time
from typing import Any

from loglake.errors import KafkaUnavailable
from loglake.kafka.config import confluent_config
from loglake.kafka.errors import ClientErrors
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)


def list_metadata(
    client: Any, settings: KafkaSettings, errors: ClientErrors, topic: str | None = None
) -> Any:
    """Cluster metadata from a confluent-kafka client built with `error_cb=errors`; KafkaUnavailable
    with the reason when the brokers cannot be reached within the connect timeout."""
    from confluent_kafka import KafkaException

    try:
        return client.list_topics(topic, timeout=settings.connect_timeout)
    except KafkaException as exc:
        # serve the error callback for up to 1 s: a refused login or TLS failure may say why
        for _ in range(5):
            client.poll(0.2)
            if errors.says_why():
                break
        raise errors.explain(settings, exc.args[0].str()) from None


def topic_max_message_bytes(settings: KafkaSettings, topic: str) -> int | None:
    """The topic's effective `max.message.bytes` (its own setting or the broker's default)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(confluent_config(settings))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=settings.connect_timeout)
    except KafkaException as exc:
        log.debug("describe_configs %s: %s", topic, exc)
        return None
    entry = configs.get("max.message.bytes")
    return int(entry.value) if entry is not None and entry.value else None


def ensure_topic(
    settings: KafkaSettings,
    topic: str,
    partitions: int,
    like: str | None = None,
    config: dict[str, str] | None = None,
    visible_within: float = 30.0,
) -> bool:
    """Create `topic` if it is missing, with the replication of `like`, and wait until the cluster
    shows it. A concurrent creator is fine (TOPIC_ALREADY_EXISTS). True if this call created it."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    errors = ClientErrors()
    admin = AdminClient(confluent_config(settings) | {"error_cb": errors})
    metadata = list_metadata(admin, settings, errors)
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return False
    replication = 1
    if like and like in metadata.topics:
        first = next(iter(metadata.topics[like].partitions.values()), None)
        replication = len(first.replicas) if first else 1
    future = admin.create_topics([NewTopic(topic, partitions, replication, config=config or {})])[topic]
    created = True
    try:
        future.result(timeout=settings.connect_timeout)
        log.info("created topic %s (%d partitions, replication %d)", topic, partitions, replication)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise KafkaUnavailable(f"could not create topic {topic!r}: {exc.args[0].str()}") from None
        created = False
    deadline = time.monotonic() + visible_within
    while True:
        found = list_metadata(admin, settings, errors, topic).topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) > 0:
            return created
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"topic {topic!r} was created but the cluster did not show it within {visible_within:g} s"
            )
        time.sleep(0.2)
