"""Typed settings, built once at the edge (the command line) and passed in.

Precedence for every value: command-line flag > environment variable > default.
No other module reads the environment: they receive these objects.

Every setting of every command is declared once, below, as a field of its command's dataclass
(`ProducerSettings`, `WriterSettings`, `VerifySettings`, and the `KafkaSettings` and `LakeSettings`
they share): its default, its flag, its help and its group. From that one declaration come the
command's parser (`parser_for`), the dataclass values (`values_of`), `--help`, and the flag
tables in docs/*.md (`flag_table`; scripts/flag-tables writes them, tests/test_settings.py fails when
they differ). The environment variable of a flag is `LOGLAKE_` and the flag's name (`--batch-age`:
`LOGLAKE_BATCH_AGE`); connection settings keep the names of their ecosystems (`KAFKA_*`, `AWS_*`,
`LAKE_BUCKET`), and secrets are read from the environment only. Secrets (passwords, secret keys) are
wrapped in `Secret`, which never prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, NoReturn

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


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """'90s', '15m', '12h', '7d' (or plain seconds) -> seconds."""
    stripped = text.strip().lower()
    unit = stripped[-1:] if stripped[-1:] in _SECONDS else "s"
    try:
        value = float(stripped.removesuffix(unit) if stripped[-1:] in _SECONDS else stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 12h or 7d") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite duration, zero or more")
    return value * _SECONDS[unit]


def orphan_age(text: str) -> float:
    """A duration of at least an hour: younger unreferenced files may belong to a commit in flight."""
    value = duration(text)
    if value < 3600:
        raise argparse.ArgumentTypeError(
            f"{text!r} is under 1h: an unreferenced file that young may belong to a commit still in flight"
        )
    return value


def compression_level(text: str) -> int:
    value = positive_int(text)
    if value > 9:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 to 9")
    return value


def rfc3339_ms(text: str) -> int:
    """'2026-01-01T00:00:00Z' -> epoch milliseconds."""
    from loglake.events import parse_event_time

    try:
        return parse_event_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"
        ) from None


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


_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


def _switch_value(text: str) -> bool:
    if text.strip().lower() in _ON:
        return True
    if text.strip().lower() in _OFF:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(_ON + _OFF[1:])}")


# ---------------------------------------------------------------------------------------
# Declaring settings

log = logging.getLogger(__name__)
_OPT = "loglake.setting"


@dataclass(frozen=True)
class Opt:
    """How one setting is given: its flag, environment variable, help and checks."""

    flag: str  # "--batch-age"; "" for a setting read from the environment only (secrets)
    help: str
    group: str
    env: str = ""  # default: LOGLAKE_ and the flag's name
    parse: Callable[[str], Any] = str
    choices: Callable[[], Sequence[str]] | None = None  # a function: the choices may live in modules
    short: str = ""  # "-q"
    switch: bool = False  # an on/off flag: given (or its variable 1/true/yes/on), the default turns over
    shown: str = ""  # the default as --help and the docs say it, where the value would not
    deprecated_env: tuple[str, ...] = ()  # older names, still read, with a warning

    @property
    def env_name(self) -> str:
        return self.env or "LOGLAKE_" + self.flag.lstrip("-").upper().replace("-", "_")

    def check(self, text: str) -> Any:
        """The value of `text`, or argparse.ArgumentTypeError with one sentence."""
        value = _switch_value(text) if self.switch else self.parse(text)
        if self.choices is not None and value not in self.choices():
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(self.choices())}")
        return value


def group(title: str) -> Callable[..., Any]:
    """`declare = group("Batching")`, then fields `name: type = declare(default, "--flag", "help", ...)`."""

    def declare(default: Any, flag: str, help: str, **how: Any) -> Any:
        return field(default=default, metadata={_OPT: Opt(flag, help, title, **how)})

    return declare


@dataclass(frozen=True)
class Setting:
    """One declared setting of a command, found by `settings_of`."""

    path: tuple[str, ...]  # field names from the command's dataclass down: ("kafka", "bootstrap_servers")
    opt: Opt
    default: Any

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    def shown_default(self) -> str:
        if self.opt.shown:
            return self.opt.shown
        value = self.default
        if self.opt.switch:
            return "off"
        if isinstance(value, Secret) or value in (None, ""):
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


def settings_of(cls: type, path: tuple[str, ...] = ()) -> Iterator[Setting]:
    """Every setting of a command's dataclass, nested connection settings included, in order."""
    for f in fields(cls):
        if _OPT in f.metadata:
            yield Setting((*path, f.name), f.metadata[_OPT], f.default)
        elif f.default is not MISSING and is_dataclass(f.default):
            yield from settings_of(type(f.default), (*path, f.name))


class Parser(argparse.ArgumentParser):
    """A command's parser: a bad flag or environment value is one sentence on stderr and exit 2."""

    def __init__(self, cls: type, environ: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(
            epilog="Each flag also reads the environment variable shown in brackets; a flag wins over it.",
            **kwargs,
        )
        self.settings = list(settings_of(cls))
        self.environ = os.environ if environ is None else environ
        groups: dict[str, argparse._ArgumentGroup] = {}
        for s in self.settings:
            o = s.opt
            if not o.flag:
                continue
            g = groups.get(o.group) or groups.setdefault(o.group, self.add_argument_group(o.group))
            shown = s.shown_default()
            help = f"{o.help}{f' (default: {shown})'.replace('`', '') if shown else ''} [env {o.env_name}]"
            names = [o.short, o.flag] if o.short else [o.flag]
            if o.switch:
                g.add_argument(*names, dest=s.dest, action="store_true", default=None, help=help)
            else:
                choices = list(o.choices()) if o.choices else None
                metavar = None if choices else o.flag.lstrip("-").upper().replace("-", "_")
                g.add_argument(
                    *names,
                    dest=s.dest,
                    type=o.parse,
                    choices=choices,
                    default=None,
                    metavar=metavar,
                    help=help,
                )

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """The flags, and for each one not given its environment variable, else its default."""
        ns = super().parse_args(args, namespace)
        for s in self.settings:
            given = getattr(ns, s.dest, None)
            setattr(ns, s.dest, _value(s, self._from_environment(s) if given is None else given))
        return ns

    def _from_environment(self, s: Setting) -> Any:
        """The value of the setting's environment variable (or a deprecated name of it); None if unset."""
        name, text = s.opt.env_name, self.environ.get(s.opt.env_name, "")
        for old in s.opt.deprecated_env:
            if self.environ.get(old, ""):
                log.warning(
                    "environment variable %s is deprecated: name it %s (it is still read for now)", old, name
                )
                if not text:
                    name, text = old, self.environ[old]
        if text == "":
            return None
        try:
            return s.opt.check(text)
        except argparse.ArgumentTypeError as exc:
            self.exit(2, f"error: environment variable {name}: {exc}\n")


def _value(s: Setting, given: Any) -> Any:
    """The setting's value from what a flag or variable gave (None: neither); a switch turns its default over."""
    if given is None:
        return s.default
    if s.opt.switch:
        return (not s.default) if given else s.default
    return given


def parser_for(cls: type, prog: str, description: str, **kwargs: Any) -> Parser:
    return Parser(cls, prog=prog, description=description, **kwargs)


def values_of(cls: type, ns: argparse.Namespace) -> Any:
    """The dataclass `cls` with the values `ns` holds (its parser's `parse_args`)."""
    return _build(cls, ns, ())


def _build(cls: type, ns: argparse.Namespace, path: tuple[str, ...]) -> Any:
    values = {}
    for f in fields(cls):
        if _OPT in f.metadata:
            values[f.name] = getattr(ns, ".".join((*path, f.name)))
        elif f.default is not MISSING and is_dataclass(f.default):
            values[f.name] = _build(type(f.default), ns, (*path, f.name))
    return cls(**values)


def flag_table(cls: type) -> str:
    """The markdown table of a command's settings, as docs/*.md show it."""
    rows = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for s in settings_of(cls):
        o = s.opt
        flag = "(env only)" if not o.flag else ", ".join(f"`{n}`" for n in (o.short, o.flag) if n)
        env = f"`{o.env_name}`" + "".join(f" (deprecated: `{old}`)" for old in o.deprecated_env)
        meaning = o.help.replace("|", "\\|")
        if o.choices:
            meaning += " (one of " + ", ".join(f"`{c}`" for c in o.choices()) + ")"
        rows.append(f"| {flag} | {env} | {s.shown_default()} | {meaning} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------
# Connection settings shared by every command

KAFKA_CLIENTS = ["confluent", "kafka-python"]
SECURITY_PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SASL_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
_kafka = group("Kafka connection")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = _kafka(
        f"127.0.0.1:{defaults.KAFKA_PORTS[0]}",
        "--bootstrap-servers",
        "Kafka brokers to contact first, host:port[,host:port...]",
        env="KAFKA_BOOTSTRAP_SERVERS",
    )
    client: str = _kafka("confluent", "--kafka-client", "Kafka client library", choices=lambda: KAFKA_CLIENTS)
    security_protocol: str = _kafka(
        "PLAINTEXT",
        "--security-protocol",
        "how to talk to the brokers",
        env="KAFKA_SECURITY_PROTOCOL",
        choices=lambda: SECURITY_PROTOCOLS,
    )
    sasl_mechanism: str = _kafka(
        "SCRAM-SHA-512",
        "--sasl-mechanism",
        "SASL mechanism when the protocol is SASL_*",
        env="KAFKA_SASL_MECHANISM",
        choices=lambda: SASL_MECHANISMS,
    )
    sasl_username: str = _kafka("", "", "SASL user (never a flag)", env="KAFKA_SASL_USERNAME")
    sasl_password: Secret = _kafka(
        Secret(""), "", "SASL password (never a flag)", env="KAFKA_SASL_PASSWORD", parse=Secret
    )
    ssl_cafile: str = _kafka(
        "",
        "--ssl-cafile",
        "CA certificate (PEM) that signed the brokers' certificates",
        env="KAFKA_SSL_CAFILE",
    )
    connect_timeout: float = _kafka(
        15.0,
        "--connect-timeout",
        "seconds to wait for the cluster to answer at start",
        env="KAFKA_CONNECT_TIMEOUT",
        parse=positive_float,
    )

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


_lake = group("Data lake (S3)")


@dataclass(frozen=True)
class LakeSettings:
    endpoint_url: str = _lake(
        f"http://127.0.0.1:{defaults.S3_PORT}",
        "--endpoint-url",
        "S3 endpoint of the lake (MinIO, versitygw, AWS...)",
        env="AWS_ENDPOINT_URL",
    )
    access_key_id: str = _lake(
        defaults.S3_ACCESS_KEY_ID,
        "",
        "S3 access key (development default; never a flag)",
        env="AWS_ACCESS_KEY_ID",
    )
    secret_access_key: Secret = _lake(
        Secret(defaults.S3_SECRET_ACCESS_KEY),
        "",
        "S3 secret key (never a flag)",
        env="AWS_SECRET_ACCESS_KEY",
        parse=Secret,
        shown=f"`{defaults.S3_SECRET_ACCESS_KEY}` (development only)",
    )
    region: str = _lake(defaults.REGION, "--region", "S3 region", env="AWS_DEFAULT_REGION")
    bucket: str = _lake(defaults.BUCKET, "--bucket", "lake bucket", env="LAKE_BUCKET")
    ca_bundle: str = _lake(
        "",
        "--s3-ca-bundle",
        "CA certificate (PEM) for an https endpoint with a private CA",
        env="AWS_CA_BUNDLE",
    )


# ---------------------------------------------------------------------------------------
# Producer (faking_data.py, `python -m loglake produce`; loglake/produce.py)

_send = group("What to send")
_deliver = group("Delivery")
_output = group("Output")


def _kafka_compressions() -> Sequence[str]:
    from loglake.kafka import COMPRESSIONS

    return COMPRESSIONS


@dataclass(frozen=True)
class ProducerSettings:
    topic: str = _send(defaults.TOPIC, "--topic", "topic to send to (must exist)")
    count: int | None = _send(
        None, "--count", "events to send, then stop", parse=non_negative_int, shown="until stopped"
    )
    rate: float = _send(
        50.0, "--rate", "events per second; 0 = as fast as possible", parse=non_negative_float
    )
    duration: float | None = _send(
        None, "--duration", "seconds to keep sending, then stop", parse=positive_float, shown="no limit"
    )
    seed: int | None = _send(
        None,
        "--seed",
        "make the run reproducible: same seed, same events (event times from a simulated clock that starts "
        "at --start-time, else 2026-01-01T00:00:00Z)",
        parse=non_negative_int,
        shown="none",
    )
    start_time_ms: int | None = _send(
        None,
        "--start-time",
        "start a simulated clock at this RFC 3339 time; events are 1/rate s apart (1 ms at rate 0)",
        parse=rfc3339_ms,
        shown="the wall clock, unless --seed",
    )
    compression: str = _deliver(
        "lz4", "--compression", "record batch compression", choices=_kafka_compressions
    )
    linger_ms: int = _deliver(10, "--linger-ms", "batching delay (ms)", parse=non_negative_int)
    batch_bytes: int = _deliver(
        1_000_000,
        "--batch-size",
        "largest record batch per partition, bytes (e.g. 1MB, 256KiB)",
        parse=byte_size,
    )
    delivery_timeout: float = _deliver(
        120.0,
        "--delivery-timeout",
        "seconds an event may take to be acknowledged, retries included; also the flush limit",
        parse=positive_float,
    )
    acked_ids_file: str = _deliver(
        "", "--acked-ids-file", "write the event_id of every acknowledged event to this file, one per line"
    )
    producer_id: str = _deliver(
        "", "--producer-id", "value of the producer-id record header", shown="`<hostname>-<pid>`"
    )
    kafka: KafkaSettings = KafkaSettings()
    progress_every: float = _output(
        5.0, "--progress-every", "seconds between progress lines", parse=positive_float
    )
    quiet: bool = _output(
        False, "--quiet", "no progress lines, only warnings and the summary", short="-q", switch=True
    )
    verbose: bool = _output(
        False, "--verbose", "debug logging (librdkafka's own log lines included)", short="-v", switch=True
    )

    # A seeded run without --start-time starts its simulated clock here, so it is reproducible.
    SEEDED_START = "2026-01-01T00:00:00Z"


# ---------------------------------------------------------------------------------------
# Lake writer (receive_faking_data.py, `python -m loglake write`; loglake/cli.py)

_land = group("What to land, and where")
_batching = group("Batching")
_operation = group("Operation")


def _layouts() -> Sequence[str]:
    from loglake.formats import LAYOUTS

    return LAYOUTS


def _formats() -> Sequence[str]:
    from loglake.formats import FORMATS

    return list(FORMATS)


def _lake_compressions() -> Sequence[str]:
    from loglake.formats import compressions

    return compressions()


@dataclass(frozen=True)
class WriterSettings:
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    topic: str = _land(defaults.TOPIC, "--topic", "topic to consume")
    group: str = _land(
        defaults.CONSUMER_GROUP, "--group", "consumer group (writers sharing it share partitions)"
    )
    dead_letter_topic: str = _land(
        "",
        "--dead-letter-topic",
        "topic for records that are not valid events; created if missing",
        shown="`<topic>.dlq`",
    )
    start_from: str | int = _land(
        "committed",
        "--start-from",
        "where a group without committed offsets starts: committed (=earliest), earliest, latest, or an RFC 3339 time",
        parse=start_position,
    )
    prefix: str = _land("topics", "--prefix", "key prefix in the bucket")
    layout: str = _land(
        "time", "--layout", "time: dt=/hour= by event time (UTC); partition: partition=<n>", choices=_layouts
    )
    fmt: str = _land(
        "jsonl",
        "--format",
        "object format: JSON Lines, one JSON array, or typed Parquet columns",
        choices=_formats,
        deprecated_env=("LOGLAKE_LAKE_FORMAT",),
    )
    compression: str = _land(
        "",
        "--compression",
        "object compression: gzip or none around JSON; zstd, snappy or none inside Parquet",
        choices=_lake_compressions,
        shown="`gzip` (JSON), `zstd` (Parquet)",
        deprecated_env=("LOGLAKE_LAKE_COMPRESSION",),
    )
    compression_level: int = _land(
        1,
        "--compression-level",
        "gzip or zstd level 1-9 (gzip 1-3 through ISA-L, fast; 4-9 zlib)",
        parse=compression_level,
        deprecated_env=("LOGLAKE_LAKE_COMPRESSION_LEVEL",),
    )
    batch_records: int = _batching(
        200_000, "--batch-records", "flush a partition at this many records", parse=positive_int
    )
    batch_bytes: int = _batching(
        16 * 1024 * 1024,
        "--batch-bytes",
        "... or at this many bytes of events (uncompressed)",
        parse=byte_size,
        shown="`16MiB`",
    )
    batch_age: float = _batching(
        60.0, "--batch-age", "... or when its oldest record waited this many seconds", parse=positive_float
    )
    idle_flush: float = _batching(
        5.0,
        "--idle-flush",
        "flush everything after this many seconds without new records",
        parse=positive_float,
    )
    max_record_bytes: int = _batching(
        1024 * 1024, "--max-record-bytes", "larger values are dead letters", parse=byte_size, shown="`1MiB`"
    )
    max_retry_time: float = _operation(
        0.0,
        "--max-retry-time",
        "seconds the lake may fail before the writer exits non-zero without committing (0 = retry forever)",
        parse=non_negative_float,
    )
    create_bucket: bool = _operation(
        True, "--no-create-bucket", "fail if the bucket is missing instead of creating it", switch=True
    )
    exit_when_idle: float = _operation(
        0.0,
        "--exit-when-idle",
        "after this many seconds without new records, flush, commit and exit 0 (0 = run until stopped)",
        parse=non_negative_float,
    )
    metrics_port: int = _operation(
        0,
        "--metrics-port",
        "serve Prometheus metrics on this port (0 = off): records, objects, bytes, dead letters by "
        "kind, flush latency, lag per partition",
        parse=non_negative_int,
    )
    metrics_addr: str = _operation("127.0.0.1", "--metrics-addr", "address for --metrics-port")
    progress_every: float = _operation(
        5.0, "--progress-every", "seconds between status lines", parse=positive_float
    )
    quiet: bool = _operation(False, "--quiet", "no status lines", short="-q", switch=True)
    verbose: bool = _operation(False, "--verbose", "debug logging", short="-v", switch=True)

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


# ---------------------------------------------------------------------------------------
# verify (`python -m loglake verify`; loglake/verify.py)

_check = group("What to check")


@dataclass(frozen=True)
class VerifySettings:
    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    topic: str = _check(defaults.TOPIC, "--topic", "topic to check")
    prefix: str = _check("topics", "--prefix", "key prefix the writer used")
    group: str = _check("", "--group", "the writer's consumer group", shown="the one that owns the prefix")
    dead_letter_topic: str = _check(
        "", "--dead-letter-topic", "the writer's dead-letter topic", shown="`<topic>.dlq`"
    )
    to_committed: bool = _check(
        False,
        "--to-committed",
        "check only up to the group's committed offsets, not to the end of each partition",
        switch=True,
    )
    from_earliest: bool = _check(
        False,
        "--from-earliest",
        "check from the first offset Kafka still holds, not from where the group's first claim began",
        switch=True,
    )
    deep: bool = _check(
        False,
        "--deep",
        "read every record of every object back, and report objects whose content and metadata "
        "disagree (default: claims and object metadata only)",
        switch=True,
    )
    iceberg_table: str = _check(
        "",
        "--iceberg-table",
        "check this Iceberg table (NAMESPACE.TABLE of catalog `loglake`) instead of the objects: by the "
        "offsets its snapshot summaries record, or with --deep by every row's `_kafka` coordinates",
    )


# ---------------------------------------------------------------------------------------
# Iceberg table maintenance (`python -m loglake table maintain`; loglake/table/maintain.py)

_maintain = group("Table maintenance")


@dataclass(frozen=True)
class MaintainSettings:
    lake: LakeSettings = LakeSettings()
    table: str = _maintain(
        "",
        "--table",
        "the table, NAMESPACE.TABLE of catalog `loglake` (.pyiceberg.yaml or PYICEBERG_CATALOG__LOGLAKE__*)",
    )
    older_than: float = _maintain(
        86400.0,
        "--older-than",
        "expire snapshots older than this (90s, 15m, 12h, 7d), keeping the newest with the writer's offsets",
        parse=duration,
        shown="`1d`",
    )
    orphans_older_than: float = _maintain(
        86400.0,
        "--orphans-older-than",
        "delete the table's files no snapshot references once they are older than this (at least 1h)",
        parse=orphan_age,
        shown="`1d`",
    )
    closed_after: float = _maintain(
        3600.0,
        "--closed-after",
        "compact an hour's (a day's) small files once it ended this long ago",
        parse=duration,
        shown="`1h`",
    )
    target_file_size: int = _maintain(
        128 * 1024 * 1024,
        "--target-file-size",
        "compact small files into files of about this size (compressed)",
        parse=byte_size,
        shown="`128MiB`",
    )
    compact: bool = _maintain(True, "--no-compact", "only expire snapshots and delete orphans", switch=True)
    verbose: bool = _maintain(False, "--verbose", "debug logging", short="-v", switch=True)


# ---------------------------------------------------------------------------------------
# The flag tables of docs/*.md (scripts/flag-tables writes them; tests/test_settings.py compares)

COMMANDS: dict[str, type] = {
    "producer": ProducerSettings,
    "writer": WriterSettings,
    "verify": VerifySettings,
    "maintain": MaintainSettings,
}
_TABLE_BLOCK = re.compile(r"(<!-- flags: (\w+) -->\n)(.*?)(<!-- /flags -->)", re.S)


def with_flag_tables(page: str) -> str:
    """`page` (markdown) with the table between each `<!-- flags: NAME -->` and `<!-- /flags -->`
    written anew from the settings of command NAME (one of COMMANDS)."""

    def table(match: re.Match[str]) -> str:
        return match.group(1) + flag_table(COMMANDS[match.group(2)]) + match.group(4)

    return _TABLE_BLOCK.sub(table, page)
