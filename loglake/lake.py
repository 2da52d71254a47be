"""The object store under the lake: the few operations the writer and verify need, behind one small
interface (`ObjectStore`), and its S3 implementation through boto3.

`put_if_absent` is the one that carries exactly-once: an S3 conditional write (`If-None-Match: *`),
which the store performs atomically, so of two writers creating the same key exactly one succeeds.
AWS S3, MinIO and versitygw honour it; `check_conditional_writes` refuses a store that ignores it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from loglake.body import Body
from loglake.errors import LakeRetriable, LakeUnavailable
from loglake.settings import LakeSettings

log = logging.getLogger(__name__)

# S3 answers that no retry can mend: the user has to act.
_FATAL_CODES = {
    "InvalidAccessKeyId": "the lake refused the access key (AWS_ACCESS_KEY_ID)",
    # versitygw's answer to an unknown access key: a 404, which would otherwise read as a missing object
    "XAdminUserNotFound": "the lake refused the access key (AWS_ACCESS_KEY_ID): it knows no such user",
    "SignatureDoesNotMatch": "the lake refused the secret key (AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "the lake denied access to the bucket with these credentials",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "the bucket name is not valid",
}


class ObjectStore(Protocol):
    """The lake as the writer sees it. Every method raises LakeRetriable for passing trouble and
    LakeUnavailable (one sentence) for what a user must fix."""

    @property
    def where(self) -> str:
        """`s3://bucket` at the endpoint, for sentences."""
        ...

    def put(self, key: str, body: Body) -> None:
        """Store `body` under `key`, replacing what was there."""
        ...

    def put_if_absent(self, key: str, body: Body) -> bool:
        """Store `body` under `key` only if nothing is there; False (and nothing written) if it is."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def head(self, key: str) -> dict[str, str] | None:
        """The object's metadata, or None if there is no such object."""
        ...

    def list(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
        """(key, size) of every object under `prefix`, in key order, after `start_after`."""
        ...

    def ensure_bucket(self, create: bool) -> None:
        """Check the bucket is there (create it if `create`)."""
        ...

    def probe(self) -> None:
        """One cheap request that answers only when the lake does (LakeRetriable when it does not)."""
        ...

    def close(self) -> None: ...


def s3_client(settings: LakeSettings, timeout: float = 10.0) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key.get(),
        verify=settings.ca_bundle or None,
        config=Config(
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=16,
            s3={"addressing_style": "path"},
        ),
    )


def classify(exc: Exception, settings: LakeSettings) -> Exception:
    """LakeRetriable for passing trouble; LakeUnavailable (one sentence) for what a user must fix."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _FATAL_CODES:
            return LakeUnavailable(
                f"{_FATAL_CODES[code]} at {settings.endpoint_url} (bucket {settings.bucket!r})"
            )
        if status == 403:
            return LakeUnavailable(
                f"the lake at {settings.endpoint_url} refused these credentials or denied access to bucket "
                f"{settings.bucket!r} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        if status in (400, 404, 405, 501) and code not in ("RequestTimeout", "SlowDown"):
            return LakeUnavailable(
                f"the lake at {settings.endpoint_url} refused the request: {code or status}"
            )
        return LakeRetriable(f"S3 answered {status} {code}")
    return LakeRetriable(f"{type(exc).__name__}: {exc}")


def _status(exc: ClientError) -> tuple[int, str]:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0), exc.response.get(
        "Error", {}
    ).get("Code", "")


class S3Store:
    """One bucket of an S3-compatible server."""

    def __init__(self, settings: LakeSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._s3 = s3_client(settings)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket} at {self.settings.endpoint_url}"

    def _put(self, key: str, body: Body, **condition: str) -> None:
        extra = {"ContentEncoding": body.content_encoding} if body.content_encoding else {}
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body.data,
            ContentType=body.content_type,
            Metadata=dict(body.metadata),
            **extra,
            **condition,
        )

    def put(self, key: str, body: Body) -> None:
        try:
            self._put(key, body)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, self.settings) from None

    def put_if_absent(self, key: str, body: Body) -> bool:
        try:
            self._put(key, body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            status, code = _status(exc)
            if status == 412 or code == "PreconditionFailed":
                return False  # it exists
            if status == 409 or code == "ConditionalRequestConflict":
                # another conditional write of the same key is under way (AWS): neither has won yet,
                # and the other may still fail: ask again, do not take it for an answer
                raise LakeRetriable(f"a conditional write of {key} conflicted with another (409)") from None
            raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def get(self, key: str) -> bytes | None:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            status, code = _status(exc)
            if status == 404 and code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def head(self, key: str) -> dict[str, str] | None:
        try:
            return self._s3.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        except ClientError as exc:
            if _status(exc)[0] == 404:
                return None
            raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def list(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
        args = {"Bucket": self.bucket, "Prefix": prefix} | (
            {"StartAfter": start_after} if start_after else {}
        )
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", []):
                    yield item["Key"], item["Size"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, self.settings) from None

    # -- start-up checks -----------------------------------------------------------------------------
    def ensure_bucket(self, create: bool) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
            return
        except EndpointConnectionError:
            raise LakeRetriable(f"no S3 server answered at {self.settings.endpoint_url}") from None
        except ClientError as exc:
            if _status(exc)[0] != 404:
                raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None
        if not create:
            raise LakeUnavailable(f"bucket {self.bucket!r} does not exist at {self.settings.endpoint_url}")
        try:
            self._s3.create_bucket(Bucket=self.bucket)
            log.info("created bucket %s", self.bucket)
        except ClientError as exc:
            if _status(exc)[1] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def probe(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, self.settings) from None

    def close(self) -> None:
        self._s3.close()


def check_conditional_writes(store: ObjectStore, prefix: str) -> None:
    """Refuse a store that ignores `If-None-Match: *`: without it a late upload of a writer that lost
    its partition could replace the batch of the partition's new owner (see loglake/ledger.py)."""
    key = f"{prefix}_loglake/conditional-write-probe"
    probe = Body(
        b"loglake checks at start that this store refuses a second create of this key\n", "text/plain"
    )
    store.put_if_absent(key, probe)  # creates it, or finds it from an earlier start
    if store.put_if_absent(key, probe):
        raise LakeUnavailable(
            f"the lake {store.where} ignores conditional writes (If-None-Match: *), which loglake needs to "
            "land every event exactly once; use AWS S3, MinIO (2024 or newer) or versitygw"
        )
