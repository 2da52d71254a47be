"""Faults that come together, on the real stack: the sequences that once lost or duplicated events.

- a rebalance while one writer is cut off from the lake, with its uploads delivered late (after the
  partition's new owner landed them) through a proxy that holds requests;
- a writer paused (SIGSTOP) past its session timeout, with an upload held in flight, while its successor
  runs, then resumed: a zombie;
- one of two writers of a group SIGKILLed mid-run, its partitions landed by the other;
- two writers starting at the same moment on a new prefix, creating a missing dead-letter topic;
- restarts, each after a SIGKILL mid-run, with other batch sizes, formats, compressions, layouts;
- a record larger than the dead-letter topic takes (a poison pill, before: a crash on every restart);
- a writer that exits on idle while its group still has records to land says so, and verify says
  which offsets are pending.

The first four rest on the S3 server's answers to racing conditional creates, so they run on both
servers (`lake_env`: versitygw and MinIO; docs/development.md says why these).

Each ends with `verify` (every offset once in the lake or the dead letters, claims tiling the
offsets) and the independent count: the event_ids read straight from the topic against the lake's,
and the producer's acknowledged ids against the lake's.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from loglake import layout
from tests.conftest import create_topic, new_topic_in, record, s3_client
from tests.processes import Child, Processes
from tests.s3proxy import FlakyS3Proxy
from tests.test_faults import check, start_producer, topic_flags, wait_caught_up
from tests.waiting import KafkaProbe, kafka_errors, wait_until

pytestmark = pytest.mark.faults


def start_writer(processes: Processes, env: dict[str, str], topic: str, *extra: str) -> Child:
    """receive_faking_data.py with a progress line every second, whose log lines the test waits for."""
    return processes.writer(env, *topic_flags(topic), "--progress-every", "1", *extra)


def wait_committed(env: dict[str, str], topic: str, more_than: int, timeout: float) -> int:
    probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
    return wait_until(
        lambda: probe.committed_total(topic, f"g-{topic}"),
        timeout,
        f"group g-{topic} to commit past {more_than}",
        ok=lambda n: n > more_than,
        retry_on=kafka_errors(),
    )


def run_out(
    env: dict[str, str], topic: str, producer: Child, writers: list[Child], ids: Path, events: int
) -> dict[str, int]:
    """The end of a scenario: the producer done (exit 0), the group caught up, each writer stopped
    (exit 0), then `check`; the lake holds all `events`. Its totals."""
    code, _out, err = producer.finish(120)
    assert code == 0, err
    wait_caught_up(env, topic)
    for w in writers:
        code, _out, _err = w.stop()
        assert code == 0, w.text()[-3000:]
    totals = check(env, topic, ids)
    assert totals["in_lake"] == events
    return totals


def lake_keys(env: dict[str, str], prefix: str) -> list[str]:
    s3 = s3_client(env)
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["LAKE_BUCKET"], Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def release_and_finish(
    proxy: FlakyS3Proxy, producer: Child, env: dict[str, str], topic: str, writers: list[Child]
) -> tuple[int, dict[str, int], float]:
    """The proxy lets the requests it held reach the lake (late, after the new owner's); the producer
    ends, the group catches up, the writers stop cleanly. (requests held, how S3 answered them late,
    seconds from the release until the group had committed everything)"""
    held = proxy.counts["held"]
    proxy.mode = "pass"
    late = time.monotonic()
    code, _out, err = producer.finish(120)
    assert code == 0, err
    wait_caught_up(env, topic)
    recovered = time.monotonic() - late
    for w in writers:
        code, _out, _err = w.stop()
        assert code == 0, w.text()[-3000:]
    return held, {k: v for k, v in proxy.counts.items() if k.startswith("late")}, recovered


def test_rebalance_while_a_writer_is_cut_off_from_the_lake_and_its_uploads_arrive_late(
    processes, lake_env, s3_server, tmp_path
):
    """The measured loss of the old writer (13,242 of 40,000 events): writer A reaches the lake
    through a proxy; the proxy holds A's requests (a lake that stopped answering); writer B joins and
    takes partitions from A; A gives them up after its grace; B lands them; then the proxy delivers
    A's held uploads to the lake, late."""
    topic = new_topic_in(lake_env, 3)
    ids = tmp_path / "acked.txt"
    producer = start_producer(processes, lake_env, topic, 40_000, 2_000, ids)
    with FlakyS3Proxy.passing(lake_env) as proxy:
        a = start_writer(processes, proxy.route(lake_env), topic, "--batch-records", "2000")
        a.wait_for("assigned partitions [0, 1, 2]", 60)
        base = wait_committed(lake_env, topic, 0, 60)
        proxy.mode = "hold"  # from here A's requests hang, and will reach the lake later
        a.wait_for("failed", 60)  # an upload of A timed out: a batch of A is unresolved
        b = start_writer(processes, lake_env, topic, "--batch-records", "1500")
        a.wait_for("revoked", 90)  # the rebalance took partitions from A while its uploads hang
        wait_committed(lake_env, topic, base, 60)  # B lands the partitions it got
        held, late_answers, recovered = release_and_finish(proxy, producer, lake_env, topic, [a, b])
    assert held >= 1 and sum(late_answers.values()) >= 1, proxy.counts
    totals = check(lake_env, topic, ids)
    assert totals["in_lake"] == 40_000
    record(
        f"[{s3_server}] rebalance while one writer's lake requests hang; they reach S3 late, after the "
        f"new owner's ({held} held, answers {late_answers})",
        40_000,
        40_000,
        totals,
        f"caught up {recovered:.1f} s after the link came back",
    )


def kind_of(request_line: str) -> str:
    """What a request of the proxy wrote: a claim, other bookkeeping, or a data object."""
    if f"/{layout.BOOKKEEPING}" not in request_line:
        return "object"
    return "claim" if "/claims/" in request_line else "bookkeeping"


def test_zombie_writer_paused_past_its_session_while_its_successor_runs(
    processes, lake_env, s3_server, tmp_path
):
    """Writer A reaches the lake through a proxy that, from a moment on, holds A's PUTs (claims and
    objects) and passes its reads; A is SIGSTOPped while the proxy holds at least one of them, so an
    upload of A is provably in flight when it freezes. B takes every partition over and lands; then
    the proxy delivers A's held PUTs, late, after B's, and A wakes: exactly once all the same."""
    topic = new_topic_in(lake_env, 3)
    ids = tmp_path / "acked.txt"
    probe = KafkaProbe(lake_env["KAFKA_BOOTSTRAP_SERVERS"])
    producer = start_producer(processes, lake_env, topic, 30_000, 1_000, ids)
    with FlakyS3Proxy.passing(lake_env) as proxy:
        a = start_writer(
            processes, proxy.route(lake_env), topic, "--batch-records", "1200", "--batch-age", "2"
        )
        a.wait_for("assigned partitions [0, 1, 2]", 60)
        wait_committed(lake_env, topic, 0, 60)
        proxy.mode = "hold-puts"  # A's next upload stays in the air
        wait_until(lambda: list(proxy.parked), 60, "a PUT of A held by the proxy", interval=0.01, alive=[a])
        a.send_signal(signal.SIGSTOP)  # a zombie: alive, silent, past its 10 s session
        in_flight = list(proxy.parked)  # what A had in the air when it froze (held while A is stopped)
        paused = time.monotonic()
        assert in_flight and all(line.startswith("PUT ") for line in in_flight), in_flight
        at_pause = probe.committed_total(topic, f"g-{topic}")
        b = start_writer(processes, lake_env, topic, "--batch-records", "1000", "--batch-age", "2")
        b.wait_for("assigned partitions [0, 1, 2]", 90)  # the group evicted A and gave B everything
        taken_over = time.monotonic() - paused
        wait_committed(lake_env, topic, at_pause, 60)  # B landed past where A stopped
        assert proxy.parked, "the proxy let A's held PUTs go before B took over"
        proxy.mode = "pass"  # A's held PUTs reach the lake now, after B's
        late = wait_until(
            lambda: {k: v for k, v in proxy.counts.items() if k.startswith("late")},
            60,
            f"the {len(in_flight)} held PUTs delivered late",
            ok=lambda answers: sum(answers.values()) >= len(in_flight),
        )
        a.send_signal(signal.SIGCONT)  # A wakes with batches gathered and its uploads answered late
        a.wait_for("lost", 60)
        totals = run_out(lake_env, topic, producer, [a, b], ids, 30_000)
    record(
        f"[{s3_server}] zombie: a writer SIGSTOPped past its 10 s session with {len(in_flight)} PUT(s) "
        f"in flight ({', '.join(map(kind_of, in_flight))}) while its successor runs, then resumed; "
        f"late answers {late}",
        30_000,
        30_000,
        totals,
        f"successor owned every partition {taken_over:.1f} s after the pause",
    )


def test_one_of_two_writers_in_a_group_sigkilled_mid_run(processes, lake_env, s3_server, tmp_path):
    """Two writers share the group while events arrive; one is SIGKILLed right after it landed a batch
    (its next one likely in the air: a claim without its objects, or objects without their commit).
    The other takes its partitions once its session expires and lands the claims it left, then a
    restarted writer joins again."""
    topic = new_topic_in(lake_env, 3)
    ids = tmp_path / "acked.txt"
    producer = start_producer(processes, lake_env, topic, 30_000, 2_000, ids)
    a, b = (start_writer(processes, lake_env, topic, "--batch-records", "1000") for _ in range(2))

    def landed(w: Child) -> int:
        found = w.last(r" objects=(\d+) ")
        return int(found.group(1)) if found else 0

    for w in (a, b):  # the group is shared: each lands partitions of its own
        wait_until(lambda w=w: landed(w), 90, "each writer landing a batch of its own", alive=[a, b])
    before = landed(a)
    wait_until(lambda: landed(a), 60, "writer A landing one more batch", ok=lambda n: n > before, alive=[a])
    a.kill()  # SIGKILL right after a landing
    killed = time.monotonic()
    seen = len(b.lines())
    wait_until(  # A's session expired: B owns every partition
        lambda: [line for line in b.lines()[seen:] if "(now [0, 1, 2])" in line],
        90,
        "writer B taking every partition after the kill",
        alive=[b],
    )
    taken_over = time.monotonic() - killed
    again = start_writer(processes, lake_env, topic, "--batch-records", "1000")
    totals = run_out(lake_env, topic, producer, [b, again], ids, 30_000)
    record(
        f"[{s3_server}] one of two writers of a group SIGKILLed right after it landed a batch, at 2,000 "
        "events/s; a writer started again",
        30_000,
        30_000,
        totals,
        f"the other owned every partition {taken_over:.1f} s after the kill (the 10 s session)",
    )


def test_restarts_with_other_settings_after_sigkill_mid_run(processes, stack_env, new_topic, tmp_path):
    """While events arrive, each writer is SIGKILLed right after it landed a batch of its own (its next
    one likely in the air), and the next one starts with other batch sizes, format, compression and
    layout: it first lands the claims left in flight with their recipe, then its own."""
    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    # while the writers come and go:
    producer = start_producer(processes, stack_env, topic, 60_000, 3_000, ids)
    prefix = f"faults-{topic}/"
    runs = [  # settings, and how to recognise an object written with them
        (("--batch-records", "3000"), lambda key: key.endswith(".jsonl.gz") and "/dt=" in key),
        (
            ("--batch-records", "1700", "--format", "json", "--compression", "none"),
            lambda key: key.endswith(".json"),
        ),
        (("--batch-records", "2500", "--layout", "partition"), lambda key: "/partition=" in key),
        (("--batch-records", "900", "--compression", "none"), lambda key: key.endswith(".jsonl")),
    ]
    for settings, made_by_it in runs:
        w = start_writer(processes, stack_env, topic, *settings)
        wait_until(
            lambda made_by_it=made_by_it: [
                k for k in lake_keys(stack_env, prefix) if layout.BOOKKEEPING not in k and made_by_it(k)
            ],
            90,
            f"an object written with {settings}",
            alive=[w],
        )
        w.kill()
    code, _out, err = producer.finish(180)
    assert code == 0, err
    final = start_writer(processes, stack_env, topic, "--exit-when-idle", "3")
    code, out, _err = final.finish(240)
    assert code == 0, final.text()[-3000:]
    assert "unlanded=0" in out, final.text()[-6000:]
    kinds = {
        k.rsplit("/", 1)[-1].split(".", 1)[1]
        for k in lake_keys(stack_env, prefix)
        if layout.BOOKKEEPING not in k
    }
    assert kinds == {"jsonl.gz", "json", "jsonl"}, kinds
    totals = check(stack_env, topic, ids)
    assert totals["in_lake"] == 60_000
    record(
        "4 writers in turn, each SIGKILLed after landing a batch of its own, each with other batch size, "
        "format, compression or layout; then one more to the end",
        60_000,
        60_000,
        totals,
        "claims left in flight landed with their own recipe",
    )


def test_two_writers_starting_at_the_same_moment_on_a_new_prefix(processes, lake_env, tmp_path):
    """Both race for the prefix's first conditional creates (the store's probe, owner.json, the key
    generation) and for the missing dead-letter topic, and hand partitions over in their first
    seconds; three rounds, a fresh topic and prefix each."""
    for _ in range(3):
        topic = create_topic(lake_env["KAFKA_BOOTSTRAP_SERVERS"], 3)  # no .dlq
        ids = tmp_path / f"{topic}.txt"
        producer = start_producer(processes, lake_env, topic, 2_000, 0, ids)
        assert producer.finish(120).returncode == 0
        pair = [start_writer(processes, lake_env, topic, "--exit-when-idle", "3") for _ in range(2)]
        for w in pair:
            code, _out, _err = w.finish(240)
            assert code == 0, w.text()[-3000:]
        assert check(lake_env, topic, ids)["in_lake"] == 2_000


@pytest.mark.parametrize("dead_letter_topic", ["made by the writer", "made before, too small"])
def test_a_record_larger_than_the_dead_letter_topic_takes_is_kept_and_the_partition_moves_on(
    processes, stack_env, tmp_path, dead_letter_topic
):
    from confluent_kafka import Producer

    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = create_topic(bootstrap, 1, extra={"max.message.bytes": str(4 * 1024 * 1024)})
    if dead_letter_topic == "made before, too small":
        create_topic(bootstrap, 1, name=topic + ".dlq")  # the broker's 1 MB default
    ids = tmp_path / "acked.txt"
    assert start_producer(processes, stack_env, topic, 500, 0, ids).finish(120).returncode == 0
    big = (
        b'{"event_id":"huge","event_time":"2026-11-24T21:00:00Z","event_type":"x","pad":"'
        + b"p" * 2_500_000
        + b'"}'
    )
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4 * 1024 * 1024})
    producer.produce(topic, big, key=b"junk-poison")  # junk-: a dead letter, not an event, for check()
    assert producer.flush(30) == 0
    more = start_producer(processes, stack_env, topic, 500, 0, tmp_path / "more.txt")
    assert more.finish(120).returncode == 0
    for _ in range(2):  # a restart meets the same record: it must not stop there again
        w = start_writer(processes, stack_env, topic, "--exit-when-idle", "3")
        code, _out, _err = w.finish(240)
        assert code == 0, w.text()[-3000:]
    totals = check(stack_env, topic, None, dead=1)
    assert totals["in_lake"] == 1_000
    kept = lake_keys(stack_env, layout.dead_letter_key(f"faults-{topic}", topic, 0, 500))
    assert len(kept) == (1 if dead_letter_topic == "made before, too small" else 0)


def test_a_writer_exiting_on_idle_while_its_group_has_lag_says_so(processes, stack_env, new_topic, tmp_path):
    """Another member of the group holds a partition without landing it: the idle writer's summary
    names what is left, and verify reports it as pending (exit 3), not as landed."""
    from confluent_kafka import Consumer

    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    assert start_producer(processes, stack_env, topic, 3_000, 0, ids).finish(120).returncode == 0
    squatter = Consumer(
        {
            "bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"g-{topic}",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
        }
    )
    squatter.subscribe([topic])
    deadline = time.monotonic() + 30
    while not squatter.assignment() and time.monotonic() < deadline:
        squatter.poll(0.2)
    assert squatter.assignment()
    w = start_writer(processes, stack_env, topic, "--exit-when-idle", "3")
    stop_polling = threading.Event()

    def keep_polling() -> None:  # a live member: it takes part in the rebalance, lands nothing
        while not stop_polling.is_set():
            squatter.poll(0.2)

    keeper = threading.Thread(target=keep_polling)
    keeper.start()
    try:
        code, out, _err = w.finish(240)
    finally:
        stop_polling.set()
        keeper.join(10)
        squatter.close()
    assert code == 0, w.text()[-3000:]
    unlanded = int(out.split("unlanded=")[1].split()[0])
    assert unlanded > 0 and "not landed" in w.text()
    verify = ["-m", "loglake", "verify", "--topic", topic, "--prefix", f"faults-{topic}"]
    result = processes.start(verify, stack_env, "verify").finish(120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"pending={unlanded}" in result.stdout and "result=PENDING" in result.stdout
