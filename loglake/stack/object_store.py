"""The S3 server of an instance (the service `s3`): versitygw (the default) or MinIO (`--s3 minio`).

Both listen on 127.0.0.1 at the port docker-compose.yml publishes for MinIO (9000 + offset) with the
same development keys, keep their data in `.stack/<instance>/s3/data`, and answer the same health
check: an authenticated ListBuckets. MinIO also serves its web console (9001 + offset). How the two
differ as S3 servers (conditional writes, listing, error codes) is in docs/native-stack.md.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loglake import defaults
from loglake.stack import fetch
from loglake.stack.process import StackError

if TYPE_CHECKING:
    from loglake.stack.services import Instance

log = logging.getLogger("loglake.stack")


def binary(inst: Instance) -> str:
    """The S3 server's program, built on first use."""
    if inst.cfg.s3 == "minio":
        return str(fetch.minio_binary(inst.cache))
    return str(fetch.versitygw_binary(inst.cache))


def command(inst: Instance) -> tuple[list[str], dict[str, str] | None]:
    """(command line, environment or None to inherit) of the instance's S3 server."""
    sdir = inst.service_dir("s3")
    data = sdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    if inst.cfg.s3 == "minio":
        return _minio_command(inst, data)
    argv = [
        binary(inst),
        "--port",
        f"127.0.0.1:{inst.cfg.s3_port}",
        "--access",
        defaults.S3_ACCESS_KEY_ID,
        "--secret",
        defaults.S3_SECRET_ACCESS_KEY,
        "--region",
        defaults.REGION,
        "--quiet",
    ]
    if inst.cfg.secure:
        argv += ["--cert", str(inst.tls_dir / "server.crt"), "--key", str(inst.tls_dir / "server.key")]
    return [*argv, "posix", str(data)], None


def _minio_command(inst: Instance, data: Path) -> tuple[list[str], dict[str, str]]:
    # MinIO reads TLS files from a certificates folder (public.crt, private.key), by default under the
    # user's home; the instance gets its own, so nothing is written outside `.stack/`.
    certs = inst.service_dir("s3") / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    if inst.cfg.secure:
        shutil.copyfile(inst.tls_dir / "server.crt", certs / "public.crt")
        shutil.copyfile(inst.tls_dir / "server.key", certs / "private.key")
        (certs / "private.key").chmod(0o600)
    argv = [
        binary(inst),
        "server",
        "--address",
        f"127.0.0.1:{inst.cfg.s3_port}",
        "--console-address",
        f"127.0.0.1:{inst.cfg.s3_console_port}",
        "--certs-dir",
        str(certs),
        "--quiet",
        str(data),
    ]
    env = dict(
        os.environ,
        MINIO_ROOT_USER=defaults.S3_ACCESS_KEY_ID,
        MINIO_ROOT_PASSWORD=defaults.S3_SECRET_ACCESS_KEY,
        MINIO_SITE_REGION=defaults.REGION,
        MINIO_UPDATE="off",  # no update check: this machine reaches nothing but loopback
    )
    return argv, env


def client(inst: Instance) -> Any:
    """A boto3 S3 client for the instance's server, with the development keys."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=inst.cfg.s3_endpoint,
        region_name=defaults.REGION,
        aws_access_key_id=defaults.S3_ACCESS_KEY_ID,
        aws_secret_access_key=defaults.S3_SECRET_ACCESS_KEY,
        verify=str(inst.tls_dir / "ca.crt") if inst.cfg.secure else None,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def healthy(inst: Instance) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client(inst).list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def create_bucket(inst: Instance) -> None:
    from botocore.exceptions import ClientError

    try:
        client(inst).create_bucket(Bucket=defaults.BUCKET)
        log.info("created bucket %s", defaults.BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StackError(f"could not create bucket {defaults.BUCKET}: {exc}") from None
