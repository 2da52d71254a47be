"""The values that the native stack (`scripts/stack`), docker-compose.yml and both scripts share.

One place: `tests/test_compose.py` reads docker-compose.yml and fails if it drifts from these.
"""

# Apache Kafka: 3.9 is the last line with ZooKeeper mode; 4.x is KRaft only.
KAFKA_ZOOKEEPER_MODE_VERSION = "3.9.2"
KAFKA_KRAFT_MODE_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
# ZooKeeper server (the official `zookeeper` image line); Kafka 3.9 talks to it with its own 3.8 client.
ZOOKEEPER_VERSION = "3.9.4"
# The S3-compatible server the native stack runs (Apache-2.0, from the Go module proxy).
VERSITYGW_VERSION = "v1.8.0"

# Host ports (loopback), the same as the ports docker-compose.yml publishes.
KAFKA_PORTS = (9092, 9093, 9094)
ZOOKEEPER_PORT = 2181
S3_PORT = 9000

TOPIC = "log-data"
DEAD_LETTER_SUFFIX = ".dlq"
TOPIC_PARTITIONS = 3
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
