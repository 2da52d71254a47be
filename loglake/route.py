"""Routing: each consumed record into its partition's batch, in the lake folder its event time says,
or aside as a dead letter to be; and the offsets between records accounted for (loglake/batch.py).

This is the writer's hot loop (docs/performance.md): the common record, a compact ASCII event of a
second seen before, landing in the folder of the record before it, at the offset after it, takes the
short way; anything else takes a method call. It runs on the writer's loop thread, which owns every
`PartitionState` (loglake/partition.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from loglake import layout
from loglake.batch import Batch, Buffers, rejected_from
from loglake.events import Rejection, validate, validate_quickly
from loglake.formats import Recipe
from loglake.metrics import WriterMetrics
from loglake.partition import PartitionState

log = logging.getLogger("loglake.consume")


class Router:
    """Routes polled records of the partitions in `parts` (the writer's own dict) into their batches;
    counts what it routed, rejected and found lost."""

    def __init__(
        self,
        topic: str,
        recipe: Recipe,
        parts: dict[int, PartitionState],
        buffers: Buffers,
        metrics: WriterMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.topic = topic
        self.recipe = recipe
        self.parts = parts
        self.buffers = buffers
        self.metrics = metrics
        self.clock = clock
        self.records = self.dead_letters = self.lost_offsets = 0

    def route(self, messages: list[Any]) -> None:
        """Validate each record and add it to its partition's batch, or reject it (a dead letter to
        be). The hot loop (see docs/performance.md): the common record, a compact ASCII event of a
        second seen before landing in the folder of the record before it, at the offset after the
        record before it, takes the short way."""
        parts = self.parts
        quick = validate_quickly
        state: PartitionState | None = None
        last_p = -1
        records = None  # the FolderRecords the record before went to, and what decided it
        last_date = last_hour = ""
        add_offset = add_stamp = add_ms = add_end = data = None  # `records`' arrays and buffer
        for m in messages:
            p = m.partition()
            if p != last_p:
                state, last_p, records = parts.get(p), p, None
                if state is not None and not state.resolved:
                    state = None  # fetched before the lake said where to read: sought again anyway
            if state is None:
                continue  # fetched before its partition left this writer: the next owner reads it
            offset = m.offset()
            position = state.position
            if position is not None and offset != position:
                if offset < position:
                    continue  # handled already (fetched before a seek)
                batch = self.before(state, offset)  # offsets between hold no record: account for them
                records = None
            else:
                batch = state.batch
                if batch is None:
                    batch = self.open(state, offset)
                    records = None
            follow = state.follow
            recipe = follow.recipe if follow is not None else self.recipe
            value = m.value()
            found = quick(value, recipe.max_record_bytes)
            if found is None:
                try:
                    found = validate(value, recipe.max_record_bytes)
                except Rejection as why:
                    batch.reject(rejected_from(m, why.kind, str(why), why.error_class))
                    self.dead_letters += 1
                    self.metrics.dead_letters.labels(why.kind).inc()
                    found = None
            if found is not None:
                date, hour, event_ms = found
                # the batch changes only through _open and _seal, which forget `records`
                if records is None or date is not last_date or hour is not last_hour:
                    records = batch.folder(layout.lake_partition(recipe.layout, date, hour, p), offset)
                    last_date, last_hour = date, hour
                    add_offset, add_stamp = records.offsets.append, records.timestamps.append
                    add_ms, add_end, data = records.event_ms.append, records.ends.append, records.data
                add_offset(offset)
                add_stamp(m.timestamp()[1])
                add_ms(event_ms)
                try:
                    data.write(value)
                except ValueError:  # its buffer is full: a larger one
                    data = records.grow(len(value))
                    data.write(value)
                add_end(data.tell())
                batch.next = offset + 1
            state.position = offset + 1
            if follow is not None and offset + 1 >= follow.end:
                self.seal(state)
                records = None
        self.records += len(messages)
        self.metrics.records.inc(len(messages))

    def open(self, state: PartitionState, start: int) -> Batch:
        state.batch = Batch(self.topic, state.partition, start, created=self.clock(), buffers=self.buffers)
        return state.batch

    def before(self, state: PartitionState, offset: int) -> Batch:
        """The batch that record `offset` goes into, when offsets before it hold no record: they are
        accounted for in the batch (absent: markers, aborted or compacted records; lost: deleted by
        retention before they were read). A claim being read again ends where it says, even if its
        last offsets hold no record now."""
        assert state.position is not None
        batch = state.batch or self.open(state, state.position)
        follow = state.follow
        if follow is not None and offset >= follow.end:
            batch.skip(follow.end, state.deleted_below)
            self.seal(state)
            batch = self.open(state, follow.end)
        lost = len(batch.lost)
        batch.skip(offset, state.deleted_below)
        if len(batch.lost) > lost and state.follow is None:  # a claim read again: its flight decides
            first, end = batch.lost[-1]
            self.count_lost(
                state.partition,
                end - first,
                f"offsets {first}..{end - 1} were deleted by Kafka's retention before they were landed: lost",
            )
        return batch

    def count_lost(self, partition: int, offsets: int, what: str) -> None:
        log.error("partition %d: %s", partition, what)
        self.lost_offsets += offsets
        self.metrics.lost.labels(str(partition)).inc(offsets)

    def seal(self, state: PartitionState) -> None:
        """A following batch reached its claim's end: set it aside until the flight slot is free."""
        assert state.batch is not None and state.follow is not None and state.sealed is None
        state.sealed = state.batch
        state.sealed_claim = state.follow
        state.batch = None
        state.follow = None
