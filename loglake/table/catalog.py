"""The catalog: pyiceberg's named catalog `loglake`, configured by pyiceberg's own conventions.

pyiceberg reads a catalog's properties from `.pyiceberg.yaml` (in `$PYICEBERG_HOME`, the home
folder or the working directory) and from variables `PYICEBERG_CATALOG__LOGLAKE__<KEY>`, where `__`
inside the key becomes `.` and `_` becomes `-`:

    PYICEBERG_CATALOG__LOGLAKE__TYPE=sql
    PYICEBERG_CATALOG__LOGLAKE__URI=sqlite:///loglake-catalog.db       (or postgresql+psycopg://u:p@host/db)
    PYICEBERG_CATALOG__LOGLAKE__WAREHOUSE=s3://datalake/iceberg
    PYICEBERG_CATALOG__LOGLAKE__S3__ENDPOINT=http://127.0.0.1:9000     (-> s3.endpoint)
    PYICEBERG_CATALOG__LOGLAKE__S3__ACCESS_KEY_ID=...                  (-> s3.access-key-id)
    PYICEBERG_CATALOG__LOGLAKE__S3__SECRET_ACCESS_KEY=...              (-> s3.secret-access-key)
    PYICEBERG_CATALOG__LOGLAKE__S3__REGION=us-east-1                   (-> s3.region)

so any pyiceberg program (`load_catalog("loglake")`) opens the table the writer commits to. What is
not configured falls back to the lake's own settings: the embedded SQL catalog on the SQLite file
`loglake-catalog.db` in the working directory (one machine, no server), the warehouse
`s3://<bucket>/iceberg`, and the lake's S3 endpoint, keys and region. When several writers on
several machines share a table, the URI names a PostgreSQL database (`postgresql+psycopg://...`):
the same catalog tables as Iceberg's Java `JdbcCatalog`, so Spark, Trino and Flink open it too.

`configured()` is the one place that asks pyiceberg for that configuration (it reads the environment
and the YAML file): it is called at the edge, by the commands, and the result is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loglake import defaults
from loglake.settings import LakeSettings
from loglake.table.errors import translated

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

NAME = "loglake"
DEFAULT_SQLITE = defaults.ICEBERG_SQLITE
WAREHOUSE_FOLDER = defaults.ICEBERG_WAREHOUSE_PREFIX  # as `scripts/stack env` says it


def configured(name: str = NAME) -> dict[str, Any]:
    """The properties pyiceberg has for catalog `name` (`.pyiceberg.yaml`, `PYICEBERG_CATALOG__*`)."""
    from pyiceberg.utils.config import Config

    return dict(Config().get_catalog_config(name) or {})


@dataclass(frozen=True)
class CatalogSettings:
    """The resolved properties of one pyiceberg catalog (secrets included: never log `properties`)."""

    name: str
    properties: Mapping[str, str]

    def describe(self) -> str:
        """Which catalog this is, for sentences: its name, kind and URI (password hidden)."""
        uri = self.properties.get("uri", "")
        uri = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", uri)
        kind = self.properties.get("type", "")
        return f"catalog {self.name!r} ({', '.join(filter(None, (kind, uri)))})"


def catalog_settings(
    lake: LakeSettings, configured_properties: Mapping[str, Any], name: str = NAME
) -> CatalogSettings:
    """The catalog's properties: what pyiceberg's configuration gives, else the lake's defaults."""
    given = {k: str(v) for k, v in configured_properties.items()}
    defaults = {
        "warehouse": f"s3://{lake.bucket}/{WAREHOUSE_FOLDER}",
        "s3.endpoint": lake.endpoint_url,
        "s3.access-key-id": lake.access_key_id,
        "s3.secret-access-key": lake.secret_access_key.get(),
        "s3.region": lake.region,
    }
    if "uri" not in given and "type" not in given:  # a URI alone lets pyiceberg infer the type (rest, sql)
        defaults |= {"type": "sql", "uri": f"sqlite:///{DEFAULT_SQLITE}"}
    elif "type" not in given and given.get("uri", "").split(":", 1)[0].split("+", 1)[0] in (
        "sqlite",
        "postgresql",
    ):
        defaults["type"] = "sql"
    return CatalogSettings(name, {k: v for k, v in (defaults | given).items() if v != ""})


def open_catalog(settings: CatalogSettings) -> Catalog:
    """The catalog, connected (an SQL catalog creates its two tables on first use)."""
    from pyiceberg.catalog import load_catalog

    with translated(settings.describe()):
        try:
            return load_catalog(settings.name, **settings.properties)
        except (ValueError, ImportError) as exc:  # pyiceberg: unknown type, missing extra, bad property
            from loglake.table.errors import TableUnavailable

            raise TableUnavailable(f"{settings.describe()} cannot be opened: {exc}") from exc


def split_identifier(identifier: str) -> tuple[str, str]:
    """'NAMESPACE.TABLE' -> (namespace, table); the namespace may be dotted (nested)."""
    namespace, dot, table = identifier.strip().rpartition(".")
    if not dot or not namespace or not table or any(not part for part in namespace.split(".")):
        from loglake.errors import ConfigError

        raise ConfigError(f"{identifier!r} is not a table name of the form NAMESPACE.TABLE")
    return namespace, table
