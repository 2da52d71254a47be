"""The native stack: real Kafka, ZooKeeper and an S3 server as local processes (see scripts/stack)."""
