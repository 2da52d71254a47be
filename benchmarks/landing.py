"""How the writer benchmark times a sink and checks what a peer stored.

A sink has landed N events when its consumer group's committed offsets cover all N: by then every
event is in the lake (each sink measured here commits only after its objects are written). The time
is taken from the sink's start, so its start-up counts; its CPU time and peak RSS come from wait4
when it has exited.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass

import orjson

from benchmarks.common import Child, Usage


class Committed:
    """The group's committed offsets, summed over the topic's 3 partitions (one client, reused:
    a new client per look would take CPU from the sink being measured)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.parts = [TopicPartition(topic, p) for p in range(3)]
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})

    def total(self) -> int:
        return sum(max(0, tp.offset) for tp in self.consumer.committed(self.parts, timeout=10))

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Landed:
    seconds: float  # from the sink's start until its commits covered every event
    usage: Usage  # of the whole process, until it exited
    stdout: str
    stderr: str
    started_at: float  # the sink's start, wall clock (time.time())


def land(
    name: str, argv: list[str], bootstrap: str, topic: str, group: str, events: int, timeout: float = 1800
) -> Landed:
    """Run a sink until it exits by itself (each is told to stop when idle); exits if it fails or if its
    commits never covered `events`."""
    child = Child(argv)
    committed = Committed(bootstrap, topic, group)
    done_at = None
    try:
        while child.poll() is None:
            if done_at is None and committed.total() >= events:
                done_at = time.monotonic()
            if time.monotonic() - child.started > timeout:
                child.stop()
                raise SystemExit(f"{name} did not land {events:,} events within {timeout:.0f} s")
            time.sleep(0.1)
        if done_at is None and committed.total() >= events:
            done_at = time.monotonic()  # the last commit came as it exited
    finally:
        committed.close()
    out, err = child.output()
    usage = child.usage
    assert usage is not None
    if usage.returncode != 0:
        raise SystemExit(f"{name} failed ({usage.returncode}): {err.strip()[-800:]}")
    if done_at is None:
        raise SystemExit(f"{name} exited with its commits short of the {events:,} events")
    return Landed(done_at - child.started, usage, out, err, child.started_at)


@dataclass
class Counted:
    objects: int
    stored_bytes: int
    records: int
    unique_ids: int


def count_json_lines(prefix: str, event_id: str = "event_id", envelope: str | None = None) -> Counted:
    """Read back every object under `prefix` (JSON Lines, gzip'd when the key ends in .gz) and count its
    records and distinct event ids; `envelope`: the field that holds the event, if the sink wraps it."""
    from loglake.flags import Parser, values_of
    from loglake.lake import S3Store
    from loglake.settings import LakeSettings

    store = S3Store(values_of(LakeSettings, Parser(LakeSettings, prog="bench").parse_args([])))
    objects = stored = records = 0
    ids: set[str] = set()
    try:
        for key, size in store.list(prefix):
            body = store.get(key) or b""
            objects += 1
            stored += size
            text = gzip.decompress(body) if key.endswith(".gz") else body
            for line in text.splitlines():
                if line.strip():
                    record = orjson.loads(line)
                    ids.add((record[envelope] if envelope else record)[event_id])
                    records += 1
    finally:
        store.close()
    return Counted(objects, stored, records, len(ids))
