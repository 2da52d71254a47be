"""The log event: its schema and JSON encoding (first section), and the validation of what
comes off the topic (second section).

One event is one JSON object, UTF-8, with every field of `FIELDS` and, depending on the
event type, some of `OPTIONAL_FIELDS`. `event_id` comes first (`event_id_of()` reads it
without parsing the whole object); the order of the others carries no meaning. `event_time` is RFC 3339 in UTC with milliseconds,
e.g. `2026-11-24T21:03:04.123Z`; it is also the Kafka record's timestamp.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import msgspec
import orjson

from loglake.eventtime import (  # noqa: F401 - event times belong to the event: loglake.events names them
    MAX_EVENT_MS,
    MIN_EVENT_MS,
    format_event_time,
    parse_event_time,
    utc_date_hour,
)

# ---------------------------------------------------------------------------------------
# Schema and encoding (producer side: loglake/fake.py builds events, loglake/produce.py sends them)

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"

# Kafka record headers every produced record carries
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_PRODUCER_ID = "producer-id"

EVENT_TYPES = (
    "login",
    "page_view",
    "search",
    "click",
    "add_to_cart",
    "purchase",
    "logout",
    "error",
)

# Every event carries these, in this order. name -> JSON type(s) as Python types.
FIELDS: dict[str, tuple[type, ...]] = {
    "event_id": (str,),  # UUID (version-4 form), unique per event
    "event_time": (str,),  # RFC 3339, UTC, milliseconds
    "event_type": (str,),  # one of EVENT_TYPES
    "schema_version": (int,),
    "user_id": (str,),  # also the Kafka record key
    "session_id": (str,),
    "seq": (int,),  # position of the event in its session, from 1
    "request_id": (str,),  # 16 hex; an `error` event shares it with the request that failed
    "trace_id": (str,),  # 32 hex (W3C trace-context form)
    "service": (str,),  # the backend service that answered
    "host": (str,),  # the instance of that service
    "app_version": (str,),
    "method": (str,),
    "path": (str,),
    "status": (int,),
    "latency_ms": (float, int),
    "bytes_sent": (int,),
    "referrer": (str, type(None)),
    "ip": (str,),
    "user_agent": (str,),
    "country": (str,),  # ISO 3166-1 alpha-2
    "locale": (str,),
    "device": (str,),  # desktop | mobile | tablet
    "platform": (str,),  # web | ios | android
    "os": (str,),
}

# Present only on some event types.
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "query": (str,),  # search
    "results": (int,),  # search
    "product_id": (str,),  # click on a product, add_to_cart
    "quantity": (int,),  # add_to_cart
    "amount": (float, int),  # add_to_cart (line total), purchase (order total)
    "currency": (str,),  # add_to_cart, purchase
    "order_id": (str,),  # purchase
    "error_code": (str,),  # error
    "error_message": (str,),  # error
}


def encode(event: dict[str, Any]) -> bytes:
    """The record value: the event as compact UTF-8 JSON."""
    return orjson.dumps(event)


def decode(value: bytes | str) -> Any:
    """A JSON value as the lake reads it back (the inverse of `encode`; the formats' `decode`, so
    `verify --deep`): orjson; and where orjson refuses a number beyond a double's range (`1e400`, an
    integer of 400 digits), which JSON allows and the writer stores as it came, Python's json with
    orjson's rules for numbers, such a number then being infinite. Raises ValueError on bad input."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        text = value if isinstance(value, str) else bytes(value).decode()
        return json.loads(text, parse_int=_integer, parse_float=float, parse_constant=_no_constant)


def _integer(token: str) -> int | float:
    """A JSON integer as orjson reads it: an int within 64 bits (signed or unsigned), else a float."""
    if len(token) <= 20:
        number = int(token)
        if -(2**63) <= number < 2**64:
            return number
    return float(token)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_ID_PREFIX = b'{"event_id":"'
_ID_END = len(_ID_PREFIX) + 36


def event_id_of(value: bytes) -> str:
    """The event_id of an encoded event; fast when it is the first field, as `encode` puts it."""
    if value[:13] == _ID_PREFIX and value[_ID_END : _ID_END + 1] == b'"':
        return value[13:_ID_END].decode()
    return str(decode(value)["event_id"])


def record_headers(producer_id: str) -> list[tuple[str, bytes]]:
    """The headers of every record a producer sends."""
    return [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
        (HEADER_PRODUCER_ID, producer_id.encode()),
    ]


# ---------------------------------------------------------------------------------------
# Validation of consumed records (writer side) goes below this line.

RESERVED_FIELD = "_kafka"  # the lake writer adds it to every stored line (see loglake/layout.py)
REQUIRED_FIELDS = ("event_id", "event_time", "event_type")
# Levels of nesting a value may have, the event object being the first. Every reader of the lake takes
# this many whatever its stack (orjson 1,024; Python's json and msgspec about 990, fewer when called
# deep in a stack); a value of at most 2 * MAX_DEPTH bytes cannot be deeper.
MAX_DEPTH = 512
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class Rejection(ValueError):
    """Why a consumed record is not a storable event. `kind` is a short machine name (the dead
    letter's `loglake.error.kind` header), the message one sentence, `error_class` the class of the
    exception that decided it (`loglake.error.class`): `Rejection` when validation named the problem
    itself, another class when an unexpected exception was caught at the record's boundary."""

    def __init__(self, kind: str, message: str, error_class: str = "Rejection") -> None:
        super().__init__(message)
        self.kind = kind
        self.error_class = error_class


class _Head(msgspec.Struct):
    """The fields the writer checks. Decoding into it validates the whole value as JSON (syntax, and
    that every `\\u` escape is a Unicode character; UTF-8 is checked separately) but builds no dict of
    the other fields: 3x faster than a full parse. Of a field given twice, the last counts, as for
    orjson, Python, JavaScript, Go and Jackson."""

    event_id: str
    event_time: str
    event_type: str
    reserved: Any = msgspec.field(name=RESERVED_FIELD, default=msgspec.UNSET)


_decode_head = msgspec.json.Decoder(_Head).decode

# `YYYY-MM-DDTHH:MM:SS` of canonical event times already parsed -> (date, hour, epoch ms of that
# second). Events arrive in time order per session, so nearly every record hits this cache and
# skips the datetime parse; it is cleared when it grows past a few hours of seconds.
_SECONDS: dict[str, tuple[str, str, int]] = {}
_SECONDS_MAX = 20_000
# the rest of a canonical event time after its second, `.123Z` -> 123: one lookup checks its form
# (a point, three ASCII digits, `Z`, nothing after) and gives the milliseconds
_MILLIS = {f".{ms:03d}Z": ms for ms in range(1000)}
_UNSET = msgspec.UNSET
_SHALLOW = 2 * MAX_DEPTH  # values this long or shorter cannot nest deeper than MAX_DEPTH


def validate_quickly(value: bytes | None, max_bytes: int) -> tuple[str, str, int] | None:
    """`validate` for the common case (a compact ASCII event whose event time is canonical and of a
    second seen before), or None: then `validate` decides, and names what is wrong if anything is.
    Never raises: whatever it cannot settle at once is left to `validate`."""
    if not value:
        return None
    size = len(value)
    if size > max_bytes or not value.isascii():
        return None
    if size > _SHALLOW and value.count(b"[") + value.count(b"{") > MAX_DEPTH:
        return None  # perhaps too deep: validate measures it
    try:
        head = _decode_head(value)
    except Exception:  # noqa: BLE001 - not valid, or not here: validate says which
        return None
    text = head.event_time
    second = _SECONDS.get(text[:19])
    millis = _MILLIS.get(text[19:])
    if (
        second is None
        or millis is None
        or not head.event_id
        or not head.event_type
        or head.reserved is not _UNSET
    ):
        return None
    return second[0], second[1], second[2] + millis


def validate(value: bytes | None, max_bytes: int) -> tuple[str, str, int]:
    """Check a consumed record value; returns (date `YYYY-MM-DD`, hour `HH`, event time in ms), UTC.

    A storable event is a UTF-8 JSON object (RFC 8259) of at most `max_bytes`, nested at most
    `MAX_DEPTH` levels, with non-empty strings `event_id` and `event_type`, an RFC 3339 `event_time`
    with a zone in years 1..9999 once in UTC, and no `_kafka` field. Numbers are kept as written,
    whatever their size. Anything else raises Rejection, and only Rejection: an unexpected exception
    raised while checking one record is that record's Rejection too (one boundary per record).
    """
    try:
        return _validate(value, max_bytes)
    except Rejection:
        raise
    except MemoryError:
        raise  # the process's state, not the record's: not a reason to dead-letter it
    except Exception as exc:
        raise unexpected(exc) from exc


# the kind of dead letter an unexpected exception makes, by the class of problem it names
_UNEXPECTED_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (RecursionError, "too-deep"),
    (UnicodeError, "invalid-utf8"),
    (OverflowError, "out-of-range"),
)


def unexpected(exc: BaseException) -> Rejection:
    """The Rejection for an exception raised while checking or encoding one record."""
    kind = next((k for cls, k in _UNEXPECTED_KINDS if isinstance(exc, cls)), "unreadable")
    name = type(exc).__name__
    reason = " ".join(str(exc).split())[:200] or "no message"
    return Rejection(kind, f"the record could not be read ({name}: {reason})", name)


def _validate(value: bytes | None, max_bytes: int) -> tuple[str, str, int]:
    if not value:
        raise Rejection("empty-value", "the record has no value (empty or null)")
    if len(value) > max_bytes:
        raise Rejection("too-large", f"the value is {len(value)} bytes, over the limit of {max_bytes}")
    if not value.isascii():
        _check_utf8(value)
    if (
        len(value) > _SHALLOW
        and value.count(b"[") + value.count(b"{") > MAX_DEPTH
        and deeper_than(value, MAX_DEPTH)
    ):
        raise Rejection("too-deep", f"the value nests more than {MAX_DEPTH} levels deep")
    try:
        head = _decode_head(value)
    except msgspec.DecodeError as exc:
        _reject(value, exc)  # raises the Rejection that names what is wrong
        raise
    text = head.event_time
    if not (head.event_id and text and head.event_type):
        _reject(value, None)
    if head.reserved is not _UNSET:
        raise Rejection(
            "reserved-field", f"the event has a {RESERVED_FIELD!r} field, which the lake reserves"
        )
    # the fast path: `2026-11-24T21:03:04.123Z` whose second was seen before
    second = _SECONDS.get(text[:19])
    millis = _MILLIS.get(text[19:])
    if second is not None and millis is not None:
        return second[0], second[1], second[2] + millis
    try:
        ms = parse_event_time(text)
    except ValueError as why:
        raise Rejection("bad-event-time", f"event_time: {why}") from None
    date, hour = utc_date_hour(ms)
    if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[10] == "T":  # canonical
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[text[:19]] = (date, hour, ms - ms % 1000)
    return date, hour, ms


def _check_utf8(value: bytes) -> None:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as why:
        raise Rejection(
            "invalid-utf8",
            f"the value is not valid UTF-8: byte {value[why.start]:#04x} at {why.start} ({why.reason})",
        ) from None


_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # deleted: all but quotes and brackets
# strings (their escapes gone, so a quote opens or closes one) skipped, then a run of brackets; possessive,
# so no backtracking: linear whatever the bytes
_BRACKETS = re.compile(rb'(?:"[^"]*+"?+)*+([\[\]{}]++)')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def deeper_than(value: bytes, limit: int) -> bool:
    """Whether `value` (JSON text) nests more than `limit` levels: its brackets outside strings. Once
    the escaped backslashes and then the escaped quotes are gone, every quote left opens or closes a
    string. In C but for one step per run of brackets; linear in time, and in memory whatever the bytes."""
    skeleton = value.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _STRUCTURE)
    if skeleton.count(b'"') % 2:  # a string never closed (not JSON): what follows it is inside it
        skeleton = skeleton[: skeleton.rfind(b'"')]
    depth = 0
    for match in _BRACKETS.finditer(skeleton):
        run = match.group(1)
        opened = run.count(b"[") + run.count(b"{")
        if depth + opened > limit:
            levels = accumulate(map(_STEP.__getitem__, run), initial=depth)
            if next(filter(limit.__lt__, levels), None) is not None:
                return True
        depth += 2 * opened - len(run)
    return False


_BOM = b"\xef\xbb\xbf"


def _reject(value: bytes, refusal: msgspec.DecodeError | None) -> None:
    """Raise the Rejection that says why `value` is not a JSON object with the required fields
    (`refusal`: what decoding its head said)."""
    _check_utf8(value)
    if value.startswith(_BOM):
        raise Rejection(
            "invalid-json", "the value starts with a byte order mark, which JSON text must not have"
        )
    try:
        event = decode(value)  # as the lake reads it: numbers past a double's range too
    except (ValueError, RecursionError) as exc:
        raise Rejection("invalid-json", f"the value is not valid JSON: {exc}") from None
    if _has_lone_surrogate(event):
        raise Rejection(
            "lone-surrogate",
            "a string holds a \\uD800-\\uDFFF escape without its pair: not a Unicode character",
        )
    if type(event) is not dict:
        kind = _JSON_TYPES.get(type(event), type(event).__name__)
        raise Rejection("not-an-object", f"the value is a JSON {kind}, not an object")
    for name in REQUIRED_FIELDS:
        if name not in event:
            raise Rejection("missing-field", f"the event has no {name!r}")
        field = event[name]
        if type(field) is not str or not field:
            shown = "null" if field is None else f"{field!r:.40}"
            raise Rejection("wrong-type", f"{name!r} must be a non-empty string, not {shown}")
    # a field the writer reads given twice, the last a non-empty string but not the first
    raise Rejection("wrong-type", f"a field is given twice, once of the wrong type: {refusal}")


def _has_lone_surrogate(event: Any) -> bool:
    """Whether a decoded value holds a string with an unpaired surrogate (Python's json takes a
    `\\ud800` escape alone, which no UTF-8 text can hold)."""
    try:
        json.dumps(event, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False
