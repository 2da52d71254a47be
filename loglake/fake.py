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

Speed: ~200,000 events/s on one core of a 2-core Xeon VM, JSON included. The hot loop in
`records()` is written for it: tables instead of weighted choices, ids sliced from one block of
random hex per call, the fields that are constant for a session encoded once (`json_tail`).
"""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import orjson
from faker import Faker

from loglake.events import SCHEMA_VERSION

SITE = "https://shop.example.com"
TABLE_BITS = 12  # weighted choices are drawn from tables of 2**TABLE_BITS entries
PAGE_TABLE_BITS = 16  # the page table is finer, to keep the Zipf tail

# (country, locale, weight): a plausible global audience
COUNTRIES = (
    ("US", "en-US", 30),
    ("IN", "en-IN", 9),
    ("GB", "en-GB", 8),
    ("DE", "de-DE", 8),
    ("BR", "pt-BR", 7),
    ("FR", "fr-FR", 6),
    ("JP", "ja-JP", 5),
    ("CA", "en-CA", 5),
    ("MX", "es-MX", 4),
    ("ES", "es-ES", 4),
    ("IT", "it-IT", 3),
    ("NL", "nl-NL", 3),
    ("AU", "en-AU", 3),
    ("PL", "pl-PL", 2),
    ("KR", "ko-KR", 2),
    ("VN", "vi-VN", 1),
)
CURRENCY = {"US": "USD", "GB": "GBP", "IN": "INR", "BR": "BRL", "JP": "JPY", "CA": "CAD", "MX": "MXN"}

# service -> (median latency ms, lognormal sigma)
LATENCY = {
    "web": (35.0, 0.6),
    "auth": (80.0, 0.5),
    "search": (120.0, 0.8),
    "catalog": (45.0, 0.7),
    "cart": (60.0, 0.6),
    "checkout": (350.0, 0.7),
}
SERVICE_HOSTS = {"web": 8, "auth": 2, "search": 4, "catalog": 4, "cart": 3, "checkout": 2}

# Session Markov chain: state -> weighted next steps. "end" closes the session silently.
TRANSITIONS = {
    "login": {"page_view": 70, "search": 20, "click": 10},
    "page_view": {"page_view": 36, "click": 30, "search": 14, "add_to_cart": 10, "logout": 4, "end": 6},
    "click": {"page_view": 42, "click": 21, "add_to_cart": 18, "search": 10, "logout": 4, "end": 5},
    "search": {"click": 58, "page_view": 21, "search": 15, "end": 6},
    "add_to_cart": {"page_view": 25, "purchase": 35, "click": 20, "search": 8, "logout": 5, "end": 7},
    "purchase": {"page_view": 40, "logout": 45, "end": 15},
}

# event type -> weighted HTTP status (5xx handled separately, for every request type)
STATUS = {
    "login": {200: 90, 302: 5, 401: 5},
    "page_view": {200: 92, 304: 5, 404: 3},
    "click": {200: 96, 404: 4},
    "search": {200: 99, 400: 1},
    "add_to_cart": {201: 95, 400: 3, 409: 2},
    "purchase": {201: 96, 402: 4},
    "logout": {200: 100},
}
SERVER_ERROR_RATE = 0.01
SERVER_ERRORS = (
    (500, "E_INTERNAL", "unhandled exception in request handler"),
    (502, "E_UPSTREAM", "bad gateway: upstream closed the connection"),
    (503, "E_UNAVAILABLE", "service unavailable: too many requests in flight"),
    (504, "E_TIMEOUT", "gateway timeout: upstream did not answer in 30 s"),
)

APP_VERSIONS = {
    "web": ("web-2026.11.3", "web-2026.11.2", "web-2026.10.7"),
    "ios": ("5.14.0", "5.13.2", "5.12.1"),
    "android": ("5.14.1", "5.14.0", "5.11.0"),
}


def weighted_table(weights: dict[Any, float], bits: int = TABLE_BITS) -> tuple[Any, ...]:
    """A tuple of 2**bits entries in which each key appears in proportion to its weight:
    `table[rng.getrandbits(bits)]` is a weighted draw in one step."""
    keys = list(weights)
    cumulative: list[float] = []
    total = 0.0
    for key in keys:
        total += weights[key]
        cumulative.append(total)
    size = 1 << bits
    return tuple(
        keys[min(bisect.bisect_right(cumulative, (i + 0.5) * total / size), len(keys) - 1)]
        for i in range(size)
    )


def zipf_weights(n: int, exponent: float = 1.1) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


def classify_user_agent(user_agent: str) -> tuple[str, str]:
    """(device, os) as a log pipeline would derive them from the user agent."""
    if "iPad" in user_agent:
        return "tablet", "iPadOS"
    if "iPhone" in user_agent or "iPod" in user_agent:
        return "mobile", "iOS"
    if "Android" in user_agent:
        return ("tablet" if "Mobile" not in user_agent else "mobile"), "Android"
    if "Windows" in user_agent:
        return "desktop", "Windows"
    if "Mac OS X" in user_agent or "Macintosh" in user_agent:
        return "desktop", "macOS"
    return "desktop", "Linux"


@dataclass(frozen=True)
class Pools:
    """Everything Faker supplies, built once."""

    ips: tuple[str, ...]
    user_agents: tuple[tuple[str, str, str], ...]  # (user agent, device, os)
    pages: tuple[tuple[str, str, int], ...]  # Zipf-weighted table of (path, service, page size)
    products: tuple[tuple[str, str, float, int], ...]  # (product_id, path, price, page size)
    product_table: tuple[int, ...]  # Zipf-weighted indexes into products
    search_terms: tuple[str, ...]  # Zipf-weighted table
    external_referrers: tuple[str | None, ...]  # weighted table; None = direct visit
    hosts: dict[str, tuple[str, ...]]


def build_pools(faker: Faker, rng: random.Random, pages: int = 2000, products: int = 5000) -> Pools:
    ips = tuple(faker.ipv4_public() for _ in range(4000))
    user_agents = tuple((ua, *classify_user_agent(ua)) for ua in (faker.user_agent() for _ in range(600)))

    slugs = [faker.unique.slug() for _ in range(pages + products)]
    faker.unique.clear()
    categories = [f"/c/{s}" for s in slugs[:40]]
    paths = ["/", "/deals", "/new", "/cart", *categories]
    paths += [f"/help/{s}" for s in slugs[40:100]]
    paths += [f"/blog/{s}" for s in slugs[100:pages]]
    product_list = tuple(
        (
            f"P{index:06d}",
            f"/p/{slug}-{index}",
            round(math.exp(rng.gauss(3.3, 1.0)), 2),
            int(rng.lognormvariate(math.log(60_000), 0.4)),
        )
        for index, slug in enumerate(slugs[pages:], start=1)
    )
    # product pages interleave with the site's own pages in the popularity ranking
    ranked = paths[:6] + [p[1] for p in product_list[:300]] + paths[6:] + [p[1] for p in product_list[300:]]
    sizes = {p[1]: p[3] for p in product_list}
    described = [
        (path, "catalog", sizes[path])
        if path in sizes
        else (path, "web", int(rng.lognormvariate(math.log(40_000), 0.5)))
        for path in ranked
    ]
    page_table = weighted_table(dict(zip(described, zipf_weights(len(ranked)), strict=True)), PAGE_TABLE_BITS)
    product_table = weighted_table(
        dict(zip(range(len(product_list)), zipf_weights(len(product_list), 1.0), strict=True)), 14
    )

    terms = list({faker.word() for _ in range(3000)})
    terms.sort()
    rng.shuffle(terms)
    phrases = [f"{a} {b}" for a, b in zip(terms[::2], terms[1::2], strict=False)][:800]
    search_terms = weighted_table(dict(zip(phrases, zipf_weights(len(phrases)), strict=True)), 14)

    sites = [f"https://{faker.domain_name()}/" for _ in range(60)]
    referrer_weights: dict[str | None, float] = {
        None: 30,
        "https://www.google.com/": 35,
        "https://www.bing.com/": 4,
        "https://duckduckgo.com/": 2,
        "https://www.facebook.com/": 6,
        "https://t.co/": 3,
        "https://www.instagram.com/": 3,
    }
    for site, weight in zip(sites, zipf_weights(len(sites)), strict=True):
        referrer_weights[site] = referrer_weights.get(site, 0) + 17 * weight / sum(zipf_weights(len(sites)))
    hosts = {
        service: tuple(f"{service}-{i:02d}.{faker.random_element(('use1', 'euw1'))}" for i in range(1, n + 1))
        for service, n in SERVICE_HOSTS.items()
    }
    return Pools(
        ips=ips,
        user_agents=user_agents,
        pages=page_table,
        products=product_list,
        product_table=product_table,
        search_terms=search_terms,
        external_referrers=weighted_table(referrer_weights),
        hosts=hosts,
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


LATENCY_TABLE_BITS = 14


def lognormal_table(median: float, sigma: float, bits: int = LATENCY_TABLE_BITS) -> tuple[float, ...]:
    """2**bits evenly spaced quantiles of a lognormal distribution, rounded to 0.1:
    `table[rng.getrandbits(bits)]` is a lognormal draw (tail kept to the 1 - 2**-bits quantile)."""
    size = 1 << bits
    normal = NormalDist(math.log(median), sigma)
    return tuple(round(math.exp(normal.inv_cdf((i + 0.5) / size)), 1) for i in range(size))


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
