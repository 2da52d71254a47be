"""pyiceberg's `Transaction`, minus a cost that grows with the table's history.

pyiceberg 0.12 answers every read of `Transaction.table_metadata` by applying the staged updates to
the table's metadata and returning a deep copy of the result; building one append snapshot reads it
about fourteen times, and the metadata holds an entry for every snapshot the table keeps. Profiled at
200 snapshots, those copies were nine tenths of a commit's CPU. The metadata is immutable (frozen
pydantic models) and the result depends only on the metadata and the staged updates (a tuple, replaced
whenever an update is staged), so it is computed once per pair of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyiceberg.table import Transaction

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata


class CachedTransaction(Transaction):
    """A Transaction whose `table_metadata` is computed once per (base metadata, staged updates)."""

    def __init__(self, table: Table) -> None:
        super().__init__(table, autocommit=False)
        self._cached: tuple[Any, Any, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        cached = self._cached
        if cached is None or cached[0] is not base or cached[1] is not updates:
            cached = self._cached = (base, updates, super().table_metadata)  # holds both: ids stay theirs
        return cached[2]
