"""A mutation check of the writer's core: each mutant breaks one rule exactly-once rests on (commit
order, key derivation, claims, ownership, re-reads, dead letters, verify's verdicts), and the
deterministic tier of the suite must fail on every one of them.

    scripts/mutate              # all mutants; prints one line each and the score
    scripts/mutate -k claim     # those whose name contains "claim"

A mutant is a text replacement that must match exactly once in its file (so the list breaks loudly
when the code it mutates changes). Each runs the tests below in a fresh process, without any stack:
the scenario and property tests of tests/test_interleavings*.py, the unit tests of keys, batches,
claims and formats, and verify's verdicts. Mutants are applied to private copies of the checkout (one
per worker, `-j`, one per CPU by default), never to the checkout itself, so a Ctrl-C or a crash cannot
leave a mutant behind, and the workers cannot see each other's mutants.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    # the fast scenarios first: most mutants fail one of them within seconds (pytest -x stops there)
    "tests/test_interleavings.py",
    "tests/test_interleavings_operators.py",
    "tests/test_layout.py",
    "tests/test_verify.py",
    "tests/test_lake.py",
    "tests/test_formats.py",
    "tests/test_edge_records.py",  # its real-stack test is deselected (-m "not integration")
    "tests/test_interleavings_property.py",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    replacement: str


MUTANTS = [
    # -- claims and the ledger (loglake/ledger.py) -------------------------------------------------
    Mutant(
        "claims created unconditionally (no fencing in the lake)",
        "loglake/ledger.py",
        "        if self.store.put_if_absent(key, body):\n",
        "        if self.store.put(key, body) or True:\n",
    ),
    Mutant(
        "any claim found at a batch's start is taken for this batch's own",
        "loglake/ledger.py",
        "        return replace(other, writer=self.writer, group=self.group) == self",
        "        return True",
    ),
    Mutant(
        "object key from the folder's last offset instead of its first",
        "loglake/ledger.py",
        "batch.partition, records.first, ext, generation),",
        "batch.partition, records.last, ext, generation),",
    ),
    Mutant(
        "the head note is not written (start-up lists every claim)",
        "loglake/ledger.py",
        "            self._point_head(claim)\n",
        "",
    ),
    Mutant(
        "a claim created and not found is taken for the writer's own (a 409 taken for an answer)",
        "loglake/ledger.py",
        '            raise LakeRetriable(f"claim {key} was refused as existing but cannot be read yet")',
        "            return claim",
    ),
    Mutant(
        "a 409 conflict of a conditional create is taken for 'it exists'",
        "loglake/lake.py",
        '            if status == 412 or code == "PreconditionFailed":',
        '            if status in (409, 412) or code == "PreconditionFailed":',
    ),
    # -- landing a batch (loglake/partition.py) ------------------------------------------------------
    Mutant(
        "the claim is written before the batch is encoded",
        "loglake/partition.py",
        "        bodies = encode_batch(batch, with_.recipe)  # before the claim: it must describe storable objects\n"
        "        claim = with_.claim_of(batch, with_.recipe, {f: len(b.data) for f, b in bodies.items()})\n"
        "        held = ledger.create(claim)\n",
        "        claim = with_.claim_of(batch, with_.recipe, {})\n"
        "        held = ledger.create(claim)\n"
        "        bodies = encode_batch(batch, with_.recipe)\n",
    ),
    Mutant(
        "a record an encoder refuses stops the partition instead of becoming a dead letter",
        "loglake/partition.py",
        "        except Exception as exc:  # noqa: BLE001 - whatever one record makes an encoder raise",
        "        except ZeroDivisionError as exc:",
    ),
    Mutant(
        "a claim found in the lake is skipped as landed without looking",
        "loglake/partition.py",
        "    if not held.dead_letters and with_.ledger.landed(held):",
        "    if True:",
    ),
    Mutant(
        "dead letters are not handed over before the commit",
        "loglake/partition.py",
        "    _dead_letters(batch.rejected, with_)\n    return Landed(",
        "    return Landed(",
    ),
    Mutant(
        "a claim whose records Kafka deleted stops the partition instead of being noted lost",
        "loglake/partition.py",
        "            if batch.lost:  # Kafka deleted records of the claim before anyone landed them",
        "            if False:",
    ),
    Mutant(
        "a partition waiting to read a claim again counts as idle",
        "loglake/partition.py",
        "and self.flight is None and self.follow is None",
        "and self.flight is None",
    ),
    # -- where a partition resumes (loglake/resume.py) ---------------------------------------------
    Mutant(
        "a partition resumes where the group committed, not after the lake's last claim",
        "loglake/resume.py",
        "    return after(ledger, last)",
        "    return Resume(committed if committed >= 0 else None, None, 'the group')",
    ),
    Mutant(
        "an unlanded last claim is taken for landed",
        "loglake/resume.py",
        "    if not last.dead_letters and ledger.landed(last):",
        "    if True:",
    ),
    Mutant(
        "--start-from latest applies to a partition added to a topic the lake holds",
        "loglake/resume.py",
        '    elif lake_has_claims or start_from in ("committed", "earliest"):',
        '    elif start_from in ("committed", "earliest"):',
    ),
    # -- routing (loglake/route.py, loglake/batch.py) ------------------------------------------------
    Mutant(
        "commit one past the batch (off by one)",
        "loglake/route.py",
        "                batch.next = offset + 1",
        "                batch.next = offset + 2",
    ),
    Mutant(
        "records older than the position are not skipped after a seek",
        "loglake/route.py",
        "                if offset < position:\n                    continue",
        "                if False:\n                    continue",
    ),
    Mutant(
        "a following batch is sealed one record early",
        "loglake/route.py",
        "            if follow is not None and offset + 1 >= follow.end:",
        "            if follow is not None and offset + 2 >= follow.end:",
    ),
    Mutant(
        "offsets without a record are not counted in the claim",
        "loglake/batch.py",
        "        self.absent += upto - gone",
        "        self.absent += 0",
    ),
    Mutant(
        "offsets retention deleted are counted as offsets without a record",
        "loglake/batch.py",
        "        gone = min(max(deleted_below, begin), upto)",
        "        gone = begin",
    ),
    # -- the loop (loglake/consume.py) -------------------------------------------------------------
    Mutant(
        "commit before the upload (at launch)",
        "loglake/consume.py",
        "            state.flight = Flight(batch, None)\n",
        "            state.flight = Flight(batch, None)\n            self._commit(state, batch.next)\n",
    ),
    Mutant(
        "a revoked partition is not forgotten (its state stays owned)",
        "loglake/consume.py",
        "            state = self.parts.pop(p, None)\n",
        "            state = self.parts.get(p)\n",
    ),
    Mutant(
        "a reposition does not seek",
        "loglake/consume.py",
        "        self.consumer.seek(state.partition, offset)\n",
        "",
    ),
    Mutant(
        "a refused commit is not asked again",
        "loglake/consume.py",
        "            if state.landed > state.committed and now >= state.commit_again_at:",
        "            if False:",
    ),
    Mutant(
        "a partition whose lake read failed is never asked again",
        "loglake/consume.py",
        "            elif not state.resolved and state.resolving is None and now >= state.resolve_at:",
        "            elif False:",
    ),
    Mutant(
        "a topic created again while the writer runs goes unnoticed",
        "loglake/consume.py",
        "        if now and self.topic_id and now != self.topic_id and self.failure is None:",
        "        if False:",
    ),
    Mutant(
        "a topic created again is landed under the old topic's keys",
        "loglake/owner.py",
        "    if not topic_id or not newest.topic_id or newest.topic_id == topic_id:",
        "    if True:",
    ),
    Mutant(
        "a lake outage is not said",
        "loglake/health.py",
        "        if not self.down_since:\n",
        "        if False:\n",
    ),
    Mutant(
        "sanitising lets `..` through into keys",
        "loglake/layout.py",
        '    return cleaned.replace("..", "__")',
        "    return cleaned",
    ),
    # -- one boundary per record: validation (loglake/events.py) -------------------------------------
    Mutant(
        "an unexpected exception while validating escapes (no boundary per record)",
        "loglake/events.py",
        "    except Exception as exc:\n        raise unexpected(exc) from exc",
        "    except ZeroDivisionError as exc:\n        raise unexpected(exc) from exc",
    ),
    Mutant(
        "a value nested past the limit is taken",
        "loglake/events.py",
        "        and deeper_than(value, MAX_DEPTH)\n",
        "        and False\n",
    ),
    Mutant(
        "an event time outside the years 1..9999 in UTC is taken",
        "loglake/eventtime.py",
        "    if not MIN_EVENT_MS <= ms <= MAX_EVENT_MS:",
        "    if False:",
    ),
    Mutant(
        "the quick path takes an event time that is not canonical",
        "loglake/events.py",
        "        or millis is None\n",
        "",
    ),
    Mutant(
        "a value that is not UTF-8 is taken",
        "loglake/events.py",
        "    if not value.isascii():\n        _check_utf8(value)",
        "    if False:\n        _check_utf8(value)",
    ),
    Mutant(
        "an event with the lake's own `_kafka` field is taken",
        "loglake/events.py",
        "    if head.reserved is not _UNSET:",
        "    if False:",
    ),
    # -- encoders: what JSON Lines keeps, Parquet keeps (loglake/columnar.py) -----------------------
    Mutant(
        "Parquet types an event that gives a key twice instead of keeping it whole",
        "loglake/columnar.py",
        "        unfit.update(_given_twice([values[i] for i in fitting], fitting))\n",
        "",
    ),
    Mutant(
        "Parquet types -0.0 as a decimal (its sign lost)",
        "loglake/columnar.py",
        "    exact = pc.and_(exact, pc.invert(negative_zero))\n",
        "",
    ),
    Mutant(
        "Parquet reads a value longer than Arrow's block in one block",
        "loglake/columnar.py",
        "    if longest >= BLOCK:",
        "    if False:",
    ),
    Mutant(
        "Parquet types a number its decimal column cannot hold",
        "loglake/columnar.py",
        "    in_range = pc.less(pc.abs(numbers), limit)",
        "    in_range = pc.is_valid(numbers)",
    ),
    # -- verify's verdicts (loglake/verify/verdicts.py) ---------------------------------------------
    Mutant(
        "verify --deep does not report duplicates",
        "loglake/verify/verdicts.py",
        "            if copies > 1:\n                r.duplicated += copies - 1",
        "            if copies > 2:\n                r.duplicated += copies - 1",
    ),
    Mutant(
        "verify by metadata takes a claim short of records for complete",
        "loglake/verify/verdicts.py",
        "        elif short > 0:",
        "        elif short > 10**9:",
    ),
    Mutant(
        "verify does not see the offsets between claims",
        "loglake/verify/verdicts.py",
        "            if claim.start > position:\n                self.not_stored(position, claim.start)",
        "            if False:\n                self.not_stored(position, claim.start)",
    ),
    Mutant(
        "verify takes offsets without a record for missing dead letters",
        "loglake/verify/verdicts.py",
        "        short = unaccounted - claim.absent - claim.lost_offsets",
        "        short = unaccounted - claim.lost_offsets",
    ),
    Mutant(
        "verify does not name what retention deleted inside a claim",
        "loglake/verify/verdicts.py",
        "            r.deleted_before_landed(\n                b - a,",
        "            r.deleted_before_landed(\n                0,",
    ),
]


# What a copy of the checkout leaves out: environments, stack data, caches (the tests import loglake,
# tests and benchmarks from the copy's folder, and read pyproject.toml and docs/ there).
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".stack", ".hypothesis", ".pytest_cache", ".ruff_cache", "__pycache__", "*.db"
)


def run_tests(repo: Path = REPO) -> tuple[bool, float]:
    env = dict(os.environ, LOGLAKE_INTERLEAVINGS=os.environ.get("LOGLAKE_INTERLEAVINGS", "300"))
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not integration",
            *TESTS,
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    return result.returncode == 0, time.monotonic() - started


def try_mutant(copies: queue.Queue[Path], mutant: Mutant) -> tuple[bool, float]:
    """Whether the tests still pass with `mutant` applied to a free copy of the checkout, and how long
    they took; the copy is restored before it is handed back."""
    copy = copies.get()
    try:
        path = copy / mutant.path
        text = path.read_text()
        try:
            path.write_text(text.replace(mutant.original, mutant.replacement))
            return run_tests(copy)
        finally:
            path.write_text(text)
    finally:
        copies.put(copy)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument(
        "-j",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="mutants tried at once (default: one per CPU)",
    )
    ns = parser.parse_args()
    chosen = [m for m in MUTANTS if ns.k in m.name]
    for mutant in chosen:
        if (REPO / mutant.path).read_text().count(mutant.original) != 1:
            sys.stderr.write(f"error: mutant {mutant.name!r} does not match {mutant.path} exactly once\n")
            return 2
    passed, seconds = run_tests()
    if not passed:
        sys.stderr.write("error: the tests fail without any mutant; fix that first\n")
        return 2
    sys.stdout.write(f"unmutated: the tests pass ({seconds:.0f} s)\n")
    started = time.monotonic()
    caught = 0
    with tempfile.TemporaryDirectory(prefix="loglake-mutants-") as scratch:
        copies: queue.Queue[Path] = queue.Queue()
        for n in range(max(1, min(ns.j, len(chosen)))):
            copies.put(Path(shutil.copytree(REPO, Path(scratch) / str(n), ignore=NOT_COPIED)))
        with ThreadPoolExecutor(max_workers=copies.qsize()) as pool:
            # map yields in the list's order: the lines read the same whatever finished first
            for mutant, (survived, seconds) in zip(
                chosen, pool.map(lambda m: try_mutant(copies, m), chosen), strict=True
            ):
                caught += not survived
                verdict = "SURVIVED" if survived else "caught"
                sys.stdout.write(f"{verdict:>8}  {mutant.name}  ({mutant.path}, {seconds:.0f} s)\n")
                sys.stdout.flush()
    sys.stdout.write(
        f"mutation score: {caught}/{len(chosen)} caught "
        f"({time.monotonic() - started:.0f} s, {copies.qsize()} at once)\n"
    )
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
