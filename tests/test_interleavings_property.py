"""Thousands of random interleavings of the lake writer's world (Hypothesis' stateful testing): records
arrive, writers start with different settings, poll, crash, are stopped, go deaf past their session
(zombies); partitions are assigned, revoked and lost; uploads run in any order, late or never; the
lake and the dead-letter topic fail and recover; time passes.

Invariant after every step: the group never committed past an offset that is not stored.
At the end: everything heals, the abandoned uploads of dead writers and zombies run (some before,
some after a fresh writer lands the rest), and every offset is stored exactly once.
A failure is shrunk by Hypothesis to the shortest sequence that shows it.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.sim import World

VARIANTS = [
    {"batch_records": 5},
    {"batch_records": 3, "fmt": "json", "compression": "none"},
    {"batch_records": 8, "layout": "partition"},
    {"batch_records": 4, "max_record_bytes": 90},
    {"batch_records": 6, "compression": "none"},
]
EXAMPLES = int(os.environ.get("LOGLAKE_INTERLEAVINGS", "1000"))


class WriterWorld(RuleBasedStateMachine):
    TABLE = False  # the writers commit to the world's Iceberg table (tests/test_interleavings_table.py)

    def __init__(self) -> None:
        super().__init__()
        self.w = World(partitions=2)
        self.writers: list[dict] = []  # {"writer", "consumer", "workers", "alive"}

    # -- the world --------------------------------------------------------------------------------
    @initialize(first=st.sampled_from(VARIANTS), second=st.sampled_from(VARIANTS), n=st.integers(5, 20))
    def two_writers_and_some_records(self, first, second, n):
        for p in range(self.w.partitions):
            self.w.cluster.produce(p, n)
        for variant in (first, second):
            self.start_writer(variant)
        self.w.cluster.give(self.writers[0]["consumer"], 0)
        self.w.cluster.give(self.writers[1]["consumer"], 1)

    @rule(
        p=st.integers(0, 1), n=st.integers(1, 12), bad=st.sampled_from([0, 0, 3, 5]), hour=st.integers(0, 2)
    )
    def produce(self, p, n, bad, hour):
        self.w.cluster.produce(p, n, bad_every=bad, hour=hour)

    @rule(variant=st.sampled_from(VARIANTS))
    @precondition(lambda self: sum(x["alive"] for x in self.writers) < 3)
    def start_writer(self, variant):
        if self.w.store.down:
            return  # start-up would wait for the lake
        writer, consumer, workers = self.w.writer(table=self.TABLE, **variant)
        self.writers.append({"writer": writer, "consumer": consumer, "workers": workers, "alive": True})

    def _alive(self) -> list[dict]:
        return [x for x in self.writers if x["alive"]]

    @rule(p=st.integers(0, 1), data=st.data())
    def assign(self, p, data):
        alive = [x for x in self._alive() if not x["consumer"].deaf]
        if self.w.cluster.owner[p] is None and alive:
            self.w.cluster.give(data.draw(st.sampled_from(alive))["consumer"], p)

    @rule(p=st.integers(0, 1))
    def revoke(self, p):
        owner = self.w.cluster.owner[p]
        if owner is not None and not owner.deaf and not any(e[0] == "revoked" for e in owner.events):
            self.w.cluster.revoke(p)

    @rule(p=st.integers(0, 1), deaf=st.booleans())
    def expire(self, p, deaf):
        """The owner's session expires; a deaf one (SIGSTOP) does not notice until it wakes."""
        if self.w.cluster.owner[p] is not None:
            self.w.cluster.expire(p).deaf |= deaf

    @rule(data=st.data())
    def wake(self, data):
        deaf = [x for x in self.writers if x["consumer"].deaf]
        if deaf:
            data.draw(st.sampled_from(deaf))["consumer"].deaf = False

    @rule(data=st.data(), times=st.integers(1, 3))
    def step(self, data, times):
        alive = self._alive()
        if alive:
            x = data.draw(st.sampled_from(alive))
            for _ in range(times):
                if x["writer"].step():
                    self._gone(x)
                    break

    @rule(data=st.data())
    def run_upload(self, data):
        queued = [x for x in self.writers if x["workers"].queue]
        if queued:
            x = data.draw(st.sampled_from(queued))
            x["workers"].run(data.draw(st.integers(0, len(x["workers"].queue) - 1)))

    @rule(data=st.data())
    def crash(self, data):
        alive = self._alive()
        if alive:
            self._gone(data.draw(st.sampled_from(alive)))

    @rule(data=st.data())
    def sigterm(self, data):
        alive = self._alive()
        if alive:
            data.draw(st.sampled_from(alive))["writer"].stop.set()

    @rule(down=st.booleans())
    def lake(self, down):
        self.w.store.down = down

    @rule(failing=st.booleans())
    def object_uploads(self, failing):
        self.w.store.objects_fail = failing

    @rule(down=st.booleans())
    def dead_letter_topic(self, down):
        self.w.dead.down = down

    @rule(run=st.booleans())
    def revoke_waits_succeed(self, run):
        for x in self.writers:
            x["workers"].run_on_wait = run

    @rule(seconds=st.sampled_from([0.5, 2.0, 7.0, 70.0]))
    def time_passes(self, seconds):
        self.w.clock.sleep(seconds)

    def _gone(self, x: dict) -> None:
        """A writer that exited or was killed: the group frees its partitions (session timeout)."""
        x["alive"] = False
        self.w.cluster.leave(x["consumer"])

    # -- the checks -----------------------------------------------------------------------------------
    @invariant()
    def never_committed_past_what_is_stored(self):
        assert self.w.commit_problems() == []

    def teardown(self):
        w = self.w
        w.store.down = w.store.objects_fail = w.dead.down = False
        for x in self._alive():
            self._gone(x)
        late = [x["workers"] for x in self.writers]
        for workers in late[::2]:
            workers.run_all()  # some abandoned uploads land before the last writer starts
        final, consumer, workers = w.writer(table=self.TABLE)
        for p in range(w.partitions):
            w.cluster.give(consumer, p)
        for _ in range(200):
            final.step()
            workers.run_all()
            w.clock.sleep(6)
            if all(w.cluster.committed.get(p, 0) == len(r) for p, r in enumerate(w.cluster.log)):
                break
        for workers in late[1::2]:
            workers.run_all()  # ... the others after it landed everything
        assert w.problems() == []
        assert w.commit_problems() == []


WriterWorld.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_interleavings_land_every_offset_exactly_once = pytest.mark.timeout(900)(WriterWorld.TestCase)
