"""Geo-replication: MirrorMaker 2 between two native clusters, the lake keys of a mirrored topic, and
a regional failover drill that measures what it costs (docs/geo.md reports the last run).

The drill: region east runs a producer and the lake writer; MirrorMaker 2 copies `log-data` and the
writer's group offsets to region west; the lake lives in west's S3 store. East's broker and writer
are SIGKILLed mid-run (the region is lost); producers and the writer move to west as soon as
MirrorMaker's last translation of the group's offsets has landed there (seconds), the writer
resuming `east.log-data` from the offsets MirrorMaker translated. Measured: (a) events that east
acknowledged but that never reached west, (b) events twice in the lake (by event_id), (c) the
seconds from the kill until the lake grows again.
"""

from __future__ import annotations

import gzip
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from loglake import defaults
from loglake.layout import object_key, sanitize, topic_prefix
from loglake.stack.cluster import StackConfig
from loglake.stack.mirror import ClusterRef, Mirror, mm2_properties
from loglake.stack.mirror_watch import Checkpoint, checkpoints, remote_topic
from loglake.stack.services import Instance
from tests.conftest import REPO, extra_stack, record, s3_client, stack
from tests.oracles import topic_event_ids
from tests.processes import Child, Processes
from tests.waiting import KafkaProbe

STACK_HOME = REPO / ".stack"
RESULTS_FILE = STACK_HOME / "geo-results.md"
GROUP = "geo-drill"  # the writer's group in east, and (synced by MirrorMaker) in west
LOCAL_GROUP = "geo-drill-local"  # the writer of west's own log-data after the failover
PREFIX = "geo"  # east's log-data and west's east.log-data share it: the topic name keeps them apart
WEST_PREFIX = "geo-west"  # west's own log-data has the same topic name as east's: it needs its own
RATE = 1_000
WEST_EVENTS = 8_000
# MirrorMaker syncs translated group offsets every MIRROR_CHECKPOINT_SECONDS: three quiet cycles
# mean its last translation has landed.
SETTLE_SECONDS = 3 * defaults.MIRROR_CHECKPOINT_SECONDS


def props(text: str) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def test_mm2_configuration_names_the_flow_the_policy_and_the_intervals():
    conf = props(
        mm2_properties(ClusterRef("east", "127.0.0.1:9092", 1), ClusterRef("west", "127.0.0.1:9192", 3))
    )
    assert conf["clusters"] == "east, west"
    assert conf["east->west.enabled"] == "true" and conf["west->east.enabled"] == "false"
    assert conf["east->west.topics"] == defaults.TOPIC
    assert conf["replication.policy.class"].endswith(".DefaultReplicationPolicy")
    assert conf["sync.group.offsets.enabled"] == "true"
    assert conf["emit.checkpoints.interval.seconds"] == str(defaults.MIRROR_CHECKPOINT_SECONDS)
    # every topic MirrorMaker creates gets the replicas of the cluster it lives in
    assert conf["east->west.replication.factor"] == "3"
    assert conf["east->west.offset-syncs.topic.replication.factor"] == "1"  # in the source
    assert conf["west.offset.storage.replication.factor"] == "3"
    assert conf["east.config.storage.replication.factor"] == "1"


@pytest.mark.parametrize("topic", ["log-data", "log-data.dlq", "a", "x_y-z.1", "t" * 120])
def test_a_mirrored_topic_lands_under_keys_that_never_meet_the_source_topic_keys(topic):
    """Under the default replication policy the remote topic is `<alias>.<topic>`; keys start with
    the sanitised topic name, so the source's and the mirror's objects live in disjoint folders,
    even under one prefix, for every legal Kafka topic name up to the limits tested below."""
    mirrored = remote_topic("east", topic)
    for prefix in ("", "geo", "geo/lake/"):
        source_folder, mirror_folder = topic_prefix(prefix, topic), topic_prefix(prefix, mirrored)
        assert not source_folder.startswith(mirror_folder) and not mirror_folder.startswith(source_folder)
        same_place = ("dt=2026-11-25/hour=10", 2, 12_345, "jsonl.gz")
        folder, partition, offset, ext = same_place
        assert object_key(prefix, topic, folder, partition, offset, ext) != object_key(
            prefix, mirrored, folder, partition, offset, ext
        )


def test_where_the_sanitised_topic_name_stops_being_enough():
    """Kafka topic names use only letters, digits, `.`, `_` and `-`, all of which `sanitize` keeps:
    two different names meet only through the `..` -> `__` rewrite or beyond 128 characters. A
    cluster's own `log-data` and another cluster's `log-data` meet by construction: landing both
    needs two prefixes (docs/geo.md)."""
    assert sanitize("east.log-data") == "east.log-data"
    assert sanitize("a..b") == sanitize("a__b")
    assert sanitize("x" * 128 + "1") == sanitize("x" * 128 + "2")
    assert topic_prefix(PREFIX, "log-data") == topic_prefix(PREFIX, "log-data")


def test_mirror_names_an_instance_that_is_not_up_in_one_sentence():
    result = stack("mirror", "geo-absent", "geo-absent-too", check=False, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: stack 'geo-absent' is not up; start it first: "
        "scripts/stack --name geo-absent up --port-offset N"
    )
    same = stack("mirror", "geo-absent", "geo-absent", check=False, timeout=60)
    assert same.returncode == 1
    assert "two different instances" in same.stderr


# ------------------------------------------------------------------------------------------------
# The failover drill


def producer(processes: Processes, env: dict[str, str], count: int, ids: Path, name: str) -> Child:
    """faking_data.py, stdout and stderr in one log, `<name>.log` in the test's tmp_path."""
    flags = ["--count", str(count), "--rate", str(RATE), "--quiet", "--acked-ids-file", str(ids)]
    return processes.producer(env, *flags, "--delivery-timeout", "10", name=name, merge_stderr=True)


def writer(
    processes: Processes, env: dict[str, str], topic: str, group: str, prefix: str, name: str
) -> Child:
    flags = ["--topic", topic, "--group", group, "--prefix", prefix, "--quiet"]
    return processes.writer(
        env, *flags, "--batch-age", "2", "--batch-records", "5000", name=name, merge_stderr=True
    )


def lake_env(kafka_of: dict[str, str], lake_of: dict[str, str]) -> dict[str, str]:
    """Kafka of one region, the lake of the other (the lake is west's S3 store in the drill)."""
    keys = (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "LAKE_BUCKET",
    )
    return {**kafka_of, **{k: lake_of[k] for k in keys}}


def keys_under(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


class LakeWatch:
    """Samples, every 0.25 s, how many objects lie under some key prefixes; times the first new one."""

    def __init__(self, env: dict[str, str], prefixes: list[str]) -> None:
        self._s3, self._bucket, self._prefixes = s3_client(env), env["LAKE_BUCKET"], prefixes
        self.first_growth: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            count = sum(len(keys_under(self._s3, self._bucket, p)) for p in self._prefixes)
            if count and self.first_growth is None:
                self.first_growth = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


class LagWatch:
    """Samples the replication lag (records in east's log-data not yet in west's copy) every 0.25 s."""

    def __init__(self, east: dict[str, str], west: dict[str, str], topic: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.samples: list[tuple[float, int]] = []
        self._ends = [
            (Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "geo-lag"}), name)
            for env, name in ((east, topic), (west, remote_topic("east", topic)))
        ]
        self._parts = {name: [TopicPartition(name, p) for p in range(3)] for _, name in self._ends}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                east, west = (
                    sum(c.get_watermark_offsets(tp, timeout=1)[1] for tp in self._parts[name])
                    for c, name in self._ends
                )
            except Exception:  # east is gone: nothing more to sample
                continue
            self.samples.append((time.monotonic(), max(0, east - west)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for consumer, _ in self._ends:
            consumer.close()


def read_lake(env: dict[str, str], prefixes: list[str]) -> dict[str, list[tuple[str, int, int, str]]]:
    """key -> [(topic, partition, offset, event_id)] of every line of every object under `prefixes`."""
    s3 = s3_client(env)
    found: dict[str, list[tuple[str, int, int, str]]] = {}
    for prefix in prefixes:
        for key in keys_under(s3, env["LAKE_BUCKET"], prefix):
            if not key.endswith(".jsonl.gz"):
                continue  # the writer's claim on a prefix (_loglake/owner.json)
            body = gzip.decompress(s3.get_object(Bucket=env["LAKE_BUCKET"], Key=key)["Body"].read())
            rows = []
            for line in body.splitlines():
                event = orjson.loads(line)
                k = event["_kafka"]
                rows.append((k["topic"], k["partition"], k["offset"], event["event_id"]))
            found[key] = rows
    return found


def group_offsets(env: dict[str, str], topic: str, group: str) -> dict[int, int]:
    return KafkaProbe(env["KAFKA_BOOTSTRAP_SERVERS"]).committed(topic, group)


def wait_for(what: str, condition, limit: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {limit:.0f} s"
        time.sleep(every)


def settled(read, quiet: float, agree=lambda value: True, limit: float = 60):
    """What `read()` returns once it has not changed for `quiet` seconds and `agree`s with itself,
    or, if it never agrees, once it has not changed for five times `quiet`."""
    deadline = time.monotonic() + limit
    value, since = read(), time.monotonic()
    while True:
        still = time.monotonic() - since
        if still >= quiet * 5 or (still >= quiet and agree(value)):
            return value
        assert time.monotonic() < deadline, f"still changing after {limit:.0f} s: {value}"
        time.sleep(0.25)
        now = read()
        if now != value:
            value, since = now, time.monotonic()


def caught_up(env: dict[str, str], topic: str, group: str) -> bool:
    return sum(group_offsets(env, topic, group).values()) >= KafkaProbe(
        env["KAFKA_BOOTSTRAP_SERVERS"]
    ).in_topic(topic)


# How long MirrorMaker is frozen (SIGSTOP: a stalled or cut inter-region link) right before the loss.
SCENARIOS = {
    "loopback": 0,  # the copy keeps up: what is lost is the lag of a healthy link
    "link-stalled-5s": 5,  # the link was down for 5 s when the region went: its backlog is lost
}


@pytest.mark.faults
@pytest.mark.timeout(400)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_regional_failover_drill(processes, tmp_path, scenario):
    stall = SCENARIOS[scenario]
    began = time.monotonic()
    with extra_stack("east") as east, extra_stack("west") as west:
        stack("mirror", "east", "west", timeout=180)
        mirrored_topic = remote_topic("east", defaults.TOPIC)
        east_lake, west_lake = lake_env(east, west), west  # one lake, in west's S3 store
        east_ids, west_ids = tmp_path / "acked-east.txt", tmp_path / "acked-west.txt"

        # Region east in normal operation; MirrorMaker copies records and the writer's group offsets.
        east_writer = writer(processes, east_lake, defaults.TOPIC, GROUP, PREFIX, "writer-east")
        east_producer = producer(processes, east, 200_000, east_ids, "producer-east")
        producing = time.monotonic()
        lag = LagWatch(east, west, defaults.TOPIC)
        wait_for(
            "MirrorMaker writing the writer's offsets into west's group",
            lambda: sum(group_offsets(west, mirrored_topic, GROUP).values()) > 0,
            90,
        )
        status = stack("status", name="west")
        again = stack("mirror", "east", "west")  # idempotent: the running mirror is kept
        assert "already running" in again.stderr
        other = stack("mirror", "east", "west", "--topics", "other", check=False)
        assert other.returncode == 1 and "already runs for topics 'log-data'" in other.stderr
        assert "mirror east->west" in status.stdout and "lag log-data->east.log-data" in status.stdout
        time.sleep(max(0.0, producing + 15 - stall - time.monotonic()))
        mirror_pid = Mirror(STACK_HOME, "east", "west").pid()
        assert mirror_pid
        if stall:
            os.kill(mirror_pid, signal.SIGSTOP)
            time.sleep(stall)

        # The region is lost: its broker and its writer are SIGKILLed in the same instant.
        east_instance = Instance(STACK_HOME, StackConfig.load(STACK_HOME / "east" / "stack.json"))
        broker_pid = east_instance.pid("kafka-1")
        assert broker_pid
        killed = time.monotonic()
        os.kill(broker_pid, signal.SIGKILL)
        east_writer.kill()
        east_producer.send_signal(signal.SIGTERM)  # it writes the ids east acknowledged, then exits
        if stall:
            os.kill(mirror_pid, signal.SIGCONT)  # the link is back; east is not
        lag.close()

        # Failover as soon as MirrorMaker's last translation has landed: it may still write west's group
        # offsets a second or two after the loss (a checkpoint computed before the kill, synced after).
        # A writer started earlier would re-land more, never less (MirrorMaker leaves an active group
        # alone), but the drill must know the offsets it resumes from. The writer then resumes
        # east.log-data in west from them; producers write to west's own log-data, which a second
        # writer lands under its own prefix.
        def translation() -> tuple[dict[int, int], dict[int, Checkpoint]]:
            newest = checkpoints(Mirror(STACK_HOME, "east", "west").target, "east")
            return group_offsets(west, mirrored_topic, GROUP), {
                cp.partition: cp for (g, t, _), cp in newest.items() if g == GROUP and t == mirrored_topic
            }

        def synced(found: tuple[dict[int, int], dict[int, Checkpoint]]) -> bool:
            offsets, newest = found  # the group's offsets in west are the newest checkpoints' translation
            return all(offsets.get(p) == cp.downstream_offset for p, cp in newest.items())

        translated, last_checkpoints = settled(translation, SETTLE_SECONDS, synced)
        settled_at = time.monotonic()
        watch = LakeWatch(west_lake, [f"{PREFIX}/{mirrored_topic}/", f"{WEST_PREFIX}/{defaults.TOPIC}/"])
        writers = [
            writer(processes, west_lake, mirrored_topic, GROUP, PREFIX, "writer-west-mirror"),
            writer(processes, west_lake, defaults.TOPIC, LOCAL_GROUP, WEST_PREFIX, "writer-west-local"),
        ]
        west_producer = producer(processes, west, WEST_EVENTS, west_ids, "producer-west")
        outage_status = stack("status", name="west", check=False)

        code, log, _ = west_producer.finish(120)
        assert code == 0, log
        east_producer.finish(60)
        wait_for("the lake growing again", lambda: watch.first_growth is not None, 90)
        wait_for("west's writers catching up", lambda: caught_up(west, mirrored_topic, GROUP), 120, 1)
        wait_for("west's writers catching up", lambda: caught_up(west, defaults.TOPIC, LOCAL_GROUP), 120, 1)
        watch.close()
        for w in writers:
            w.send_signal(signal.SIGTERM)
        for w in writers:
            assert w.finish(120).returncode == 0
        verify = ["-m", "loglake", "verify", "--topic", defaults.TOPIC, "--prefix", WEST_PREFIX]
        verify_west_local = processes.start(verify, west, "verify-west-local").finish(120)
        mirrored_ids = topic_event_ids(west, mirrored_topic)
        mirrored_ends = end_offsets_by_partition(west, mirrored_topic)
        lake = read_lake(west_lake, [f"{PREFIX}/", f"{WEST_PREFIX}/"])
        stack("kill", "mirror-east", name="west")  # SIGKILL: east is gone, a clean stop would wait for it
        stopped_status = stack("status", name="west", check=False)
        assert (
            stopped_status.returncode == 1
            and "stopped" in stopped_status.stdout.split("mirror east->west")[1]
        )

    wall = time.monotonic() - began
    assert "mirror east->west" in outage_status.stdout and "east unreachable" in outage_status.stdout
    for when, out in (("before", status.stdout), ("after", outage_status.stdout)):
        print(f"geo-status {when} the loss:", *(x for x in out.splitlines() if "mirror" in x))
    assert verify_west_local.returncode == 0, verify_west_local.stdout + verify_west_local.stderr

    # Every object holds records of one topic only: source and mirror never share a key.
    spaces = {
        f"{PREFIX}/{defaults.TOPIC}/": defaults.TOPIC,
        f"{PREFIX}/{mirrored_topic}/": mirrored_topic,
        f"{WEST_PREFIX}/{defaults.TOPIC}/": defaults.TOPIC,
    }
    offsets_in: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    lake_ids: Counter[str] = Counter()
    seen_in: dict[str, set[str]] = defaultdict(set)
    for key, rows in lake.items():
        space = next(s for s in spaces if key.startswith(s))
        assert {topic for topic, *_ in rows} <= {spaces[space]}, key
        for _topic, partition, offset, event_id in rows:
            offsets_in[space][(partition, offset)] += 1
            lake_ids[event_id] += 1
            seen_in[event_id].add(space)
    # Inside one cluster, exactly once: no offset twice within a key space.
    for space, counts in offsets_in.items():
        assert max(counts.values()) == 1, f"an offset is twice under {space}"
    # The mirrored topic is landed from the translated offset to its end, each offset once.
    mirror_space = offsets_in[f"{PREFIX}/{mirrored_topic}/"]
    for p, end in mirrored_ends.items():
        start = translated.get(p, 0)
        assert {o for q, o in mirror_space if q == p} == set(range(start, end)), p
    # Nothing that reached west is missing from the lake, nor anything west acknowledged.
    assert set(mirrored_ids) <= set(lake_ids)
    acked_west = set(west_ids.read_text().split())
    assert len(acked_west) == WEST_EVENTS and acked_west <= set(lake_ids)
    # Duplicates only across the failover: once from east's log-data, once from west's copy.
    duplicated = {i: n for i, n in lake_ids.items() if n > 1}
    for event_id, n in duplicated.items():
        assert n == 2 and seen_in[event_id] == {f"{PREFIX}/{defaults.TOPIC}/", f"{PREFIX}/{mirrored_topic}/"}

    acked_east = set(east_ids.read_text().split())
    never_reached_west = acked_east - set(mirrored_ids)
    not_in_lake = acked_east - set(lake_ids)
    recovered = watch.first_growth - killed
    assert recovered < 90
    upstream = {p: cp.upstream_offset for p, cp in last_checkpoints.items()}
    # East's and west's offsets are the same numbers here (the copy started empty, record for record),
    # so the duplicates split into what translation rounds down (checkpointed - translated) and what
    # east's writer landed after its last checkpointed commit (landed end - checkpointed).
    landed_end = defaultdict(int)
    for p, o in offsets_in[f"{PREFIX}/{defaults.TOPIC}/"]:
        landed_end[p] = max(landed_end[p], o + 1)
    rounding = sum(upstream.get(p, 0) - translated.get(p, 0) for p in translated)
    after_checkpoint = sum(min(landed_end[p], mirrored_ends[p]) - upstream.get(p, 0) for p in landed_end)
    assert len(duplicated) == rounding + after_checkpoint
    before_kill = [(t, n) for t, n in lag.samples if t <= killed]
    figures = {
        "acked_east": len(acked_east),
        "mirrored": len(mirrored_ids),
        "lost_a": len(never_reached_west),
        "lost_from_lake": len(not_in_lake),
        "duplicates_b": len(duplicated),
        "recovered_c": recovered,
        "wall": wall,
        "scenario": scenario,
        "stall": stall,
        "translated": dict(sorted(translated.items())),
        "checkpoint_upstream": dict(sorted(upstream.items())),
        "translation_synced": synced((translated, last_checkpoints)),
        "settled_after": settled_at - killed,
        "rounding": rounding,
        "after_checkpoint": after_checkpoint,
        "lag_last": before_kill[-1][1] if before_kill else None,
        "lag_last_age": killed - before_kill[-1][0] if before_kill else None,
        "lag_max": max((n for _, n in before_kill), default=None),
        "lake_lines": sum(lake_ids.values()),
        "distinct": len(lake_ids),
    }
    write_results(figures)
    print("geo-result " + " ".join(f"{k}={v}" for k, v in figures.items()))
    record(
        f"region lost ({scenario}): east's broker + writer SIGKILLed at {RATE:,} events/s, failover to "
        "west's MirrorMaker copy",
        len(acked_east) + WEST_EVENTS,
        len(acked_east) + len(acked_west),
        {"in_lake": len(lake_ids), "duplicated": len(duplicated), "dead": 0},
        f"(a) {len(never_reached_west):,} acknowledged in east never reached west; lake grew again "
        f"{recovered:.1f} s after the kill",
    )


def end_offsets_by_partition(env: dict[str, str], topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "geo-probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        consumer.close()


GEO_RESULTS: dict[str, str] = {}


def write_results(f: dict) -> None:
    """One section per scenario run in this session, in .stack/geo-results.md."""
    stalled = (
        f"MirrorMaker frozen (SIGSTOP) for {f['stall']} s before the loss" if f["stall"] else "healthy link"
    )
    GEO_RESULTS[f["scenario"]] = (
        f"## {f['scenario']}: {stalled}\n\n"
        f"- run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {RATE:,} events/s, {os.cpu_count()} cores (shared)\n"
        f"- acknowledged by east before the loss: {f['acked_east']:,}; copied to west: {f['mirrored']:,}\n"
        f"- (a) acknowledged in east, never reached west: {f['lost_a']:,} "
        f"(of these, in the lake anyway because east's writer had landed them: "
        f"{f['lost_a'] - f['lost_from_lake']:,}; lost for the lake: {f['lost_from_lake']:,})\n"
        f"- replication lag sampled every 0.25 s: {f['lag_last']} records {f['lag_last_age']:.2f} s before the "
        f"kill, at most {f['lag_max']} during the run\n"
        f"- (b) events twice in the lake after the writer moved to west: {f['duplicates_b']:,} "
        f"= {f['rounding']:,} rounded down by offset translation (last checkpointed east offsets "
        f"{f['checkpoint_upstream']}, translated to {f['translated']} in west) + {f['after_checkpoint']:,} "
        "landed by east's writer after its last checkpointed commit (commits MirrorMaker had not yet "
        "checkpointed, objects uploaded but not committed when the writer was killed)\n"
        f"- (c) from the SIGKILL to the first new object in the lake: {f['recovered_c']:.1f} s "
        f"(failover started {f['settled_after']:.1f} s after the kill, once west's translated offsets "
        + ("matched MirrorMaker's newest checkpoints and " if f["translation_synced"] else "")
        + f"had not moved for {SETTLE_SECONDS if f['translation_synced'] else 5 * SETTLE_SECONDS} s; "
        "an operator's decision time comes on top)\n"
        f"- lake: {f['lake_lines']:,} lines, {f['distinct']:,} distinct events; drill wall time {f['wall']:.0f} s\n"
    )
    STACK_HOME.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(
        "# Regional failover drill (tests/test_geo.py), last run\n\n" + "\n".join(GEO_RESULTS.values())
    )
