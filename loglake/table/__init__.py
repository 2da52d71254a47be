"""The lake as an Apache Iceberg table: the writer's Parquet objects registered as data files, exactly
once, with the offsets each snapshot covers in its summary (issue #25).

One room per thing, in the order a commit uses them:

    catalog.py     pyiceberg's named catalog `loglake`: its configuration, defaults, opening it
    schema.py      the table's schema (from loglake/columnar.py), partitioning, properties; open/create
    progress.py    the offsets, starts, row, absent and lost counts each summary carries, and reading them
    datafiles.py   a claim's objects as Iceberg data files, from their Parquet footers
    commit.py      `TableSink`: commit landed claims once, retried against other writers' commits
    maintain.py    compaction, snapshot expiry, deletion of unreferenced files
    cli.py         `python -m loglake table maintain`
    errors.py      retriable versus one-sentence failures of the catalog and the table's storage

(The table's side of `verify --iceberg-table` lives in loglake/verify/table_side.py.)

The writer (`--iceberg-table`) opens `TableSink(catalog_settings(lake, configured()), table, topic,
bucket)` (loglake/cli.py), reads `sink.offsets()` at start (where the table's partitions end), and
each commit interval calls `sink.commit(landed_claims, footers)` before Kafka's offsets are committed
(loglake/tablecommit.py).
"""
