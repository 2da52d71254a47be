"""What the fake platform looks like, and the pools of values its events are drawn from.

The shape of the platform is data here: its audience (countries, locales, currencies), its services
(latency, hosts), the session's Markov chain, the HTTP statuses of each kind of request, the server
errors and the app versions. `build_pools` has Faker fill the pools once at start (IP addresses,
user agents, pages, products, search terms, referrer sites, hosts); `weighted_table` and
`lognormal_table` turn weights and distributions into lookup tables that one random index samples.
loglake/fake.py's generator reads only these tables in its hot loop.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from faker import Faker

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


LATENCY_TABLE_BITS = 14


def lognormal_table(median: float, sigma: float, bits: int = LATENCY_TABLE_BITS) -> tuple[float, ...]:
    """2**bits evenly spaced quantiles of a lognormal distribution, rounded to 0.1:
    `table[rng.getrandbits(bits)]` is a lognormal draw (tail kept to the 1 - 2**-bits quantile)."""
    size = 1 << bits
    normal = NormalDist(math.log(median), sigma)
    return tuple(round(math.exp(normal.inv_cdf((i + 0.5) / size)), 1) for i in range(size))
