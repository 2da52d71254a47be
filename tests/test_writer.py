"""The lake writer on the real stack: exactly once with two writers, after SIGKILL, after SIGTERM,
through a lake outage; dead letters for every kind of bad record; no commit when the lake fails; one
sentence for what a user can get wrong. Each exactly-once check is verify plus the independent count
of tests/oracles.py."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request

import pytest

from loglake import deadletter
from loglake.verify import VerifyResult
from tests.conftest import create_topic, extra_stack, new_topic_in, record, stack
from tests.oracles import exactly_once
from tests.processes import Child, Processes
from tests.s3proxy import FlakyS3Proxy
from tests.waiting import KafkaProbe, kafka_errors, records_to_end, wait_until

pytestmark = pytest.mark.integration


def producer_flags(topic: str, count: int, rate: float = 0, seed: int | None = None) -> list[str]:
    flags = ["--topic", topic, "--count", str(count), "--rate", str(rate), "--quiet"]
    return flags if seed is None else [*flags, "--seed", str(seed)]


def writer_flags(topic: str, *extra: str, group: str | None = None) -> list[str]:
    """The writer on `topic`, in its own group and prefix; quiet unless `extra` asks for progress."""
    return [
        "--topic",
        topic,
        "--group",
        group or f"g-{topic}",
        "--prefix",
        f"test-{topic}",
        *(extra if "--progress-every" in extra else ("--quiet", *extra)),
    ]


def fill(processes: Processes, env: dict[str, str], topic: str, count: int, seed: int | None = None) -> None:
    """`count` events into `topic`, as fast as the producer goes."""
    code, _out, err = processes.producer(env, *producer_flags(topic, count, seed=seed)).finish(300)
    assert code == 0, err


def start_writer(
    processes: Processes,
    env: dict[str, str],
    topic: str,
    *extra: str,
    group: str | None = None,
) -> Child:
    return processes.writer(env, *writer_flags(topic, *extra, group=group))


def check_exactly_once(env: dict[str, str], topic: str, expected: int) -> VerifyResult:
    result = exactly_once(env, topic, f"test-{topic}", f"g-{topic}")
    assert result.totals()["expected"] == expected
    return result


def committed_total(env: dict[str, str], topic: str) -> int:
    probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
    return wait_until(
        lambda: probe.committed_total(topic, f"g-{topic}"),
        30,
        "the committed offsets",
        ok=lambda _: True,
        retry_on=kafka_errors(),
    )


def test_two_writers_land_100k_events_exactly_once(processes, stack_env, new_topic):
    topic = new_topic(3)
    fill(processes, stack_env, topic, 100_000)
    pair = [
        start_writer(processes, stack_env, topic, "--exit-when-idle", "8", "--batch-records", "7000")
        for _ in range(2)
    ]
    for output in pair:
        code, out, err = output.finish(240)
        assert code == 0, err
        assert "landed topic=" in out
        # the group shared: each writer owned partitions at some point (one may have found the
        # topic landed already by the time it got them)
        assert re.search(r"assigned partitions \[\d", err), err[-2000:]
    result = check_exactly_once(stack_env, topic, 100_000)
    assert result.objects >= 6  # several batches, not one object per event


def test_exit_when_idle_lands_everything_and_exits_zero(processes, stack_env, new_topic):
    topic = new_topic(3)
    fill(processes, stack_env, topic, 2_000, seed=7)
    code, out, err = start_writer(processes, stack_env, topic, "--exit-when-idle", "3").finish(120)
    assert code == 0, err
    assert "records=2000" in out and "unlanded=0" in out
    check_exactly_once(stack_env, topic, 2_000)


def test_writer_killed_mid_run_and_restarted_lands_exactly_once(processes, stack_env, new_topic):
    topic = new_topic(3)
    fill(processes, stack_env, topic, 60_000)
    first = start_writer(processes, stack_env, topic, "--batch-records", "3000")
    probe = KafkaProbe(stack_env["KAFKA_BOOTSTRAP_SERVERS"])
    wait_until(
        lambda: probe.committed_total(topic, f"g-{topic}"),
        90,
        "a first commit",
        retry_on=kafka_errors(),
        alive=[first],
    )
    first.send_signal(signal.SIGKILL)  # in the middle of flushing and committing batches
    first.finish(30)
    before = committed_total(stack_env, topic)
    assert 0 < before < 60_000, before
    code, _out, err = start_writer(
        processes, stack_env, topic, "--batch-records", "3000", "--exit-when-idle", "5"
    ).finish(240)
    assert code == 0, err
    check_exactly_once(stack_env, topic, 60_000)


def test_sigterm_flushes_commits_and_exits_zero(processes, stack_env, new_topic):
    """The batch is far larger than the topic, the age and idle flush far away: only SIGTERM lands it."""
    topic = new_topic(3)
    fill(processes, stack_env, topic, 5_000)
    output = start_writer(
        processes,
        stack_env,
        topic,
        "--batch-records",
        "1000000",
        "--batch-age",
        "600",
        "--idle-flush",
        "600",
        "--progress-every",
        "1",
    )
    wait_until(
        lambda: output.last(r"records=5000 buffered=5000 .* commits=0"),
        90,
        "a progress line showing all 5,000 records read and none committed",
        alive=[output],
    )
    assert committed_total(stack_env, topic) == 0
    output.send_signal(signal.SIGTERM)
    code, _out, err = output.finish(60)
    assert code == 0, err
    check_exactly_once(stack_env, topic, 5_000)


def imported(child: Child, module: str) -> bool:
    """Whether `python -X importtime`'s log of `child` (on stderr, a line as each import ends) shows
    `module` imported."""
    return any(line.rsplit("|", 1)[-1].strip() == module for line in child.lines() if "import time:" in line)


@pytest.mark.parametrize("script", ["receive_faking_data.py", "faking_data.py"])
def test_sigterm_while_the_modules_still_load_is_a_clean_stop(processes, stack_env, new_topic, script):
    """A SIGTERM a few ms after the command began (a service manager or a test stopping what it has
    just started) is "stop cleanly": exit 0, the summary line, no traceback; before, it arrived before
    the handler, which main() installed after the imports, and killed the process (-15, no output).
    The test reads the interpreter's import log (`-X importtime`) and signals as soon as the command's
    own imports have begun (argparse is the first that loglake/cli.py and loglake/produce.py load),
    while the rest still load: five times each."""
    topic = new_topic(3)
    writer = script == "receive_faking_data.py"
    flags = writer_flags(topic) if writer else producer_flags(topic, 1_000, 100)
    summary, command_module = (
        ("landed topic=", "loglake.cli") if writer else ("produced topic=", "loglake.produce")
    )
    early = 0
    for _ in range(5):
        child = processes.start(["-X", "importtime", script, *flags], stack_env, "early")
        wait_until(lambda child=child: imported(child, "argparse"), 60, "argparse imported", interval=0.001,
                   alive=[child])  # fmt: skip
        child.send_signal(signal.SIGTERM)
        early += not imported(child, command_module)  # the signal came before its modules had loaded
        code, out, err = child.finish(120)
        assert code == 0, err[-3000:]
        assert "Traceback" not in err and summary in out, (out, err[-3000:])
    assert early >= 1, "every SIGTERM came after the command's modules had loaded: the test missed the window"


def test_each_kind_of_bad_record_becomes_a_dead_letter(processes, stack_env, new_topic):
    from confluent_kafka import Producer

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
        producer.produce(topic, value, key=b"junk-" + kind.encode(), headers=[("origin", b"test")])
    producer.produce(topic, None, key=b"junk-null-value")
    producer.produce(topic, b'{"event_id":"good-2","event_time":"2026-11-24T22:00:00Z","event_type":"click"}')
    assert producer.flush(30) == 0
    output = start_writer(processes, stack_env, topic, "--exit-when-idle", "3", "--max-record-bytes", "2048")
    code, _out, err = output.finish(240)
    assert code == 0, err

    result = check_exactly_once(stack_env, topic, len(bad) + 3)
    assert set(result.event_ids) == {"good-1", "good-2"}
    kinds = {}
    for m in records_to_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], topic + ".dlq"):
        headers = dict(m.headers())
        kind = m.key().decode().removeprefix("junk-")
        kinds[kind] = headers[deadletter.HEADER_KIND].decode()
        assert headers[deadletter.HEADER_TOPIC].decode() == topic
        assert headers[deadletter.HEADER_ERROR]
        assert int(headers[deadletter.HEADER_OFFSET]) >= 0 and headers[deadletter.HEADER_TIMESTAMP]
        if kind != "null-value":
            assert headers["origin"] == b"test"  # the original headers travel with the dead letter
            assert m.value() == bad[kind]  # the original bytes
    assert kinds == {k: k for k in bad} | {"null-value": "empty-value"}


def test_lake_failure_after_records_are_buffered_commits_nothing_and_exits_nonzero(
    processes, stack_env, new_topic
):
    """The lake fails once the writer holds records it has read: it retries for --max-retry-time, then
    exits non-zero with one sentence, and the group has committed nothing past what is stored. The
    writer reaches the lake through a proxy, lands a first 1,000 events, then the proxy cuts every
    request and 1,000 more arrive: their batches are read, launched and refused."""
    topic = new_topic(3)
    probe = KafkaProbe(stack_env["KAFKA_BOOTSTRAP_SERVERS"])
    fill(processes, stack_env, topic, 1_000)
    with FlakyS3Proxy.passing(stack_env) as proxy:
        batches = ("--batch-records", "250", "--idle-flush", "1", "--progress-every", "1")
        output = start_writer(processes, proxy.route(stack_env), topic, *batches, "--max-retry-time", "3")
        stored = probe.end_offsets(topic)
        wait_until(
            lambda: probe.committed(topic, f"g-{topic}"),
            90,
            f"the first 1,000 events landed and committed {stored}",
            ok=lambda committed: committed == stored,
            retry_on=kafka_errors(),
            alive=[output],
        )
        proxy.mode = "cut"  # from here every request of the writer's is dropped
        fill(processes, stack_env, topic, 1_000)
        code, _out, err = output.finish(120)
    assert code == 1, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [err.splitlines()[-1]], err[-3000:]  # one sentence, the last line
    assert "--max-retry-time 3" in errors[0] and "was committed" in errors[0], errors
    # it failed landing records it had read after the cut: batches of the second 1,000, buffered
    refused = [
        (int(p), int(first))
        for p, first in re.findall(r"landing partition (\d+) offsets (\d+)\.\.\d+ failed", err)
    ]
    assert any(first >= stored[p] for p, first in refused), (stored, refused)
    assert probe.in_topic(topic) == 2_000
    # nothing past what is stored: the group's offsets are where the first 1,000 ended, and verify
    # finds every offset below them in the lake once
    assert probe.committed(topic, f"g-{topic}") == stored
    verify = ["-m", "loglake", "verify", "--topic", topic, "--prefix", f"test-{topic}"]
    code, out, err = processes.start(
        [*verify, "--group", f"g-{topic}", "--to-committed"], stack_env, "verify"
    ).finish(120)
    assert code == 0, out + err
    assert "in_lake=1000 " in out and "result=OK" in out, out


@pytest.mark.parametrize(
    ("variable", "value"), [("AWS_SECRET_ACCESS_KEY", "wrong-secret"), ("AWS_ACCESS_KEY_ID", "nobody")]
)
def test_refused_credentials_are_one_clear_sentence(processes, lake_env, variable, value):
    """A wrong secret is 403 SignatureDoesNotMatch on both servers; an unknown access key is 403
    InvalidAccessKeyId on MinIO but 404 XAdminUserNotFound on versitygw: either way one sentence that
    names the variable to fix."""
    topic = new_topic_in(lake_env, 1)
    env = dict(lake_env, **{variable: value})
    code, _out, err = start_writer(processes, env, topic, "--exit-when-idle", "2").finish(60)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert "refused" in err and variable in err, err


def test_another_group_cannot_reland_into_the_same_prefix(processes, stack_env, new_topic):
    topic = new_topic(3)
    fill(processes, stack_env, topic, 500)
    assert start_writer(processes, stack_env, topic, "--exit-when-idle", "2").finish(240)[0] == 0
    code, _out, err = start_writer(
        processes, stack_env, topic, "--exit-when-idle", "2", group="someone-else"
    ).finish(240)
    assert code == 1
    assert "would store events twice" in err
    check_exactly_once(stack_env, topic, 500)


@pytest.mark.faults
def test_lake_down_for_20_seconds_mid_run(processes):
    """S3 stopped mid-run: nothing is committed while it is down (checked while 10,000 more records
    arrive, ~10 s), the writer keeps its place in the group; everything lands after."""
    with extra_stack("w1") as env:
        topic = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3)
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, name=topic + ".dlq")
        probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
        producer = processes.producer(env, *producer_flags(topic, 30_000, rate=1000))
        output = start_writer(
            processes,
            env,
            topic,
            "--batch-records",
            "2000",
            "--batch-age",
            "2",
            "--progress-every",
            "2",
        )
        group = f"g-{topic}"
        wait_until(
            lambda: probe.committed_total(topic, group),
            90,
            "the writer landing its first batches",
            ok=lambda n: n >= 3000,
            retry_on=kafka_errors(),
            alive=[output],
        )
        stack("kill", "s3", name="w1")
        killed = time.monotonic()
        # a flight in the air when S3 died may still have committed: measure once the writer has seen it
        wait_until(
            lambda: output.last(r"landing partition \d+ .* failed"),
            60,
            "a failed upload",
            alive=[output],
        )
        during = probe.committed_total(topic, group)
        in_topic = probe.in_topic(topic)
        wait_until(
            lambda: probe.in_topic(topic),
            60,
            "10,000 more records while the lake is down",
            ok=lambda n: n >= min(30_000, in_topic + 10_000),
            alive=[producer],
        )
        assert probe.committed_total(topic, group) == during, "committed while the lake was down"
        assert output.poll() is None, "the writer gave up while the lake was down"
        down_for = time.monotonic() - killed
        stack("start", "s3", name="w1")
        back = time.monotonic()
        wait_until(
            lambda: probe.committed_total(topic, group),
            120,  # backoff may wait up to 15 s before it sees the lake back
            "a commit after the lake came back",
            ok=lambda n: n > during,
            interval=0.25,
            retry_on=kafka_errors(),
        )
        recovered = time.monotonic() - back
        code, _out, err = producer.finish(120)
        assert code == 0, err
        try:
            wait_until(
                lambda: probe.lag(topic, group),
                120,
                "the writer to catch up",
                ok=lambda lag: lag == 0,
                retry_on=kafka_errors(),
            )
        except AssertionError as stuck:
            raise AssertionError(f"{stuck}\nthe writer's log ends:\n{output.text()[-6000:]}") from None
        output.send_signal(signal.SIGTERM)
        code, _out, err = output.finish(180)
        assert code == 0, err
        totals = check_exactly_once(env, topic, 30_000).totals()
        record(
            f"S3 server SIGKILLed for {down_for:.0f} s mid-run at 1,000 events/s (nothing committed meanwhile, checked)",
            30_000,
            30_000,
            totals,
            f"commits resumed {recovered:.1f} s after S3 was back (backoff is capped at 15 s)",
        )


def start_with_metrics(processes: Processes, env: dict[str, str], topic: str) -> tuple[Child, int]:
    """A writer serving metrics on a port found free; another program may take that port between the
    look and the writer's bind: the writer then says so in one sentence, and we try another port."""
    for _ in range(5):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        output = start_writer(
            processes,
            env,
            topic,
            "--metrics-port",
            str(port),
            "--batch-records",
            "1000",
            "--progress-every",
            "1",
        )
        wait_until(
            lambda output=output: output.poll() is not None or output.last("Prometheus metrics on"),
            60,
            "the metrics endpoint or an exit",
        )
        if output.poll() is None:
            return output, port
        _code, _out, err = output.finish(10)
        assert "cannot serve metrics" in err, err
    raise AssertionError("five free ports were all taken before the writer could bind them")


def test_metrics_port_serves_what_the_writer_did(processes, stack_env, new_topic):
    from confluent_kafka import Producer

    topic = new_topic(3)
    fill(processes, stack_env, topic, 3_000)
    producer = Producer({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"]})
    producer.produce(topic, b"[1]", key=b"junk-array")
    assert producer.flush(10) == 0
    output, port = start_with_metrics(processes, stack_env, topic)
    wanted = (
        "loglake_records_total 3001.0",
        'loglake_dead_letters_total{kind="not-an-object"} 1.0',
        'loglake_lag_records{partition="0"} 0.0',
    )

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    def landed(text: str) -> float:
        found = re.search(r"^loglake_objects_total (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    try:
        text = wait_until(
            scrape,
            60,
            f"metrics showing {wanted} and 3 objects",
            ok=lambda t: all(w in t for w in wanted) and landed(t) >= 3,
            retry_on=(OSError,),
            alive=[output],
        )
    finally:
        output.send_signal(signal.SIGTERM)
        code, _out, err = output.finish(60)
    assert code == 0, err
    assert re.search(r"^loglake_flush_seconds_count [1-9]", text, re.MULTILINE), text[-3000:]
