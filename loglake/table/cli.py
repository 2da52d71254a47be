"""`python -m loglake table maintain --table NAMESPACE.TABLE [--older-than 1d] ...`

Compacts the small files of closed hours and days, expires old snapshots and deletes the table's files
that no snapshot references any more (loglake/table/maintain.py). The catalog is pyiceberg's catalog
`loglake` (`.pyiceberg.yaml` or `PYICEBERG_CATALOG__LOGLAKE__*`; what is not set there comes from the
lake's settings: loglake/table/catalog.py). Prints one summary line; exit 0, or 1 with one sentence.
Safe to run while writers commit; run one maintenance at a time per table.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from loglake.errors import ConfigError, run_cli, setup_logging
from loglake.flags import Parser, parser_for, values_of
from loglake.settings import MaintainSettings

SUBCOMMANDS = ("maintain",)


def build_parser(prog: str = "python -m loglake table maintain") -> Parser:
    return parser_for(MaintainSettings, prog, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SUBCOMMANDS:
        sys.stderr.write(f"usage: python -m loglake table {{{','.join(SUBCOMMANDS)}}} [--help]\n")
        return 2
    s = values_of(MaintainSettings, build_parser().parse_args(args[1:]))
    setup_logging(verbose=s.verbose)
    if not s.table:
        raise ConfigError("name the table: --table NAMESPACE.TABLE (or LOGLAKE_TABLE)")
    from loglake.table.catalog import catalog_settings, configured
    from loglake.table.maintain import MaintainOptions, maintain

    options = MaintainOptions(
        older_than=timedelta(seconds=s.older_than),
        orphans_older_than=timedelta(seconds=s.orphans_older_than),
        closed_after=timedelta(seconds=s.closed_after),
        compact=s.compact,
        target_file_bytes=s.target_file_size,
    )
    report = maintain(catalog_settings(s.lake, configured()), s.table, options)
    sys.stdout.write(report.line(s.table) + "\n")
    return 0


def run(argv: list[str] | None = None) -> int:
    return run_cli(main, argv)
