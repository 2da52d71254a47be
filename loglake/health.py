"""Whether the lake answers, said once when it stops and once when it is back.

The writer touches the lake only when it lands a batch, and a batch may wait minutes (`--batch-age`)
before it is due: an outage would go unseen until then. While batches are open, the writer asks the
lake a cheap question every few seconds (`ObjectStore.probe`), on a worker thread, so that an outage
shows in the log within seconds, whatever the batch settings. Flights report what they saw too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future

from loglake.errors import LakeRetriable, LakeUnavailable
from loglake.lake import ObjectStore

log = logging.getLogger("loglake.consume")

PROBE_EVERY = 5.0  # seconds between probes while batches wait and no flight has touched the lake


class LakeHealth:
    def __init__(self, store: ObjectStore, clock: Callable[[], float], where: str = "") -> None:
        self.store = store
        self.where = where or store.where  # what the sentences name (the table: loglake/tablecommit.py)
        self.named = f" {where}" if where else ""  # ...when it is back, too
        self.clock = clock
        self.down_since = 0.0
        self.last_answer = clock()  # the last time a request of ours reached the lake (or we began)
        self.last_probe = 0.0
        self.probing: Future[None] | None = None

    @property
    def down(self) -> bool:
        return self.down_since > 0

    def failed(self, why: BaseException | str) -> None:
        if not self.down_since:
            self.down_since = self.clock()
            log.warning(
                "the lake %s is not answering (%s): batches wait in memory, nothing is committed until it is back",
                self.where,
                why,
            )

    def answered(self) -> None:
        self.last_answer = self.clock()
        if self.down_since:
            log.info("the lake%s is back after %.1f s", self.named, self.clock() - self.down_since)
            self.down_since = 0.0

    def probe_due(self, waiting: bool) -> bool:
        """Whether to probe now: batches are waiting, no probe is out, and the lake was last heard of
        (or found down) more than PROBE_EVERY seconds ago."""
        if not waiting or self.probing is not None:
            return False
        return self.clock() - max(self.last_answer, self.last_probe) >= PROBE_EVERY

    def probing_now(self, future: Future[None]) -> None:
        self.probing = future
        self.last_probe = self.clock()

    def settle_probe(self) -> None:
        """Take the outcome of a finished probe."""
        assert self.probing is not None and self.probing.done()
        exc = self.probing.exception()
        self.probing = None
        if exc is None:
            self.answered()
        elif isinstance(exc, LakeRetriable | LakeUnavailable):
            self.failed(exc)
        else:
            raise exc
