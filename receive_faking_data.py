#!/usr/bin/env python3
"""Kafka topic `log-data` -> batched JSON files in the S3 data lake, exactly once.
`python receive_faking_data.py --help` for the flags.

A thin entry point: the work and the argument parsing live in loglake/cli.py (the loop in loglake/consume.py).
"""

import sys

from loglake.cli import run

if __name__ == "__main__":
    sys.exit(run())
