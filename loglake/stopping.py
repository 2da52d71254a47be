"""A stop request kept from a command's first line: the entry points call `keep_stop_signals()` before
they import anything else.

Until a process installs a handler, SIGTERM's default action kills it at once, with no output and
exit status -15; the writer and the producer install theirs (loglake/errors.py, `stop_on_signals`)
once their modules are loaded, which takes a while on a busy machine. A service manager or a test
that stops a command it has just started would meet that window. From `keep_stop_signals()` on, a
SIGINT or SIGTERM is kept in a list instead, and the command's own handler takes each one over as if
it had come then: the first asks for a clean stop (exit 0), a second for an immediate one. Only the
interpreter's own start-up, before the entry point's first line, is left to the default action.

This module imports nothing but `signal`, so that calling it costs nothing before the handler is in.
"""

from __future__ import annotations

import signal


def keep_stop_signals() -> list[int]:
    """From now on a SIGINT or SIGTERM is appended to the returned list instead of ending the process;
    hand the list to the command (`stop_on_signals(..., pending=...)`), which takes them over."""
    kept: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: kept.append(signum))
    return kept
