"""What `scripts/stack env` prints: the variables that point programs at a running instance.

The connection variables both scripts read (Kafka, S3, bucket), and pyiceberg's named catalog
`loglake` in pyiceberg's own environment convention (`PYICEBERG_CATALOG__<NAME>__<KEY>`, where `__`
inside a key becomes `.` and `_` becomes `-`): the SQL catalog on the instance's PostgreSQL when it
has one, else on a SQLite file in the instance's folder, with its warehouse in the lake's bucket and
the S3 FileIO's endpoint and keys. Any pyiceberg program run after `eval "$(scripts/stack env)"` finds
the table with `load_catalog("loglake")`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from loglake import defaults
from loglake.stack import postgres
from loglake.stack.cluster import SCRAM_USER

if TYPE_CHECKING:
    from loglake.stack.services import Instance

_CATALOG = f"PYICEBERG_CATALOG__{defaults.ICEBERG_CATALOG.upper()}__"
# pyiceberg's property -> its environment variable (`s3.access-key-id` -> S3__ACCESS_KEY_ID)
ICEBERG_KEYS = {
    "type": _CATALOG + "TYPE",
    "uri": _CATALOG + "URI",
    "warehouse": _CATALOG + "WAREHOUSE",
    "s3.endpoint": _CATALOG + "S3__ENDPOINT",
    "s3.access-key-id": _CATALOG + "S3__ACCESS_KEY_ID",
    "s3.secret-access-key": _CATALOG + "S3__SECRET_ACCESS_KEY",
    "s3.region": _CATALOG + "S3__REGION",
}

# Every variable `env` may print, for `env --unset` and for the tests, which clear them all before
# they set those of the stack they run on (a secure instance's stay exported otherwise).
ENV_NAMES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "LAKE_BUCKET",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "AWS_CA_BUNDLE",
    "LOGLAKE_KAFKA_CLIENT_PROPERTIES",
    *ICEBERG_KEYS.values(),
)


def catalog_uri(inst: Instance) -> str:
    """The SQL catalog's database: the instance's PostgreSQL, or a SQLite file in its folder."""
    if inst.cfg.postgres:
        return postgres.uri(inst)
    return f"sqlite:///{(inst.dir / 'catalog.db').resolve()}"  # sqlite:/// + an absolute path


def sql_catalog(uri: str, endpoint: str, key_id: str, secret: str) -> dict[str, str]:
    """pyiceberg's properties of an SQL catalog `loglake` on `uri`, its warehouse in the lake's bucket."""
    return {
        "type": "sql",
        "uri": uri,
        "warehouse": f"s3://{defaults.BUCKET}/{defaults.ICEBERG_WAREHOUSE_PREFIX}",
        "s3.endpoint": endpoint,
        "s3.access-key-id": key_id,
        "s3.secret-access-key": secret,
        "s3.region": defaults.REGION,
    }


def iceberg_properties(inst: Instance) -> dict[str, str]:
    """pyiceberg's properties of the catalog `loglake` on this instance."""
    return sql_catalog(
        catalog_uri(inst), inst.cfg.s3_endpoint, defaults.S3_ACCESS_KEY_ID, defaults.S3_SECRET_ACCESS_KEY
    )


def env_values(inst: Instance) -> dict[str, str]:
    cfg = inst.cfg
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers,
        "AWS_ENDPOINT_URL": cfg.s3_endpoint,
        "AWS_ACCESS_KEY_ID": defaults.S3_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": defaults.S3_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": defaults.REGION,
        "LAKE_BUCKET": defaults.BUCKET,
        "KAFKA_SECURITY_PROTOCOL": cfg.security_protocol,
    }
    if cfg.secure:
        values.update(
            {
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_USERNAME": SCRAM_USER,
                "KAFKA_SASL_PASSWORD": cfg.scram_password,
                "KAFKA_SSL_CAFILE": str(inst.tls_dir / "ca.crt"),
                "AWS_CA_BUNDLE": str(inst.tls_dir / "ca.crt"),
            }
        )
    values["LOGLAKE_KAFKA_CLIENT_PROPERTIES"] = str(inst.dir / "client.properties")
    values.update({ICEBERG_KEYS[k]: v for k, v in iceberg_properties(inst).items()})
    return values


def env_lines(inst: Instance) -> list[str]:
    return [f"export {k}={shlex.quote(v)}" for k, v in env_values(inst).items()]


def compose_env_lines(repo: Path) -> list[str]:
    """Host programs against `docker compose up`: its published ports, the keys of its .env file, and
    the catalog `loglake` a host writer falls back to (the SQLite file in the working directory), so a
    pyiceberg program run from the same folder opens the table that writer commits to."""
    keys = {
        "LAKE_ACCESS_KEY_ID": defaults.S3_ACCESS_KEY_ID,
        "LAKE_SECRET_ACCESS_KEY": defaults.S3_SECRET_ACCESS_KEY,
    }
    env_file = repo / ".env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() in keys:
                keys[name.strip()] = value.strip().strip("'\"")
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{defaults.KAFKA_PORTS[0]}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{defaults.S3_PORT}",
        "AWS_ACCESS_KEY_ID": keys["LAKE_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": keys["LAKE_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": defaults.REGION,
        "LAKE_BUCKET": defaults.BUCKET,
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }
    catalog = sql_catalog(
        f"sqlite:///{defaults.ICEBERG_SQLITE}",  # relative: the working directory, as the writer's
        values["AWS_ENDPOINT_URL"],
        values["AWS_ACCESS_KEY_ID"],
        values["AWS_SECRET_ACCESS_KEY"],
    )
    values.update({ICEBERG_KEYS[k]: v for k, v in catalog.items()})
    lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    return [*lines, "unset " + " ".join(n for n in ENV_NAMES if n not in values)]
