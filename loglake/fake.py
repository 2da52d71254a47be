"""Fast, realistic fake platform log events.

How the data is shaped (the README repeats this):
- Faker runs only at start, to fill pools (IP addresses, user agents, page slugs, search
  terms, products, referrer sites, hosts). The hot loop only samples the pools through
  precomputed lookup tables indexed by random bits: no Faker call per event.
- Users: a fixed population (`users`, 20,000), a few far more active than the rest (Zipf-like).
  A user's profile (IP, user agent -> device and OS, platform, country, locale, app version) is
  built at start and fixed for the run.
- Sessions: 2**`session_bits` (256) are open at any time; each event advances one of them
  picked at random, so sessions interleave like real traffic while each session's own events
  stay in order (`seq` 1, 2, 3...). A session starts with `login`, wanders through
  page_view / search / click / add_to_cart (a Markov chain), may `purchase` what is in the
  cart, and ends with `logout` (or just stops, like a closed tab).
- Pages are Zipf-popular: a handful get most of the views.
- Status: mostly 2xx, some 3xx/4xx (failed logins, missing pages, bad cart requests), ~1% 5xx.
  A 5xx response is followed at once by an `error` event with the same request_id and trace_id.
- Latency is lognormal per service (long tail); 5xx responses are slow (timeouts).

Reproducibility: with a seed, the pools, users, sessions and every id come from `random.Random`
streams derived from it (event_id too, not uuid4()), so the same seed, the same event times and
the same code give the same events, byte for byte, however the stream is cut into `records()`
calls. The caller chooses the event times (see `SimClock`).

Speed: the generator must outrun the producer, so the hot loop in `records()` is written for it
(the figures: docs/performance.md): tables instead of weighted choices, ids sliced from one block of
random hex per call, the fields that are constant for a session encoded once (`json_tail`).

The platform's shape and the value pools are loglake/fake_pools.py; this module is the generator
(users, sessions, events) and the clock that times them.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from faker import Faker

from loglake.events import SCHEMA_VERSION
from loglake.fake_pools import (
    APP_VERSIONS,
    COUNTRIES,
    CURRENCY,
    LATENCY,
    LATENCY_TABLE_BITS,
    PAGE_TABLE_BITS,
    SERVER_ERROR_RATE,
    SERVER_ERRORS,
    SITE,
    STATUS,
    TABLE_BITS,
    TRANSITIONS,
    build_pools,
    lognormal_table,
    weighted_table,
    zipf_weights,
)


@dataclass(slots=True)
class User:
    user_id: str
    key: bytes  # user_id encoded: the Kafka record key
    ip: str
    user_agent: str
    device: str
    os: str
    platform: str
    app_version: str
    country: str
    locale: str
    currency: str
    json_tail: bytes  # `,"app_version":...,"os":...}`: the fields that never change for a user, encoded once


@dataclass(slots=True)
class Session:
    user: User
    session_id: str
    trace_prefix: str  # first half of the trace ids of this session's requests
    json_tail: bytes  # `,"user_id":...,"session_id":...` + the user's json_tail, encoded once
    state: str = "start"
    seq: int = 0
    cart_items: int = 0
    cart_amount: float = 0.0
    path: str | None = None  # the page the user is on (the next request's referrer)


_MILLIS = tuple(f"{i:03d}Z" for i in range(1000))
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")  # a v4 UUID's variant digit
# where the characters of an event_id (8-4-4-4-12, version 4) come from in its 32 random hex digits:
# (first character, first digit, how many); the 13th digit gives way to the version, the 17th
# becomes the variant digit
_ID_SPANS = ((0, 0, 8), (9, 8, 4), (15, 13, 3), (20, 17, 3), (24, 20, 12))
_ID_DIGITS = tuple((to + k, from_ + k) for to, from_, count in _ID_SPANS for k in range(count))


def event_ids(hexes: bytes, n: int) -> str:
    """The event_ids (UUID version 4 strings, 36 characters each, back to back) of `n` events from
    their random hex digits (64 per event, the first 32 for the id): built column by column with
    strided slices, one C loop per character position instead of a format per event."""
    out = bytearray(b"-" * (36 * n))
    for to, from_ in _ID_DIGITS:
        out[to::36] = hexes[from_::64]
    out[14::36] = b"4" * n
    out[19::36] = hexes[16::64].translate(_VARIANT)
    return out.decode("ascii")


class FakeLogs:
    """Generates events; `events(n, ...)` for dicts, `records(n, ...)` for Kafka-ready tuples.

    The stream does not depend on how it is cut into calls: with the same seed, events(3) then
    events(2) gives the same five events as events(5) (when the times asked for are the same).
    Not thread-safe; one instance per producer.
    """

    def __init__(self, seed: int | None = None, users: int = 20_000, session_bits: int = 8) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._id_rng = random.Random(self._rng.getrandbits(64))  # event, request and trace ids
        faker = Faker()
        faker.seed_instance(self._rng.getrandbits(32))
        self.pools = build_pools(faker, self._rng)
        self._user_table = weighted_table(dict(enumerate(zipf_weights(users, 0.8))), 16)
        self._countries = weighted_table({(c, loc): w for c, loc, w in COUNTRIES})
        self._platforms = {
            "mobile": weighted_table({"web": 55, "ios": 25, "android": 20}),
            "tablet": weighted_table({"web": 70, "ios": 20, "android": 10}),
        }
        self._transitions = {state: weighted_table(w) for state, w in TRANSITIONS.items()}
        self._status = {state: weighted_table(w) for state, w in STATUS.items()}
        self._latency = {s: lognormal_table(median, sigma) for s, (median, sigma) in LATENCY.items()}
        # results of a search: lognormal, median e**3 (about 20), drawn from a table like the latencies
        self._search_results = tuple(int(v) for v in lognormal_table(math.exp(3.0), 1.2))
        self._hosts = {
            s: tuple(hosts[i % len(hosts)] for i in range(256)) for s, hosts in self.pools.hosts.items()
        }
        # a fixed population; a few users are far more active than the rest (see _user_table)
        user_rng = random.Random(self._rng.getrandbits(64))
        self._users = [self._make_user(index, user_rng) for index in range(users)]
        self._session_bits = session_bits  # 2**session_bits sessions are open at any time
        self._sessions = [self._new_session() for _ in range(1 << session_bits)]
        self._pending_error: tuple[dict[str, Any], Session] | None = None  # the `error` event after a 5xx

    # ---- users and sessions

    def _make_user(self, index: int, rng: random.Random) -> User:
        ua, device, os_name = rng.choice(self.pools.user_agents)
        platform = "web"
        if device != "desktop":
            platform = self._platforms[device][rng.getrandbits(TABLE_BITS)]
            if platform == "ios" and os_name == "Android":
                platform = "android"
            elif platform == "android" and os_name in ("iOS", "iPadOS"):
                platform = "ios"
        app_version = rng.choice(APP_VERSIONS[platform])
        if platform != "web":
            system = "iPhone; iOS 17.6" if platform == "ios" else "Linux; Android 14"
            ua = f"ShopApp/{app_version} ({system}; {device})"
        country, locale = self._countries[rng.getrandbits(TABLE_BITS)]
        user_id = f"u{index:07d}"
        ip = rng.choice(self.pools.ips)
        currency = CURRENCY.get(country, "EUR")
        constant = {
            "app_version": app_version,
            "ip": ip,
            "user_agent": ua,
            "country": country,
            "locale": locale,
            "device": device,
            "platform": platform,
            "os": os_name,
        }
        return User(
            user_id=user_id,
            key=user_id.encode(),
            ip=ip,
            user_agent=ua,
            device=device,
            os=os_name,
            platform=platform,
            app_version=app_version,
            country=country,
            locale=locale,
            currency=currency,
            json_tail=b"," + orjson.dumps(constant)[1:],
        )

    def _new_session(self) -> Session:
        rng = self._rng
        user = self._users[self._user_table[rng.getrandbits(16)]]
        digits = f"{rng.getrandbits(128):032x}"  # the session id's, then the trace prefix's
        session_id = "s" + digits[:16]
        tail = b',"user_id":"%s","session_id":"%s"%s' % (user.key, session_id.encode(), user.json_tail)
        return Session(user, session_id, digits[16:], tail)

    # ---- events

    def events(self, n: int, start_ms: float, step_ms: float = 0.0) -> list[dict[str, Any]]:
        """The next `n` events as dicts (decoded from `records`: one code path)."""
        return [orjson.loads(value) for _key, value, _ts in self.records(n, start_ms, step_ms)]

    def records(self, n: int, start_ms: float, step_ms: float = 0.0) -> list[tuple[bytes, bytes, int]]:
        """The next `n` events as Kafka records (key = user_id, value = UTF-8 JSON, timestamp ms);
        event i happens at `int(start_ms + i * step_ms)` (epoch ms)."""
        out: list[tuple[bytes, bytes, int]] = []
        append = out.append
        dumps = orjson.dumps
        rng = self._rng
        bits = rng.getrandbits
        rand = rng.random
        # 64 random hex digits per event: event_id (32), request_id (16), second half of trace_id (16)
        hex_digits = self._id_rng.randbytes(32 * n).hex().encode()
        hexes = hex_digits.decode()
        ids = event_ids(hex_digits, n)
        sessions = self._sessions
        session_bits = self._session_bits
        pools = self.pools
        pages = pools.pages
        products = pools.products
        product_table = pools.product_table
        transitions = self._transitions
        status_tables = self._status
        latency_tables = self._latency
        search_results = self._search_results
        host_tables = self._hosts
        external_referrers = pools.external_referrers
        millis = _MILLIS
        server_error_rate = SERVER_ERROR_RATE
        schema_version = SCHEMA_VERSION
        site = SITE
        assert TABLE_BITS == 12 and PAGE_TABLE_BITS == 16 and LATENCY_TABLE_BITS == 14  # literal below
        second = -1
        prefix = ""
        i = 0
        pending = self._pending_error
        while i < n:
            if pending is None:
                slot = bits(session_bits)
                session = sessions[slot]
                state = session.state
                if state == "start":
                    kind = "login"
                else:
                    kind = transitions[state][bits(12)]
                    if kind == "purchase" and not session.cart_items:
                        kind = "page_view"
                    elif kind == "end":
                        sessions[slot] = self._new_session()
                        continue
            ms = int(start_ms + i * step_ms)
            if ms // 1000 != second:
                second = ms // 1000
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            when = prefix + millis[ms % 1000]
            o = i * 64
            event_id = ids[i * 36 : i * 36 + 36]
            i += 1
            if pending is not None:  # the `error` event that follows a 5xx response
                error_event, error_session = pending
                error_event["event_id"] = event_id
                error_event["event_time"] = when
                append((error_session.user.key, dumps(error_event)[:-1] + error_session.json_tail, ms))
                pending = None
                continue
            user = session.user
            session.seq += 1
            referrer = session.path
            extra: dict[str, Any] | None = None
            if kind == "page_view":
                path, service, size = pages[bits(16)]
                method = "GET"
            elif kind == "click":
                product_id, path, _price, size = products[product_table[bits(14)]]
                service, method = "catalog", "GET"
            elif kind == "search":
                query = pools.search_terms[bits(14)]
                service, method, path = "search", "GET", "/search?q=" + query.replace(" ", "+")
                size = 30_000
                extra = {"query": query, "results": search_results[bits(14)]}
            elif kind == "add_to_cart":
                product_id, _path, price, _size = products[product_table[bits(14)]]
                quantity = 1 if rand() < 0.8 else 2 + bits(2)
                service, method, path = "cart", "POST", "/api/cart/items"
                extra = {
                    "product_id": product_id,
                    "quantity": quantity,
                    "amount": round(price * quantity, 2),
                    "currency": user.currency,
                }
            elif kind == "purchase":
                service, method, path = "checkout", "POST", "/api/checkout"
                extra = {
                    "order_id": f"o{bits(48):012x}",
                    "amount": round(session.cart_amount, 2),
                    "currency": user.currency,
                }
            elif kind == "login":
                service, method, path = "auth", "POST", "/login"
                referrer = external_referrers[bits(12)]
            else:  # logout
                service, method, path = "auth", "POST", "/logout"
            latency_ms = latency_tables[service][bits(14)]
            error_code = None
            if rand() < server_error_rate:
                status, error_code, error_message = SERVER_ERRORS[bits(2)]
                latency_ms = round(latency_ms * 8, 1) if status != 504 else round(30_000 + rand() * 50, 1)
                sent_bytes = 180 + bits(8)
            else:
                status = status_tables[kind][bits(12)]
                if status == 304:
                    sent_bytes = 0
                elif status == 200 and method == "GET":
                    sent_bytes = size + bits(12)
                else:
                    sent_bytes = 120 + bits(9)
            event = {
                "event_id": event_id,
                "event_time": when,
                "event_type": kind,
                "schema_version": schema_version,
                "seq": session.seq,
                "request_id": hexes[o + 32 : o + 48],
                "trace_id": session.trace_prefix + hexes[o + 48 : o + 64],
                "service": service,
                "host": host_tables[service][bits(8)],
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": latency_ms,
                "bytes_sent": sent_bytes,
                "referrer": None
                if referrer is None
                else (site + referrer if referrer[0] == "/" else referrer),
            }
            if kind == "click":
                event["product_id"] = product_id
            elif extra is not None:
                event.update(extra)
            append((user.key, dumps(event)[:-1] + session.json_tail, ms))

            # the session moves on
            if error_code is not None:
                session.seq += 1
                error_event = dict(event)
                error_event.update(
                    event_type="error",
                    seq=session.seq,
                    bytes_sent=0,
                    error_code=error_code,
                    error_message=f"{method} {path.split('?')[0]}: {error_message}",
                )
                pending = (error_event, session)
            if status < 400:
                if kind == "add_to_cart":
                    session.cart_items += extra["quantity"]  # type: ignore[index]
                    session.cart_amount += extra["amount"]  # type: ignore[index]
                elif kind == "purchase":
                    session.cart_items = 0
                    session.cart_amount = 0.0
                if method == "GET":
                    session.path = path
            if kind == "logout":
                sessions[slot] = self._new_session()
            elif not (kind == "login" and status == 401):  # a failed login is tried again
                session.state = kind
        self._pending_error = pending
        return out


@dataclass
class SimClock:
    """When the events happen.

    - `start_ms` given (always for a seeded run): simulated time, event i at start + i * step,
      where step = 1000 / rate ms (rate 0: 1 ms). Deterministic.
    - otherwise: wall-clock time, read at each chunk; events of a chunk are spaced by the step.
    """

    rate: float
    start_ms: int | None = None

    @property
    def step_ms(self) -> float:
        return 1000.0 / self.rate if self.rate > 0 else (1.0 if self.start_ms is not None else 0.0)

    def chunk_start(self, index: int) -> int:
        """Time of event number `index` (0-based) of the run."""
        if self.start_ms is not None:
            return int(self.start_ms + index * self.step_ms)
        return int(time.time() * 1000)
