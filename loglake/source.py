"""The lake writer's view of its source: a consumer-group member for one topic with manual commits
(`SourceConsumer`), the records it returns (`Record`) and what the writer does when partitions come
and go (`Rebalance`).

The writer (loglake/consume.py) knows its source only through these protocols. They live here, not
beside their Kafka implementation (loglake/kafka/consumer.py, `ConfluentConsumer`), because they are
the writer's contract: the deterministic tests' scripted consumer (tests/sim.py) implements the same
one, and the writer's modules import no client library and nothing of loglake/kafka/.
"""

from __future__ import annotations

from typing import Protocol

# `seek` positions besides offsets (Kafka's own values for them)
EARLIEST = -2
LATEST = -1


class Rebalance(Protocol):
    """What the lake writer does when partitions come and go (called inside `poll`)."""

    def assigned(self, partitions: list[int]) -> None: ...
    def revoked(self, partitions: list[int]) -> None: ...
    def lost(self, partitions: list[int]) -> None: ...

    def deleted(self, partition: int, position: int, kafka_from: int) -> None:
        """`position` of `partition` is out of range: Kafka deleted what came before `kafka_from`
        (retention); the consumer reads on from `kafka_from`."""
        ...


class Record(Protocol):
    """A consumed record, as confluent_kafka.Message presents it (tests/sim.py's records mimic it)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


class SourceConsumer(Protocol):
    """A consumer-group member for one topic with manual commits only: what the lake writer needs."""

    def check_topic(self) -> int:
        """Partitions of the topic; KafkaUnavailable when no broker answers or it does not exist."""
        ...

    def cluster_id(self) -> str:
        """The Kafka cluster's id (offsets mean nothing outside their cluster)."""
        ...

    def subscribe(self, listener: Rebalance) -> None: ...

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to `max_records` records; rebalance callbacks run inside this call."""
        ...

    def committed(self, partitions: list[int]) -> dict[int, int]:
        """The group's committed offset per partition (negative when it has none)."""
        ...

    def commit(self, partition: int, next_offset: int) -> bool:
        """Commit synchronously; False when the group refused it (the partition is no longer ours)."""
        ...

    def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset` (or EARLIEST, LATEST) on; records fetched before are not
        returned any more."""
        ...

    def offset_for_time(self, partition: int, ms: int) -> int:
        """The first offset of `partition` whose timestamp is at or after `ms` (LATEST: none yet)."""
        ...

    def topic_id(self) -> str:
        """The topic's id as the cluster says now ("" if it gives none): a topic deleted and created
        again under its name has another."""
        ...

    def pause(self, partitions: list[int]) -> None: ...
    def resume(self, partitions: list[int]) -> None: ...

    def ends(self, partitions: list[int]) -> dict[int, int]:
        """The end (high watermark) of each partition, as last heard (cheap: no request)."""
        ...

    def group_lag(self) -> dict[int, int]:
        """For every partition of the topic: its end minus the group's committed offset."""
        ...

    def close(self) -> None: ...
