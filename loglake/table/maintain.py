"""Table maintenance: compaction of closed hours and days, snapshot expiry, and deletion of the files no
snapshot references (`python -m loglake table maintain`).

Compaction. The writer registers one small file per Kafka partition, hour and batch. Once an hour has
ended `closed_after` ago, its small files (smaller than 3/4 of the target size) are read, sorted by
`event_time`, and written as files of about the target size under the table's own location
(`<location>/data/`); once a whole day has ended that long ago, its remaining small files (the hours'
outputs of a quiet stream) are merged the same way. Each group is replaced in ONE atomic snapshot
(an Iceberg overwrite that deletes exactly the files read and adds the new ones), after checking
that the new files hold the same number of rows and the same event ids (as a multiset) as the old
ones. The snapshot carries the table's loglake offsets over (loglake/table/progress.py), so the
writer's next commit still finds them. When a writer commits meanwhile, the replace is retried on
top of it, reusing the files already written: the writer's commit only added files, and the replace
deletes only the ones it read. If one of those is gone (another maintenance replaced it), the group is
dropped and its new files deleted at once: they were never part of any snapshot.

The writer's own objects are never rewritten or deleted here: they belong to the files lake, whose
claims and `verify` keep naming them (docs/lake-writer.md, "Maintenance"). Compaction's outputs are
the table's alone; when a later compaction replaces them they become unreferenced and are deleted
below like any orphan.

Expiry and orphans. Snapshots older than `older_than` are expired, except the branch heads and the
newest snapshot that carries the loglake offsets. Then every file under the table's `data/` and
`metadata/` folders that no remaining snapshot or metadata file references is deleted, once it is
older than `orphans_older_than`: a younger one may belong to a commit in flight (its manifests and
metadata are written before the catalog accepts it), so that age must exceed the longest commit or
compaction. A file whose name is a writer object's (`topic+partition+offset.parquet`) is never
deleted, wherever it lies.

Why one module of more than 400 lines: the three steps share one run's view of the table (its
snapshots, the files they reference, the offsets carried over), and each depends on the one before:
a compaction's replaced files become orphans only once expiry has let go of the snapshots holding them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loglake import formats, layout
from loglake.errors import LoglakeError
from loglake.table.catalog import CatalogSettings
from loglake.table.commit import RETRY, Backoff
from loglake.table.errors import TableRetriable, translated
from loglake.table.progress import carried, carried_snapshot
from loglake.table.schema import PARTITION_SOURCE, open_table
from loglake.table.transaction import CachedTransaction

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
COMPACTION_KEY = "loglake.compaction"


@dataclass(frozen=True)
class MaintainOptions:
    older_than: timedelta = timedelta(days=1)
    orphans_older_than: timedelta = timedelta(days=1)
    closed_after: timedelta = timedelta(hours=1)
    compact: bool = True
    target_file_bytes: int = 128 << 20  # compressed Parquet bytes read into one output


@dataclass(frozen=True)
class Compaction:
    """One replaced group: `unit` (hour or day) starting at `start`."""

    unit: str
    start: str
    files_in: int
    bytes_in: int
    files_out: int
    bytes_out: int
    rows: int
    snapshot_id: int | None  # None: dropped (another maintenance replaced some of its files first)
    attempts: int = 1  # commits tried: more than one when writers committed meanwhile


@dataclass
class MaintainReport:
    compactions: list[Compaction] = field(default_factory=list)
    expired: int = 0
    snapshots_left: int = 0
    deleted: list[str] = field(default_factory=list)
    young_orphans: int = 0  # unreferenced, but too young to be sure no commit in flight needs them
    seconds: float = 0.0

    def line(self, identifier: str) -> str:
        done = [c for c in self.compactions if c.snapshot_id is not None]
        return (
            f"maintained table={identifier} compacted_groups={len(done)} "
            f"files_in={sum(c.files_in for c in done)} files_out={sum(c.files_out for c in done)} "
            f"rows_rewritten={sum(c.rows for c in done)} expired_snapshots={self.expired} "
            f"snapshots_left={self.snapshots_left} deleted_files={len(self.deleted)} "
            f"young_orphans_kept={self.young_orphans} seconds={self.seconds:.1f}"
        )


class CompactionMismatch(LoglakeError):
    """The rewritten files do not hold exactly the rows they replace: nothing was committed."""


# ------------------------------------------------------------------------------------------ planning


def live_data_files(table: Table, spec_id: int | None = None) -> list[DataFile]:
    """The data files of the current snapshot (written under partition spec `spec_id`, if given)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    files = []
    for manifest in snapshot.manifests(table.io):
        if spec_id is None or manifest.partition_spec_id == spec_id:
            files.extend(e.data_file for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True))
    return files


def _time_bounds(table: Table, data_file: DataFile) -> tuple[int, int] | None:
    """(lowest, highest) event_time of a file in epoch microseconds, from its manifest entry."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import TimestamptzType

    field_id = table.schema().find_field(PARTITION_SOURCE).field_id
    low = (data_file.lower_bounds or {}).get(field_id)
    high = (data_file.upper_bounds or {}).get(field_id)
    if low is None or high is None:
        return None
    return from_bytes(TimestamptzType(), low), from_bytes(TimestamptzType(), high)


def plan_compaction(
    table: Table, now_us: int, options: MaintainOptions
) -> list[tuple[str, int, list[DataFile]]]:
    """Groups to replace: (unit, start in epoch µs, files), each of 2 files or more, together at most
    the target size. A closed day's small files form day groups; in a day still open, a closed hour's."""
    closed_before = now_us - int(options.closed_after.total_seconds() * 1_000_000)
    small = options.target_file_bytes * 3 // 4
    groups: dict[tuple[str, int, tuple[object, ...]], list[tuple[int, DataFile]]] = {}
    for data_file in live_data_files(table, table.metadata.default_spec_id):
        bounds = _time_bounds(table, data_file)
        if data_file.file_size_in_bytes >= small or bounds is None:
            continue
        low, high = bounds
        day = low - low % DAY_US
        hour = low - low % HOUR_US
        partition = tuple(data_file.partition)  # groups never span partitions (an hour-partitioned table)
        if high < day + DAY_US and day + DAY_US <= closed_before:
            groups.setdefault(("day", day, partition), []).append((low, data_file))
        elif high < hour + HOUR_US and hour + HOUR_US <= closed_before:
            groups.setdefault(("hour", hour, partition), []).append((low, data_file))
    plan = []
    for (unit, start, _partition), members in sorted(groups.items(), key=lambda item: item[0][1]):
        members.sort(key=lambda m: (m[0], m[1].file_path))
        bin_: list[DataFile] = []
        size = 0
        for _low, data_file in members:
            if bin_ and size + data_file.file_size_in_bytes > options.target_file_bytes:
                plan.append((unit, start, bin_))
                bin_, size = [], 0
            bin_.append(data_file)
            size += data_file.file_size_in_bytes
        plan.append((unit, start, bin_))
    return [(unit, start, files) for unit, start, files in plan if len(files) >= 2]


# ------------------------------------------------------------------------------------------ rewriting


def _read(table: Table, data_files: list[DataFile]) -> pa.Table:
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    return scan.to_table([FileScanTask(f) for f in data_files])


def _ids(rows: pa.Table) -> pa.Array:
    ids = rows.column("event_id").combine_chunks()
    return pc.take(ids, pc.sort_indices(ids))


def rewrite(table: Table, data_files: list[DataFile]) -> list[DataFile]:
    """New files holding the rows of `data_files` (all of one partition), sorted by event_time, checked
    to hold the same row count and event ids. Raises CompactionMismatch (and deletes what it wrote)
    otherwise."""
    rows = _read(table, data_files)
    expected = sum(f.record_count for f in data_files)
    if rows.num_rows != expected:
        raise CompactionMismatch(
            f"{len(data_files)} files say they hold {expected} rows but {rows.num_rows} were read; not compacted"
        )
    before = _ids(rows)
    written = _write(table, rows.sort_by([(PARTITION_SOURCE, "ascending")]), data_files[0])
    del rows
    after = _read(table, written)
    if after.num_rows != expected or not _ids(after).equals(before):
        _delete(table, [f.file_path for f in written])
        raise CompactionMismatch(
            f"the compacted files hold {after.num_rows} rows where {expected} were read, or other event "
            "ids; nothing was committed"
        )
    return written


def _write(table: Table, rows: pa.Table, like: DataFile) -> list[DataFile]:
    """`rows` as data files of the partition of `like`, through pyiceberg's writer (field ids in the
    files, column statistics, the table's compression and target file size)."""
    import uuid

    from pyiceberg.io.pyarrow import bin_pack_arrow_table, write_file
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_int

    spec, schema = table.spec(), table.schema()
    values = [PartitionFieldValue(f, like.partition[i]) for i, f in enumerate(spec.fields)]
    key = PartitionKey(values, spec, schema) if values else None
    target = property_as_int(
        table.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    write_uuid = uuid.uuid4()
    tasks = (
        WriteTask(write_uuid, i, schema, batches, partition_key=key)
        for i, batches in enumerate(bin_pack_arrow_table(rows, target or (512 << 20)))
    )
    written = list(write_file(table.io, table.metadata, tasks))
    for data_file in written:  # from_args drops it; reading the file back needs it
        data_file.spec_id = table.metadata.default_spec_id
    return written


def _delete(table: Table, paths: list[str]) -> None:
    for path in paths:
        try:
            table.io.delete(path)
        except FileNotFoundError:
            continue


def replace(
    table: Table, unit: str, start: int, old: list[DataFile], new: list[DataFile], backoff: Backoff
) -> tuple[Table, int | None, int]:
    """Swap `old` for `new` in one snapshot that carries the loglake offsets over; retried on top of
    commits that came first. (table, snapshot id or None when some of `old` is gone, attempts)."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    rows = sum(f.record_count for f in old)
    marker = {
        COMPACTION_KEY: orjson.dumps(
            {"unit": unit, "start": _iso(start), "files": len(old), "into": len(new), "rows": rows}
        ).decode()
    }
    for attempt in range(backoff.attempts):
        summary = carried(table.metadata) | marker
        transaction = CachedTransaction(table)
        try:
            with transaction.update_snapshot(snapshot_properties=summary).overwrite() as overwrite:
                for f in old:
                    overwrite.delete_data_file(f)
                for f in new:
                    overwrite.append_data_file(f)
                snapshot_id = overwrite.snapshot_id
            return transaction.commit_transaction(), snapshot_id, attempt + 1
        except ValidationException as exc:  # a file it replaces is no longer in the table
            log.info("compaction of %s %s dropped: %s", unit, _iso(start), exc)
            _delete(table, [f.file_path for f in new])
            return table, None, attempt + 1
        except CommitFailedException:
            time.sleep(backoff.delay(attempt))
            table = table.refresh()
    raise TableRetriable(f"compaction of {unit} {_iso(start)} lost {backoff.attempts} commits in a row")


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(
    table: Table, now: datetime, options: MaintainOptions, backoff: Backoff
) -> tuple[Table, list[Compaction]]:
    """Replace the small files of every closed hour and day (see the module's docstring)."""
    done = []
    for unit, start, old in plan_compaction(table, int(now.timestamp() * 1_000_000), options):
        new = rewrite(table, old)
        table, snapshot_id, attempts = replace(table, unit, start, old, new, backoff)
        done.append(
            Compaction(
                unit,
                _iso(start),
                len(old),
                sum(f.file_size_in_bytes for f in old),
                len(new),
                sum(f.file_size_in_bytes for f in new),
                sum(f.record_count for f in old),
                snapshot_id,
                attempts,
            )
        )
        log.info("compacted %s %s: %d files into %d", unit, _iso(start), len(old), len(new))
    return table, done


# ------------------------------------------------------------------------------------ expiry, orphans


def expire(table: Table, older_than: datetime, backoff: Backoff) -> tuple[Table, int]:
    """Expire the snapshots older than `older_than`, except branch heads and the newest one that
    carries the loglake offsets. (table, how many were expired)."""
    from pyiceberg.exceptions import CommitFailedException

    cutoff = int(older_than.timestamp() * 1000)
    for attempt in range(backoff.attempts):
        metadata = table.metadata
        keep = {ref.snapshot_id for ref in metadata.refs.values()}
        carrier = carried_snapshot(metadata)
        if carrier is not None:
            keep.add(carrier.snapshot_id)
        old = [
            s.snapshot_id for s in metadata.snapshots if s.timestamp_ms < cutoff and s.snapshot_id not in keep
        ]
        if not old:
            return table, 0
        try:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            return table.refresh(), len(old)
        except (CommitFailedException, ValueError):  # another commit, or another expiry took some
            time.sleep(backoff.delay(attempt))
            table = table.refresh()
    raise TableRetriable(f"snapshot expiry lost {backoff.attempts} commits in a row")


def referenced_files(table: Table) -> set[str]:
    """Every file the table's metadata reaches: metadata files, manifest lists, manifests, and the
    data files of every snapshot that is left."""
    metadata = table.metadata
    found = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    found.update(s.statistics_path for s in metadata.statistics)
    seen_manifests: set[str] = set()
    for snapshot in metadata.snapshots:
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            found.update(
                e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            )
    return found | seen_manifests


def table_files(table: Table) -> Iterator[tuple[str, datetime]]:
    """(URI, last modified) of every file under the table's data/ and metadata/ folders."""
    from pyarrow.fs import FileSelector, FileType
    from pyiceberg.io.pyarrow import PyArrowFileIO

    if not isinstance(table.io, PyArrowFileIO):
        raise LoglakeError("table maintenance lists the table's files through PyArrow's FileIO (py-io-impl)")
    location = table.location().rstrip("/")
    scheme, netloc, path = PyArrowFileIO.parse_location(location, table.io.properties)
    fs = table.io.fs_by_scheme(scheme, netloc)
    for folder in ("data", "metadata"):
        for info in fs.get_file_info(FileSelector(f"{path}/{folder}", allow_not_found=True, recursive=True)):
            if info.type == FileType.File:
                yield f"{scheme}://{info.path}", info.mtime


def _writer_object(uri: str) -> bool:
    """Whether `uri` is named like one of the writer's objects (never deleted by maintenance)."""
    return layout.partition_of_object(uri) >= 0 and formats.format_of_key(uri) is not None


def delete_orphans(table: Table, older_than: datetime) -> tuple[list[str], int]:
    """Delete the table's files that nothing references any more and that are older than `older_than`.
    (deleted URIs, how many unreferenced files were too young to delete)."""
    referenced = referenced_files(table)
    deleted, young = [], 0
    for uri, modified in table_files(table):
        if uri in referenced or _writer_object(uri):
            continue
        if modified is not None and modified >= older_than:
            young += 1
            continue
        _delete(table, [uri])
        deleted.append(uri)
    return deleted, young


# ------------------------------------------------------------------------------------------ all of it


def maintain(
    catalog: CatalogSettings,
    identifier: str,
    options: MaintainOptions = MaintainOptions(),
    now: datetime | None = None,
    backoff: Backoff = RETRY,
) -> MaintainReport:
    """Compact, expire, delete orphans: in that order, so that what compaction replaces can go at once
    when the retention allows it."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    report = MaintainReport()
    with translated(f"table {identifier} in {catalog.describe()}"):
        table = open_table(catalog, identifier, create=False)
        if options.compact:
            table, report.compactions = compact(table, now, options, backoff)
        table, report.expired = expire(table.refresh(), now - options.older_than, backoff)
        report.snapshots_left = len(table.metadata.snapshots)
        report.deleted, report.young_orphans = delete_orphans(table, now - options.orphans_older_than)
    report.seconds = time.monotonic() - started
    return report
