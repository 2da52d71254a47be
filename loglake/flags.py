"""How a setting is declared, read and shown: the machinery under loglake/settings.py.

A setting is a dataclass field declared with `group(title)(default, flag, help, ...)`, which stores
an `Opt` in the field's metadata. From the dataclass come its parser (`Parser`, `parser_for`: flag >
environment variable > default, a bad value is one sentence and exit 2), its values (`values_of`) and
its markdown table (`flag_table`). The value parsers below turn text into values, each refusing bad
text with one sentence. `Secret` holds passwords and keys and never prints them.

This module imports nothing of loglake: it knows no command, no format and no Kafka client.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, NoReturn

from loglake.eventtime import parse_event_time


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------------------------------
# Value parsers: each raises argparse.ArgumentTypeError with one clear sentence.


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, zero or more")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def byte_size(text: str) -> int:
    """'8MiB', '512k', '1000000' -> bytes."""
    units = {
        "": 1,
        "b": 1,
        "k": 1024,
        "kb": 1000,
        "kib": 1024,
        "m": 1024**2,
        "mb": 1000**2,
        "mib": 1024**2,
        "g": 1024**3,
        "gb": 1000**3,
        "gib": 1024**3,
    }
    stripped = text.strip().lower()
    number = stripped.rstrip("kmgib")
    unit = stripped[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 8MiB or 500000") from None
    if unit not in units or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 8MiB or 500000")
    return int(value * units[unit])


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """'90s', '15m', '12h', '7d' (or plain seconds) -> seconds."""
    stripped = text.strip().lower()
    unit = stripped[-1:] if stripped[-1:] in _SECONDS else "s"
    try:
        value = float(stripped.removesuffix(unit) if stripped[-1:] in _SECONDS else stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 12h or 7d") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite duration, zero or more")
    return value * _SECONDS[unit]


def orphan_age(text: str) -> float:
    """A duration of at least an hour: younger unreferenced files may belong to a commit in flight."""
    value = duration(text)
    if value < 3600:
        raise argparse.ArgumentTypeError(
            f"{text!r} is under 1h: an unreferenced file that young may belong to a commit still in flight"
        )
    return value


def compression_level(text: str) -> int:
    value = positive_int(text)
    if value > 9:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 to 9")
    return value


def rfc3339_ms(text: str) -> int:
    """'2026-01-01T00:00:00Z' (or with an offset, `+01:00`) -> epoch milliseconds, read as the writer
    reads an event's time (loglake/eventtime.py)."""
    try:
        return parse_event_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"
        ) from None


def start_position(text: str) -> str | int:
    """'committed', 'earliest', 'latest' or an RFC 3339 time (-> epoch ms)."""
    if text in ("committed", "earliest", "latest"):
        return text
    try:
        return rfc3339_ms(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not committed, earliest, latest or an RFC 3339 time such as 2026-11-24T00:00:00Z"
        ) from None


_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


def _switch_value(text: str) -> bool:
    if text.strip().lower() in _ON:
        return True
    if text.strip().lower() in _OFF:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(_ON + _OFF[1:])}")


# ---------------------------------------------------------------------------------------
# Declaring settings

# named after the settings a user gives: its warnings are about them, not about this machinery
log = logging.getLogger("loglake.settings")
_OPT = "loglake.setting"


@dataclass(frozen=True)
class Opt:
    """How one setting is given: its flag, environment variable, help and checks."""

    flag: str  # "--batch-age"; "" for a setting read from the environment only (secrets)
    help: str
    group: str
    env: str = ""  # default: LOGLAKE_ and the flag's name
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()  # the values it takes, when they are a list of names
    short: str = ""  # "-q"
    switch: bool = False  # an on/off flag: given (or its variable 1/true/yes/on), the default turns over
    shown: str = ""  # the default as --help and the docs say it, where the value would not
    deprecated_env: tuple[str, ...] = ()  # older names, still read, with a warning

    @property
    def env_name(self) -> str:
        return self.env or "LOGLAKE_" + self.flag.lstrip("-").upper().replace("-", "_")

    def check(self, text: str) -> Any:
        """The value of `text`, or argparse.ArgumentTypeError with one sentence."""
        value = _switch_value(text) if self.switch else self.parse(text)
        if self.choices and value not in self.choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(self.choices)}")
        return value


def group(title: str) -> Callable[..., Any]:
    """`declare = group("Batching")`, then fields `name: type = declare(default, "--flag", "help", ...)`."""

    def declare(default: Any, flag: str, help: str, **how: Any) -> Any:
        return field(default=default, metadata={_OPT: Opt(flag, help, title, **how)})

    return declare


@dataclass(frozen=True)
class Setting:
    """One declared setting of a command, found by `settings_of`."""

    path: tuple[str, ...]  # field names from the command's dataclass down: ("kafka", "bootstrap_servers")
    opt: Opt
    default: Any

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    def shown_default(self) -> str:
        if self.opt.shown:
            return self.opt.shown
        value = self.default
        if self.opt.switch:
            return "off"
        if isinstance(value, Secret) or value in (None, ""):
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


def settings_of(cls: type, path: tuple[str, ...] = ()) -> Iterator[Setting]:
    """Every setting of a command's dataclass, nested connection settings included, in order."""
    for f in fields(cls):
        if _OPT in f.metadata:
            yield Setting((*path, f.name), f.metadata[_OPT], f.default)
        elif f.default is not MISSING and is_dataclass(f.default):
            yield from settings_of(type(f.default), (*path, f.name))


class Parser(argparse.ArgumentParser):
    """A command's parser: a bad flag or environment value is one sentence on stderr and exit 2."""

    def __init__(self, cls: type, environ: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(
            epilog="Each flag also reads the environment variable shown in brackets; a flag wins over it.",
            **kwargs,
        )
        self.settings = list(settings_of(cls))
        self.environ = os.environ if environ is None else environ
        groups: dict[str, argparse._ArgumentGroup] = {}
        for s in self.settings:
            o = s.opt
            if not o.flag:
                continue
            g = groups.get(o.group) or groups.setdefault(o.group, self.add_argument_group(o.group))
            shown = s.shown_default()
            help = f"{o.help}{f' (default: {shown})'.replace('`', '') if shown else ''} [env {o.env_name}]"
            names = [o.short, o.flag] if o.short else [o.flag]
            if o.switch:
                g.add_argument(*names, dest=s.dest, action="store_true", default=None, help=help)
            else:
                choices = list(o.choices) if o.choices else None
                metavar = None if choices else o.flag.lstrip("-").upper().replace("-", "_")
                g.add_argument(
                    *names,
                    dest=s.dest,
                    type=o.parse,
                    choices=choices,
                    default=None,
                    metavar=metavar,
                    help=help,
                )

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """The flags, and for each one not given its environment variable, else its default."""
        ns = super().parse_args(args, namespace)
        for s in self.settings:
            given = getattr(ns, s.dest, None)
            setattr(ns, s.dest, _value(s, self._from_environment(s) if given is None else given))
        return ns

    def _from_environment(self, s: Setting) -> Any:
        """The value of the setting's environment variable (or a deprecated name of it); None if unset."""
        name, text = s.opt.env_name, self.environ.get(s.opt.env_name, "")
        for old in s.opt.deprecated_env:
            if self.environ.get(old, ""):
                log.warning(
                    "environment variable %s is deprecated: name it %s (it is still read for now)", old, name
                )
                if not text:
                    name, text = old, self.environ[old]
        if text == "":
            return None
        try:
            return s.opt.check(text)
        except argparse.ArgumentTypeError as exc:
            self.exit(2, f"error: environment variable {name}: {exc}\n")


def _value(s: Setting, given: Any) -> Any:
    """The setting's value from what a flag or variable gave (None: neither); a switch turns its default over."""
    if given is None:
        return s.default
    if s.opt.switch:
        return (not s.default) if given else s.default
    return given


def parser_for(cls: type, prog: str, description: str, **kwargs: Any) -> Parser:
    return Parser(cls, prog=prog, description=description, **kwargs)


def values_of(cls: type, ns: argparse.Namespace) -> Any:
    """The dataclass `cls` with the values `ns` holds (its parser's `parse_args`)."""
    return _build(cls, ns, ())


def _build(cls: type, ns: argparse.Namespace, path: tuple[str, ...]) -> Any:
    values = {}
    for f in fields(cls):
        if _OPT in f.metadata:
            values[f.name] = getattr(ns, ".".join((*path, f.name)))
        elif f.default is not MISSING and is_dataclass(f.default):
            values[f.name] = _build(type(f.default), ns, (*path, f.name))
    return cls(**values)


def flag_table(cls: type) -> str:
    """The markdown table of a command's settings, as docs/*.md show it."""
    rows = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for s in settings_of(cls):
        o = s.opt
        flag = "(env only)" if not o.flag else ", ".join(f"`{n}`" for n in (o.short, o.flag) if n)
        env = f"`{o.env_name}`" + "".join(f" (deprecated: `{old}`)" for old in o.deprecated_env)
        meaning = o.help.replace("|", "\\|")
        if o.choices:
            meaning += " (one of " + ", ".join(f"`{c}`" for c in o.choices) + ")"
        rows.append(f"| {flag} | {env} | {s.shown_default()} | {meaning} |")
    return "\n".join(rows) + "\n"
