"""The lake writer's consumer on kafka-python 3 (`--kafka-client kafka-python`).

Threads, and why this module has one of its own. kafka-python 3 runs its network loop (fetches,
heartbeats, the group protocol) on an IO thread, and calls a rebalance listener from that loop, in
the middle of a join. A plain `ConsumerRebalanceListener` that blocks there blocks the loop: no
heartbeat goes out (past the session timeout the group evicts the member) and nothing it asks of the
consumer can be sent (a blocking call from the IO thread raises). The writer's listener does block: a
revoked partition may take up to ~10 s to land its batch, and then commits. It must also run on the
writer's own thread, which owns every piece of the writer's state.

So `KafkaConsumer.poll` (and `close`, which revokes too) runs on a helper thread, `kafka-poll`, while
the writer's thread waits on an inbox. The listener given to kafka-python is an
`AsyncConsumerRebalanceListener`: it posts the call to the inbox and awaits a kafka Future; the
writer's thread runs the writer's `revoked` / `assigned` / `lost` and then resolves that Future on the
IO loop. While it waits, the loop is free: heartbeats go on, and what the writer sends from its own
thread (commits, committed offsets) is sent. The writer's thread and the helper never run kafka-python
code at the same time: the helper is either idle or parked in a join until the writer answers.

What the group does with commits made inside the callbacks (kafka-python's coordinator, 3.0.12):
- cooperative rebalancing (`cooperative-sticky`, as the confluent consumer uses): `revoked` runs after
  the join completed, with the member stable in the new generation, so its commits are accepted; the
  partition goes to its next owner only in the follow-up rebalance, after `revoked` returned;
- `lost` runs after the member was removed (session expired, fenced); its generation is gone, and a
  commit with it is refused by the broker (CommitFailedError -> False here). The writer commits
  nothing in `lost` anyway.
- but kafka-python calls `lost` only when it knew of the eviction before it rejoined (a heartbeat
  said so). A member that was stopped past its session (a zombie) often learns it from the JoinGroup
  answer instead; it then joins again as a new member and reports the partitions it had as *revoked*,
  in the new generation, where the broker accepts commits. This consumer remembers the member id each
  partition was assigned under: a partition "revoked" under another member id is delivered as `lost`
  (tests/test_kafka_python_writer.py, the zombie test, fails without that). Until the writer's thread
  has run that `lost`, its commits of those partitions would be accepted too (the broker checks the
  generation, not who owns the partition), taking the group's offset back to where the zombie was:
  `commit` refuses a partition assigned under another member id than the current one.
- between sending a JoinGroup and the SyncGroup answer, kafka-python refuses commits itself
  (RebalanceInProgressError, the member is not stable): False here, as for a fenced member.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from loglake.errors import KafkaUnavailable, LoglakeError
from loglake.kafka import (
    Rebalance,
    _missing_topic,
    _unreachable,
    kafka_python_config,
    kafka_python_failure,
    library_logs_muted,
)
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 10_000  # as the confluent consumer: a killed writer's partitions move on after 10 s
COMMIT_PATIENCE = 60.0  # seconds a commit may meet an unavailable coordinator before the writer gives up
CLOSE_PATIENCE = 30.0  # seconds close() waits for the helper thread (a revoke served meanwhile included)

# Timestamp types: kafka-python's record attribute (0 create time, 1 log-append time) -> librdkafka's
# (1 TIMESTAMP_CREATE_TIME, 2 TIMESTAMP_LOG_APPEND_TIME; 0 TIMESTAMP_NOT_AVAILABLE).
_TIMESTAMP_TYPES = {0: 1, 1: 2}


class KafkaPythonRecord:
    """A kafka-python ConsumerRecord behind the confluent_kafka.Message accessors the writer calls."""

    __slots__ = ("_r",)

    def __init__(self, record: Any) -> None:
        self._r = record

    def topic(self) -> str:
        return self._r.topic

    def partition(self) -> int:
        return self._r.partition

    def offset(self) -> int:
        return self._r.offset

    def key(self) -> bytes | None:
        return self._r.key

    def value(self) -> bytes | None:
        return self._r.value

    def timestamp(self) -> tuple[int, int]:
        ms = self._r.timestamp
        if ms is None or ms < 0:
            return (0, -1)
        return (_TIMESTAMP_TYPES.get(self._r.timestamp_type, 0), ms)

    def headers(self) -> list[tuple[str, bytes]] | None:
        headers = self._r.headers
        return list(headers) if headers else None


@dataclass
class _Ask:
    """A rebalance callback, posted by the IO loop for the writer's thread to run."""

    method: str  # "revoked", "assigned" or "lost"
    partitions: list[int]
    member: str  # our group member id when the IO loop made the call
    answered: Any  # kafka.future.Future the IO loop awaits


@dataclass
class _Done:
    """The result of a call the helper thread ran."""

    call: int
    result: Any = None
    error: BaseException | None = None


def _relay_listener(inbox: queue.SimpleQueue[Any], consumer: Any) -> Any:
    """A kafka-python AsyncConsumerRebalanceListener that hands each call to the writer's thread and
    awaits its answer without holding up the IO loop."""
    from kafka import AsyncConsumerRebalanceListener
    from kafka.future import Future

    class Relay(AsyncConsumerRebalanceListener):
        async def _ask(self, method: str, partitions: Any) -> None:
            answered = Future()
            member = consumer.group_metadata().member_id
            inbox.put(_Ask(method, sorted(tp.partition for tp in partitions), member, answered))
            await answered

        async def on_partitions_revoked(self, revoked: Any) -> None:
            await self._ask("revoked", revoked)

        async def on_partitions_assigned(self, assigned: Any) -> None:
            await self._ask("assigned", assigned)

        async def on_partitions_lost(self, lost: Any) -> None:
            await self._ask("lost", lost)

    return Relay()


def _unpark_resumed(consumer: Any) -> None:
    """Work around a stall in kafka-python 3.0.12's fetcher: the records a partition had in hand when
    the writer paused it (backpressure) are parked, and handed back after its resume only while the
    fetcher's in-line slot is None. But a drained batch stays in that slot (falsy, not None), so the
    parked records can wait forever, and a partition with parked records is not fetched either: it is
    not read again until another partition happens to be paused with records in hand. Seen mostly
    after a rejoin, when the re-read fills batches fast and pauses follow: partitions left unread and
    the group's lag stuck (the lone, zombie and lake-outage tests, about 1 run in 5). Emptying the slot when it holds a drained batch and records are parked lets
    kafka-python's own hand-back run; the attributes are looked up with care, and a kafka-python
    without them is left alone."""
    fetcher = getattr(consumer, "_fetcher", None)
    slot = getattr(fetcher, "_next_partition_records", None)
    if slot is not None and not slot and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None


class _QuietSlowListenerWarning(logging.Filter):
    """kafka-python warns about every rebalance listener that takes over 1 s, telling sync listeners
    to use an async one. Ours is the async one, and a revoke that lands a batch takes seconds by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Rebalance listener %s.%s for group %s took")


class KafkaPythonConsumer:
    """The lake writer's consumer on kafka-python: a SourceConsumer (loglake/kafka.py).

    `start_from`: "committed" (resume; earliest when the group has no offset), "earliest", "latest",
    or epoch milliseconds; anything but "committed" applies only to partitions the group never
    committed, as in ConfluentConsumer.
    """

    def __init__(self, settings: KafkaSettings, group: str, topic: str, start_from: str | int) -> None:
        self._settings = settings
        self._group = group
        self._topic = topic
        self._start_from = start_from
        self._consumer: Any = None  # kafka.KafkaConsumer, made at the first call that needs the cluster
        self._listener: Rebalance | None = None
        self._cluster_id = ""
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._calls = itertools.count()
        self._in_call = False
        self._helper: threading.Thread | None = None
        self._member_of: dict[int, str] = {}  # partition -> our group member id when it was assigned

    # -- the client and the helper thread ----------------------------------------------------------
    def _client(self) -> Any:
        if self._consumer is None:
            from kafka import KafkaConsumer
            from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
            from kafka.errors import KafkaError

            last = None
            try:
                with library_logs_muted() as last:
                    self._consumer = KafkaConsumer(
                        **kafka_python_config(self._settings),
                        client_id="loglake-writer",
                        group_id=self._group,
                        enable_auto_commit=False,
                        auto_offset_reset="latest" if self._start_from == "latest" else "earliest",
                        partition_assignment_strategy=(CooperativeStickyAssignor,),
                        session_timeout_ms=SESSION_TIMEOUT_MS,
                        heartbeat_interval_ms=3000,
                        max_poll_interval_ms=300_000,
                        # at most 16 MiB fetched ahead, as the confluent consumer
                        fetch_max_bytes=16 * 1024 * 1024,
                        max_partition_fetch_bytes=4 * 1024 * 1024,
                        allow_auto_create_topics=False,
                        # as librdkafka (check.crcs=false by default, so the confluent consumer): the
                        # broker checked each batch's CRC when it was produced; kafka-python computes
                        # CRC32C in pure Python unless the crc32c C module is installed, which more than
                        # halved its throughput here (200k events: 13.6 -> 5.7 CPU-s)
                        check_crcs=False,
                    )
            except KafkaError as exc:
                assert last is not None
                raise kafka_python_failure(self._settings, last, exc) from None
            logging.getLogger("kafka.coordinator.consumer").addFilter(_QuietSlowListenerWarning())
        return self._consumer

    def _serve(self) -> None:
        """The helper thread: runs one call at a time, posts its outcome to the inbox."""
        while True:
            call, fn, args = self._requests.get()
            if fn is None:
                return
            try:
                self._inbox.put(_Done(call, fn(*args)))
            except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
                self._inbox.put(_Done(call, error=exc))

    def _call(self, fn: Any, *args: Any, patience: float | None = None) -> Any:
        """Run fn(*args) on the helper thread; meanwhile run the rebalance callbacks it causes here,
        on the caller's (the writer's) thread. With `patience`, give up waiting after that many seconds
        (TimeoutError)."""
        if self._in_call:
            raise RuntimeError("KafkaPythonConsumer: poll or close called from inside a rebalance callback")
        if self._helper is None:
            self._helper = threading.Thread(target=self._serve, name="kafka-poll", daemon=True)
            self._helper.start()
        call = next(self._calls)
        self._requests.put((call, fn, args))
        deadline = None if patience is None else time.monotonic() + patience
        self._in_call = True
        try:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self._inbox.get(timeout=wait)
                except queue.Empty:
                    raise TimeoutError(f"the Kafka client did not finish within {patience:g} s") from None
                if isinstance(item, _Ask):
                    self._answer(item)
                elif item.call == call:
                    if item.error is not None:
                        raise item.error
                    return item.result
                # else: the outcome of an earlier call whose caller left with an exception
        finally:
            self._in_call = False

    def _answer(self, ask: _Ask) -> None:
        """Run one rebalance callback of the writer on this thread, then let the IO loop go on."""
        started = time.monotonic()
        try:
            assert self._listener is not None
            member = ask.member
            if ask.method == "assigned":
                if isinstance(self._start_from, int) and ask.partitions:
                    self._start_at_time(ask.partitions)
                self._member_of.update(dict.fromkeys(ask.partitions, member))
                self._listener.assigned(ask.partitions)
                return
            lost = [p for p in ask.partitions if self._member_of.pop(p, None) != member]
            kept = [p for p in ask.partitions if p not in lost]
            if ask.method == "lost":
                self._listener.lost(ask.partitions)
                return
            if lost:
                # Revoked, says kafka-python, but they were assigned to another member id of ours: the
                # group evicted us (a session that expired while the process was stopped) and we
                # learned it only from the JoinGroup answer, after which kafka-python reports what
                # we had as revoked, in the new generation, where commits are accepted. They went
                # to another writer long ago: they are lost, and nothing may be committed for them.
                log.warning(
                    "partitions %s were taken from this writer while it was out of the group: lost", lost
                )
                self._listener.lost(lost)
            if kept:
                self._listener.revoked(kept)
        finally:
            answered = ask.answered
            # the Future must be resolved on the IO loop (its waiter is resumed there); kafka-python
            # has no public handle on its loop, so this is the one private attribute used here
            self._client()._net.call_soon_threadsafe(lambda: answered.success(None))
            log.debug("%s %s answered in %.1f s", ask.method, ask.partitions, time.monotonic() - started)

    def _start_at_time(self, partitions: list[int]) -> None:
        """--start-from TIME: partitions the group never committed start at the first record at or
        after that time (at the end when there is none)."""
        consumer = self._client()
        committed = self.committed(partitions)
        fresh = {self._tp(p): self._start_from for p in partitions if committed.get(p, -1) < 0}
        if not fresh:
            return
        found = consumer.offsets_for_times(fresh, timeout_ms=int(self._settings.connect_timeout * 1000))
        for tp in fresh:
            at = found.get(tp)
            if at is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)

    def _tp(self, partition: int) -> Any:
        from kafka import TopicPartition

        return TopicPartition(self._topic, partition)

    # -- start -------------------------------------------------------------------------------------
    def check_topic(self) -> int:
        consumer = self._client()
        with library_logs_muted():
            partitions = consumer.partitions_for_topic(self._topic)
        if not partitions:
            raise _missing_topic(self._settings, self._topic)
        self._cluster_id = self._read_cluster_id()
        return len(partitions)

    def _read_cluster_id(self) -> str:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        last = None
        try:
            with library_logs_muted() as last:
                admin = KafkaAdminClient(**kafka_python_config(self._settings), client_id="loglake-writer")
                try:
                    return str(admin.describe_cluster().get("cluster_id") or "")
                finally:
                    admin.close()
        except KafkaError as exc:
            assert last is not None
            raise kafka_python_failure(self._settings, last, exc) from None

    def cluster_id(self) -> str:
        return self._cluster_id

    def subscribe(self, listener: Rebalance) -> None:
        self._listener = listener
        consumer = self._client()
        consumer.subscribe([self._topic], listener=_relay_listener(self._inbox, consumer))

    # -- the loop ----------------------------------------------------------------------------------
    def poll(self, max_records: int, timeout: float) -> list[Any]:
        return self._call(self._poll, max_records, int(timeout * 1000))

    def _poll(self, max_records: int, timeout_ms: int) -> list[KafkaPythonRecord]:
        """On the helper thread: one KafkaConsumer.poll, records in partition order."""
        from kafka.errors import KafkaError

        _unpark_resumed(self._consumer)
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            if exc.retriable:
                log.warning("Kafka: %s", exc)
                return []
            raise KafkaUnavailable(f"the Kafka consumer failed: {exc}") from None
        if not batches:
            return []
        return [KafkaPythonRecord(r) for tp in sorted(batches) for r in batches[tp]]

    def commit(self, partition: int, next_offset: int) -> bool:
        from kafka import OffsetAndMetadata
        from kafka.errors import (
            CommitFailedError,
            FencedInstanceIdError,
            IllegalGenerationError,
            KafkaError,
            RebalanceInProgressError,
            UnknownMemberIdError,
        )

        refused = (
            CommitFailedError,
            RebalanceInProgressError,
            IllegalGenerationError,
            UnknownMemberIdError,
            FencedInstanceIdError,
        )
        offsets = {self._tp(partition): OffsetAndMetadata(next_offset, "", -1)}
        deadline = time.monotonic() + COMMIT_PATIENCE
        while True:
            if self._rejoined_since(partition):
                log.warning(
                    "commit of partition %d refused: this writer rejoined the group as a new member "
                    "since the partition was assigned to it, and the group may have given it to another",
                    partition,
                )
                return False
            try:
                self._client().commit(offsets, timeout_ms=int(self._settings.connect_timeout * 1000))
                return True
            except refused as exc:
                log.warning(
                    "commit of partition %d refused (%s): the group is rebalancing or gave it to another writer",
                    partition,
                    type(exc).__name__,
                )
                return False
            except KafkaError as exc:
                if not exc.retriable:
                    raise KafkaUnavailable(
                        f"could not commit offsets to {self._settings.bootstrap_servers}: {exc}"
                    ) from None
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"could not commit offsets to {self._settings.bootstrap_servers}: {exc}"
                    ) from None
                log.warning("commit of partition %d failed (%s); retrying", partition, exc)
                time.sleep(1)

    def _rejoined_since(self, partition: int) -> bool:
        """Whether our member id is no longer the one `partition` was assigned under. A zombie (stopped
        past its session) rejoins as a new member on the IO thread; the broker accepts commits of the new
        generation for any partition, so until the writer's thread has run the `lost` that follows, a
        commit of what the old member had (an older offset than its next owner's) would be accepted and
        take the group's offset back. Refused here instead; `lost` comes next."""
        assigned_under = self._member_of.get(partition)
        return assigned_under is not None and self._client().group_metadata().member_id != assigned_under

    def seek(self, partition: int, offset: int) -> None:
        tp = self._tp(partition)
        consumer = self._client()
        if tp not in consumer.assignment():
            # revoked already (kafka-python drops a partition from the assignment before it calls
            # on_partitions_revoked): nothing will be fetched from it again
            log.debug("seek partition %d to %d: not assigned any more", partition, offset)
            return
        consumer.seek(tp, offset)

    def pause(self, partitions: list[int]) -> None:
        consumer = self._client()
        mine = consumer.assignment()
        consumer.pause(*[tp for tp in map(self._tp, partitions) if tp in mine])

    def resume(self, partitions: list[int]) -> None:
        consumer = self._client()
        mine = consumer.assignment()
        consumer.resume(*[tp for tp in map(self._tp, partitions) if tp in mine])

    def committed(self, partitions: list[int]) -> dict[int, int]:
        from kafka.errors import KafkaError

        consumer = self._client()
        timeout_ms = int(self._settings.connect_timeout * 1000)
        found = {}
        try:
            for p in partitions:
                offset = consumer.committed(self._tp(p), timeout_ms=timeout_ms)
                found[p] = -1001 if offset is None else offset  # -1001: librdkafka's OFFSET_INVALID
        except KafkaError as exc:
            raise _unreachable(self._settings, str(exc)) from None
        return found

    def lag(self, partitions: list[int]) -> dict[int, int]:
        from kafka.errors import KafkaError

        consumer = self._client()
        lags = {}
        for p in partitions:
            tp = self._tp(p)
            try:
                high = consumer.highwater(tp)
                position = consumer.position(tp, timeout_ms=1000)
            except (KafkaError, ValueError) as exc:
                log.debug("lag of partition %d: %s", p, exc)
                continue
            if high is not None and position is not None:
                lags[p] = max(0, high - position)
        return lags

    def group_lag(self) -> dict[int, int]:
        from kafka.errors import KafkaError

        consumer = self._client()
        timeout_ms = int(self._settings.connect_timeout * 1000)
        try:
            partitions = sorted(consumer.partitions_for_topic(self._topic))
            tps = [self._tp(p) for p in partitions]
            committed = self.committed(partitions)
            low = consumer.beginning_offsets(tps, timeout_ms=timeout_ms)
            high = consumer.end_offsets(tps, timeout_ms=timeout_ms)
        except (KafkaError, KafkaUnavailable) as exc:
            raise KafkaUnavailable(f"could not read the lag of {self._topic!r}: {exc}") from None
        return {tp.partition: max(0, high[tp] - max(committed[tp.partition], low[tp])) for tp in tps}

    def close(self) -> None:
        """Leave the group. kafka-python revokes the partitions still assigned first (as librdkafka
        does): that callback is served here too."""
        from kafka.errors import KafkaError

        if self._consumer is None:
            return
        try:
            self._call(self._consumer.close, False, patience=CLOSE_PATIENCE)
        except (KafkaError, TimeoutError, RuntimeError, LoglakeError) as exc:
            # a revoke that failed at exit changes nothing: nothing is committed past what landed
            log.debug("closing the consumer: %s", exc)
        finally:
            self._requests.put((next(self._calls), None, ()))
