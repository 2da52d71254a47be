"""The table's schema, partitioning and properties, derived from the Parquet encoder's columns, and
the one function that opens the table (creating it, and its namespace, when missing).

Schema. `loglake/columnar.py` SCHEMA, column for column, with Iceberg field ids: top-level fields
1..N in the encoder's order, then the fields of `_kafka`. Arrow's types map to Iceberg's: strings,
dictionary-encoded or not, to `string` (a dictionary is an encoding in Parquet, not a type); int16 and
int32 to `int` (Iceberg has no narrower integer: a Parquet INT32 annotated INT(16) is read as an int);
int64 to `long`; timestamp[ms, UTC] to `timestamptz` (microseconds in Iceberg: PyArrow, DuckDB and
Spark read the millisecond column and scale it); decimal(p, s) to `decimal(p, s)` (Iceberg allows
INT32 storage up to precision 9, INT64 up to 18, which is how the encoder stores them). `_kafka` is
required, like its Arrow field; every other field is optional (an event kept whole in `_raw` may lack
any of them).

The writer's Parquet files carry no field ids, so readers find columns by name through the table's
name mapping (`schema.name-mapping.default`), set when the table is created.

Partitioning: `day(event_time)`; docs/lake-writer.md says why not hour.

Properties the commit protocol depends on (set at creation, and checked on every open):
- `commit.retry.num-retries` = 0: pyiceberg would otherwise retry a conflicting commit by replaying
  the same files on top of the other writer's snapshot, blind to the offsets that snapshot already
  holds (duplicates), and with a snapshot summary computed before the conflict. The table layer
  retries itself, re-reading the offsets first (loglake/table/commit.py).
- `write.metadata.delete-after-commit.enabled` with `write.metadata.previous-versions-max`: each
  commit writes a new metadata file; all but the last few are deleted as they are replaced.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyarrow as pa

from loglake import columnar
from loglake.table.catalog import CatalogSettings, open_catalog, split_identifier
from loglake.table.errors import TableUnavailable, translated

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.types import IcebergType, NestedField

log = logging.getLogger(__name__)

PARTITION_SOURCE = "event_time"
PARTITION_NAME = "event_time_day"
NAME_MAPPING = "schema.name-mapping.default"
PARTITION_FIELD_ID = 1000  # Iceberg numbers partition fields from 1000
REQUIRED_PROPERTIES = {
    "commit.retry.num-retries": "0",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}


def _iceberg_type(kind: pa.DataType, next_id: list[int]) -> IcebergType:
    from pyiceberg import types as t

    if pa.types.is_dictionary(kind):
        return _iceberg_type(kind.value_type, next_id)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return t.StringType()
    if pa.types.is_int16(kind) or pa.types.is_int32(kind) or pa.types.is_int8(kind):
        return t.IntegerType()
    if pa.types.is_int64(kind):
        return t.LongType()
    if pa.types.is_float64(kind):
        return t.DoubleType()
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return t.TimestamptzType()
    if pa.types.is_decimal(kind):
        return t.DecimalType(kind.precision, kind.scale)
    if pa.types.is_struct(kind):
        return t.StructType(*_fields(list(kind), next_id))
    raise TypeError(f"column type {kind} has no Iceberg type: add it to {__name__}")


def _fields(arrow_fields: list[pa.Field], next_id: list[int]) -> list[NestedField]:
    """Iceberg fields of `arrow_fields`: ids for this level first, then for their children."""
    from pyiceberg.types import NestedField

    ids = list(range(next_id[0], next_id[0] + len(arrow_fields)))
    next_id[0] += len(arrow_fields)
    return [
        NestedField(i, f.name, _iceberg_type(f.type, next_id), required=not f.nullable)
        for i, f in zip(ids, arrow_fields, strict=True)
    ]


def iceberg_schema() -> Schema:
    """The table's schema: columnar.SCHEMA with Iceberg types and field ids."""
    from pyiceberg.schema import Schema

    return Schema(*_fields(list(columnar.SCHEMA), [1]))


def partition_spec(schema: Schema) -> PartitionSpec:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    source = schema.find_field(PARTITION_SOURCE).field_id
    return PartitionSpec(
        PartitionField(
            source_id=source, field_id=PARTITION_FIELD_ID, transform=DayTransform(), name=PARTITION_NAME
        )
    )


def _shape(schema: Schema) -> list[tuple[str, str, bool]]:
    """(path, type, required) of every field: a schema's shape, whatever its field ids."""
    from pyiceberg.types import StructType

    rows = []

    def walk(fields: tuple[NestedField, ...], prefix: str) -> None:
        for f in fields:
            if isinstance(f.field_type, StructType):
                rows.append((prefix + f.name, "struct", f.required))
                walk(f.field_type.fields, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, str(f.field_type), f.required))

    walk(schema.fields, "")
    return rows


def schema_difference(table_schema: Schema, wanted: Schema) -> str | None:
    """What differs between the table's schema and the writer's, in a few words; None if the same."""
    have, want = _shape(table_schema), _shape(wanted)
    if have == want:
        return None
    have_set, want_set = set(have), set(want)
    missing = [f"{p} {t}" for p, t, _ in want if (p, t, _) not in have_set]
    extra = [f"{p} {t}" for p, t, _ in have if (p, t, _) not in want_set]
    if not missing and not extra:
        return "its columns are in another order"
    said = []
    if missing:
        said.append(f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if extra:
        said.append(f"has {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    return " and ".join(said)


class _DictionaryNote(logging.Filter):
    """Drops pyiceberg's note that Iceberg has no dictionary type, which it logs as a warning for each
    dictionary column of each file it reads (14 per writer object: their Arrow schema, stored in the
    file, keeps the encoder's dictionary types). Nothing is wrong: the values are read as strings.
    docs/lake-writer.md says which encoder setting would make the note go away for every reader."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Iceberg does not have a dictionary type")


_NOTE = _DictionaryNote()


def open_table(settings: CatalogSettings, identifier: str, create: bool = True) -> Table:
    """The table `identifier` (NAMESPACE.TABLE) of the catalog: created with its namespace when
    missing (if `create`); refused in one sentence when its schema or partitioning is not the
    writer's. The properties the commits depend on are set if the table lacks them."""
    from pyiceberg.exceptions import NoSuchTableError

    namespace, _name = split_identifier(identifier)
    where = f"table {identifier} in {settings.describe()}"
    logging.getLogger("pyiceberg.io.pyarrow").addFilter(_NOTE)  # once: a filter is added only once
    with translated(where):
        catalog = open_catalog(settings)
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            if not create:
                raise TableUnavailable(f"{where} does not exist") from None
            table = _create(catalog, namespace, identifier)
        _check(table, where)
        missing = {k: v for k, v in REQUIRED_PROPERTIES.items() if table.properties.get(k) != v}
        if NAME_MAPPING not in table.properties:  # a table made elsewhere: our files need it to be read
            missing[NAME_MAPPING] = table.schema().name_mapping.model_dump_json()
        if missing:
            log.info("table %s: setting %s", identifier, ", ".join(f"{k}={v}" for k, v in missing.items()))
            table = table.transaction().set_properties(missing).commit_transaction()
    return table


def _create(catalog: Catalog, namespace: str, identifier: str) -> Table:
    from pyiceberg.exceptions import TableAlreadyExistsError
    from pyiceberg.table.name_mapping import create_mapping_from_schema

    schema = iceberg_schema()
    catalog.create_namespace_if_not_exists(namespace)
    properties = REQUIRED_PROPERTIES | {
        NAME_MAPPING: create_mapping_from_schema(schema).model_dump_json(),
        "format-version": "2",
    }
    try:
        table = catalog.create_table(
            identifier, schema=schema, partition_spec=partition_spec(schema), properties=properties
        )
    except TableAlreadyExistsError:  # another writer created it first: take theirs
        return catalog.load_table(identifier)
    log.info("created Iceberg table %s at %s", identifier, table.location())
    return table


def _check(table: Table, where: str) -> None:
    """Refuse a table the writer's files cannot go into, in one sentence."""
    difference = schema_difference(table.schema(), iceberg_schema())
    if difference:
        raise TableUnavailable(f"{where} has another schema than the writer's Parquet files: it {difference}")
    spec = table.spec()
    source = table.schema().find_field(PARTITION_SOURCE).field_id
    if [f.source_id for f in spec.fields] != [source] or str(spec.fields[0].transform) not in ("day", "hour"):
        raise TableUnavailable(
            f"{where} is partitioned by {spec} instead of day({PARTITION_SOURCE}) or hour({PARTITION_SOURCE}), "
            "the partitions each of the writer's files falls into whole"
        )
