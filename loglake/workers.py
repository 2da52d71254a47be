"""Where the writer's flights (and its reads of the lake) run: a pool of threads; in tests, a queue
that runs a task only when the test says (tests/sim.py)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol


class Workers(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def wait(self, futures: list[Future[Any]], timeout: float) -> None:
        """Return when one of `futures` is done or `timeout` seconds passed."""
        ...

    def shutdown(self) -> None: ...


class ThreadWorkers:
    def __init__(self, threads: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flight")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def wait(self, futures: list[Future[Any]], timeout: float) -> None:
        wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)

    def shutdown(self) -> None:
        # abandoned flights still finish (each S3 call is bounded by its timeouts); don't wait for them
        self._pool.shutdown(wait=False, cancel_futures=True)
