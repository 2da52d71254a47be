"""Errors a user can cause, and the one place that turns them into one sentence and an exit code."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


class LoglakeError(Exception):
    """A failure the user can understand and act on; its message is one sentence."""

    exit_code = 1


class ConfigError(LoglakeError):
    """A bad flag or environment value."""

    exit_code = 2


class KafkaUnavailable(LoglakeError):
    """The brokers did not answer, refused us, or the topic is missing."""


class LakeUnavailable(LoglakeError):
    """The object store did not answer, refused us, or the bucket is missing."""


class LakeRetriable(Exception):
    """A lake failure that may pass: connection refused, timeout, 5xx, throttling. The writer retries
    it; a command that cannot wait (verify) reports it in one sentence through run_cli."""


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main(); a LoglakeError becomes one line on stderr and its exit code."""
    try:
        return main(argv)
    except LoglakeError as exc:
        logging.getLogger("loglake").debug("failure detail", exc_info=True)
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except LakeRetriable as exc:
        logging.getLogger("loglake").debug("failure detail", exc_info=True)
        sys.stderr.write(
            f"error: the lake did not answer ({exc}); is the S3 server up, and AWS_ENDPOINT_URL right?\n"
        )
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # client libraries are chatty at INFO; their warnings still show
    for noisy in ("kafka", "botocore", "boto3", "urllib3", "faker"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@contextmanager
def stop_on_signals(
    stop: threading.Event,
    on_first: Callable[[str], None] | None = None,
    pending: Sequence[int] = (),
) -> Iterator[None]:
    """The first SIGINT/SIGTERM sets `stop` (the command finishes its step, flushes and exits);
    a second one raises KeyboardInterrupt (stop at once: run_cli exits 130). `pending`: the signals
    that came before, kept since the entry point's first line (loglake/stopping.py), taken as if
    they came now."""

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        if on_first is not None:
            on_first(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for signum in list(pending):
            handle(signum, None)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
