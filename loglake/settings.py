"""Typed settings, built once at the edge (the command line) and passed in.

Precedence for every value: command-line flag > environment variable > default.
No other module reads the environment: they receive these objects.

Each flag is declared once, with its environment variable, through `add()`; `--help`
shows both. Secrets (passwords, secret keys) are wrapped in `Secret`, which never prints.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loglake import defaults

if TYPE_CHECKING:
    from loglake.formats import Recipe


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------------------------------
# Value parsers: each raises argparse.ArgumentTypeError with one clear sentence.


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, zero or more")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def byte_size(text: str) -> int:
    """'8MiB', '512k', '1000000' -> bytes."""
    units = {
        "": 1,
        "b": 1,
        "k": 1024,
        "kb": 1000,
        "kib": 1024,
        "m": 1024**2,
        "mb": 1000**2,
        "mib": 1024**2,
        "g": 1024**3,
        "gb": 1000**3,
        "gib": 1024**3,
    }
    stripped = text.strip().lower()
    number = stripped.rstrip("kmgib")
    unit = stripped[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 8MiB or 500000") from None
    if unit not in units or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 8MiB or 500000")
    return int(value * units[unit])


# ---------------------------------------------------------------------------------------
# Declaring flags


def add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    env: str | None,
    default: Any,
    help: str,
    type: Callable[[str], Any] = str,
    choices: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Add `flag` whose default comes from environment variable `env`, else `default`.

    An environment value goes through the same `type` and `choices` checks as the flag,
    so a bad value in the environment is one clear error, not a traceback.
    """
    environ = os.environ if environ is None else environ
    value = default
    if env and environ.get(env, "") != "":
        raw = environ[env]
        try:
            value = type(raw)
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(_env_error(env, str(exc))) from None
        if choices and value not in choices:
            raise SystemExit(_env_error(env, f"{raw!r} is not one of {', '.join(choices)}"))
    shown_default = "" if isinstance(default, Secret) or default in (None, "") else f" (default: {default})"
    env_note = f" [env {env}]" if env else ""
    parser.add_argument(
        flag,
        type=type,
        default=value,
        choices=choices,
        help=f"{help}{shown_default}{env_note}",
        **kwargs,
    )


def _env_error(env: str, message: str) -> str:
    return f"error: environment variable {env}: {message}"


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, *, help: str) -> None:
    parser.add_argument(flag, action="store_true", help=help)


# ---------------------------------------------------------------------------------------
# Connection settings shared by every command


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = f"127.0.0.1:{defaults.KAFKA_PORTS[0]}"
    client: str = "confluent"  # "confluent" (librdkafka) or "kafka-python"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: Secret = Secret("")
    ssl_cafile: str = ""
    connect_timeout: float = 15.0  # seconds to wait for a first answer from the cluster

    def describe(self) -> str:
        """Human summary without secrets, for logs and error sentences."""
        auth = f", {self.sasl_mechanism} as {self.sasl_username}" if self.uses_sasl else ""
        return f"{self.bootstrap_servers} ({self.security_protocol}{auth})"

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")


KAFKA_CLIENTS = ["confluent", "kafka-python"]
SECURITY_PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SASL_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


def add_kafka_args(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    d = KafkaSettings()
    g = parser.add_argument_group("Kafka connection")
    add(
        g,
        "--bootstrap-servers",
        env="KAFKA_BOOTSTRAP_SERVERS",
        default=d.bootstrap_servers,
        help="Kafka brokers to contact first, host:port[,host:port...]",
        environ=environ,
    )
    add(
        g,
        "--kafka-client",
        env="LOGLAKE_KAFKA_CLIENT",
        default=d.client,
        choices=KAFKA_CLIENTS,
        help="Kafka client library",
        environ=environ,
    )
    add(
        g,
        "--security-protocol",
        env="KAFKA_SECURITY_PROTOCOL",
        default=d.security_protocol,
        choices=SECURITY_PROTOCOLS,
        help="how to talk to the brokers",
        environ=environ,
    )
    add(
        g,
        "--sasl-mechanism",
        env="KAFKA_SASL_MECHANISM",
        default=d.sasl_mechanism,
        choices=SASL_MECHANISMS,
        help="SASL mechanism when the protocol is SASL_*",
        environ=environ,
    )
    add(
        g,
        "--ssl-cafile",
        env="KAFKA_SSL_CAFILE",
        default=d.ssl_cafile,
        help="CA certificate (PEM) that signed the brokers' certificates",
        environ=environ,
    )
    add(
        g,
        "--connect-timeout",
        env="KAFKA_CONNECT_TIMEOUT",
        default=d.connect_timeout,
        type=positive_float,
        help="seconds to wait for the cluster to answer at start",
        environ=environ,
    )


def kafka_from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """SASL username and password come from the environment only, never from flags."""
    environ = os.environ if environ is None else environ
    return KafkaSettings(
        bootstrap_servers=ns.bootstrap_servers,
        client=ns.kafka_client,
        security_protocol=ns.security_protocol,
        sasl_mechanism=ns.sasl_mechanism,
        sasl_username=environ.get("KAFKA_SASL_USERNAME", ""),
        sasl_password=Secret(environ.get("KAFKA_SASL_PASSWORD", "")),
        ssl_cafile=ns.ssl_cafile,
        connect_timeout=ns.connect_timeout,
    )


@dataclass(frozen=True)
class LakeSettings:
    endpoint_url: str = f"http://127.0.0.1:{defaults.S3_PORT}"
    access_key_id: str = defaults.S3_ACCESS_KEY_ID
    secret_access_key: Secret = Secret(defaults.S3_SECRET_ACCESS_KEY)
    region: str = defaults.REGION
    bucket: str = defaults.BUCKET
    ca_bundle: str = ""  # PEM file to trust when the endpoint is https with a private CA


def add_lake_args(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    d = LakeSettings()
    g = parser.add_argument_group("Data lake (S3)")
    add(
        g,
        "--endpoint-url",
        env="AWS_ENDPOINT_URL",
        default=d.endpoint_url,
        help="S3 endpoint of the lake (MinIO, versitygw, AWS...)",
        environ=environ,
    )
    add(g, "--bucket", env="LAKE_BUCKET", default=d.bucket, help="lake bucket", environ=environ)
    add(g, "--region", env="AWS_DEFAULT_REGION", default=d.region, help="S3 region", environ=environ)
    add(
        g,
        "--s3-ca-bundle",
        env="AWS_CA_BUNDLE",
        default=d.ca_bundle,
        help="CA certificate (PEM) for an https endpoint with a private CA",
        environ=environ,
    )


def lake_from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> LakeSettings:
    """Access keys come from the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    environ = os.environ if environ is None else environ
    d = LakeSettings()
    return LakeSettings(
        endpoint_url=ns.endpoint_url,
        access_key_id=environ.get("AWS_ACCESS_KEY_ID", d.access_key_id),
        secret_access_key=Secret(environ.get("AWS_SECRET_ACCESS_KEY", d.secret_access_key.get())),
        region=ns.region,
        bucket=ns.bucket,
        ca_bundle=ns.s3_ca_bundle,
    )


# ---------------------------------------------------------------------------------------
# Per-command settings. Each command module adds its own flags through `add()` and builds
# its dataclass here, so every setting of the project is declared in this one file.
# (ProducerSettings: faking_data.py; WriterSettings: receive_faking_data.py; VerifySettings.)


# ---------------------------------------------------------------------------------------
# Producer (faking_data.py, `python -m loglake produce`); flags in loglake/produce.py


def rfc3339_ms(text: str) -> int:
    """'2026-01-01T00:00:00Z' -> epoch milliseconds."""
    from loglake.events import parse_event_time

    try:
        return parse_event_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"
        ) from None


def env_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    env: str,
    help: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """An on/off flag whose default comes from `env` (1/true/yes/on or 0/false/no/off)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(env, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        default = True
    elif raw in ("", "0", "false", "no", "off"):
        default = False
    else:
        raise SystemExit(
            _env_error(env, f"{environ[env]!r} is not one of 1, true, yes, on, 0, false, no, off")
        )
    parser.add_argument(*flags, action="store_true", default=default, help=f"{help} [env {env}]")


@dataclass(frozen=True)
class ProducerSettings:
    kafka: KafkaSettings = KafkaSettings()
    topic: str = defaults.TOPIC
    count: int | None = None  # None: until stopped (or --duration)
    rate: float = 50.0  # events per second; 0 = as fast as possible
    duration: float | None = None  # seconds of generating; None = no limit
    seed: int | None = None  # same seed (and start time) -> same events
    start_time_ms: int | None = None  # simulated clock start; None = wall clock (or SEEDED_START)
    progress_every: float = 5.0  # seconds between progress lines
    quiet: bool = False
    acked_ids_file: str = ""  # write the event_id of every acknowledged event here, one per line
    compression: str = "lz4"
    linger_ms: int = 10
    batch_bytes: int = 1_000_000
    delivery_timeout: float = 120.0  # seconds an event may take to be acknowledged, retries included
    producer_id: str = ""  # record header; empty: <hostname>-<pid>

    # A seeded run without --start-time starts its simulated clock here, so it is reproducible.
    SEEDED_START = "2026-01-01T00:00:00Z"


# ---------------------------------------------------------------------------------------
# Lake writer (receive_faking_data.py, `python -m loglake write`); flags in loglake/consume.py


def start_position(text: str) -> str | int:
    """'committed', 'earliest', 'latest' or an RFC 3339 time (-> epoch ms)."""
    if text in ("committed", "earliest", "latest"):
        return text
    try:
        return rfc3339_ms(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not committed, earliest, latest or an RFC 3339 time such as 2026-11-24T00:00:00Z"
        ) from None


@dataclass(frozen=True)
class WriterSettings:
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    topic: str = defaults.TOPIC
    group: str = defaults.CONSUMER_GROUP
    dead_letter_topic: str = ""  # empty: <topic>.dlq
    start_from: str | int = "committed"
    prefix: str = "topics"
    layout: str = "time"
    fmt: str = "jsonl"
    compression: str = ""  # empty: the format's own default (gzip for jsonl/json, zstd for parquet)
    compression_level: int = 1  # gzip level: 1-3 ISA-L (fast), 4-9 zlib (6: ~20% smaller, 10x slower)
    batch_records: int = 200_000
    batch_bytes: int = 32 * 1024 * 1024  # uncompressed; about 6-8 MB per object after gzip
    batch_age: float = 60.0
    idle_flush: float = 5.0  # flush everything when no record arrived for this long
    max_record_bytes: int = 1024 * 1024
    max_retry_time: float = 0.0  # seconds the lake may stay unreachable; 0 = forever
    create_bucket: bool = True
    exit_when_idle: float = 0.0  # 0 = never
    metrics_port: int = 0  # 0 = no metrics endpoint
    metrics_addr: str = "127.0.0.1"
    progress_every: float = 5.0
    quiet: bool = False

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or self.topic + defaults.DEAD_LETTER_SUFFIX

    @property
    def recipe(self) -> Recipe:
        """What decides the objects of a batch (stored with every claim)."""
        from loglake.formats import FORMATS, Recipe

        codec = FORMATS.get(self.fmt)
        compression = self.compression or (codec.compressions[0] if codec else "")
        return Recipe(self.layout, self.fmt, compression, self.compression_level, self.max_record_bytes)
