"""How failures of the catalog and of the table's storage reach the writer and the commands.

Two kinds, as for the lake (loglake/errors.py):
- `TableRetriable` (a `LakeRetriable`): trouble that may pass, a catalog that does not answer, a
  SQLite file another process holds locked, an S3 server that times out or answers 5xx, commits
  that kept losing to other writers. The writer retries it with backoff; a command reports it.
- `TableUnavailable` (a `LoglakeError`): what a person must fix, in one sentence: a catalog URI that
  cannot be read, refused credentials (catalog or S3), a missing bucket or database, a table whose
  schema or partitioning is not the writer's.

`translated()` turns the exceptions of pyiceberg, SQLAlchemy and PyArrow's S3 file system into
these two; everything else is a bug and passes through as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from loglake.errors import LakeRetriable, LoglakeError


class TableRetriable(LakeRetriable):
    """A catalog or table-storage failure that may pass: retry with backoff."""


class TableUnavailable(LoglakeError):
    """The catalog or the table refused us in a way only a person can fix (one sentence)."""


# Words of S3 (PyArrow's AWS SDK) and database errors that no retry mends.
_S3_REFUSED = re.compile(
    r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|HTTP status 403|"
    r"NoSuchBucket|NO_SUCH_BUCKET|InvalidBucketName"
)
_DATABASE_REFUSED = re.compile(
    r"password authentication failed|authentication failed|role \".*\" does not exist|"
    r"database \".*\" does not exist|no password supplied|unable to open database file|"
    r"permission denied|not a database|readonly database|attempt to write a readonly"
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def classify(exc: BaseException, where: str) -> Exception:
    """`TableUnavailable` or `TableRetriable` for a failure of the catalog or its storage; `where`
    names the catalog and table for the sentence."""
    from pyiceberg.exceptions import (
        BadRequestError,
        ForbiddenError,
        NoSuchNamespaceError,
        NoSuchTableError,
        OAuthError,
        UnauthorizedError,
    )
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    text = _first_line(exc)
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return TableUnavailable(f"the catalog URI of {where} is not one SQLAlchemy can open: {text}")
    if isinstance(exc, DBAPIError):
        if _DATABASE_REFUSED.search(str(exc)):
            return TableUnavailable(f"the catalog database of {where} refused us: {text}")
        return TableRetriable(f"the catalog database of {where} did not answer: {text}")
    if isinstance(exc, SQLAlchemyError):
        return TableRetriable(f"the catalog of {where} failed: {text}")
    if isinstance(exc, (UnauthorizedError, ForbiddenError, OAuthError, BadRequestError)):
        return TableUnavailable(f"the catalog of {where} refused the request: {text}")
    if isinstance(exc, (NoSuchTableError, NoSuchNamespaceError)):
        return TableUnavailable(f"{where}: {text}")
    if isinstance(exc, OSError):
        if _S3_REFUSED.search(str(exc)):
            return TableUnavailable(
                f"the table storage of {where} refused these credentials or has no such bucket: {text}"
            )
        return TableRetriable(f"the table storage of {where} did not answer: {text}")
    return TableRetriable(f"{where}: {type(exc).__name__}: {text}")


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Run a block of catalog and table calls; their failures leave it as TableRetriable or
    TableUnavailable. CommitFailedException passes through: the commit loops handle it."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        CommitStateUnknownException,
        NoSuchNamespaceError,
        NoSuchTableError,
        RESTError,
    )
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (CommitFailedException, LoglakeError, LakeRetriable):
        raise
    except CommitStateUnknownException as exc:  # a REST catalog that lost the answer: retried as any
        raise TableRetriable(f"{where}: the catalog did not say whether a commit landed ({exc})") from exc
    except (SQLAlchemyError, RESTError, NoSuchTableError, NoSuchNamespaceError, OSError) as exc:
        raise classify(exc, where) from exc
