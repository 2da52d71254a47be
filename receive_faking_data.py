#!/usr/bin/env python3
"""Kafka topic `log-data` -> batched JSON files in the S3 data lake, exactly once.
`python receive_faking_data.py --help` for the flags.

A thin entry point: the work and the argument parsing live in loglake/cli.py (the loop in loglake/consume.py).
"""

import sys

from loglake.stopping import keep_stop_signals

if __name__ == "__main__":
    # First: a SIGTERM from here on means "stop cleanly, exit 0", even while the writer's modules load.
    pending = keep_stop_signals()
    from loglake.cli import run

    sys.exit(run(pending=pending))
