"""Typed settings, built once at the edge (the command line) and passed in: every setting of every
command, declared once.

Precedence for every value: command-line flag > environment variable > default.
No other module reads the environment: they receive these objects.

Every setting of every command is declared once, below, as a field of its command's dataclass
(`ProducerSettings`, `WriterSettings`, `VerifySettings`, and the `KafkaSettings` and `LakeSettings`
they share): its default, its flag, its help, its group and, for a flag that takes one of a list of
names, that list. From that one declaration come the command's parser (`parser_for`), the dataclass
values (`values_of`), `--help`, and the flag tables in docs/*.md (`flag_table`; scripts/flag-tables
writes them, tests/test_settings.py fails when they differ); that machinery is loglake/flags.py. The
environment variable of a flag is `LOGLAKE_` and the flag's name (`--batch-age`: `LOGLAKE_BATCH_AGE`);
connection settings keep the names of their ecosystems (`KAFKA_*`, `AWS_*`, `LAKE_BUCKET`), and
secrets are read from the environment only. Secrets (passwords, secret keys) are wrapped in `Secret`,
which never prints.

This module imports nothing of loglake but its leaves (loglake/flags.py, loglake/defaults.py), so any
module may import it; what a setting means for a format or a Kafka client is decided there, from the
values given here (e.g. loglake/formats.py `recipe_of`).

Why one module of more than 400 lines: it is a declaration, one dataclass per command, each field one
flag with its help; a reader looking for a command's flags reads one class, and splitting the classes
over modules would only move them away from the machinery they share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loglake import defaults
from loglake.flags import (
    Secret,
    byte_size,
    compression_level,
    duration,
    flag_table,
    group,
    non_negative_float,
    non_negative_int,
    orphan_age,
    positive_float,
    positive_int,
    rfc3339_ms,
    start_position,
)

# ---------------------------------------------------------------------------------------
# The choices of the flags that take one of a list of names. They are declared here, beside their
# flags, so that the parsers, --help and the docs' tables come from this module alone. Where a name
# stands for an implementation, the module that implements it refuses, at start and in one sentence,
# a name it does not know (loglake/formats.py `check_recipe`, loglake/kafka/clients.py
# `open_producer`, the Kafka client libraries for a compression), and tests/test_settings.py fails
# while a list here and its implementations disagree.

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
KAFKA_CLIENTS = ("confluent", "kafka-python")  # the producer's; the lake writer runs on confluent-kafka
KAFKA_COMPRESSIONS = ("lz4", "zstd", "gzip", "snappy", "none")  # record batches, both Kafka clients
LAYOUTS = ("time", "partition")  # loglake/layout.py
FORMATS = ("jsonl", "json", "parquet")  # loglake/formats.py FORMATS
LAKE_COMPRESSIONS = ("gzip", "none", "zstd", "snappy")  # every compression some format takes

# ---------------------------------------------------------------------------------------
# Connection settings shared by every command

_kafka = group("Kafka connection")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = _kafka(
        f"127.0.0.1:{defaults.KAFKA_PORTS[0]}",
        "--bootstrap-servers",
        "Kafka brokers to contact first, host:port[,host:port...]",
        env="KAFKA_BOOTSTRAP_SERVERS",
    )
    security_protocol: str = _kafka(
        "PLAINTEXT",
        "--security-protocol",
        "how to talk to the brokers",
        env="KAFKA_SECURITY_PROTOCOL",
        choices=SECURITY_PROTOCOLS,
    )
    sasl_mechanism: str = _kafka(
        "SCRAM-SHA-512",
        "--sasl-mechanism",
        "SASL mechanism when the protocol is SASL_*",
        env="KAFKA_SASL_MECHANISM",
        choices=SASL_MECHANISMS,
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
    until_stopped: bool = _send(
        False,
        "--until-stopped",
        "with --rate 0 and neither --count nor --duration: send as fast as possible until stopped "
        "(without it, such a run is refused: it fills Kafka's disk within minutes)",
        switch=True,
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
        "lz4", "--compression", "record batch compression", choices=KAFKA_COMPRESSIONS
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
    kafka_client: str = _kafka("confluent", "--kafka-client", "Kafka client library", choices=KAFKA_CLIENTS)
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
_table = group("Iceberg table")
_operation = group("Operation")


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
        "where a topic the lake has never seen starts: committed (the group's committed offset, else "
        "earliest), earliest, latest, or an RFC 3339 time; a partition the lake holds claims of resumes "
        "after its last claim, whatever this says",
        parse=start_position,
    )
    prefix: str = _land("topics", "--prefix", "key prefix in the bucket")
    layout: str = _land(
        "time", "--layout", "time: dt=/hour= by event time (UTC); partition: partition=<n>", choices=LAYOUTS
    )
    fmt: str = _land(
        "jsonl",
        "--format",
        "object format: JSON Lines, one JSON array, or typed Parquet columns",
        choices=FORMATS,
        deprecated_env=("LOGLAKE_LAKE_FORMAT",),
    )
    compression: str = _land(
        "",
        "--compression",
        "object compression: gzip or none around JSON; zstd, snappy or none inside Parquet",
        choices=LAKE_COMPRESSIONS,
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
    new_generation: bool = _land(
        False,
        "--new-generation",
        "the topic was deleted and created again (the lake holds another topic id): land it beside the old "
        "records under a new generation of keys",
        switch=True,
    )
    iceberg_table: str = _table(
        "",
        "--iceberg-table",
        "also commit every landed batch to this Iceberg table, NAMESPACE.TABLE of catalog `loglake` "
        "(.pyiceberg.yaml or PYICEBERG_CATALOG__LOGLAKE__*), exactly once; Kafka's offsets follow the "
        "table's (needs --format parquet and --layout time)",
    )
    table_commit_interval: float = _table(
        60.0,
        "--table-commit-interval",
        "seconds between the table's commits: each adds every batch landed since the last one",
        parse=positive_float,
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
