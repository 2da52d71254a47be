"""The floor of the writer's own Kafka client, for the writer benchmark (benchmarks/writer.py).

`python -m benchmarks.floor --topic T --events N`: confluent-kafka reads the topic from its start with
the writer's fetch settings (loglake/kafka/consumer.py `FETCH`) and its batch of 2,000 records per
`consume()`, in a fresh group, touches each value (its length), and exits once it has read N records:
what the writer cannot go below, whatever it does with the records. The benchmark times it from its
start to its exit, as it times the writer, and takes its CPU from wait4. It prints one line:
`floor records=N bytes=B`. The broker is KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loglake.kafka.consumer import FETCH  # noqa: E402

BATCH = 2_000  # records per consume(), as the writer asks (loglake/consume.py POLL_RECORDS; not imported:
# the writer's modules would add their import time to the floor's)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True)
    ns = p.parse_args(argv)
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"floor-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "cooperative-sticky",
            **FETCH,
        }
    )
    consumer.subscribe([ns.topic])
    read = size = 0
    try:
        while read < ns.events:
            for message in consumer.consume(BATCH, 0.2):
                if message.error() is None:
                    size += len(message.value())
                    read += 1
    finally:
        consumer.close()
    sys.stdout.write(f"floor records={read} bytes={size}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
