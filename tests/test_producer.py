"""The producer against the real broker of the default stack (and the command line's failures)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake import events
from loglake.produce import produce
from loglake.settings import KafkaSettings, ProducerSettings
from tests.conftest import PYTHON, REPO, clean_env


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    """Every record of `topic` (from the start) until `expected` were read, then a short quiet period
    to catch extras; fails if fewer arrive within `timeout`."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=5000, timeout=0.5)
            for message in batch:
                assert message.error() is None, message.error()
                records.append(message)
            if len(records) >= expected:
                quiet_until = quiet_until or time.monotonic() + 2
                if time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    assert len(records) >= expected, f"read {len(records)} of {expected} records from {topic}"
    return records


def settings_for(stack_env: dict[str, str], topic: str, **changes) -> ProducerSettings:
    kafka = KafkaSettings(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"], connect_timeout=10)
    return dataclasses.replace(
        ProducerSettings(kafka=kafka, topic=topic, quiet=True, rate=0, linger_ms=5), **changes
    )


@pytest.mark.integration
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_n_events_produced_are_n_distinct_readable_events(
    stack_env: dict[str, str], new_topic: Callable[..., str], client: str
) -> None:
    topic = new_topic(3, with_dlq=False)
    settings = settings_for(stack_env, topic, count=3000, producer_id="test-producer")
    settings = dataclasses.replace(settings, kafka=dataclasses.replace(settings.kafka, client=client))
    report = produce(settings, keep_acked_ids=True)
    assert report.ok, report
    assert (report.sent, report.acked, report.failed) == (3000, 3000, 0)

    records = consume_all(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic, 3000)
    assert len(records) == 3000
    ids = set()
    partitions_of_user: dict[bytes, set[int]] = defaultdict(set)
    for message in records:
        event = events.decode(message.value())
        ids.add(event["event_id"])
        assert message.key() == event["user_id"].encode()
        kind, timestamp_ms = message.timestamp()
        assert kind == 1  # CreateTime: the producer set it
        assert timestamp_ms == events.parse_event_time(event["event_time"])
        headers = dict(message.headers())
        assert headers["content-type"] == b"application/json"
        assert headers["schema-version"] == str(events.SCHEMA_VERSION).encode()
        assert headers["producer-id"] == b"test-producer"
        partitions_of_user[message.key()].add(message.partition())
    assert len(ids) == 3000
    assert ids == set(report.acked_ids or [])
    assert all(len(p) == 1 for p in partitions_of_user.values()), "one user's events on one partition"
    assert len({p for ps in partitions_of_user.values() for p in ps}) == 3


@pytest.mark.integration
def test_same_seed_same_events(stack_env: dict[str, str], new_topic: Callable[..., str]) -> None:
    runs = []
    for _ in range(2):
        topic = new_topic(3, with_dlq=False)
        report = produce(settings_for(stack_env, topic, count=500, seed=1234, rate=0))
        assert report.ok, report
        records = consume_all(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic, 500)
        per_partition: dict[int, list[tuple[int, bytes, bytes, int]]] = defaultdict(list)
        for m in records:
            per_partition[m.partition()].append((m.offset(), m.key(), m.value(), m.timestamp()[1]))
        runs.append({p: sorted(rs) for p, rs in per_partition.items()})
    assert runs[0] == runs[1]
    first = min(events.decode(v)["event_time"] for rs in runs[0].values() for _, _, v, _ in rs)
    assert first == "2026-01-01T00:00:00.000Z"  # the seeded clock's start


@pytest.mark.integration
def test_rate_limit_holds_loosely(stack_env: dict[str, str], new_topic: Callable[..., str]) -> None:
    topic = new_topic(1, with_dlq=False)
    report = produce(settings_for(stack_env, topic, rate=200, duration=3.0))
    assert report.ok, report
    # 600 expected; a shared machine may lag, never run ahead
    assert 420 <= report.sent <= 640, report
    assert report.acked == report.sent


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.integration
def test_sigterm_mid_run_flushes_prints_summary_and_all_acked_are_readable(
    stack_env: dict[str, str], new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(3, with_dlq=False)
    ids_file = tmp_path / "acked.txt"
    process = subprocess.Popen(
        [PYTHON, "faking_data.py", "--topic", topic, "--rate", "2000", "--acked-ids-file", str(ids_file)],
        cwd=REPO,
        env=clean_env(stack_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()  # "... producing to <topic> ..." once it is sending
        assert "producing to" in line, line
        deadline = (
            time.monotonic() + 30
        )  # let it get a few hundred acknowledged (a slow machine takes longer)
        while time.monotonic() < deadline and _lines(ids_file) < 500:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    assert "stopped_by=SIGTERM" in summary
    assert "failed=0" in summary
    acked = ids_file.read_text().split()
    assert len(acked) >= 1
    assert f"acked={len(acked)}" in summary
    records = consume_all(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic, len(acked))
    assert {events.decode(m.value())["event_id"] for m in records} == set(acked)
    assert len(records) == len(acked)


@pytest.mark.integration
def test_missing_topic_is_one_sentence(stack_env: dict[str, str]) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [PYTHON, "faking_data.py", "--topic", missing, "--count", "5", "--connect-timeout", "5"],
        cwd=REPO,
        env=clean_env(stack_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"topic '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_unreachable_broker_is_one_sentence_within_the_bound(client: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            PYTHON,
            "faking_data.py",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--connect-timeout",
            "3",
            "--count",
            "5",
            "--kafka-client",
            client,
        ],
        cwd=REPO,
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: no Kafka broker answered at 127.0.0.1:1")
    assert "within 3 s" in result.stderr
    assert elapsed < 3 + 10  # the bound plus interpreter start-up on a busy machine


@pytest.mark.parametrize(("flag", "value"), [("--count", "-3"), ("--rate", "abc"), ("--seed", "x")])
def test_bad_flag_on_the_command_line_exits_2(flag: str, value: str) -> None:
    result = subprocess.run(
        [PYTHON, "faking_data.py", flag, value],
        cwd=REPO,
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: argument {flag}:")


def test_bad_environment_value_is_one_sentence() -> None:
    result = subprocess.run(
        [PYTHON, "faking_data.py"],
        cwd=REPO,
        env=clean_env({"LOGLAKE_RATE": "fast"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "error: environment variable LOGLAKE_RATE: 'fast' is not a number"


@pytest.mark.stack
def test_secure_cluster_sasl_scram_over_tls_producers_writer_and_verify() -> None:
    from tests.conftest import extra_stack

    with extra_stack("secure", "--secure") as env:
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        for client in ("confluent", "kafka-python"):
            result = subprocess.run(
                [
                    PYTHON,
                    "faking_data.py",
                    "--count",
                    "500",
                    "--rate",
                    "0",
                    "--quiet",
                    "--kafka-client",
                    client,
                ],
                cwd=REPO,
                env=clean_env(env),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert "sent=500 acked=500 failed=0" in result.stdout
        wrong_password = clean_env({**env, "KAFKA_SASL_PASSWORD": "not-the-password"})
        wrong_ca = clean_env({**env, "KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt"})
        for client in ("confluent", "kafka-python"):
            for wrong, sentence in ((wrong_password, "refused the credentials"), (wrong_ca, "TLS handshake")):
                result = subprocess.run(
                    [
                        PYTHON,
                        "faking_data.py",
                        "--count",
                        "5",
                        "--connect-timeout",
                        "5",
                        "--kafka-client",
                        client,
                    ],
                    cwd=REPO,
                    env=wrong,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 1
                assert result.stderr.count("\n") == 1, result.stderr
                assert sentence in result.stderr, result.stderr
        # the lake writer and verify on the same secured stack (Kafka SASL_SSL, S3 over https)
        assert env["AWS_ENDPOINT_URL"].startswith("https://")
        landed = subprocess.run(
            [PYTHON, "receive_faking_data.py", "--exit-when-idle", "3", "--idle-flush", "1"],
            cwd=REPO,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert landed.returncode == 0, landed.stderr
        assert "records=1000 " in landed.stdout, landed.stdout
        assert env["KAFKA_SASL_PASSWORD"] not in landed.stdout + landed.stderr
        checked = subprocess.run(
            [PYTHON, "-m", "loglake", "verify"], cwd=REPO, env=clean_env(env), capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "in_lake=1000 " in checked.stdout and "result=OK" in checked.stdout, checked.stdout
        for command in (["receive_faking_data.py"], ["-m", "loglake", "verify"]):
            refused = subprocess.run(
                [PYTHON, *command, "--connect-timeout", "5"],
                cwd=REPO,
                env=wrong_password,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert refused.returncode == 1, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert "refused the credentials" in refused.stderr, refused.stderr


@pytest.mark.faults
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_broker_killed_and_restarted_mid_run_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, client: str
) -> None:
    from tests.conftest import extra_stack, stack

    with extra_stack("faults") as env:
        ids_file = tmp_path / "acked.txt"
        process = subprocess.Popen(
            [
                PYTHON,
                "faking_data.py",
                "--rate",
                "1000",
                "--count",
                "8000",
                "--delivery-timeout",
                "90",
                "--acked-ids-file",
                str(ids_file),
                "--progress-every",
                "1",
                "--kafka-client",
                client,
            ],
            cwd=REPO,
            env=clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert "producing to" in process.stderr.readline()
            time.sleep(2)  # a couple of thousand events in; not an assertion
            stack("kill", "kafka-1", name="faults")
            time.sleep(3)  # the broker stays down for a while
            # In ZooKeeper mode a SIGKILLed broker can only come back once ZooKeeper has expired
            # its old session (its /brokers/ids node "already exists" until then): retry.
            deadline = time.monotonic() + 60
            while stack("start", "kafka-1", name="faults", check=False).returncode != 0:
                assert time.monotonic() < deadline, "kafka-1 did not come back within 60 s"
                time.sleep(2)
            out, err = process.communicate(timeout=150)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert "sent=8000 acked=8000 failed=0" in out
        acked = ids_file.read_text().split()
        assert len(acked) == len(set(acked)) == 8000
        records = consume_all(env["KAFKA_BOOTSTRAP_SERVERS"], "log-data", 8000)
        ids = [events.decode(m.value())["event_id"] for m in records]
        assert len(ids) == 8000, "no duplicates in the topic"
        assert set(ids) == set(acked)


@pytest.mark.faults
def test_events_that_cannot_be_delivered_are_counted_as_failed_and_exit_1(tmp_path: Path) -> None:
    from tests.conftest import extra_stack, stack

    with extra_stack("faults") as env:
        ids_file = tmp_path / "acked.txt"
        process = subprocess.Popen(
            [
                PYTHON,
                "faking_data.py",
                "--rate",
                "500",
                "--count",
                "3000",
                "--delivery-timeout",
                "4",
                "--acked-ids-file",
                str(ids_file),
            ],
            cwd=REPO,
            env=clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert "producing to" in process.stderr.readline()
            time.sleep(1.5)  # some events get through first; not an assertion
            stack("kill", "kafka-1", name="faults")  # and it stays down
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 1
        fields = dict(part.split("=", 1) for part in out.strip().splitlines()[-1].split()[1:])
        sent, acked, failed = int(fields["sent"]), int(fields["acked"]), int(fields["failed"])
        assert sent == 3000
        assert failed > 0
        assert acked + failed + int(fields["in_flight"]) == sent
        assert len(ids_file.read_text().split()) == acked
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: {sent - acked} of {sent} events were not acknowledged"), last
