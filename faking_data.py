#!/usr/bin/env python3
"""Fake platform log events -> Kafka topic `log-data`. `python faking_data.py --help` for the flags.

A thin entry point: the work and the argument parsing live in loglake/produce.py.
"""

import sys

from loglake.stopping import keep_stop_signals

if __name__ == "__main__":
    # First: a SIGTERM from here on means "stop cleanly", even while the producer's modules load.
    pending = keep_stop_signals()
    from loglake.produce import run

    sys.exit(run(pending=pending))
