"""loglake: platform log events through Apache Kafka into an S3 data lake."""

__version__ = "0.1.0"
