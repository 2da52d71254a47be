"""Waiting on observable state instead of sleeping, and the probes that observe it.

A test that needs something to have happened (events in a topic, offsets committed by a group, a
line in a process's log) polls for it with `wait_until`: it returns as soon as the condition
holds and fails, once its bound has passed, with what it waited for and the last value it saw.
The bound is generous (machines here are shared and slow); it costs nothing when things go well.

`time.sleep` appears in this module only, between two polls.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Running(Protocol):
    """A process a wait depends on: a subprocess.Popen, or a tests/processes.Child."""

    args: Any

    def poll(self) -> int | None: ...


class Logged(Running, Protocol):
    """A running process whose log lines can be searched (tests/processes.Child)."""

    def last(self, pattern: str, stream: str = "err") -> re.Match[str] | None: ...


def wait_until(
    probe: Callable[[], T],
    timeout: float,
    what: str,
    ok: Callable[[T], object] = bool,
    interval: float = 0.25,
    retry_on: tuple[type[BaseException], ...] = (),
    alive: Iterable[Running] = (),
) -> T:
    """Call `probe` until `ok(value)` holds, and return that value.

    Fails (AssertionError) when `timeout` seconds have passed, naming `what` and the last value
    seen; at once when a process of `alive` has exited (the state it was to produce can no longer
    come). Exceptions of `retry_on` raised by the probe count as "not yet" (e.g. a broker that is
    restarting); the last one is shown if the bound passes.
    """
    deadline = time.monotonic() + timeout
    last: object = "nothing (the probe never answered)"
    while True:
        try:
            value = probe()
        except retry_on as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if ok(value):
                return value
            last = value
        for process in alive:
            code = process.poll()
            if code is not None:
                raise AssertionError(
                    f"{process.args!r} exited with code {code} while waiting for {what}; last seen: {last}"
                )
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; last seen: {last}")
        time.sleep(interval)


# ------------------------------------------------------------------------------- Kafka probes


class KafkaProbe:
    """High watermarks and committed offsets. Each reading uses a short-lived consumer that never
    subscribes (so it never joins or disturbs the group it looks at) and is closed at once: a client
    left for the garbage collector can hang the test process in librdkafka's destroy once its
    cluster is gone (an AdminClient did, after a fault test had stopped its stack)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._partitions: dict[str, list[int]] = {}

    @contextlib.contextmanager
    def _consumer(self, group: str = "loglake-test-probe") -> Iterator[Any]:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        try:
            yield consumer
        finally:
            consumer.close()

    def partitions(self, topic: str, consumer: Any) -> list[int]:
        if topic not in self._partitions:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None:
                raise AssertionError(f"topic {topic}: {meta.error}")
            self._partitions[topic] = sorted(meta.partitions)
        return self._partitions[topic]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """partition -> high watermark: how many records the partition has ever been given."""
        from confluent_kafka import TopicPartition

        with self._consumer() as consumer:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in self.partitions(topic, consumer)
            }

    def in_topic(self, topic: str) -> int:
        """Records written to `topic` so far (the sum of its high watermarks)."""
        return sum(self.end_offsets(topic).values())

    def committed(self, topic: str, group: str) -> dict[int, int]:
        """partition -> offset committed by `group` (partitions it never committed are left out)."""
        from confluent_kafka import TopicPartition

        with self._consumer(group) as consumer:
            wanted = [TopicPartition(topic, p) for p in self.partitions(topic, consumer)]
            return {
                tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10) if tp.offset >= 0
            }

    def members(self, group: str) -> int:
        """How many members the group has now, as its coordinator says (0 once a stopped member's
        session has expired)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        del admin  # destroyed now, while its cluster is up
        return len(described.members)

    def committed_total(self, topic: str, group: str) -> int:
        return sum(self.committed(topic, group).values())

    def lag(self, topic: str, group: str) -> int:
        """Records of `topic` that `group` has not committed yet."""
        committed = self.committed(topic, group)
        return sum(end - committed.get(p, 0) for p, end in self.end_offsets(topic).items())


def wait_for_records(
    bootstrap: str, topic: str, at_least: int, what: str, alive: Iterable[Running] = ()
) -> int:
    """Until `topic` holds `at_least` records (its high watermarks); how many it holds."""
    probe = KafkaProbe(bootstrap)
    return wait_until(
        lambda: probe.in_topic(topic),
        120,
        f"{at_least:,} records in {topic} ({what})",
        ok=lambda n: n >= at_least,
        retry_on=kafka_errors(),
        alive=alive,
    )


def kafka_errors() -> tuple[type[BaseException], ...]:
    """What a probe raises while a broker or group coordinator is away or moving: retry, not fail."""
    from confluent_kafka import KafkaException

    return (KafkaException,)


def records_to_end(bootstrap: str, topic: str, timeout: float = 120) -> Iterator[Any]:
    """Every record of `topic`, read from the start up to the high watermarks taken first: exactly
    what the topic holds at that moment, no more (no waiting for "nothing else arrives"). A partition
    is read to its end also when its last offsets hold no record a consumer sees (a transaction's
    marker, aborted records): the client says when it reached the end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    remaining = {p: end for p, end in KafkaProbe(bootstrap).end_offsets(topic).items() if end > 0}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "read-to-end",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    read = 0
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + timeout
        while remaining:
            assert time.monotonic() < deadline, (
                f"read {read} records of {topic} in {timeout:g} s; partitions not read to their end "
                f"(partition: high watermark): {remaining}"
            )
            for message in consumer.consume(10_000, 0.5):
                if message.error() is not None and message.error().code() == KafkaError._PARTITION_EOF:
                    remaining.pop(message.partition(), None)
                    continue
                assert message.error() is None, message.error()
                end = remaining.get(message.partition(), 0)
                if message.offset() < end:
                    read += 1
                    yield message
                if message.offset() + 1 >= end:
                    remaining.pop(message.partition(), None)
    finally:
        consumer.close()


# ---------------------------------------------------------------------------- process output


PROGRESS = r"sent=(\d+) acked=(\d+) failed=(\d+)"


def producer_progress(producer: Logged) -> tuple[int, int]:
    """(sent, acked) from the producer's latest progress line (`--progress-every`); (0, 0) before it."""
    found = producer.last(PROGRESS)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def wait_unacknowledged(producer: Logged, at_least: int) -> tuple[int, int]:
    """Until the producer's latest progress line shows `at_least` events sent but not acknowledged
    (events waiting for a broker that was killed); (sent, acked) of that line."""
    return wait_until(
        lambda: producer_progress(producer),
        120,
        f"the producer's progress line showing {at_least:,} events waiting for the broker (sent, acked)",
        ok=lambda sent_acked: sent_acked[0] - sent_acked[1] >= at_least,
        alive=[producer],
    )
