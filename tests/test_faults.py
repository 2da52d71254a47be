"""The whole pipeline under faults: every acknowledged event in the lake exactly once.

Each scenario is bounded in time, loopback only, and ends with `verify` plus an independent count:
the event_ids read straight from the topic against the event_ids found in the lake.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from loglake.verify import verify
from tests.conftest import PYTHON, REPO, clean_env, create_topic, extra_stack, stack
from tests.test_writer import committed, settings_of

pytestmark = pytest.mark.faults


def start_producer(
    env: dict[str, str], topic: str, count: int, rate: int, ids: Path
) -> subprocess.Popen[str]:
    args = [
        PYTHON,
        "faking_data.py",
        "--topic",
        topic,
        "--count",
        str(count),
        "--rate",
        str(rate),
        "--quiet",
        "--acked-ids-file",
        str(ids),
        "--delivery-timeout",
        "90",
    ]
    return subprocess.Popen(
        args, cwd=REPO, env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_writer(env: dict[str, str], topic: str, *extra: str) -> subprocess.Popen[str]:
    args = [
        PYTHON,
        "receive_faking_data.py",
        "--topic",
        topic,
        "--group",
        f"g-{topic}",
        "--prefix",
        f"faults-{topic}",
        "--quiet",
        "--batch-records",
        "3000",
        "--batch-age",
        "3",
        *extra,
    ]
    return subprocess.Popen(
        args, cwd=REPO, env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def end_offsets(env: dict[str, str], topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "faults-probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


def wait_caught_up(env: dict[str, str], topic: str, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if sum(max(0, o) for o in committed(env, topic, f"g-{topic}").values()) >= end_offsets(env, topic):
            return
        time.sleep(1)
    raise AssertionError("the writers did not catch up in time")


def topic_event_ids(env: dict[str, str], topic: str) -> Counter[str]:
    """The independent count: every event_id read straight from the topic (valid JSON objects only)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": "faults-count",
            "enable.auto.commit": False,
        }
    )
    ids: Counter[str] = Counter()
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        remaining = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
        }
        remaining = {p: high for p, high in remaining.items() if high > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is None:
                    if m.offset() + 1 >= remaining.get(m.partition(), 0):
                        remaining.pop(m.partition(), None)
                    if (m.key() or b"").startswith(b"junk-"):
                        continue  # the garbage of the bad-input scenario: it belongs in the dead letters
                    try:
                        event = orjson.loads(m.value() or b"")
                        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
                            ids[event["event_id"]] += 1
                    except orjson.JSONDecodeError:
                        pass
    finally:
        consumer.close()
    return ids


def check(
    env: dict[str, str], topic: str, acked_file: Path | None = None, dead: int | None = None
) -> dict[str, int]:
    kafka, lake = settings_of(env)
    result = verify(kafka, lake, topic, prefix=f"faults-{topic}", group=f"g-{topic}", collect_ids=True)
    totals = result.totals()
    assert result.ok, totals
    lake_ids = result.event_ids
    assert max(lake_ids.values(), default=1) == 1, "an event is twice in the lake"
    in_topic = topic_event_ids(env, topic)
    assert set(lake_ids) == set(in_topic), "the lake and the topic hold different events"
    if acked_file is not None:
        acked = acked_file.read_text().split()
        assert set(acked) <= set(lake_ids), (
            f"{len(set(acked) - set(lake_ids))} acknowledged events are not in the lake"
        )
    if dead is not None:
        assert totals["dead"] == dead
    acked_count = len(acked_file.read_text().split()) if acked_file is not None else "-"
    print(
        f"faults-result topic={topic} acked={acked_count} {' '.join(f'{k}={v}' for k, v in totals.items())}"
    )
    return totals


def test_broker_killed_in_a_three_broker_cluster(tmp_path):
    with extra_stack("faults", "--brokers", "3") as env:
        topic = create_topic(
            env["KAFKA_BOOTSTRAP_SERVERS"], 3, replication=3, extra={"min.insync.replicas": "2"}
        )
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, replication=3, name=topic + ".dlq")
        ids = tmp_path / "acked.txt"
        producer = start_producer(env, topic, 60_000, 5_000, ids)
        writer = start_writer(env, topic)
        time.sleep(4)
        stack("kill", "kafka-2", name="faults")  # SIGKILL, mid-run
        time.sleep(6)
        stack("start", "kafka-2", name="faults", timeout=180)
        _out, err = producer.communicate(timeout=240)
        assert producer.returncode == 0, err  # every event acknowledged despite the lost broker
        wait_caught_up(env, topic)
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
        totals = check(env, topic, ids)
        assert totals["in_lake"] == 60_000 == len(ids.read_text().split())


def test_rebalance_storm_three_writers_started_and_stopped_at_random(stack_env, new_topic, tmp_path):
    topic = new_topic(3)
    rng = random.Random(42)
    ids = tmp_path / "acked.txt"
    producer = start_producer(stack_env, topic, 40_000, 2_000, ids)
    writers = [start_writer(stack_env, topic) for _ in range(3)]
    deadline = time.monotonic() + 20
    stops = Counter()
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.5, 3.5))
        i = rng.randrange(3)
        how = rng.choice([signal.SIGTERM, signal.SIGKILL])
        writers[i].send_signal(how)
        writers[i].wait(timeout=120)
        stops[how.name] += 1
        writers[i] = start_writer(stack_env, topic)
    _out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err
    wait_caught_up(stack_env, topic)
    for w in writers:
        w.send_signal(signal.SIGTERM)
    for w in writers:
        assert w.wait(timeout=120) == 0, w.stderr.read()
    assert stops["SIGKILL"] and stops["SIGTERM"], stops
    totals = check(stack_env, topic, ids)
    assert totals["in_lake"] == 40_000


GARBAGE = [
    b'{"event_id": "broken',  # malformed JSON
    b"\xc3\x28\xa0\xa1",  # invalid UTF-8
    b"[1,2,3]",
    b'"just a string"',
    b'{"event_type":"click","event_time":"2026-11-24T21:00:00Z"}',  # missing event_id
    b'{"event_id":7,"event_time":"2026-11-24T21:00:00Z","event_type":"click"}',  # wrong type
    b'{"event_id":"x","event_time":"not a time","event_type":"click"}',
    b"",
    None,
    b'{"event_id":"big","event_time":"2026-11-24T21:00:00Z","event_type":"x","pad":"' + b"p" * 4000 + b'"}',
]


def test_garbage_at_volume_goes_to_dead_letters_and_good_events_land_once(stack_env, new_topic, tmp_path):
    from confluent_kafka import Producer

    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    writer = start_writer(stack_env, topic, "--max-record-bytes", "2048")
    producer = start_producer(stack_env, topic, 30_000, 2_000, ids)
    sent = 0
    rng = random.Random(7)
    junk = Producer({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"], "acks": "all"})
    stop_at = time.monotonic() + 12
    while time.monotonic() < stop_at:  # about 300 records/s of garbage beside the real events
        for _ in range(30):
            kind = rng.randrange(len(GARBAGE) + 1)
            value = GARBAGE[kind] if kind < len(GARBAGE) else rng.randbytes(rng.randrange(1, 300))
            junk.produce(topic, value, key=b"junk-%d" % sent)
            sent += 1
        junk.poll(0)
        time.sleep(0.1)
    assert junk.flush(30) == 0
    _out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err
    wait_caught_up(stack_env, topic)
    assert writer.poll() is None, "the writer stopped on bad input"
    writer.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=120) == 0, writer.stderr.read()
    totals = check(stack_env, topic, ids, dead=sent)
    assert totals["in_lake"] == 30_000
