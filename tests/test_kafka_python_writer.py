"""The lake writer on kafka-python (`--kafka-client kafka-python`, loglake/kafka_python_consumer.py),
on the real stack: what is particular to that client. The writer's general tests run on both clients
in tests/test_writer.py.

- A rebalance callback that blocks past the session timeout: kafka-python calls its listeners on the
  IO loop that also sends the heartbeats; the consumer relays them to the caller's thread, so the
  member must stay in the group and a commit made inside `revoked` must be accepted.
- A zombie: one of two writers SIGSTOPped past its session timeout while the other takes over, then
  resumed; every event in the lake exactly once (verify, and a count of event_ids read from the lake
  and from the topic by plain clients).
- Failures a user causes end in one sentence.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import orjson
import pytest

from loglake.kafka_python_consumer import SESSION_TIMEOUT_MS, KafkaPythonConsumer
from loglake.settings import KafkaSettings
from tests.conftest import PYTHON, REPO, clean_env, s3_client
from tests.test_writer import check_exactly_once, produce, writer
from tests.waiting import KafkaProbe, Output, kafka_errors, wait_until


def committed(env: dict[str, str], topic: str, group: str) -> dict[int, int]:
    """partition -> the group's committed offset (partitions it never committed are left out)."""
    probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
    return wait_until(
        lambda: probe.committed(topic, group),
        30,
        "committed offsets",
        ok=lambda _: True,
        retry_on=kafka_errors(),
    )


def finish(output: Output, timeout: float = 240) -> tuple[int, str, str]:
    return output.finish(timeout)


pytestmark = pytest.mark.integration


class Calls:
    """A Rebalance listener that records what the consumer delivered, and what it was asked to do
    inside `revoked`: block for `block` seconds, then commit `commit_at` for each revoked partition."""

    def __init__(self, consumer: KafkaPythonConsumer, block: float, commit_at: int) -> None:
        self.consumer, self.block, self.commit_at = consumer, block, commit_at
        self.log: list[tuple[str, list[int]]] = []
        self.owned: set[int] = set()
        self.revoke_commits: dict[int, bool] = {}
        self.revoke_seconds = 0.0
        self.threads: set[str] = set()

    def assigned(self, partitions: list[int]) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append(("assigned", partitions))
        self.owned.update(partitions)

    def revoked(self, partitions: list[int]) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append(("revoked", partitions))
        started = time.monotonic()
        time.sleep(self.block)  # a batch landing slowly
        for p in partitions:
            self.revoke_commits[p] = self.consumer.commit(p, self.commit_at)
        self.revoke_seconds = time.monotonic() - started
        self.owned.difference_update(partitions)

    def lost(self, partitions: list[int]) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append(("lost", partitions))
        self.owned.difference_update(partitions)


def test_revoke_blocking_past_the_session_timeout_keeps_the_member_and_its_commit(stack_env, new_topic):
    topic = new_topic(2, with_dlq=False)
    produce(stack_env, topic, 400)
    settings = KafkaSettings(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"], client="kafka-python")
    group = f"g-{topic}"
    block = SESSION_TIMEOUT_MS / 1000 + 5  # well past the session timeout
    first = KafkaPythonConsumer(settings, group, topic, "earliest")
    first_calls = Calls(first, block, commit_at=7)
    assert first.check_topic() == 2 and first.cluster_id()
    first.subscribe(first_calls)
    read = 0
    deadline = time.monotonic() + 60
    while (first_calls.owned != {0, 1} or read < 400) and time.monotonic() < deadline:
        read += len(first.poll(1000, 0.2))
    assert first_calls.owned == {0, 1} and read == 400, (first_calls.log, read)

    # a second member joins: the cooperative assignor moves one partition to it, and the first
    # member's revoke blocks for `block` seconds inside its poll
    second = KafkaPythonConsumer(settings, group, topic, "earliest")
    second_calls = Calls(second, 0, commit_at=0)
    second.check_topic()
    second.subscribe(second_calls)
    stop = threading.Event()

    def run_second() -> None:
        while not stop.is_set():
            second.poll(1000, 0.2)

    helper = threading.Thread(target=run_second, name="second-member")
    helper.start()
    try:
        deadline = time.monotonic() + 90
        while not second_calls.owned and time.monotonic() < deadline:
            first.poll(1000, 0.2)
        # a few more turns: a member evicted during the revoke would hear of it now
        for _ in range(20):
            first.poll(1000, 0.2)
    finally:
        stop.set()
        helper.join(30)
    moved = sorted(first_calls.revoke_commits)
    assert len(moved) == 1 and second_calls.owned == set(moved), (first_calls.log, second_calls.log)
    assert first_calls.revoke_seconds >= block
    assert first_calls.revoke_commits == {moved[0]: True}, "the commit inside revoke was refused"
    assert committed(stack_env, topic, group)[moved[0]] == 7
    assert not any(kind == "lost" for kind, _ in first_calls.log), first_calls.log
    assert first_calls.owned == {0, 1} - set(moved), first_calls.log  # kept the other: still a member
    assert first_calls.threads == {threading.current_thread().name}  # callbacks on the polling thread
    # the new owner starts where the revoke committed
    assert second.committed(moved) == {moved[0]: 7}
    first.close()
    second.close()


def lake_event_ids(env: dict[str, str], prefix: str) -> Counter[str]:
    """event_id -> copies, read from the lake objects with boto3 and gzip (not loglake's readers)."""
    s3 = s3_client(env)
    ids: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["LAKE_BUCKET"], Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            key = item["Key"]
            if "/_loglake/" in key or not key.endswith(".jsonl.gz"):
                continue
            data = gzip.decompress(s3.get_object(Bucket=env["LAKE_BUCKET"], Key=key)["Body"].read())
            ids.update(orjson.loads(line)["event_id"] for line in data.splitlines() if line)
    return ids


def topic_event_ids(env: dict[str, str], topic: str, partitions: int) -> Counter[str]:
    """event_id -> records on the topic, read with a plain confluent consumer."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "count"})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    ids: Counter[str] = Counter()
    seen = dict.fromkeys(range(partitions), 0)
    deadline = time.monotonic() + 60
    while any(seen[p] < ends[p] for p in seen) and time.monotonic() < deadline:
        for m in consumer.consume(10_000, 1):
            if m.error() is None:
                ids[orjson.loads(m.value())["event_id"]] += 1
                seen[m.partition()] += 1
    consumer.close()
    assert seen == ends
    return ids


class CommitWatch:
    """Samples the group's committed offsets in the background; notes any that went backwards."""

    def __init__(self, env: dict[str, str], topic: str, group: str) -> None:
        self.env, self.topic, self.group = env, topic, group
        self.samples = 0
        self.backwards: list[tuple[int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        highest: dict[int, int] = {}
        while not self._stop.wait(0.5):
            for p, offset in committed(self.env, self.topic, self.group).items():
                if offset < highest.get(p, -1):
                    self.backwards.append((p, highest[p], offset))
                highest[p] = max(highest.get(p, -1), offset)
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


WRITER_FLAGS = ("--kafka-client", "kafka-python", "--batch-records", "3000", "--batch-age", "2")


def fed_writer(stack_env: dict[str, str], topic: str, total: int) -> tuple[subprocess.Popen[str], Output]:
    """`total` events fed at 2,000 events/s and a kafka-python writer of group g-<topic>, returned once
    the writer has made its first commit."""
    feeder = subprocess.Popen(
        [PYTHON, "faking_data.py", "--topic", topic, "--count", str(total), "--rate", "2000", "--quiet"],
        cwd=REPO,
        env=clean_env(stack_env),
        stderr=subprocess.PIPE,
        text=True,
    )
    first = writer(stack_env, topic, *WRITER_FLAGS, "--exit-when-idle", "6", "--progress-every", "1")
    probe = KafkaProbe(stack_env["KAFKA_BOOTSTRAP_SERVERS"])
    wait_until(
        lambda: probe.committed_total(topic, f"g-{topic}"),
        60,
        "the first writer's first commit",
        retry_on=kafka_errors(),
        alive=[first.process],
    )
    return feeder, first


@pytest.mark.faults
def test_zombie_writer_sigstopped_past_its_session_and_resumed(stack_env, new_topic):
    """Two kafka-python writers share a topic fed at 2,000 events/s; one is SIGSTOPped (with batches
    gathered and in flight) for longer than its session timeout, so the group gives its partitions to
    the other; then it is resumed while the other runs. It must find out it lost them (its commits
    refused or its partitions lost), and the lake must hold every event once."""
    topic = new_topic(3)
    total = 40_000
    feeder, zombie = fed_writer(stack_env, topic, total)
    group = f"g-{topic}"
    other = writer(stack_env, topic, *WRITER_FLAGS, "--exit-when-idle", "6", "--progress-every", "1")
    wait_until(  # the second writer joins and takes some partitions
        lambda: other.last(r"assigned partitions \[\d"),
        60,
        "the second writer's assignment",
        alive=[other.process],
    )
    os.kill(zombie.process.pid, signal.SIGSTOP)
    stopped_at = committed(stack_env, topic, group)
    # past the session the other writer takes everything, and commits on every partition while the
    # zombie is still stopped
    wait_until(
        lambda: committed(stack_env, topic, group),
        SESSION_TIMEOUT_MS / 1000 + 90,
        "the other writer committing on every partition",
        ok=lambda now: len(now) == 3 and all(now[p] > stopped_at.get(p, 0) for p in now),
        interval=0.5,
    )
    watch = CommitWatch(stack_env, topic, group)
    os.kill(zombie.process.pid, signal.SIGCONT)
    assert feeder.wait(timeout=120) == 0, feeder.stderr.read() if feeder.stderr else ""
    code_zombie, _out, err_zombie = finish(zombie)
    code_other, _out, err_other = finish(other)
    watch.stop()
    assert code_zombie == 0 and code_other == 0, err_zombie[-3000:] + err_other[-3000:]
    # the zombie learned that it lost what it had (not that it was revoked: commits made in a revoke
    # are accepted), and no commit of it took the group's offsets back
    assert re.search(r"partitions \[\d[\d, ]*\] lost", err_zombie), err_zombie[-3000:]
    assert watch.samples > 5 and not watch.backwards, watch.backwards

    check_exactly_once(stack_env, topic, total)
    in_lake = lake_event_ids(stack_env, f"test-{topic}")
    on_topic = topic_event_ids(stack_env, topic, 3)
    assert sum(on_topic.values()) == total and max(on_topic.values()) == 1
    lost = set(on_topic) - set(in_lake)
    duplicated = {i: n for i, n in in_lake.items() if n > 1}
    assert not lost and not duplicated, (len(lost), len(duplicated))
    assert in_lake == on_topic


@pytest.mark.faults
def test_a_lone_writer_paused_past_its_session_gets_its_partitions_back_and_goes_on(stack_env, new_topic):
    """The only kafka-python writer of a group, SIGSTOPped until the group has dropped it (its session
    expired), then resumed. It rejoins as a new member and the group gives it its partitions back: it
    must not keep its old state of them as if nothing happened, nor refuse their commits forever. It
    lands everything once, the group's offsets never go back, and it catches up and exits."""
    topic = new_topic(3)
    total = 30_000
    feeder, lone = fed_writer(stack_env, topic, total)
    group = f"g-{topic}"
    probe = KafkaProbe(stack_env["KAFKA_BOOTSTRAP_SERVERS"])
    watch = CommitWatch(stack_env, topic, group)
    os.kill(lone.process.pid, signal.SIGSTOP)
    wait_until(
        lambda: probe.members(group),
        SESSION_TIMEOUT_MS / 1000 + 60,
        "the group dropping the stopped writer",
        ok=lambda n: n == 0,
        interval=0.5,
        retry_on=kafka_errors(),
    )
    os.kill(lone.process.pid, signal.SIGCONT)
    assert feeder.wait(timeout=120) == 0, feeder.stderr.read() if feeder.stderr else ""
    code, _out, err = finish(lone)
    watch.stop()
    assert code == 0, err[-3000:]
    assert watch.samples > 5 and not watch.backwards, watch.backwards
    assert probe.committed_total(topic, group) == total, err[-3000:]
    check_exactly_once(stack_env, topic, total)
    in_lake = lake_event_ids(stack_env, f"test-{topic}")
    assert len(in_lake) == total and max(in_lake.values()) == 1


def one_sentence(env: dict[str, str], *args: str) -> str:
    """Run the kafka-python writer, expecting it to fail with exit 1 and one line on stderr."""
    result = subprocess.run(
        [PYTHON, "receive_faking_data.py", "--kafka-client", "kafka-python", *args],
        cwd=REPO,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_unreachable_broker_is_one_sentence():
    started = time.monotonic()
    error = one_sentence({}, "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "3")
    assert error.startswith("error: no Kafka broker answered at 127.0.0.1:1"), error
    assert time.monotonic() - started < 3 + 10


def test_missing_topic_is_one_sentence(stack_env):
    error = one_sentence(stack_env, "--topic", "no-such-topic-kpy")
    assert "topic 'no-such-topic-kpy' does not exist" in error


def test_start_from_a_time_lands_from_the_first_record_at_or_after_it(stack_env, new_topic):
    """--start-from TIME on a group without commits: each partition from its first record whose Kafka
    timestamp is at or after TIME (read independently with a plain confluent consumer)."""
    from confluent_kafka import Consumer, TopicPartition

    topic = new_topic(3)
    produce(stack_env, topic, 3_000, seed=5)
    consumer = Consumer({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "stamps"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    stamps: list[int] = []
    deadline = time.monotonic() + 60
    while len(stamps) < 3_000 and time.monotonic() < deadline:
        stamps += [m.timestamp()[1] for m in consumer.consume(10_000, 1) if m.error() is None]
    consumer.close()
    at = sorted(stamps)[len(stamps) // 2]
    expected = sum(1 for s in stamps if s >= at)
    assert 0 < expected < 3_000
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 1000)) + f".{at % 1000:03d}Z"
    proc = writer(stack_env, topic, "--start-from", when, "--exit-when-idle", "3", client="kafka-python")
    code, out, err = finish(proc, timeout=120)
    assert code == 0, err
    assert f"records={expected} " in out, (expected, out)


@pytest.mark.stack
def test_secure_cluster_lands_and_refusals_are_one_sentence():
    """SASL_SSL (SCRAM over TLS): the kafka-python writer lands and verify passes; a wrong password and
    a CA that does not sign the broker's certificate each end in one sentence."""
    from tests.conftest import extra_stack

    with extra_stack("secure", "--secure") as env:
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        topic = env.get("LOGLAKE_TOPIC", "log-data")
        produce(env, topic, 500)
        code, out, err = finish(
            writer(env, topic, "--exit-when-idle", "3", client="kafka-python"), timeout=180
        )
        assert code == 0, err
        assert "records=500 " in out, out
        assert env["KAFKA_SASL_PASSWORD"] not in out + err
        checked = subprocess.run(
            [
                PYTHON,
                "-m",
                "loglake",
                "verify",
                "--topic",
                topic,
                "--prefix",
                f"test-{topic}",
                "--group",
                f"g-{topic}",
            ],
            cwd=REPO,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "in_lake=500 " in checked.stdout and "result=OK" in checked.stdout, checked.stdout
        wrong_password = {**env, "KAFKA_SASL_PASSWORD": "not-the-password"}
        assert "refused the credentials" in one_sentence(wrong_password, "--connect-timeout", "5")
        wrong_ca = {**env, "KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt"}
        assert "TLS handshake" in one_sentence(wrong_ca, "--connect-timeout", "5")
