"""The object store (S3 through boto3): bucket checks, uploads, and which failures are worth a retry."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from loglake.batch import ObjectFormat, PendingObject
from loglake.errors import LakeUnavailable
from loglake.settings import LakeSettings

log = logging.getLogger(__name__)

# S3 answers that no retry can mend: the user has to act.
_FATAL_CODES = {
    "InvalidAccessKeyId": "the lake refused the access key (AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the lake refused the secret key (AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "the lake denied access to the bucket with these credentials",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "the bucket name is not valid",
}


class LakeRetriable(Exception):
    """A failure that may pass: connection refused, timeout, 5xx, throttling."""


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
        if status in (400, 404, 405) and code not in ("RequestTimeout", "SlowDown"):
            return LakeUnavailable(
                f"the lake at {settings.endpoint_url} refused the request: {code or status}"
            )
        return LakeRetriable(f"S3 answered {status} {code}")
    return LakeRetriable(f"{type(exc).__name__}: {exc}")


class Lake:
    """Uploads objects to one bucket; several objects of one flush go up in parallel."""

    def __init__(self, settings: LakeSettings) -> None:
        self.settings = settings
        self._s3 = s3_client(settings)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lake-upload")

    @property
    def client(self) -> Any:
        return self._s3

    def ensure_bucket(self, create: bool) -> None:
        bucket = self.settings.bucket
        try:
            self._s3.head_bucket(Bucket=bucket)
            return
        except EndpointConnectionError:
            raise LakeRetriable(f"no S3 server answered at {self.settings.endpoint_url}") from None
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status != 404:
                raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None
        if not create:
            raise LakeUnavailable(f"bucket {bucket!r} does not exist at {self.settings.endpoint_url}")
        try:
            self._s3.create_bucket(Bucket=bucket)
            log.info("created bucket %s", bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def put(self, obj: PendingObject, form: ObjectFormat) -> int:
        """Upload one object (compressing it here, off the consuming thread); returns its size."""
        body = form.body(obj.lines)
        extra = {"ContentEncoding": "gzip"} if form.compression == "gzip" else {}
        try:
            self._s3.put_object(
                Bucket=self.settings.bucket,
                Key=obj.key,
                Body=body,
                Metadata=obj.metadata,
                ContentType=form.content_type,
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, self.settings) from None
        return len(body)

    def put_all(self, objects: list[PendingObject], form: ObjectFormat) -> int:
        """Upload every object in parallel; returns the bytes stored, or raises the first failure
        (LakeUnavailable before LakeRetriable)."""
        futures = [self._pool.submit(self.put, o, form) for o in objects]
        errors = [f.exception() for f in futures]
        for error in errors:
            if isinstance(error, LakeUnavailable):
                raise error
        for error in errors:
            if error is not None:
                raise error
        return sum(f.result() for f in futures)

    def get_text(self, key: str) -> str | None:
        try:
            return self._s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read().decode()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise classify(exc, self.settings) from None
        except BotoCoreError as exc:
            raise classify(exc, self.settings) from None

    def put_text(self, key: str, text: str) -> None:
        try:
            self._s3.put_object(Bucket=self.settings.bucket, Key=key, Body=text.encode())
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, self.settings) from None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
