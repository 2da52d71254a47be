"""A mutation check of the writer's core: each mutant breaks one rule exactly-once rests on (commit
order, key derivation, claims, ownership, re-reads, dead letters, verify's verdicts), and the
deterministic tier of the suite must fail on every one of them.

    scripts/mutate              # all mutants; prints one line each and the score
    scripts/mutate -k claim     # those whose name contains "claim"

A mutant is a text replacement that must match exactly once in its file (so the list breaks loudly
when the code it mutates changes). Each runs the tests below in a fresh process, without any stack:
the scenario and property tests of tests/test_interleavings*.py, the unit tests of keys, batches,
claims and formats, and verify's verdicts. The files are restored after each mutant, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_interleavings.py",
    "tests/test_interleavings_property.py",
    "tests/test_layout.py",
    "tests/test_verify.py",
    "tests/test_formats.py",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    replacement: str


MUTANTS = [
    Mutant(
        "claims created unconditionally (no fencing in the lake)",
        "loglake/ledger.py",
        "        if self.store.put_if_absent(self.key(claim.partition, claim.start), body):\n            return claim\n",
        "        self.store.put(self.key(claim.partition, claim.start), body)\n        return claim\n",
    ),
    Mutant(
        "any claim found at a batch's start is taken for this batch's own",
        "loglake/ledger.py",
        "        return replace(other, writer=self.writer, group=self.group) == self",
        "        return True",
    ),
    Mutant(
        "commit before the upload (at launch)",
        "loglake/consume.py",
        "            state.flight = Flight(batch, claim, following=False, check_chain=not state.chain_checked)\n",
        "            state.flight = Flight(batch, claim, following=False, check_chain=not state.chain_checked)\n"
        "            self._commit(state, batch.next)\n",
    ),
    Mutant(
        "commit one past the batch (off by one)",
        "loglake/consume.py",
        "                batch.next = offset + 1",
        "                batch.next = offset + 2",
    ),
    Mutant(
        "object key from the folder's last offset instead of its first",
        "loglake/ledger.py",
        "            layout.object_key(prefix, batch.topic, folder, batch.partition, records.first, ext),",
        "            layout.object_key(prefix, batch.topic, folder, batch.partition, records.last, ext),",
    ),
    Mutant(
        "a revoked partition is not forgotten (its state stays owned)",
        "loglake/consume.py",
        "            state = self.parts.pop(p, None)\n",
        "            state = self.parts.get(p)\n",
    ),
    Mutant(
        "records older than the position are not skipped after a seek",
        "loglake/consume.py",
        "            if position is not None and offset < position:\n                continue",
        "            if False:\n                continue",
    ),
    Mutant(
        "a reposition does not seek",
        "loglake/consume.py",
        "        self.consumer.seek(state.partition, offset)\n",
        "",
    ),
    Mutant(
        "a claim found in the lake is skipped as landed without looking",
        "loglake/partition.py",
        "    if not held.dead_letters and with_.ledger.landed(held):",
        "    if True:",
    ),
    Mutant(
        "a group without commits claims without finding the lake's last claim",
        "loglake/partition.py",
        "    if flight.check_chain:\n",
        "    if False:\n",
    ),
    Mutant(
        "dead letters are not handed over before the commit",
        "loglake/partition.py",
        "    _dead_letters(batch.rejected, with_)\n    return Landed(",
        "    return Landed(",
    ),
    Mutant(
        "a following batch is sealed one record early",
        "loglake/consume.py",
        "            if follow is not None and offset + 1 >= follow.end:",
        "            if follow is not None and offset + 2 >= follow.end:",
    ),
    Mutant(
        "a partition waiting to read a claim again counts as idle",
        "loglake/partition.py",
        "and self.flight is None and self.follow is None",
        "and self.flight is None",
    ),
    Mutant(
        "a refused commit is not asked again",
        "loglake/consume.py",
        "            if state.landed > state.committed and now >= state.commit_again_at:",
        "            if False:",
    ),
    Mutant(
        "sanitising lets `..` through into keys",
        "loglake/layout.py",
        '    return cleaned.replace("..", "__")',
        "    return cleaned",
    ),
    Mutant(
        "verify --deep does not report duplicates",
        "loglake/verify.py",
        "        elif count > 1:\n            report.duplicated += 1",
        "        elif count > 2:\n            report.duplicated += 1",
    ),
    Mutant(
        "verify --deep takes a hole below the commit for pending",
        "loglake/verify.py",
        "            if offset < report.committed:\n                report.lost(offset)",
        "            if offset < report.low:\n                report.lost(offset)",
    ),
    Mutant(
        "verify by metadata takes a claim short of records for complete",
        "loglake/verify.py",
        "        elif short > 0:",
        "        elif short > 10**9:",
    ),
    Mutant(
        "verify by metadata does not see the offsets between claims",
        "loglake/verify.py",
        "        if claim.start > position:\n            _not_stored(report, position, claim.start, dead)",
        "        if False:\n            _not_stored(report, position, claim.start, dead)",
    ),
]


def run_tests() -> tuple[bool, float]:
    env = dict(os.environ, LOGLAKE_INTERLEAVINGS=os.environ.get("LOGLAKE_INTERLEAVINGS", "300"))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    return result.returncode == 0, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    ns = parser.parse_args()
    chosen = [m for m in MUTANTS if ns.k in m.name]
    passed, seconds = run_tests()
    if not passed:
        sys.stderr.write("error: the tests fail without any mutant; fix that first\n")
        return 2
    sys.stdout.write(f"unmutated: the tests pass ({seconds:.0f} s)\n")
    caught = 0
    for mutant in chosen:
        path = REPO / mutant.path
        text = path.read_text()
        if text.count(mutant.original) != 1:
            sys.stderr.write(f"error: mutant {mutant.name!r} does not match {mutant.path} exactly once\n")
            return 2
        try:
            path.write_text(text.replace(mutant.original, mutant.replacement))
            survived, seconds = run_tests()
        finally:
            path.write_text(text)
        caught += not survived
        verdict = "SURVIVED" if survived else "caught"
        sys.stdout.write(f"{verdict:>8}  {mutant.name}  ({mutant.path}, {seconds:.0f} s)\n")
    sys.stdout.write(f"mutation score: {caught}/{len(chosen)} caught\n")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
