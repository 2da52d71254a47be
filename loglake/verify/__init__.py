"""Reconcile the lake with the topic: every offset exactly once, in the lake or in the dead letters.

`python -m loglake verify [--topic log-data] [--prefix topics] [--group G] [--to-committed] [--deep]`

What it proves, per partition, for every offset from where the group's landing began (its first
claim; or, with `--from-earliest`, the first offset Kafka still holds) up to the end of the
partition (or, with `--to-committed`, up to the group's committed offset):
- the offset is stored exactly once: in a lake object, as a dead letter on the dead-letter topic (by
  its `loglake.source.*` headers; that topic is at-least-once, so its copies count once), or as a
  dead letter in the lake (`_loglake/dead-letters/`); never in two of them, never twice in the lake;
  or its claim says Kafka holds no record there (a transaction marker, an aborted or compacted record);
- what Kafka deleted (retention) before it was landed is named, offsets and all, and fails the check;
- below the committed offset nothing else is missing (a hole there is a *lost* event);
- the claims of the partition (loglake/ledger.py) do not overlap, every claim's objects are in the
  lake with the metadata the claim gives them (offset range, record count, claim), and every object
  in the lake is named by a claim.

How it knows what an object holds. By default from metadata: the claims (one small document per
batch: its offset range, its objects with their offsets and record counts, its dead letters) and a
HEAD request per object, so its cost grows with the number of objects, not of events; a claim's
offsets count as stored when all its objects are there and agree with it, and its record and dead
letter counts add up to its range. With `--deep` it reads every record of every object back (by the
`_kafka` coordinates each one carries, in every format) and also reports objects whose content and
metadata disagree (count, first or last offset, partition).

Offsets from the committed offset to the end of the partition that are not in the lake yet are
*pending*: not an error, but not landed either; the exit status says so. Offsets after everything the
lake holds are read in Kafka: those holding no record (transaction markers) are not pending.
Only the key generation that holds the topic Kafka has now (by its topic id) is checked.
Exit status: 0 everything up to the end is landed exactly once; 3 nothing is wrong but some offsets
are pending (run the writer, or verify with --to-committed); 1 something is lost (deleted by
retention before it was landed, or missing), duplicated, or in the lake without a claim, or a
claim's objects are missing below the committed offset.
"""

from loglake.verify.command import EXIT_PENDING, build_parser, main, render, run, verify
from loglake.verify.contents import LakeContents, read_lake
from loglake.verify.verdicts import PartitionReport, VerifyResult, reconcile

__all__ = [
    "EXIT_PENDING",
    "LakeContents",
    "PartitionReport",
    "VerifyResult",
    "build_parser",
    "main",
    "read_lake",
    "reconcile",
    "render",
    "run",
    "verify",
]
