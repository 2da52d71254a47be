"""The producer against the real broker of the default stack (and the command line's failures)."""

from __future__ import annotations

import dataclasses
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake import events
from loglake.fake import FakeLogs
from loglake.produce import DeliveryReport, produce
from loglake.settings import KafkaSettings, ProducerSettings
from tests.processes import Child, Finished, Processes
from tests.waiting import KafkaProbe, records_to_end, wait_for_records, wait_unacknowledged, wait_until


def settings_for(stack_env: dict[str, str], topic: str, **changes) -> ProducerSettings:
    kafka = KafkaSettings(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"], connect_timeout=10)
    return dataclasses.replace(
        ProducerSettings(kafka=kafka, topic=topic, quiet=True, rate=0, linger_ms=5), **changes
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("client", "keep_ids"),
    [("confluent", True), ("confluent", False), ("kafka-python", True)],
    ids=["confluent", "confluent-acks-counted", "kafka-python"],
)
def test_n_events_produced_are_n_distinct_readable_events(
    stack_env: dict[str, str], new_topic: Callable[..., str], client: str, keep_ids: bool
) -> None:
    """Without ids to keep, confluent-kafka reports failed records only and the acknowledged ones
    are counted: the same records arrive, with their keys, timestamps and headers."""
    topic = new_topic(3, with_dlq=False)
    settings = settings_for(stack_env, topic, count=3000, producer_id="test-producer")
    settings = dataclasses.replace(settings, kafka_client=client)
    report = produce(settings, keep_acked_ids=keep_ids)
    assert report.ok, report
    assert (report.sent, report.acked, report.failed) == (3000, 3000, 0)

    records = list(records_to_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic))
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
    if keep_ids:
        assert ids == set(report.acked_ids or [])
    else:
        assert report.acked_ids is None
    assert all(len(p) == 1 for p in partitions_of_user.values()), "one user's events on one partition"
    assert len({p for ps in partitions_of_user.values() for p in ps}) == 3


@pytest.mark.integration
def test_same_seed_same_events(stack_env: dict[str, str], new_topic: Callable[..., str]) -> None:
    runs = []
    for _ in range(2):
        topic = new_topic(3, with_dlq=False)
        report = produce(settings_for(stack_env, topic, count=500, seed=1234, rate=0))
        assert report.ok, report
        records = list(records_to_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic))
        assert len(records) == 500
        per_partition: dict[int, list[tuple[int, bytes, bytes, int]]] = defaultdict(list)
        for m in records:
            per_partition[m.partition()].append((m.offset(), m.key(), m.value(), m.timestamp()[1]))
        runs.append({p: sorted(rs) for p, rs in per_partition.items()})
    assert runs[0] == runs[1]
    first = min(events.decode(v)["event_time"] for rs in runs[0].values() for _, _, v, _ in rs)
    assert first == "2026-01-01T00:00:00.000Z"  # the seeded clock's start


# ----------------------------------------------------------------- pacing, on a fake clock


class FakeClockProducer:
    """A LogProducer on a fake clock, for the pacing logic: waiting (`poll`) moves the clock on by
    the time waited, sending a chunk costs `cost(i)` seconds (chunk i; 0 = an infinitely fast
    machine), and every record is acknowledged at once. It records when each chunk was sent."""

    reports_successes = True

    def __init__(self, cost: Callable[[int], float] = lambda _i: 0.0) -> None:
        self.now = 5000.0
        self.cost = cost
        self.sends: list[tuple[float, int]] = []  # (fake time, records) of each send_many
        self.waited = 0.0
        self._polls = 0

    def monotonic(self) -> float:
        return self.now

    def check_topic(self, topic: str) -> int:
        return 3

    def send_many(self, records, headers, on_result) -> None:
        records = list(records)
        self.sends.append((self.now, len(records)))
        assert len(self.sends) < 10_000, "the send loop does not end"
        for _key, value, _timestamp in records:
            on_result(None, value)
        self.now += self.cost(len(self.sends) - 1)

    def poll(self, timeout: float = 0.0) -> None:
        self._polls += 1
        assert self._polls < 10_000, "the send loop does not end"
        self.now += timeout
        self.waited += timeout

    def in_flight(self) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None:
        pass

    def never_ahead(self, rate: float, started: float) -> None:
        """No chunk went out before its first event was due: events sent before it <= rate * time."""
        before = 0
        for at, n in self.sends:
            assert before <= rate * (at - started) + 1e-6, f"{before} events sent by {at - started:.3f} s"
            before += n


@pytest.fixture(scope="module")
def generator() -> FakeLogs:
    return FakeLogs(seed=5)


def paced(generator: FakeLogs, fake: FakeClockProducer, **settings) -> DeliveryReport:
    kafka = KafkaSettings(bootstrap_servers="fake:9092")
    wanted = ProducerSettings(kafka=kafka, topic="t", quiet=True, **settings)
    return produce(wanted, generator=generator, producer=fake, monotonic=fake.monotonic)


def test_pacing_sends_each_chunk_when_it_is_due_not_before(generator: FakeLogs) -> None:
    fake = FakeClockProducer()
    started = fake.now
    report = paced(generator, fake, rate=200, duration=3.0)
    assert report.ok and report.sent == report.acked == 600  # rate x duration, exactly
    assert report.elapsed == pytest.approx(3.0)
    assert {n for _, n in fake.sends} == {10}  # chunks of 50 ms worth
    fake.never_ahead(200, started)
    before = 0
    for at, n in fake.sends:  # an infinitely fast machine sends each chunk the moment it is due
        assert at - started == pytest.approx(before / 200, abs=1e-6)
        before += n


def test_pacing_on_a_machine_too_slow_for_the_rate_sends_without_waiting(generator: FakeLogs) -> None:
    fake = FakeClockProducer(cost=lambda _i: 0.08)  # a chunk of 10 takes 80 ms; the rate needs 50
    started = fake.now
    report = paced(generator, fake, rate=200, duration=3.0)
    assert fake.waited == 0  # always behind: it never waits
    assert report.sent == 10 * 38  # chunks at 0, 0.08, ... 2.96 s: what the machine could do, no more
    fake.never_ahead(200, started)


def test_pacing_makes_up_for_a_stall_and_still_never_runs_ahead(generator: FakeLogs) -> None:
    fake = FakeClockProducer(cost=lambda i: 1.0 if i == 10 else 0.0)  # chunk 10 stalls for 1 s
    started = fake.now
    report = paced(generator, fake, rate=200, duration=3.0)
    assert report.sent == 600  # the stall is made up for within the run
    fake.never_ahead(200, started)
    stall_ended = fake.sends[10][0] + 1.0
    burst = [at for at, _ in fake.sends if at == pytest.approx(stall_ended)]
    assert len(burst) == 20  # the chunks due during the stall (0.55 ... 1.50 s) go out at once after it


def test_count_with_a_rate_ends_after_count_events(generator: FakeLogs) -> None:
    fake = FakeClockProducer()
    started = fake.now
    report = paced(generator, fake, rate=100, count=52)
    assert report.ok and report.sent == 52
    assert [n for _, n in fake.sends] == [5] * 10 + [2]
    assert fake.sends[-1][0] - started == pytest.approx(0.5)  # the last chunk when it was due
    fake.never_ahead(100, started)


def test_rate_0_never_waits(generator: FakeLogs) -> None:
    fake = FakeClockProducer(cost=lambda _i: 0.01)
    report = paced(generator, fake, rate=0, count=2500)
    assert report.ok and report.sent == 2500
    assert [n for _, n in fake.sends] == [1000, 1000, 500]
    assert fake.waited == 0


@pytest.mark.integration
def test_the_real_clock_paces_too(stack_env: dict[str, str], new_topic: Callable[..., str]) -> None:
    """On the real clock and broker the pacing holds its upper bound on any machine: a chunk goes
    out only once its first event is due, so `duration` s at `rate` sends at most rate x duration
    (the achieved rate, which depends on the machine, is a figure of `scripts/bench producer`)."""
    topic = new_topic(1, with_dlq=False)
    report = produce(settings_for(stack_env, topic, rate=200, duration=2.0))
    assert report.ok, report
    assert 0 < report.sent <= 400, report
    assert report.acked == report.sent
    assert KafkaProbe(stack_env["KAFKA_BOOTSTRAP_SERVERS"]).in_topic(topic) == report.sent


def first_line(process: Child) -> str:
    """The first line the producer writes to stderr ("... producing to <topic> ..." once it is sending)."""
    return wait_until(process.lines, 120, "the producer's first line", alive=[process])[0]


@pytest.mark.integration
def test_sigterm_mid_run_flushes_prints_summary_and_all_acked_are_readable(
    processes: Processes, stack_env: dict[str, str], new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(3, with_dlq=False)
    ids_file = tmp_path / "acked.txt"
    process = processes.producer(
        stack_env, "--topic", topic, "--rate", "2000", "--acked-ids-file", str(ids_file)
    )
    line = first_line(process)
    assert "producing to" in line, line
    wait_for_records(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic, 500, "before SIGTERM", [process])
    process.send_signal(signal.SIGTERM)  # mid-run: it has no --count and no --duration
    code, out, err = process.finish(60)
    assert code == 0, err
    summary = out.strip().splitlines()[-1].split()
    assert "stopped_by=SIGTERM" in summary
    assert "failed=0" in summary and "in_flight=0" in summary
    acked = ids_file.read_text().split()
    assert len(acked) >= 500  # what was in the topic before the signal, acknowledged in the end
    assert f"acked={len(acked)}" in summary
    records = list(records_to_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic))
    assert {events.decode(m.value())["event_id"] for m in records} == set(acked)
    assert len(records) == len(acked)


@pytest.mark.integration
def test_missing_topic_is_one_sentence(processes: Processes, stack_env: dict[str, str]) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    flags = ["--topic", missing, "--count", "5", "--connect-timeout", "5"]
    result = processes.producer(stack_env, *flags).finish(60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"topic '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_unreachable_broker_is_one_sentence_within_the_bound(processes: Processes, client: str) -> None:
    started = time.monotonic()
    result = processes.producer(
        {},
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--connect-timeout",
        "3",
        "--count",
        "5",
        "--kafka-client",
        client,
    ).finish(60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: no Kafka broker answered at 127.0.0.1:1")
    assert "within 3 s" in result.stderr
    assert elapsed < 3 + 10  # the bound plus interpreter start-up on a busy machine


@pytest.mark.parametrize(("flag", "value"), [("--count", "-3"), ("--rate", "abc"), ("--seed", "x")])
def test_bad_flag_on_the_command_line_exits_2(processes: Processes, flag: str, value: str) -> None:
    result = processes.producer({}, flag, value).finish(60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: argument {flag}:")


def test_bad_environment_value_is_one_sentence(processes: Processes) -> None:
    result = processes.producer({"LOGLAKE_RATE": "fast"}).finish(60)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: environment variable LOGLAKE_RATE: 'fast' is not a number"


def faking_data_unreachable(processes: Processes, *args: str, env: dict[str, str] | None = None) -> Finished:
    """faking_data.py pointed at a port nobody listens on: what it does before and instead of sending."""
    flags = (*args, "--connect-timeout", "2", "--bootstrap-servers", "127.0.0.1:1")
    return processes.producer(env or {}, *flags).finish(60)


def test_an_endless_unpaced_run_is_refused_unless_asked_for(processes: Processes) -> None:
    """`--rate 0` with no --count and no --duration would fill Kafka's disk within minutes: refused in
    one sentence before anything connects (flag or environment), unless --until-stopped asks for it,
    which the run then says in one line at start."""
    for result in (
        faking_data_unreachable(processes, "--rate", "0"),
        faking_data_unreachable(processes, env={"LOGLAKE_RATE": "0"}),
    ):
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: --rate 0 without --count or --duration")
        assert "--until-stopped" in result.stderr
    for bound in (["--count", "5"], ["--duration", "5"], ["--until-stopped"]):
        lines = faking_data_unreachable(processes, "--rate", "0", *bound).stderr.splitlines()
        assert lines[-1].startswith("error: no Kafka broker answered"), lines
        said = [line for line in lines if "until stopped" in line]
        if bound == ["--until-stopped"]:
            assert len(said) == 1 and " WARNING " in said[0] and "as fast as possible" in said[0], lines
        else:
            assert not said, lines


@pytest.mark.stack
def test_secure_cluster_sasl_scram_over_tls_producers_writer_and_verify(processes: Processes) -> None:
    from tests.conftest import extra_stack

    with extra_stack("secure", "--secure") as env:
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        for client in ("confluent", "kafka-python"):
            flags = ["--count", "500", "--rate", "0", "--quiet", "--kafka-client", client]
            result = processes.producer(env, *flags).finish(120)
            assert result.returncode == 0, result.stderr
            assert "sent=500 acked=500 failed=0" in result.stdout
        wrong_password = {**env, "KAFKA_SASL_PASSWORD": "not-the-password"}
        wrong_ca = {**env, "KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt"}
        for client in ("confluent", "kafka-python"):
            for wrong, sentence in ((wrong_password, "refused the credentials"), (wrong_ca, "TLS handshake")):
                flags = ["--count", "5", "--connect-timeout", "5", "--kafka-client", client]
                result = processes.producer(wrong, *flags).finish(120)
                assert result.returncode == 1
                assert result.stderr.count("\n") == 1, result.stderr
                assert sentence in result.stderr, result.stderr
        # the lake writer and verify on the same secured stack (Kafka SASL_SSL, S3 over https)
        assert env["AWS_ENDPOINT_URL"].startswith("https://")
        landed = processes.writer(env, "--exit-when-idle", "3", "--idle-flush", "1").finish(180)
        assert landed.returncode == 0, landed.stderr
        assert "records=1000 " in landed.stdout, landed.stdout
        assert env["KAFKA_SASL_PASSWORD"] not in landed.stdout + landed.stderr
        checked = processes.start(["-m", "loglake", "verify"], env, "verify").finish(300)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "in_lake=1000 " in checked.stdout and "result=OK" in checked.stdout, checked.stdout
        for command in (["receive_faking_data.py"], ["-m", "loglake", "verify"]):
            refused = processes.start([*command, "--connect-timeout", "5"], wrong_password, "refused").finish(
                120
            )
            assert refused.returncode == 1, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert "refused the credentials" in refused.stderr, refused.stderr


@pytest.mark.faults
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_broker_killed_and_restarted_mid_run_loses_nothing_and_duplicates_nothing(
    processes: Processes, tmp_path: Path, client: str
) -> None:
    from tests.conftest import extra_stack, stack

    with extra_stack("faults") as env:
        ids_file = tmp_path / "acked.txt"
        process = processes.producer(
            env,
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
        )
        wait_for_records(env["KAFKA_BOOTSTRAP_SERVERS"], "log-data", 2000, "before the kill", [process])
        stack("kill", "kafka-1", name="faults")
        # The outage lasts until 1,000 events sent into it wait for the broker (they are what the
        # restart must deliver), as the producer's own progress lines (every 1 s) tell.
        wait_unacknowledged(process, 1000)
        # A SIGKILLed ZooKeeper-mode broker can only register again once ZooKeeper has expired its
        # old session: `start` waits that out (up to its --timeout).
        stack("start", "kafka-1", "--timeout", "120", name="faults", timeout=180)
        code, out, err = process.finish(150)
        assert code == 0, err
        assert "sent=8000 acked=8000 failed=0" in out
        acked = ids_file.read_text().split()
        assert len(acked) == len(set(acked)) == 8000
        records = list(records_to_end(env["KAFKA_BOOTSTRAP_SERVERS"], "log-data"))
        ids = [events.decode(m.value())["event_id"] for m in records]
        assert len(ids) == 8000, "no duplicates in the topic"
        assert set(ids) == set(acked)


@pytest.mark.faults
@pytest.mark.parametrize("keep_ids", [True, False], ids=["acks-reported", "acks-counted"])
def test_events_that_cannot_be_delivered_are_counted_as_failed_and_exit_1(
    processes: Processes, tmp_path: Path, keep_ids: bool
) -> None:
    """With an acknowledged-ids file every outcome is reported; without, only failures are, and the
    acknowledged records are counted (sent - failed - in flight): the same figures either way."""
    from tests.conftest import extra_stack, stack

    with extra_stack("faults") as env:
        ids_file = tmp_path / "acked.txt"
        flags = ["--rate", "500", "--count", "3000", "--delivery-timeout", "4"]
        process = processes.producer(env, *flags, *(["--acked-ids-file", str(ids_file)] if keep_ids else []))
        assert "producing to" in first_line(process)
        wait_for_records(env["KAFKA_BOOTSTRAP_SERVERS"], "log-data", 500, "before the kill", [process])
        stack("kill", "kafka-1", name="faults")  # and it stays down
        code, out, err = process.finish(120)
        assert code == 1
        fields = dict(part.split("=", 1) for part in out.strip().splitlines()[-1].split()[1:])
        sent, acked, failed = int(fields["sent"]), int(fields["acked"]), int(fields["failed"])
        assert sent == 3000
        assert failed > 0
        assert acked + failed + int(fields["in_flight"]) == sent
        assert acked > 0  # most of the records read back before the kill were acknowledged
        if keep_ids:
            assert len(ids_file.read_text().split()) == acked
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: {sent - acked} of {sent} events were not acknowledged"), last
