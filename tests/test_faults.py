"""The whole pipeline under faults: every acknowledged event in the lake exactly once.

Each scenario is bounded in time, loopback only, and ends with `verify` plus an independent count:
the event_ids read straight from the topic against the event_ids found in the lake.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import psutil
import pytest

from tests.conftest import create_topic, extra_stack, record, stack
from tests.oracles import exactly_once
from tests.processes import Child, Processes
from tests.s3proxy import FlakyS3Proxy
from tests.waiting import KafkaProbe, kafka_errors, wait_unacknowledged, wait_until

pytestmark = pytest.mark.faults


class Sampler:
    """Calls `sample()` every `interval` s in a daemon thread until `close()`: a measurement's pace."""

    def __init__(self, interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Committed(Sampler):
    """Samples a group's committed total every 0.25 s in a thread, to time stalls and recoveries."""

    def __init__(self, env: dict[str, str], topic: str, group: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.samples: list[tuple[float, int]] = []
        self._parts = [TopicPartition(topic, p) for p in range(3)]
        self._consumer = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group})
        super().__init__(0.25)

    def sample(self) -> None:
        try:
            found = self._consumer.committed(self._parts, timeout=2)
        except Exception:  # the broker may be the thing that is down
            return
        self.samples.append((time.monotonic(), sum(max(0, tp.offset) for tp in found)))

    def at(self, moment: float) -> int:
        return max((total for t, total in self.samples if t <= moment), default=0)

    def advanced_after(self, moment: float) -> float | None:
        """Seconds from `moment` until the committed total first rose above its value then."""
        base = self.at(moment)
        return next((t - moment for t, total in self.samples if t > moment and total > base), None)

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time within [start, end] during which the committed total did not rise."""
        rises = [start] + [t for (_, before), (t, total) in pairwise(self.samples) if total > before]
        rises = [t for t in rises if start <= t <= end] + [end]
        return max(b - a for a, b in pairwise(rises))

    def close(self) -> None:
        super().close()
        self._consumer.close()


class PeakRss(Sampler):
    """Samples a process's resident memory every 0.5 s in a thread; `peak` in MiB."""

    def __init__(self, process: Child) -> None:
        self.peak = 0.0
        self._process = psutil.Process(process.pid)
        super().__init__(0.5)

    def sample(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.peak = max(self.peak, self._process.memory_info().rss / 2**20)


def summary_counts(stdout: str) -> tuple[int, int, int]:
    """(sent, acked, failed) from the producer's summary line."""
    found = re.search(r"sent=(\d+) acked=(\d+) failed=(\d+)", stdout)
    assert found, stdout
    sent, acked, failed = (int(x) for x in found.groups())
    return sent, acked, failed


def start_producer(
    processes: Processes,
    env: dict[str, str],
    topic: str,
    count: int,
    rate: int,
    ids: Path,
    progress: bool = False,
) -> Child:
    """faking_data.py, its acknowledged ids in `ids`; with `progress`, a progress line (sent, acked)
    every second on stderr."""
    return processes.producer(
        env,
        "--topic",
        topic,
        "--count",
        str(count),
        "--rate",
        str(rate),
        *(["--progress-every", "1"] if progress else ["--quiet"]),
        "--acked-ids-file",
        str(ids),
        "--delivery-timeout",
        "90",
    )


def topic_flags(topic: str) -> list[str]:
    """A fault writer's topic, and the group and prefix that `check` looks at."""
    return ["--topic", topic, "--group", f"g-{topic}", "--prefix", f"faults-{topic}"]


def start_writer(processes: Processes, env: dict[str, str], topic: str, *extra: str) -> Child:
    flags = ["--quiet", "--batch-records", "3000", "--batch-age", "3"]
    return processes.writer(env, *topic_flags(topic), *flags, *extra)


def wait_caught_up(env: dict[str, str], topic: str, limit: float = 180) -> None:
    """Until the writers' group has committed every record of the topic (its lag is 0)."""
    probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
    wait_until(
        lambda: probe.lag(topic, f"g-{topic}"),
        limit,
        f"group g-{topic} to commit every record of {topic} (records behind)",
        ok=lambda lag: lag == 0,
        interval=1,
        retry_on=kafka_errors(),
    )


def wait_landing(env: dict[str, str], topic: str, at_least: int, what: str, alive: list) -> int:
    """Until the writers' group has committed `at_least` offsets of `topic`; the total committed."""
    probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
    return wait_until(
        lambda: probe.committed_total(topic, f"g-{topic}"),
        120,
        f"group g-{topic} to commit {at_least:,} offsets ({what})",
        ok=lambda total: total >= at_least,
        retry_on=kafka_errors(),
        alive=alive,
    )


def check(
    env: dict[str, str], topic: str, acked_file: Path | None = None, dead: int | None = None
) -> dict[str, int]:
    """verify + the independent counts (tests/oracles.py) for a topic the fault writers landed."""
    result = exactly_once(env, topic, f"faults-{topic}", f"g-{topic}", acked_file, dead)
    return result.totals()


def test_broker_killed_in_a_three_broker_cluster(processes, tmp_path):
    with extra_stack("faults", "--brokers", "3") as env:
        topic = create_topic(
            env["KAFKA_BOOTSTRAP_SERVERS"], 3, replication=3, extra={"min.insync.replicas": "2"}
        )
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, replication=3, name=topic + ".dlq")
        ids = tmp_path / "acked.txt"
        producer = start_producer(processes, env, topic, 60_000, 5_000, ids)
        writer = start_writer(processes, env, topic)
        progress = Committed(env, topic, f"g-{topic}")
        probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
        wait_landing(env, topic, 3_000, "the writer landed its first batches", alive=[producer, writer])
        in_topic = probe.in_topic(topic)
        killed = time.monotonic()
        stack("kill", "kafka-2", name="faults")  # SIGKILL, mid-run
        # It stays down until the cluster has carried on without it: 5,000 events written after the kill
        # (the topic held `in_topic` just before it) acknowledged, read and landed with kafka-2 down.
        wait_landing(
            env, topic, in_topic + 5_000, "events sent after the kill landed with kafka-2 down", [writer]
        )
        back = time.monotonic()
        stack("start", "kafka-2", name="faults", timeout=180)
        code, _out, err = producer.finish(240)
        assert code == 0, err  # every event acknowledged despite the lost broker
        wait_caught_up(env, topic)
        progress.close()
        code, _out, err = writer.stop(120)
        assert code == 0, err
        totals = check(env, topic, ids)
        assert totals["in_lake"] == 60_000 == len(ids.read_text().split())
        record(
            "3 brokers (RF 3, min ISR 2): one SIGKILLed mid-run at 5,000 events/s, started again once "
            f"5,000 later events had landed without it ({back - killed:.0f} s)",
            60_000,
            60_000,
            totals,
            f"longest commit stall while it was down {progress.longest_stall(killed, back):.1f} s (until "
            "its ZooKeeper session expires and leaders and in-sync replicas move), then on without it",
        )


def test_rebalance_storm_three_writers_started_and_stopped_at_random(
    processes, stack_env, new_topic, tmp_path
):
    topic = new_topic(3)
    rng = random.Random(42)
    ids = tmp_path / "acked.txt"
    producer = start_producer(processes, stack_env, topic, 40_000, 2_000, ids)
    writers = [start_writer(processes, stack_env, topic) for _ in range(3)]
    progress = Committed(stack_env, topic, f"g-{topic}")
    began = time.monotonic()
    deadline = began + 20
    stops = Counter()
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.5, 3.5))  # pacing on purpose: the storm's random rhythm, not a wait
        i = rng.randrange(3)
        how = rng.choice([signal.SIGTERM, signal.SIGKILL])
        writers[i].send_signal(how)
        writers[i].finish(120)
        stops[how.name] += 1
        writers[i] = start_writer(processes, stack_env, topic)
    code, _out, err = producer.finish(120)
    assert code == 0, err
    wait_caught_up(stack_env, topic)
    progress.close()
    for w in writers:
        w.send_signal(signal.SIGTERM)
    for w in writers:
        code, _out, err = w.finish(120)
        assert code == 0, err
    assert stops["SIGKILL"] and stops["SIGTERM"], stops
    totals = check(stack_env, topic, ids)
    assert totals["in_lake"] == 40_000
    record(
        f"rebalance storm: 3 writers, {stops['SIGTERM']} SIGTERM + {stops['SIGKILL']} SIGKILL in 20 s, 2,000 events/s",
        40_000,
        40_000,
        totals,
        f"longest commit stall {progress.longest_stall(began, deadline):.1f} s (a SIGKILLed member is "
        "evicted after the 10 s session timeout)",
    )


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


def test_garbage_at_volume_goes_to_dead_letters_and_good_events_land_once(
    processes, stack_env, new_topic, tmp_path
):
    from confluent_kafka import Producer

    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    writer = start_writer(processes, stack_env, topic, "--max-record-bytes", "2048")
    producer = start_producer(processes, stack_env, topic, 30_000, 2_000, ids)
    progress = Committed(stack_env, topic, f"g-{topic}")
    began = time.monotonic()
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
        time.sleep(0.1)  # pacing on purpose: ~300 garbage records/s, not a wait for anything
    assert junk.flush(30) == 0
    code, _out, err = producer.finish(120)
    assert code == 0, err
    wait_caught_up(stack_env, topic)
    progress.close()
    assert writer.poll() is None, "the writer stopped on bad input"
    code, _out, err = writer.stop(120)
    assert code == 0, err
    totals = check(stack_env, topic, ids, dead=sent)
    assert totals["in_lake"] == 30_000
    record(
        f"bad input: {sent:,} garbage records (~300/s, 11 kinds) beside 2,000 events/s",
        30_000 + sent,
        30_000 + sent,
        totals,
        f"writer never restarted; longest commit gap {progress.longest_stall(began, stop_at):.1f} s",
    )


def test_single_broker_restarted_mid_run(processes, tmp_path):
    """One broker, SIGKILLed and started again: producer and writer reconnect by themselves; the
    producer's summary counts what was acknowledged, and exactly that is in the lake."""
    with extra_stack("zkfault") as env:
        topic = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3)
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, name=topic + ".dlq")
        ids = tmp_path / "acked.txt"
        producer = start_producer(processes, env, topic, 30_000, 1_000, ids, progress=True)
        writer = start_writer(processes, env, topic)
        progress = Committed(env, topic, f"g-{topic}")
        wait_landing(env, topic, 3_000, "the writer landed its first batches", alive=[producer, writer])
        killed = time.monotonic()
        stack("kill", "kafka-1", name="zkfault")
        # It stays down until 2,000 events sent into the outage wait for it (the producer's progress
        # line, every 1 s); `start` then waits out the killed broker's ZooKeeper session.
        wait_unacknowledged(producer, 2_000)
        stack("start", "kafka-1", name="zkfault", timeout=180)
        back = time.monotonic()
        code, out, err = producer.finish(240)
        sent, acked, failed = summary_counts(out)
        assert sent == 30_000 and acked + failed == sent, out
        assert acked == len(ids.read_text().split()), "the summary and the acknowledged ids disagree"
        assert code == (0 if failed == 0 else 1), (out, err)
        wait_caught_up(env, topic)
        progress.close()
        assert writer.poll() is None, "the writer gave up while the broker was away"
        code, _out, err = writer.stop(120)
        assert code == 0, err
        totals = check(env, topic, ids)
        assert totals["in_lake"] == acked
        record(
            "1 broker SIGKILLed mid-run at 1,000 events/s, started again once 2,000 events waited for it "
            f"(down {back - killed:.0f} s)",
            sent,
            acked,
            totals,
            f"commits resumed {progress.advanced_after(back):.1f} s after the broker was back",
        )


def test_zookeeper_stopped_and_restarted_mid_run(processes, tmp_path):
    """ZooKeeper mode: with ZooKeeper gone the broker keeps serving its partition leaders, so
    producing, consuming and committing go on; what needs the controller (creating a topic) stalls."""
    from confluent_kafka.admin import AdminClient, NewTopic

    with extra_stack("zkfault") as env:
        topic = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3)
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], 3, name=topic + ".dlq")
        ids = tmp_path / "acked.txt"
        producer = start_producer(processes, env, topic, 25_000, 1_000, ids)
        writer = start_writer(processes, env, topic)
        probe = KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"])
        at_kill = wait_landing(env, topic, 3_000, "the writer landed its first batches", [producer, writer])
        stopped = time.monotonic()
        stack("kill", "zookeeper", name="zkfault")
        admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        new = f"{topic}-during-outage"
        future = admin.create_topics([NewTopic(new, 1, 1)], operation_timeout=5, request_timeout=8)[new]
        try:
            future.result(timeout=10)
            created = "created"
        except Exception as exc:
            created = f"{'timed out' if '_TIMED_OUT' in str(exc) else 'refused'} ({str(exc)[:60]})"
        # ZooKeeper stays down until 10,000 more offsets are committed: more than the flushes in flight
        # at the kill could hold (3 partitions x --batch-records 3000), so committing went on without it.
        during = (
            wait_landing(env, topic, at_kill + 10_000, "committed with ZooKeeper down", [producer, writer])
            - at_kill
        )
        down = time.monotonic() - stopped
        stack("start", "zookeeper", name="zkfault", timeout=120)
        code, out, err = producer.finish(240)
        assert code == 0, (out, err)
        wait_caught_up(env, topic)
        code, _out, err = writer.stop(120)
        assert code == 0, err
        totals = check(env, topic, ids)
        assert totals["in_lake"] == 25_000 == probe.in_topic(topic)
        print(f"faults-observation zookeeper-down: committed {during} more; create topic: {created}")
        record(
            f"ZooKeeper SIGKILLed for {down:.0f} s at 1,000 events/s (ZooKeeper mode, 1 broker)",
            25_000,
            25_000,
            totals,
            f"no stop: {during:,} events committed while it was down; creating a topic: {created.split(' (')[0]}",
        )


def rss_mib(process: Child) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def test_slow_and_flaky_lake(processes, stack_env, new_topic, tmp_path):
    """S3 behind a proxy that answers 20% of requests with 503 SlowDown, drops 5% of connections and
    delays the rest by up to 0.4 s: exactly once at the end, the writer's memory bounded."""
    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    with FlakyS3Proxy(stack_env["AWS_ENDPOINT_URL"], fail_rate=0.2, drop_rate=0.05, max_delay=0.4) as proxy:
        writer = start_writer(
            processes, {**stack_env, "AWS_ENDPOINT_URL": proxy.url}, topic, "--batch-records", "1000"
        )
        memory = PeakRss(writer)
        producer = start_producer(processes, stack_env, topic, 30_000, 2_000, ids)
        code, _out, err = producer.finish(240)
        assert code == 0, err
        wait_landing(stack_env, topic, 30_000, "every event landed through the flaky lake", [writer])
        memory.close()
        peak = memory.peak
        code, _out, err = writer.stop(120)
        assert code == 0, err
        counts = dict(proxy.counts)
    assert counts.get("503", 0) > 0 and counts.get("dropped", 0) > 0, counts
    totals = check(stack_env, topic, ids)
    assert totals["in_lake"] == 30_000
    assert 0 < peak < 400, f"the writer's memory grew to {peak:.0f} MiB"
    record(
        f"lake slow and flaky: {counts.get('503', 0)} answers 503, {counts.get('dropped', 0)} connections "
        f"dropped, {counts.get('forwarded', 0)} delayed 0-0.4 s",
        30_000,
        30_000,
        totals,
        f"never stopped; writer peak RSS {peak:.0f} MiB",
    )


SOAK_SECONDS = int(os.environ.get("LOGLAKE_SOAK_SECONDS", "180"))


@pytest.mark.timeout(SOAK_SECONDS + 400)
def test_soak_with_a_writer_restart_every_minute(processes, stack_env, new_topic, tmp_path):
    """Steady production for LOGLAKE_SOAK_SECONDS (180 by default) at 1,000 events/s; one writer
    runs throughout (its memory is sampled), a second one in the group is restarted every 60 s,
    alternately with SIGTERM and SIGKILL."""
    seconds = SOAK_SECONDS
    rate = 1_000
    topic = new_topic(3)
    ids = tmp_path / "acked.txt"
    producer = start_producer(processes, stack_env, topic, seconds * rate, rate, ids)
    steady = start_writer(processes, stack_env, topic, "--batch-age", "10")
    restarted = start_writer(processes, stack_env, topic, "--batch-age", "10")
    began = time.monotonic()
    first_rss = None
    restarts = 0
    next_restart = began + 60
    end_by = began + seconds + 120
    # The schedule is the scenario (RSS at 30 s, a restart every 60 s): between two of its moments the
    # test waits on the producer itself, so it also wakes the moment the producer ends.
    while producer.poll() is None:
        now = time.monotonic()
        assert now < end_by, "the producer did not finish"
        if first_rss is None and now - began >= 30:
            first_rss = rss_mib(steady)
        if now >= next_restart:
            restarted.send_signal(signal.SIGKILL if restarts % 2 else signal.SIGTERM)
            restarted.finish(120)
            restarted = start_writer(processes, stack_env, topic, "--batch-age", "10")
            restarts += 1
            next_restart += 60
        next_moment = min(next_restart, end_by, began + 30 if first_rss is None else end_by)
        producer.wait(max(0.0, next_moment - time.monotonic()))
    code, _out, err = producer.finish(10)  # it has exited: the loop ends with it
    assert code == 0, err
    wait_caught_up(stack_env, topic)
    last_rss = rss_mib(steady)
    assert steady.poll() is None, "the long-running writer stopped"
    for w in (steady, restarted):
        w.send_signal(signal.SIGTERM)
    for w in (steady, restarted):
        code, _out, err = w.finish(120)
        assert code == 0, err
    totals = check(stack_env, topic, ids)
    assert totals["in_lake"] == seconds * rate
    assert first_rss is not None and restarts >= 2
    assert last_rss < first_rss * 1.5 + 50, f"the writer grew from {first_rss:.0f} to {last_rss:.0f} MiB"
    print(
        f"faults-observation soak: {seconds} s, {restarts} restarts, RSS {first_rss:.0f} -> {last_rss:.0f} MiB"
    )
    record(
        f"soak: {seconds} s at {rate:,} events/s, a second writer restarted every 60 s ({restarts}x, "
        "SIGTERM/SIGKILL)",
        seconds * rate,
        seconds * rate,
        totals,
        f"steady writer RSS {first_rss:.0f} MiB at 30 s, {last_rss:.0f} MiB at the end",
    )
