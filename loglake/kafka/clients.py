"""Which client library a producer runs on: `faking_data.py --kafka-client confluent|kafka-python`.

The names a user may give are declared with the flag (loglake/settings.py, `KAFKA_CLIENTS`); this is
where they meet their implementations, and a name without one is refused in one sentence.
The lake writer has no such choice: it consumes through confluent-kafka (loglake/kafka/consumer.py).
"""

from __future__ import annotations

from loglake.errors import ConfigError
from loglake.kafka.kafka_python_producer import KafkaPythonProducer
from loglake.kafka.producer import ConfluentProducer, LogProducer, ProducerTuning
from loglake.settings import KafkaSettings

PRODUCERS: dict[str, type[ConfluentProducer] | type[KafkaPythonProducer]] = {
    "confluent": ConfluentProducer,
    "kafka-python": KafkaPythonProducer,
}


def open_producer(
    settings: KafkaSettings, topic: str, tuning: ProducerTuning, client: str = "confluent"
) -> LogProducer:
    """A producer for `topic` on the library `client`: acks=all, idempotent, retrying, compressed, batched."""
    producer = PRODUCERS.get(client)
    if producer is None:
        raise ConfigError(f"Kafka client {client!r} is not one of {', '.join(PRODUCERS)}")
    return producer(settings, topic, tuning)
