"""The values that the native stack (`scripts/stack`), docker-compose.yml and both scripts share.

One place: `tests/test_compose.py` reads docker-compose.yml and fails if it drifts from these.
"""

# Apache Kafka: 3.9 is the last line with ZooKeeper mode; 4.x is KRaft only.
KAFKA_ZOOKEEPER_MODE_VERSION = "3.9.2"
KAFKA_KRAFT_MODE_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
# ZooKeeper server (the official `zookeeper` image line); Kafka 3.9 talks to it with its own 3.8 client.
ZOOKEEPER_VERSION = "3.9.4"
# The S3-compatible servers the native stack runs, each built from the Go module proxy on first use.
# versitygw (Apache-2.0) is the default; MinIO (AGPL-3.0, run only as a separate server process, never
# imported or committed) is `scripts/stack up --s3 minio`, at the release docker-compose.yml pins:
# the module proxy serves that release's commit as a pseudo-version whose timestamp is the release's
# (tests/test_stack.py reads docker-compose.yml and fails if the two name different releases).
VERSITYGW_VERSION = "v1.8.0"
S3_SERVERS = ("versitygw", "minio")
MINIO_RELEASE = "RELEASE.2025-09-07T16-13-09Z"
MINIO_MODULE_VERSION = "v0.0.0-20250907161309-07c3a429bfed"
MINIO_COMMIT = "07c3a429bfed433e49018cb0f78a52145d4bedeb"  # the module proxy's Origin.Hash of that version

# PostgreSQL for the Iceberg catalog (`scripts/stack up --postgres`): Debian's `postgresql` package,
# one cluster per stack instance. Development credentials, like the S3 keys below.
POSTGRES_DATABASE = "loglake"
POSTGRES_USER = "loglake"
POSTGRES_PASSWORD = "loglake-dev-secret"  # noqa: S105 - documented development default
# pyiceberg's named catalog that `scripts/stack env` describes (PYICEBERG_CATALOG__LOGLAKE__...), and
# where in the bucket its tables live.
ICEBERG_CATALOG = "loglake"
ICEBERG_WAREHOUSE_PREFIX = "iceberg"  # the folder loglake/table/catalog.py falls back to, too
# The embedded catalog a writer falls back to (and `scripts/stack env --compose` names): a SQLite file in
# the working directory.
ICEBERG_SQLITE = "loglake-catalog.db"

# Host ports (loopback), the same as the ports docker-compose.yml publishes.
KAFKA_PORTS = (9092, 9093, 9094)
ZOOKEEPER_PORT = 2181
S3_PORT = 9000
S3_CONSOLE_PORT = 9001  # MinIO's console (versitygw has none)
POSTGRES_PORT = 5432

TOPIC = "log-data"
DEAD_LETTER_SUFFIX = ".dlq"
TOPIC_PARTITIONS = 3
# Every broker bounds each partition by bytes, as docker-compose.yml's brokers do (256 MiB kept, in
# 64 MiB segments, so the limit bites); the native stack keeps no time limit (see cluster.py).
TOPIC_RETENTION_BYTES = 268_435_456
TOPIC_SEGMENT_BYTES = 67_108_864
BUCKET = "datalake"
CONSUMER_GROUP = "log-data-lake"
REGION = "us-east-1"

# Development credentials only, documented in README.md; never use them outside a laptop.
S3_ACCESS_KEY_ID = "loglake"
S3_SECRET_ACCESS_KEY = "loglake-dev-secret"  # noqa: S105 - documented development default

# Geo-replication (scripts/stack mirror, the compose profile `geo`, docs/geo.md). The tutorial's two
# regions are native instances `east` (the ports above) and `west` (every port + this offset).
GEO_SOURCE = "east"
GEO_TARGET = "west"
GEO_WEST_PORT_OFFSET = 100
# MirrorMaker 2: how often it looks for new groups/topics, emits checkpoints and writes translated
# offsets into the target's groups (Kafka's defaults: 600, 600, 60 and 60 s; shorter here so that a
# failover loses seconds, not minutes, of consumer progress), and its offset-sync granularity.
MIRROR_REFRESH_SECONDS = 5
MIRROR_CHECKPOINT_SECONDS = 1
MIRROR_OFFSET_LAG_MAX = 100
