"""What is stored under one key of the lake: the bytes and the headers they go with.

A leaf of its own because two layers speak of it: the formats make bodies (loglake/formats.py) and
the object store stores them (loglake/lake.py); neither has to import the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Body:
    """What to store under one key."""

    data: bytes
    content_type: str = "application/octet-stream"
    content_encoding: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
