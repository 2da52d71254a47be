"""The writer's Parquet objects as Iceberg data files: each claim entry becomes one `DataFile`, built
from its Parquet footer, without copying or rewriting the object.

What pyiceberg's `add_files` does per file, minus what the claims already settle: `add_files` opens
each path (a HEAD), reads its footer (a ranged GET), asks its size again (a second HEAD), converts and
checks the file's Arrow schema against the table's, and (by default) reads every manifest of the
table to refuse a path that is already in it. Here the footer is read once (one HEAD and one GET
through the table's own FileIO, or none when the caller hands in the footer it just encoded), the
schema check runs once per distinct file schema (every object of the encoder has the same one), and
no manifest is read: the offsets in the snapshot summaries, not a scan of paths, are what keep a
claim from being added twice (loglake/table/commit.py).

What is taken from the footer: the row count, and per column the value and null counts, sizes and
lower/upper bounds that Iceberg keeps in its manifests for pruning; the partition value (the day of
`event_time`) comes from the bounds of `event_time`, which lie in one hour in every object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from loglake import columnar
from loglake.table.errors import TableUnavailable

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table.metadata import TableMetadata

    from loglake.ledger import Claim

FOOTER_READERS = 8  # footers fetched at once: each is a round trip or two, not CPU


def object_path(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def footer_of(body: bytes) -> pq.FileMetaData:
    """The footer of a Parquet object held in memory (the writer has each one right after encoding)."""
    return pq.read_metadata(pa.BufferReader(body))


def read_footer(io: FileIO, path: str) -> tuple[pq.FileMetaData, int]:
    """(footer, size in bytes) of the Parquet file at `path`, through the table's FileIO."""
    try:
        with io.new_input(path).open() as stream:
            return pq.read_metadata(stream), stream.size()
    except FileNotFoundError:
        raise TableUnavailable(
            f"{path} is not in the lake: a claim names an object that is not stored"
        ) from None


class DataFiles:
    """Turns Parquet files into `DataFile`s for one table schema, caching what every file shares:
    the statistics plan, the column-path-to-field-id map, and the schema check per file schema."""

    def __init__(self, metadata: TableMetadata) -> None:
        from pyiceberg.io.pyarrow import compute_statistics_plan, parquet_path_to_id_mapping

        self.metadata = metadata
        self.schema = metadata.schema()
        self.spec = metadata.spec()
        self.plan = compute_statistics_plan(self.schema, metadata.properties)
        self.ids = parquet_path_to_id_mapping(self.schema)
        self._checked: set[str] = set()
        self._lock = threading.Lock()

    def _check_schema(self, footer: pq.FileMetaData, path: str) -> None:
        from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible

        arrow = footer.schema.to_arrow_schema()
        shape = arrow.to_string(show_field_metadata=False, show_schema_metadata=False)
        with self._lock:
            if shape in self._checked:
                return
        if not arrow.equals(columnar.SCHEMA):  # the encoder's own schema was checked when the table opened
            try:
                _check_pyarrow_schema_compatible(
                    self.schema, arrow, format_version=self.metadata.format_version
                )
            except ValueError as exc:
                raise TableUnavailable(f"{path} does not fit the table's schema: {exc}") from None
        with self._lock:
            self._checked.add(shape)

    def data_file(self, path: str, footer: pq.FileMetaData, size: int) -> DataFile:
        """The data file entry of the Parquet file at `path`."""
        from pyiceberg.io.pyarrow import data_file_statistics_from_parquet_metadata
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

        self._check_schema(footer, path)
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer, stats_columns=self.plan, parquet_column_mapping=self.ids
        )
        try:
            partition = statistics.partition(self.spec, self.schema)
        except ValueError as exc:  # its event times span two partitions
            raise TableUnavailable(f"{path} cannot be registered whole in one partition: {exc}") from None
        data_file = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=partition,
            file_size_in_bytes=size,
            sort_order_id=None,
            spec_id=self.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )
        data_file.spec_id = self.metadata.default_spec_id  # from_args drops it; a scan of the file needs it
        return data_file


def claim_data_files(
    metadata: TableMetadata,
    io: FileIO,
    bucket: str,
    claims: Iterable[Claim],
    footers: Mapping[str, tuple[pq.FileMetaData, int]] | None = None,
) -> list[DataFile]:
    """One data file per object of `claims`, in claim order. `footers` (key -> footer, size), when
    given, spares reading those objects' footers from the lake."""
    builder = DataFiles(metadata)
    keys = [e.key for c in claims for e in c.objects]
    known = dict(footers or {})

    def one(key: str) -> DataFile:
        path = object_path(bucket, key)
        footer, size = known[key] if key in known else read_footer(io, path)
        return builder.data_file(path, footer, size)

    if len(keys) <= 1:
        return [one(k) for k in keys]
    with ThreadPoolExecutor(max_workers=FOOTER_READERS, thread_name_prefix="footer") as pool:
        return list(pool.map(one, keys))
