"""Settings declared once: the parsers, the dataclass values and the docs' flag tables all come from
loglake/settings.py, and these tests fail when any of them disagree."""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from loglake import cli, flags, formats, produce, settings, verify
from loglake.errors import ConfigError
from loglake.flags import settings_of
from loglake.kafka.clients import PRODUCERS
from loglake.settings import (
    COMMANDS,
    KafkaSettings,
    LakeSettings,
    ProducerSettings,
    VerifySettings,
    WriterSettings,
    with_flag_tables,
)
from loglake.table import cli as table_cli

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PARSERS = {
    "producer": produce.build_parser,
    "writer": cli.build_parser,
    "verify": verify.build_parser,
    "maintain": table_cli.build_parser,
}


def documented_tables() -> dict[str, str]:
    """Command name -> the flag table a docs page shows for it (between its markers)."""
    tables = {}
    for page in PAGES:
        for name, table in re.findall(r"<!-- flags: (\w+) -->\n(.*?)<!-- /flags -->", page.read_text(), re.S):
            assert name not in tables, f"two flag tables for {name}"
            tables[name] = table
    return tables


def test_every_command_has_a_flag_table_in_the_docs_and_it_is_up_to_date():
    assert set(documented_tables()) == set(COMMANDS) == set(PARSERS)
    for page in PAGES:
        text = page.read_text()
        assert with_flag_tables(text) == text, f"{page.name}: flag tables are stale; run scripts/flag-tables"


def table_rows(table: str) -> dict[str, tuple[str, str]]:
    """flag (or env name, for env-only rows) -> (env cell, default cell) of a markdown flag table."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        flags = re.findall(r"`(--?[\w-]+)`", cells[0])
        env = re.findall(r"`(\w+)`", cells[1])[0]
        rows[flags[-1] if flags else env] = (env, cells[2])
    return rows


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_the_docs_table_and_the_parser_name_the_same_flags_and_variables(command):
    """Compared with the real parser's options and their help, not with the declarations: a flag
    added to a parser by hand, or a table edited by hand, fails here."""
    parser = PARSERS[command]()
    in_parser = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        env = re.search(r"\[env (\w+)\]", action.help or "")
        assert env, f"{command}: {action.option_strings} says no environment variable"
        in_parser[action.option_strings[-1]] = env.group(1)
    rows = table_rows(documented_tables()[command])
    flags = {k: v[0] for k, v in rows.items() if k.startswith("-")}
    assert flags == in_parser
    env_only = {k for k in rows if not k.startswith("-")}
    assert env_only == {s.opt.env_name for s in settings_of(COMMANDS[command]) if not s.opt.flag}


def test_a_stale_table_is_noticed():
    page = (
        "x\n<!-- flags: verify -->\n| flag | env | default | meaning |\n|---|---|---|---|\n<!-- /flags -->\n"
    )
    assert with_flag_tables(page) != page
    rows = table_rows(re.search(r"-->\n(.*?)<!--", with_flag_tables(page), re.S).group(1))
    assert rows["--from-earliest"][0] == "LOGLAKE_FROM_EARLIEST"


def test_environment_names_follow_flag_names():
    """LOGLAKE_ and the flag's name; only connection settings keep their ecosystems' names."""
    for cls in COMMANDS.values():
        for s in settings_of(cls):
            name = s.opt.env_name
            if s.path[0] in ("kafka", "lake") and not name.startswith("LOGLAKE_"):
                assert re.fullmatch(r"(KAFKA|AWS)_[A-Z_]+|LAKE_BUCKET", name), name
                continue
            assert name == "LOGLAKE_" + s.opt.flag.lstrip("-").upper().replace("-", "_"), (s.path, name)


def test_every_field_of_a_command_is_a_declared_setting():
    """Nothing escapes the table: each dataclass field is a setting or a nested group of them."""
    for cls in (*COMMANDS.values(), KafkaSettings, LakeSettings):
        for f in fields(cls):
            assert "loglake.setting" in f.metadata or is_dataclass(f.default), f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_no_flags_and_no_environment_give_the_dataclass_defaults(command, monkeypatch):
    for s in settings_of(COMMANDS[command]):
        monkeypatch.delenv(s.opt.env_name, raising=False)
        for old in s.opt.deprecated_env:
            monkeypatch.delenv(old, raising=False)
    ns = PARSERS[command]().parse_args([])
    assert flags.values_of(COMMANDS[command], ns) == COMMANDS[command]()


def writer(argv: list[str], env: dict[str, str]) -> WriterSettings:
    return cli.settings_from_args(flags.Parser(WriterSettings, environ=env, prog="w").parse_args(argv))


def test_flag_beats_environment_beats_default():
    env = {"LOGLAKE_BATCH_AGE": "30", "LOGLAKE_PREFIX": "from-env", "KAFKA_BOOTSTRAP_SERVERS": "h:1"}
    s = writer(["--prefix", "from-flag"], env)
    assert (s.prefix, s.batch_age, s.kafka.bootstrap_servers, s.batch_records) == (
        "from-flag",
        30.0,
        "h:1",
        200_000,
    )
    assert writer(["--batch-bytes", "8MiB"], {}).batch_bytes == 8 * 1024 * 1024


def test_switches_from_flags_and_environment():
    assert writer([], {}).create_bucket is True
    assert writer(["--no-create-bucket"], {}).create_bucket is False
    assert writer([], {"LOGLAKE_NO_CREATE_BUCKET": "yes"}).create_bucket is False
    assert writer([], {"LOGLAKE_NO_CREATE_BUCKET": "0"}).create_bucket is True
    assert writer(["-q"], {}).quiet is True and writer([], {"LOGLAKE_VERBOSE": "on"}).verbose is True


def test_secrets_come_from_the_environment_only():
    s = writer([], {"KAFKA_SASL_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "sk", "KAFKA_SASL_USERNAME": "u"})
    assert s.kafka.sasl_password.get() == "pw" and s.lake.secret_access_key.get() == "sk"
    assert s.kafka.sasl_username == "u" and "pw" not in repr(s) and "sk" not in repr(s)
    flags = {o for a in cli.build_parser()._actions for o in a.option_strings}
    assert not any("password" in f or "secret" in f for f in flags)


def test_format_and_compression_and_their_deprecated_names(caplog):
    assert formats.recipe_of(writer(["--format", "parquet"], {})).compression == "zstd"
    assert formats.recipe_of(writer([], {})).compression == "gzip"
    with caplog.at_level(logging.WARNING, logger="loglake.settings"):
        old = writer([], {"LOGLAKE_LAKE_FORMAT": "parquet", "LOGLAKE_LAKE_COMPRESSION": "snappy"})
    assert (old.fmt, old.compression) == ("parquet", "snappy")
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "environment variable LOGLAKE_LAKE_FORMAT is deprecated: name it LOGLAKE_FORMAT (it is still read for now)",
        "environment variable LOGLAKE_LAKE_COMPRESSION is deprecated: name it LOGLAKE_COMPRESSION (it is still read for now)",
    ]
    both = writer([], {"LOGLAKE_FORMAT": "json", "LOGLAKE_LAKE_FORMAT": "parquet"})
    assert both.fmt == "json"  # the new name wins
    assert writer([], {"LOGLAKE_LAKE_COMPRESSION_LEVEL": "6"}).compression_level == 6


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--format", "csv"], {}, "error: argument --format: invalid choice: 'csv'"),
        (["--batch-records", "0"], {}, "error: argument --batch-records: '0' must be greater than zero"),
        (["--compression-level", "12"], {}, "error: argument --compression-level: '12' must be 1 to 9"),
        (
            [],
            {"LOGLAKE_BATCH_AGE": "soon"},
            "error: environment variable LOGLAKE_BATCH_AGE: 'soon' is not a number",
        ),
        (
            [],
            {"LOGLAKE_LAKE_FORMAT": "csv"},
            "error: environment variable LOGLAKE_LAKE_FORMAT: 'csv' is not one of",
        ),
        (
            [],
            {"LOGLAKE_QUIET": "maybe"},
            "error: environment variable LOGLAKE_QUIET: 'maybe' is not one of 1",
        ),
        (
            [],
            {"LOGLAKE_START_FROM": "noon"},
            "error: environment variable LOGLAKE_START_FROM: 'noon' is not committed",
        ),
    ],
)
def test_a_bad_value_is_one_sentence_and_exit_2(argv, env, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        flags.Parser(WriterSettings, environ=env, prog="receive_faking_data.py").parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1, err


def test_a_recipe_that_cannot_work_is_one_sentence_and_exit_2():
    with pytest.raises(ConfigError) as info:
        writer(["--format", "parquet", "--compression", "gzip"], {})
    assert info.value.exit_code == 2
    assert str(info.value) == "format parquet takes compression zstd or snappy or none, not 'gzip'"


def test_verify_and_producer_read_their_own_flags_and_variables():
    v = flags.values_of(
        VerifySettings,
        flags.Parser(VerifySettings, environ={"LOGLAKE_TO_COMMITTED": "1"}, prog="v").parse_args(
            ["--group", "g"]
        ),
    )
    assert (v.group, v.to_committed, v.from_earliest) == ("g", True, False)
    p = flags.values_of(
        ProducerSettings,
        flags.Parser(ProducerSettings, environ={"LOGLAKE_COUNT": "7"}, prog="p").parse_args(["--seed", "3"]),
    )
    assert (p.count, p.seed, p.rate) == (7, 3, 50.0)


def test_the_declared_choices_are_the_ones_formats_and_kafka_implement():
    """settings declares the names a flag takes (so --help needs no other module); the modules behind
    the names know each of them, and no other."""
    assert tuple(formats.FORMATS) == settings.FORMATS
    assert settings.LAYOUTS == formats.LAYOUTS
    assert tuple(formats.compressions()) == settings.LAKE_COMPRESSIONS
    assert tuple(PRODUCERS) == settings.KAFKA_CLIENTS
    from confluent_kafka import Producer

    for compression in settings.KAFKA_COMPRESSIONS:  # librdkafka refuses a codec it does not know
        Producer({"bootstrap.servers": "127.0.0.1:9", "compression.type": compression}).flush(0)
