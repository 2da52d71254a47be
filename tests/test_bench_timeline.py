"""The writer benchmark's timeline (benchmarks/writer.py): start-up, steady rate and tail of a run,
read from the writer's progress lines."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from benchmarks.writer import progress_points, timeline


def log_line(at: float, records: int) -> str:
    stamp = datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    return f"{stamp} INFO loglake.consume: records={records} buffered=0 objects=0 commits=0"


def test_a_run_splits_into_start_up_steady_reading_and_tail():
    start = time.time()
    stderr = "\n".join(
        [
            log_line(start + 0.5, 0),
            f"{datetime.fromtimestamp(start + 0.6):%Y-%m-%d %H:%M:%S},000 INFO loglake.consume: assigned [0]",
            log_line(start + 0.8, 2_000),
            log_line(start + 1.8, 102_000),
            log_line(start + 5.8, 502_000),
            log_line(start + 10.8, 1_000_000),
        ]
    )
    points = progress_points(stderr, start)
    assert [r for _, r in points] == [0, 2_000, 102_000, 502_000, 1_000_000]
    figures = timeline(points, 1_000_000, landed_s=11.2)
    assert figures["ours_startup_s"] == pytest.approx(0.8, abs=0.002)
    assert figures["ours_steady_eps"] == pytest.approx(100_000, rel=0.001)
    # the last record at 5.8 s + 498,000 / 100,000 events/s = 10.78 s
    assert figures["ours_tail_s"] == pytest.approx(0.42, abs=0.003)


def test_too_few_progress_lines_give_no_timeline():
    start = time.time()
    points = progress_points("\n".join([log_line(start + 0.8, 2_000), log_line(start + 1.0, 5_000)]), start)
    assert timeline(points, 5_000, landed_s=2.0) == {}  # only one line saw part of the topic
