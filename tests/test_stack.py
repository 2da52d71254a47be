"""The native stack is real: Kafka round trips on each mode, S3 put/get/list, replication under broker loss."""

from __future__ import annotations

import re
import socket
import uuid

import pytest

from loglake.stack.__main__ import ENV_NAMES, compose_env_lines, env_lines
from loglake.stack.cluster import StackConfig, kafka_properties
from loglake.stack.services import Instance
from tests.conftest import BASE_OFFSET, create_topic, extra_stack, read_stack_env, stack
from tests.waiting import KafkaProbe, kafka_errors, wait_until

# ---------------------------------------------------------------------------------------- unit


def test_ports_follow_the_offset_and_compose_defaults():
    cfg = StackConfig(brokers=3, port_offset=100)
    assert [cfg.kafka_port(n) for n in (1, 2, 3)] == [9192, 9193, 9194]
    assert cfg.s3_port == 9100 and cfg.zookeeper_port == 2281
    assert cfg.bootstrap_servers == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert StackConfig().bootstrap_servers == "127.0.0.1:9092"


def test_kraft_cluster_ids_never_start_with_a_dash():
    # kafka-storage takes `-t -xyz...` for an option; one random id in 64 started with `-` before
    ids = [StackConfig().cluster_id for _ in range(5_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert {len(i) for i in ids} == {22} and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_three_brokers_replicate_three_ways_with_two_in_sync(tmp_path):
    text = kafka_properties(StackConfig(brokers=3), 2, tmp_path, tmp_path)
    assert "broker.id=2" in text
    assert "default.replication.factor=3" in text and "min.insync.replicas=2" in text
    assert "zookeeper.connect=127.0.0.1:2181" in text
    assert "CLIENT://127.0.0.1:9093" in text and "0.0.0.0" not in text


def test_kraft_nodes_are_combined_broker_and_controller(tmp_path):
    text = kafka_properties(StackConfig(mode="kraft", brokers=3), 1, tmp_path, tmp_path)
    assert "process.roles=broker,controller" in text
    assert "controller.quorum.voters=1@127.0.0.1:29092,2@127.0.0.1:29093,3@127.0.0.1:29094" in text
    assert "zookeeper" not in text


def test_a_dead_broker_is_noticed_within_seconds(tmp_path):
    # Kafka's default ZooKeeper session (18 s) kept a killed broker's leaders for ~18 s
    assert "zookeeper.session.timeout.ms=6000" in kafka_properties(
        StackConfig(brokers=3), 1, tmp_path, tmp_path
    )


def test_env_for_compose_matches_its_published_ports_and_keys(tmp_path):
    (tmp_path / ".env").write_text("LAKE_ACCESS_KEY_ID=me\nLAKE_SECRET_ACCESS_KEY='s3cret'\n")
    lines = compose_env_lines(tmp_path)
    assert "export KAFKA_BOOTSTRAP_SERVERS=localhost:9092" in lines
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:9000" in lines
    assert "export AWS_ACCESS_KEY_ID=me" in lines and "export AWS_SECRET_ACCESS_KEY=s3cret" in lines
    assert lines[-1].startswith("unset ") and "KAFKA_SASL_PASSWORD" in lines[-1]


def test_env_unset_covers_every_variable_a_secure_stack_exports(tmp_path):
    inst = Instance(tmp_path, StackConfig(secure=True))
    exported = {line.removeprefix("export ").split("=", 1)[0] for line in env_lines(inst)}
    assert exported <= set(ENV_NAMES)


def test_secure_listener_uses_scram_over_tls(tmp_path):
    text = kafka_properties(StackConfig(secure=True), 1, tmp_path, tmp_path)
    assert "CLIENT:SASL_SSL" in text and "sasl.enabled.mechanisms=SCRAM-SHA-512" in text


# --------------------------------------------------------------------------------- integration


def kafka_python_round_trip(env: dict[str, str], replication: int = 1) -> None:
    """Produce one record with kafka-python and read it back: key, value, timestamp, headers intact."""
    from kafka import KafkaConsumer, KafkaProducer

    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = create_topic(bootstrap, partitions=1, replication=replication)
    stamp = 1_700_000_000_123
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(
        topic,
        key=b"user-42",
        value=b'{"hello":"lake"}',
        timestamp_ms=stamp,
        headers=[("content-type", b"application/json")],
    ).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert record.key == b"user-42"
    assert record.value == b'{"hello":"lake"}'
    assert record.timestamp == stamp
    assert list(record.headers) == [("content-type", b"application/json")]


@pytest.mark.integration
def test_kafka_round_trip_zookeeper_mode(stack_env):
    kafka_python_round_trip(stack_env)


@pytest.mark.integration
def test_default_stack_has_topic_and_bucket(stack_env, admin, s3):
    topics = admin.list_topics(timeout=10).topics
    assert len(topics["log-data"].partitions) == 3
    assert "log-data.dlq" in topics
    assert "datalake" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.integration
def test_s3_put_get_list(stack_env, s3):
    key = f"stack-test/{uuid.uuid4().hex}/a.json"
    s3.put_object(Bucket="datalake", Key=key, Body=b'{"a":1}\n', Metadata={"loglake-records": "1"})
    got = s3.get_object(Bucket="datalake", Key=key)
    assert got["Body"].read() == b'{"a":1}\n'
    assert got["Metadata"]["loglake-records"] == "1"
    listed = s3.list_objects_v2(Bucket="datalake", Prefix=key.rsplit("/", 1)[0])
    assert [o["Key"] for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket="datalake", Key=key)


@pytest.mark.integration
def test_up_twice_starts_no_second_copy(stack_env):
    before = stack("status").stdout
    stack("up", "--port-offset", str(BASE_OFFSET))  # the suite's instance runs at the test offset
    assert stack("status").stdout == before  # same pids, all answering


@pytest.mark.integration
def test_port_taken_by_another_program_is_a_clear_error(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))  # a port the system gave us, held by this "other program"
        blocker.listen()
        taken = blocker.getsockname()[1]
        offset = taken - 9000  # instance 'blocked' wants its S3 server on 9000 + offset
        stack(
            "down", "--wipe", name="blocked", check=False
        )  # a run cut short may have left one of another shape
        result = stack("up", "--port-offset", str(offset), name="blocked", check=False)
    stack("down", "--wipe", name="blocked", check=False)
    assert result.returncode != 0
    assert f"port {taken} (s3) is already in use" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------- extra stack instances


@pytest.mark.stack
def test_kafka_round_trip_kraft_mode():
    with extra_stack("kraft1", "--mode", "kraft") as env:
        kafka_python_round_trip(env)
        assert "Kafka 4." in stack("status", name="kraft1").stdout


@pytest.mark.stack
def test_three_brokers_keep_accepting_acks_all_writes_when_one_dies():
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    with extra_stack("zk3", "--brokers", "3") as env:
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        kafka_python_round_trip(env, replication=3)
        topic = create_topic(bootstrap, partitions=3, replication=3)
        stack("kill", "kafka-2", name="zk3")
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 60000,
            }
        )
        failures: list[object] = []
        for i in range(300):
            producer.produce(
                topic, value=b"%d" % i, on_delivery=lambda err, _msg: failures.append(err) if err else None
            )
        assert producer.flush(90) == 0
        assert failures == []
        # the topic's own count, not the client's; a fresh client's metadata may lag the leader moves
        # of the kill for a moment ("Unknown partition"): asked again then
        probe = KafkaProbe(bootstrap)
        wait_until(lambda: probe.in_topic(topic), 30, "the topic's count of the 300 acknowledged records",
                   ok=lambda n: n == 300, retry_on=kafka_errors())  # fmt: skip
        stack("start", "kafka-2", name="zk3")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_until(
            lambda: {
                p.id: sorted(p.isrs)
                for p in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
            },
            90,
            f"kafka-2 to rejoin the in-sync replicas of every partition of {topic} (partition: ISR)",
            ok=lambda isrs: len(isrs) == 3 and all(len(isr) == 3 for isr in isrs.values()),
            interval=1,
            retry_on=kafka_errors(),
        )
        assert read_stack_env("zk3")["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2
