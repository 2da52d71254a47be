"""Errors a user can cause, and the one place that turns them into one sentence and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


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


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main(); a LoglakeError becomes one line on stderr and its exit code."""
    try:
        return main(argv)
    except LoglakeError as exc:
        logging.getLogger("loglake").debug("failure detail", exc_info=True)
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
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
