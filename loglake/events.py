"""The log event: its schema and JSON encoding (first section), and the validation of what
comes off the topic (second section).

One event is one JSON object, UTF-8, with every field of `FIELDS` and, depending on the
event type, some of `OPTIONAL_FIELDS`. `event_id` comes first (`event_id_of()` reads it
without parsing the whole object); the order of the others carries no meaning. `event_time` is RFC 3339 in UTC with milliseconds,
e.g. `2026-11-24T21:03:04.123Z`; it is also the Kafka record's timestamp.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

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


def format_event_time(ms: int) -> str:
    """Epoch milliseconds -> `2026-11-24T21:03:04.123Z`."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_event_time(text: str) -> int:
    """RFC 3339 (`...Z` or `...+00:00`) -> epoch milliseconds. Raises ValueError."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return round(moment.astimezone(UTC).timestamp() * 1000)


def encode(event: dict[str, Any]) -> bytes:
    """The record value: the event as compact UTF-8 JSON."""
    return orjson.dumps(event)


def decode(value: bytes) -> dict[str, Any]:
    """The inverse of `encode`; raises orjson.JSONDecodeError (a ValueError) on bad input."""
    return orjson.loads(value)


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
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class Rejection(ValueError):
    """Why a consumed record is not a storable event. `kind` is a short machine name
    (the dead letter's `loglake.error.kind` header), the message one sentence."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Head(msgspec.Struct):
    """The fields the writer checks. Decoding into it validates the whole value as JSON (syntax;
    UTF-8 is checked separately) but builds no dict of the other fields: 3x faster than a full parse."""

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


def validate_quickly(value: bytes | None, max_bytes: int) -> tuple[str, str, int] | None:
    """`validate` for the common case (a compact ASCII event whose event time is canonical and of a
    second seen before), or None: then `validate` decides, and names what is wrong if anything is."""
    if not value or len(value) > max_bytes or not value.isascii():
        return None
    try:
        head = _decode_head(value)
    except msgspec.DecodeError:
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

    A storable event is a UTF-8 JSON object (RFC 8259 syntax; numbers are not range-checked), at
    most `max_bytes`, with non-empty strings `event_id` and `event_type`, an RFC 3339 `event_time`
    with a time zone, and no `_kafka` field. Anything else raises Rejection.
    """
    if not value:
        raise Rejection("empty-value", "the record has no value (empty or null)")
    if len(value) > max_bytes:
        raise Rejection("too-large", f"the value is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        if not value.isascii():
            value.decode("utf-8")
        head = _decode_head(value)
    except (msgspec.DecodeError, UnicodeDecodeError):
        _reject(value)  # raises the Rejection that names what is wrong
        raise
    text = head.event_time
    if not (head.event_id and text and head.event_type):
        _reject(value)
    if head.reserved is not msgspec.UNSET:
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
    except ValueError:
        raise Rejection(
            "bad-event-time", f"event_time {text[:40]!r} is not an RFC 3339 time with a zone"
        ) from None
    if text.endswith("Z") and len(text) >= 13 and text[4] == "-" and text[10] == "T":
        if len(text) == 24 and text[19] == ".":  # canonical: remember its second
            if len(_SECONDS) >= _SECONDS_MAX:
                _SECONDS.clear()
            _SECONDS[text[:19]] = (text[:10], text[11:13], ms - ms % 1000)
        return text[:10], text[11:13], ms  # already UTC: no need to format
    moment = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%d", moment), f"{moment.tm_hour:02d}", ms


def _reject(value: bytes) -> None:
    """Raise the Rejection that says why `value` is not a JSON object with the required fields."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection("invalid-utf8", "the value is not valid UTF-8") from None
    try:
        event = msgspec.json.decode(value)
    except msgspec.DecodeError as exc:
        raise Rejection("invalid-json", f"the value is not valid JSON: {exc}") from None
    if type(event) is not dict:
        kind = _JSON_TYPES.get(type(event), type(event).__name__)
        raise Rejection("not-an-object", f"the value is a JSON {kind}, not an object")
    for name in REQUIRED_FIELDS:
        field = event.get(name)
        if field is None:
            raise Rejection("missing-field", f"the event has no {name!r}")
        if type(field) is not str or not field:
            raise Rejection("wrong-type", f"{name!r} must be a non-empty string, not {field!r:.40}")
    raise Rejection("invalid-json", "the value is not a JSON object the writer can read")
