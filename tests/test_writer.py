"""The lake writer on the real stack: exactly once with two writers, after SIGKILL, through a lake
outage; dead letters for every kind of bad record; no commit when the lake fails. The tests that
exercise the consumer (group, rebalances, commits, close, the dead-letter producer) run with both
Kafka clients (`--kafka-client confluent|kafka-python`); what is particular to kafka-python is in
tests/test_kafka_python_writer.py."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from loglake import deadletter
from loglake.settings import KafkaSettings, LakeSettings, Secret
from loglake.verify import verify
from tests.conftest import PYTHON, REPO, clean_env, create_topic, extra_stack, record, stack

pytestmark = pytest.mark.integration

CLIENTS = pytest.mark.parametrize("client", ["confluent", "kafka-python"])


def settings_of(env: dict[str, str]) -> tuple[KafkaSettings, LakeSettings]:
    kafka = KafkaSettings(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    lake = LakeSettings(
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=Secret(env["AWS_SECRET_ACCESS_KEY"]),
        bucket=env["LAKE_BUCKET"],
    )
    return kafka, lake


def produce(env: dict[str, str], topic: str, count: int, rate: float = 0, seed: int | None = None) -> None:
    args = [PYTHON, "faking_data.py", "--topic", topic, "--count", str(count), "--rate", str(rate), "--quiet"]
    if seed is not None:
        args += ["--seed", str(seed)]
    result = subprocess.run(args, cwd=REPO, env=clean_env(env), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def writer(
    env: dict[str, str], topic: str, *extra: str, group: str | None = None, client: str = "confluent"
) -> subprocess.Popen[str]:
    args = [
        PYTHON,
        "receive_faking_data.py",
        "--topic",
        topic,
        "--group",
        group or f"g-{topic}",
        "--prefix",
        f"test-{topic}",
        "--kafka-client",
        client,
        "--quiet",
        *extra,
    ]
    return subprocess.Popen(
        args, cwd=REPO, env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def check_exactly_once(env: dict[str, str], topic: str, expected: int, group: str | None = None):
    kafka, lake = settings_of(env)
    result = verify(kafka, lake, topic, prefix=f"test-{topic}", group=group or f"g-{topic}", collect_ids=True)
    totals = result.totals()
    assert result.ok, totals
    assert totals["expected"] == expected
    assert len(result.event_ids) == totals["in_lake"] and max(result.event_ids.values()) == 1
    return result


def committed(env: dict[str, str], topic: str, group: str) -> dict[int, int]:
    """The group's committed offsets. A probe right after a broker restart can meet a moving group
    coordinator (NOT_COORDINATOR, timeouts): it asks again, for up to 30 s."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + 30
    while True:
        consumer = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group})
        try:
            found = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
            return {tp.partition: tp.offset for tp in found}
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].name() != "NOT_COORDINATOR":
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
        finally:
            consumer.close()


@CLIENTS
def test_two_writers_land_100k_events_exactly_once(stack_env, new_topic, client):
    topic = new_topic(3)
    produce(stack_env, topic, 100_000)
    first = writer(stack_env, topic, "--exit-when-idle", "8", "--batch-records", "7000", client=client)
    second = writer(stack_env, topic, "--exit-when-idle", "8", "--batch-records", "7000", client=client)
    for proc in (first, second):
        code, out, err = finish(proc)
        assert code == 0, err
        assert "landed topic=" in out
    result = check_exactly_once(stack_env, topic, 100_000)
    assert result.objects >= 6  # several batches, not one object per event


def test_exit_when_idle_lands_everything_and_exits_zero(stack_env, new_topic):
    topic = new_topic(3)
    produce(stack_env, topic, 2_000, seed=7)
    started = time.monotonic()
    code, out, err = finish(writer(stack_env, topic, "--exit-when-idle", "3"), timeout=120)
    assert code == 0, err
    assert time.monotonic() - started < 60
    assert "records=2000" in out
    check_exactly_once(stack_env, topic, 2_000)


def test_writer_killed_mid_run_and_restarted_lands_exactly_once(stack_env, new_topic):
    # confluent only: with kafka-python, a member gone without leaving the group is covered by
    # tests/test_kafka_python_writer.py's zombie test (stopped past its session, then resumed)
    topic = new_topic(3)
    produce(stack_env, topic, 60_000)
    proc = writer(stack_env, topic, "--batch-records", "3000")
    deadline = time.monotonic() + 60
    group = f"g-{topic}"
    while (
        time.monotonic() < deadline
        and sum(max(0, o) for o in committed(stack_env, topic, group).values()) == 0
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # in the middle of flushing and committing batches
    proc.wait(timeout=30)
    before = committed(stack_env, topic, group)
    assert 0 < sum(max(0, o) for o in before.values()) < 60_000, before
    code, _out, err = finish(writer(stack_env, topic, "--batch-records", "3000", "--exit-when-idle", "5"))
    assert code == 0, err
    check_exactly_once(stack_env, topic, 60_000)


@CLIENTS
def test_sigterm_flushes_commits_and_exits_zero(stack_env, new_topic, client):
    topic = new_topic(3)
    produce(stack_env, topic, 5_000)
    proc = writer(
        stack_env,
        topic,
        "--batch-records",
        "1000000",
        "--batch-age",
        "600",
        "--idle-flush",
        "600",
        client=client,
    )
    time.sleep(6)  # let it read all 5,000 (its batch is far larger, so nothing is flushed yet)
    proc.send_signal(signal.SIGTERM)
    code, _out, err = finish(proc, timeout=60)
    assert code == 0, err
    check_exactly_once(stack_env, topic, 5_000)


@CLIENTS
def test_each_kind_of_bad_record_becomes_a_dead_letter(stack_env, new_topic, client):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = new_topic(1)
    bad = {
        "invalid-json": b'{"event_id": "x", ',
        "invalid-utf8": b"\xff\xfe\x00garbage",
        "not-an-object": b"[1, 2, 3]",
        "missing-field": b'{"event_id":"m","event_type":"click"}',
        "wrong-type": b'{"event_id":42,"event_time":"2026-11-24T21:00:00Z","event_type":"click"}',
        "bad-event-time": b'{"event_id":"t","event_time":"soon","event_type":"click"}',
        "empty-value": b"",
        "too-large": b'{"event_id":"big","event_time":"2026-11-24T21:00:00Z","event_type":"x","p":"'
        + b"x" * 3000
        + b'"}',
        "reserved-field": b'{"event_id":"r","event_time":"2026-11-24T21:00:00Z","event_type":"x","_kafka":1}',
    }
    producer = Producer({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"]})
    producer.produce(topic, b'{"event_id":"good-1","event_time":"2026-11-24T21:00:00Z","event_type":"click"}')
    for kind, value in bad.items():
        producer.produce(topic, value, key=kind.encode(), headers=[("origin", b"test")])
    producer.produce(topic, None, key=b"null-value")
    producer.produce(topic, b'{"event_id":"good-2","event_time":"2026-11-24T22:00:00Z","event_type":"click"}')
    assert producer.flush(30) == 0
    code, _out, err = finish(
        writer(stack_env, topic, "--exit-when-idle", "3", "--max-record-bytes", "2048", client=client)
    )
    assert code == 0, err

    result = check_exactly_once(stack_env, topic, len(bad) + 3)
    assert set(result.event_ids) == {"good-1", "good-2"}
    consumer = Consumer({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "t"})
    consumer.assign([TopicPartition(topic + ".dlq", p, 0) for p in range(1)])
    letters = consumer.consume(100, 10)
    consumer.close()
    kinds = {}
    for m in letters:
        headers = dict(m.headers())
        kinds[m.key()] = headers[deadletter.HEADER_KIND].decode()
        assert headers[deadletter.HEADER_TOPIC].decode() == topic
        assert headers[deadletter.HEADER_ERROR]
        assert int(headers[deadletter.HEADER_OFFSET]) >= 0 and headers[deadletter.HEADER_TIMESTAMP]
        if m.key() != b"null-value":
            assert headers["origin"] == b"test"  # the original headers travel with the dead letter
            assert m.value() == bad[m.key().decode()]  # the original bytes
    assert kinds == {k.encode(): k for k in bad} | {b"null-value": "empty-value"}


def test_lake_failure_commits_nothing_and_exits_nonzero(stack_env, new_topic):
    topic = new_topic(3)
    produce(stack_env, topic, 1_000)
    env = dict(stack_env, AWS_ENDPOINT_URL="http://127.0.0.1:1")  # nothing listens there
    code, _out, err = finish(
        writer(env, topic, "--exit-when-idle", "2", "--max-retry-time", "3"), timeout=120
    )
    assert code != 0
    assert "Traceback" not in err
    assert all(o < 0 for o in committed(stack_env, topic, f"g-{topic}").values())


def test_bad_credentials_are_one_clear_sentence(stack_env, new_topic):
    topic = new_topic(1)
    env = dict(stack_env, AWS_SECRET_ACCESS_KEY="wrong-secret")
    code, _out, err = finish(writer(env, topic, "--exit-when-idle", "2"), timeout=60)
    assert code == 1
    assert "refused" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_another_group_cannot_reland_into_the_same_prefix(stack_env, new_topic):
    topic = new_topic(3)
    produce(stack_env, topic, 500)
    assert finish(writer(stack_env, topic, "--exit-when-idle", "2"))[0] == 0
    code, _out, err = finish(writer(stack_env, topic, "--exit-when-idle", "2", group="someone-else"))
    assert code == 1
    assert "would store events twice" in err
    check_exactly_once(stack_env, topic, 500)


@pytest.mark.faults
@CLIENTS
def test_lake_down_for_20_seconds_mid_run(client):
    """S3 stopped mid-run: nothing is committed while it is down; everything lands after."""
    with extra_stack("w1") as env:
        topic = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3)
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, name=topic + ".dlq")
        producer = subprocess.Popen(
            [PYTHON, "faking_data.py", "--topic", topic, "--count", "30000", "--rate", "1000", "--quiet"],
            cwd=REPO,
            env=clean_env(env),
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = writer(
            env, topic, "--batch-records", "2000", "--batch-age", "2", "--progress-every", "2", client=client
        )
        group = f"g-{topic}"
        time.sleep(6)
        stack("kill", "s3", name="w1")
        time.sleep(3)  # a flush in flight when S3 died may still commit: measure from here
        during = committed(env, topic, group)
        time.sleep(17)
        assert committed(env, topic, group) == during, "committed while the lake was down"
        assert proc.poll() is None, "the writer gave up while the lake was down"
        stack("start", "s3", name="w1")
        back = time.monotonic()
        recovered = None
        deadline = back + 120  # backoff may wait up to 15 s before it sees the lake back
        while time.monotonic() < deadline and sum(committed(env, topic, group).values()) < 30_000:
            if recovered is None and sum(committed(env, topic, group).values()) > sum(during.values()):
                recovered = time.monotonic() - back
            time.sleep(0.25)
        if recovered is None:  # everything was committed at the first look
            recovered = time.monotonic() - back
        assert producer.wait(timeout=120) == 0, producer.stderr.read()
        proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc, timeout=180)
        assert code == 0, err
        totals = check_exactly_once(env, topic, 30_000).totals()
        record(
            "S3 server SIGKILLed for 20 s mid-run at 1,000 events/s (nothing committed meanwhile, checked)"
            + ("" if client == "confluent" else f", {client} client"),
            30_000,
            30_000,
            totals,
            f"commits resumed {recovered:.1f} s after S3 was back (backoff is capped at 15 s)",
        )


def test_metrics_port_serves_what_the_writer_did(stack_env, new_topic):
    import socket
    import urllib.request

    topic = new_topic(3)
    produce(stack_env, topic, 3_000)
    bad = subprocess.run(
        [
            PYTHON,
            "-c",
            f"from confluent_kafka import Producer; p = Producer({{'bootstrap.servers': '{stack_env['KAFKA_BOOTSTRAP_SERVERS']}'}}); p.produce('{topic}', b'[1]'); p.flush(10)",
        ],
        check=True,
    )
    assert bad.returncode == 0
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = writer(stack_env, topic, "--metrics-port", str(port), "--batch-records", "1000")
    wanted = (
        "loglake_records_total 3001.0",
        'loglake_dead_letters_total{kind="not-an-object"} 1.0',
        'loglake_lag_records{partition="0"} 0.0',
    )
    text = ""

    def landed() -> float:
        found = re.search(r"^loglake_objects_total (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (all(w in text for w in wanted) and landed() >= 3):
            time.sleep(0.5)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
    finally:
        proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc, timeout=60)
    assert code == 0, err
    assert all(w in text for w in wanted), text[-3000:]
    assert landed() >= 3, text[-3000:]
    assert re.search(r"^loglake_flush_seconds_count [1-9]", text, re.MULTILINE), text[-3000:]
