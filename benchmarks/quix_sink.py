"""The Quix Streams peer of `scripts/bench writer --peers`, as a user would write it: one topic into
Quix Streams' S3FileSink (JSON Lines), the defaults otherwise (at-least-once, a checkpoint every 5 s:
the sink's batches are written, then the offsets committed).

It runs in the peer's own environment (.stack/peers/quix/venv, made by benchmarks/peers.py), so it
imports nothing of loglake. Kafka and S3 come from the variables `scripts/stack env` prints.
"""

from __future__ import annotations

import argparse
import os

from quixstreams import Application
from quixstreams.sinks.community.file.formats import JSONFormat
from quixstreams.sinks.community.file.s3 import S3FileSink


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--directory", required=True, help="the sink's folder in the bucket")
    p.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without a message")
    p.add_argument(
        "--gzip", action="store_true", help="JSONFormat(compress=True) instead of plain JSON Lines"
    )
    ns = p.parse_args()
    app = Application(
        broker_address=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_group=ns.group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    sink = S3FileSink(
        bucket=os.environ["LAKE_BUCKET"],
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        directory=ns.directory,
        format=JSONFormat(compress=ns.gzip),
    )
    app.dataframe(app.topic(ns.topic)).sink(sink)
    app.run(timeout=ns.idle, collect=False)


if __name__ == "__main__":
    main()
