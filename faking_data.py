#!/usr/bin/env python3
"""Fake platform log events -> Kafka topic `log-data`. `python faking_data.py --help` for the flags.

A thin entry point: the work and the argument parsing live in loglake/produce.py.
"""

import sys

from loglake.produce import run

if __name__ == "__main__":
    sys.exit(run())
