"""`python -m loglake COMMAND ...`: produce (= faking_data.py), write (= receive_faking_data.py), verify,
table (Iceberg table maintenance)."""

from __future__ import annotations

import sys

from loglake.stopping import keep_stop_signals

# The commands that take SIGTERM as "stop cleanly": a SIGTERM is kept from the first line on for them
# (loglake/stopping.py), while their modules load.
STOPPABLE = ("produce", "write")


def main() -> int:
    commands = {
        "produce": "loglake.produce",
        "write": "loglake.cli",
        "verify": "loglake.verify",
        "table": "loglake.table.cli",
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.stderr.write(f"usage: python -m loglake {{{','.join(commands)}}} [--help]\n")
        return 2
    pending = keep_stop_signals() if sys.argv[1] in STOPPABLE else None
    module = __import__(commands[sys.argv[1]], fromlist=["run"])
    return module.run(sys.argv[2:]) if pending is None else module.run(sys.argv[2:], pending=pending)


if __name__ == "__main__":
    sys.exit(main())
