"""Unit tests of the fake event generator, the event encoding and the producer's settings."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections import Counter, defaultdict

import pytest

from loglake import events
from loglake.fake import FakeLogs, SimClock, event_ids
from loglake.produce import DeliveryReport, build_parser, chunk_size, settings_from_args

START = events.parse_event_time("2026-03-01T10:00:00Z")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    events_ = FakeLogs(seed=42).events(20_000, START, 5.0)
    assert len(events_) == 20_000  # the loops below check every event: none must be vacuous
    return events_


def test_same_seed_gives_the_same_records_byte_for_byte() -> None:
    a = FakeLogs(seed=7).records(3000, START, 2.0)
    b = FakeLogs(seed=7).records(3000, START, 2.0)
    assert len(a) == 3000
    assert a == b
    assert FakeLogs(seed=8).records(3000, START, 2.0) != a


def test_unseeded_runs_differ() -> None:
    assert FakeLogs().records(50, START) != FakeLogs().records(50, START)


def test_stream_does_not_depend_on_how_it_is_cut_into_chunks() -> None:
    whole = FakeLogs(seed=3).records(1000, START, 4.0)
    gen = FakeLogs(seed=3)
    parts = []
    done = 0
    for n in (1, 7, 250, 2, 740):
        parts += gen.records(n, START + done * 4.0, 4.0)
        done += n
    assert done == 1000
    assert len(whole) == 1000
    assert parts == whole


def test_every_event_has_the_schema(sample: list[dict]) -> None:
    for event in sample:
        for name, types in events.FIELDS.items():
            assert isinstance(event[name], types), (name, event)
        extra = set(event) - set(events.FIELDS)
        assert extra <= set(events.OPTIONAL_FIELDS), extra
        for name in extra:
            assert isinstance(event[name], events.OPTIONAL_FIELDS[name]), (name, event)
        assert event["event_type"] in events.EVENT_TYPES
        assert TIME_RE.match(event["event_time"]), event["event_time"]
        assert event["schema_version"] == events.SCHEMA_VERSION
        assert event["device"] in ("desktop", "mobile", "tablet")
        assert event["platform"] in ("web", "ios", "android")
        assert re.fullmatch(r"[0-9a-f]{16}", event["request_id"])
        assert re.fullmatch(r"[0-9a-f]{32}", event["trace_id"])
        assert event["latency_ms"] > 0


def test_event_ids_built_column_by_column_are_the_uuid4_of_their_random_digits() -> None:
    import random

    rng = random.Random(3)
    for n in (1, 2, 7, 1000):
        digits = rng.randbytes(32 * n).hex()
        built = event_ids(digits.encode(), n)
        assert len(built) == 36 * n
        for i in range(n):
            h = digits[64 * i : 64 * i + 32]
            # the 16 random bytes, with the version and variant bits a v4 UUID must have
            want = uuid.UUID(bytes=bytes.fromhex(h), version=4)
            assert built[36 * i : 36 * i + 36] == str(want)


def test_event_ids_are_unique_uuid4(sample: list[dict]) -> None:
    ids = [e["event_id"] for e in sample]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_records_carry_key_timestamp_and_the_event_as_json() -> None:
    records = FakeLogs(seed=1).records(500, START, 20.0)
    assert len(records) == 500
    for i, (key, value, timestamp_ms) in enumerate(records):
        event = events.decode(value)
        assert key == event["user_id"].encode()
        assert timestamp_ms == START + i * 20
        assert events.parse_event_time(event["event_time"]) == timestamp_ms
        assert events.event_id_of(value) == event["event_id"]
        assert value.startswith(b'{"event_id":"')


def test_sessions_are_ordered_and_start_with_login(sample: list[dict]) -> None:
    by_session: dict[str, list[dict]] = defaultdict(list)
    for event in sample:
        by_session[event["session_id"]].append(event)
    long_sessions = started = logouts = 0
    for session in by_session.values():
        assert [e["seq"] for e in session] == list(range(session[0]["seq"], session[0]["seq"] + len(session)))
        assert len({e["user_id"] for e in session}) == 1
        # the generator starts fresh: every session it opens begins, in the sample, at seq 1 with a login
        assert session[0]["seq"] == 1 and session[0]["event_type"] == "login", session[0]
        started += 1
        for before, after in itertools.pairwise(session):  # logout ends it (a 5xx adds its error)
            assert before["event_type"] != "logout" or after["event_type"] == "error"
        logouts += any(e["event_type"] == "logout" for e in session)
        long_sessions += len(session) >= 5
    assert started > 1000 and logouts > 100, (started, logouts)
    assert long_sessions > len(by_session) / 4


def test_purchases_only_after_something_was_added_to_the_cart(sample: list[dict]) -> None:
    """The oracle keeps each session's cart: a purchase needs a non-empty cart and charges what it
    holds; a successful (< 400) purchase empties it; only successful add_to_cart requests fill it."""
    cart_items: dict[str, int] = defaultdict(int)
    cart_amount: dict[str, float] = defaultdict(float)
    purchases = 0
    for event in sample:
        session = event["session_id"]
        if event["event_type"] == "add_to_cart" and event["status"] < 400:
            cart_items[session] += event["quantity"]
            cart_amount[session] += event["amount"]
        if event["event_type"] == "purchase":
            purchases += 1
            assert cart_items[session] > 0, f"a purchase with an empty cart: {event}"
            assert event["amount"] == pytest.approx(cart_amount[session], abs=0.01), event
            assert event["currency"]
            if event["status"] < 400:
                cart_items[session], cart_amount[session] = 0, 0.0
    assert purchases > 50


def test_errors_follow_their_5xx_request(sample: list[dict]) -> None:
    errors = 0
    for previous, event in itertools.pairwise(sample):
        if event["event_type"] == "error":
            errors += 1
            assert previous["status"] >= 500
            assert event["status"] == previous["status"]
            for same in ("request_id", "trace_id", "session_id", "user_id", "path"):
                assert event[same] == previous[same], same
            assert event["seq"] == previous["seq"] + 1
            assert event["error_code"].startswith("E_")
        if previous["status"] >= 500 and previous["event_type"] != "error":
            assert event["event_type"] == "error"
    assert errors > 50, errors


def test_the_data_has_a_realistic_shape(sample: list[dict]) -> None:
    statuses = Counter(e["status"] // 100 for e in sample if e["event_type"] != "error")
    total = sum(statuses.values())
    assert statuses[2] / total > 0.85
    assert 0.002 < statuses[5] / total < 0.03
    assert statuses[4] > 0

    views = Counter(e["path"] for e in sample if e["event_type"] == "page_view")
    top10 = sum(n for _, n in views.most_common(10))
    assert top10 / sum(views.values()) > 0.2, "a few pages should get much of the traffic"
    assert len(views) > 200, "and a long tail the rest"

    latencies = sorted(e["latency_ms"] for e in sample)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    assert p99 > 5 * p50, "latency is long-tailed"

    users = Counter(e["user_id"] for e in sample)
    assert users.most_common(1)[0][1] > 5 * (len(sample) / len(users)), "a few users are very active"
    assert len({e["country"] for e in sample}) > 5


def test_event_time_formatting() -> None:
    assert events.format_event_time(1764018184123) == "2025-11-24T21:03:04.123Z"
    assert events.format_event_time(1764018184005) == "2025-11-24T21:03:04.005Z"
    assert events.parse_event_time("2025-11-24T21:03:04.123Z") == 1764018184123
    assert events.parse_event_time("2025-11-24T22:03:04.123+01:00") == 1764018184123
    gen = FakeLogs(seed=1)
    for ms in (0, 999, 1000, 1764018184123, 1764018184999):  # the generator's cached formatting
        (event,) = gen.events(1, ms)
        assert event["event_time"] == events.format_event_time(ms)
    assert [e["event_time"] for e in gen.events(3, 1764018184999, 0.5)] == [
        "2025-11-24T21:03:04.999Z",
        "2025-11-24T21:03:04.999Z",
        "2025-11-24T21:03:05.000Z",
    ]
    with pytest.raises(ValueError):
        events.parse_event_time("2025-11-24T21:03:04")


def test_sim_clock_with_a_start_is_simulated_time_one_step_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_wall_clock() -> float:
        raise AssertionError("a simulated clock read the wall clock")

    monkeypatch.setattr("loglake.fake.time.time", no_wall_clock)
    seeded = SimClock(rate=50, start_ms=START)
    assert seeded.step_ms == 20
    assert [seeded.chunk_start(i) for i in (0, 1, 10, 1000)] == [
        START,
        START + 20,
        START + 200,
        START + 20_000,
    ]
    thirds = SimClock(rate=3, start_ms=START)  # 333.33 ms apart: event i at int(start + i * step)
    assert [thirds.chunk_start(i) for i in (1, 2, 3)] == [START + 333, START + 666, START + 1000]
    unlimited = SimClock(rate=0, start_ms=START)  # as fast as possible: 1 ms apart
    assert unlimited.step_ms == 1.0
    assert unlimited.chunk_start(7) == START + 7
    assert SimClock(rate=50, start_ms=START).chunk_start(10) == seeded.chunk_start(10)  # deterministic


def test_sim_clock_without_a_start_reads_the_wall_clock_at_each_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_767_225_600.25]  # 2026-01-01T00:00:00.250Z, in seconds as time.time() gives it
    monkeypatch.setattr("loglake.fake.time.time", lambda: now[0])
    wall = SimClock(rate=0)
    assert wall.step_ms == 0  # unlimited: a chunk's events share the moment it was made
    assert wall.chunk_start(0) == wall.chunk_start(5) == 1_767_225_600_250  # the time now, whatever the index
    now[0] += 61.5
    assert wall.chunk_start(5) == 1_767_225_661_750
    paced = SimClock(rate=200)
    assert paced.step_ms == 5  # a chunk's events 1/rate apart from the moment it was made
    assert paced.chunk_start(400) == 1_767_225_661_750


def test_sim_clock_without_a_start_is_the_real_wall_clock() -> None:
    before = int(time.time() * 1000)
    read = SimClock(rate=100).chunk_start(3)
    after = int(time.time() * 1000)
    assert before <= read <= after


def test_chunk_size_follows_the_rate() -> None:
    assert chunk_size(0) == 1000  # unlimited: the largest chunk
    assert chunk_size(50) == 2  # 50 ms worth of the rate
    assert chunk_size(10_000) == 500
    assert chunk_size(1) == 1  # never 0
    assert chunk_size(1e9) == 1000  # never above the largest


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGLAKE_RATE", "12.5")
    monkeypatch.setenv("LOGLAKE_TOPIC", "from-env")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    settings = settings_from_args(
        build_parser().parse_args(["--topic", "from-flag", "--count", "10", "--seed", "3"])
    )
    assert settings.topic == "from-flag"  # flag wins over the environment
    assert settings.rate == 12.5  # environment wins over the default
    assert settings.count == 10
    assert settings.seed == 3
    assert settings.kafka.bootstrap_servers == "10.0.0.1:9092"
    start = settings_from_args(build_parser().parse_args(["--start-time", "2026-02-03T04:05:06.007Z"]))
    assert start.start_time_ms == events.parse_event_time("2026-02-03T04:05:06.007Z")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--count", "-1"], "--count"),
        (["--rate", "abc"], "not a number"),
        (["--rate", "-5"], "--rate"),
        (["--start-time", "yesterday"], "RFC 3339"),
        (["--compression", "brotli"], "--compression"),
        (["--duration", "0"], "--duration"),
    ],
)
def test_bad_flags_are_one_sentence_and_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert words in err


def test_delivery_report_is_ok_only_when_all_asked_for_was_acknowledged() -> None:
    assert DeliveryReport(requested=10, topic="t", sent=10, acked=10).ok
    assert not DeliveryReport(requested=10, topic="t", sent=10, acked=9, failed=1).ok
    assert not DeliveryReport(requested=10, topic="t", sent=10, acked=9, in_flight=1).ok
    assert not DeliveryReport(requested=10, topic="t", sent=8, acked=8).ok
    assert DeliveryReport(requested=10, topic="t", sent=8, acked=8, stopped_by="SIGTERM").ok
    assert DeliveryReport(requested=None, topic="t", sent=5, acked=5).ok
    fields = (
        DeliveryReport(requested=None, topic="t", sent=5, acked=4, failed=1, elapsed=2.0).summary().split()
    )
    assert fields[:6] == ["produced", "topic=t", "sent=5", "acked=4", "failed=1", "in_flight=0"]
    assert "events_per_s=2" in fields  # acknowledged per second: 4 / 2.0
    stopped = DeliveryReport(requested=9, topic="t", stopped_by="SIGTERM").summary().split()
    assert stopped[-1] == "stopped_by=SIGTERM"
