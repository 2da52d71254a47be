"""Event times: RFC 3339 text <-> epoch milliseconds, and the UTC date and hour a lake folder names.

The years a lake can hold are 1 to 9999 in UTC, so that every date is four digits (in folder names and
the canonical text) and every reader's timestamp type holds it. The calendar arithmetic is the
proleptic Gregorian calendar's, on integers: no `datetime` (it refuses the ends of that range after a
UTC shift, and is slower), no `time.gmtime` (which prints years below 1000 without their zeros).
"""

from __future__ import annotations

import re

# The event times a lake can hold: years 1 to 9999 in UTC, so that every date is four digits in a
# folder name (`dt=0001-01-01`) and in the canonical text, and every reader's timestamp type holds it.
MIN_EVENT_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_EVENT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_DAY_MS = 86_400_000

# RFC 3339 section 5.6, ASCII digits only: `T` or `t` (or a space, which its section 5.6 lets an
# application choose) between date and time, any number of fraction digits, `Z`, `z` or an offset
# `+hh:mm` / `-hh:mm`. Ranges (month 1-12, the month's days, hour 0-23, minute 0-59, second 0-60)
# are checked in `parse_event_time`.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (any year, 0 too)."""
    year -= month <= 2
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    of_era_days = of_era * 365 + of_era // 4 - of_era // 100 + of_year
    return era * 146_097 + of_era_days - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The inverse of `_days_from_civil`: (year, month, day)."""
    days += 719_468
    era = days // 146_097
    of_era = days - era * 146_097
    year_of_era = (of_era - of_era // 1460 + of_era // 36_524 - of_era // 146_096) // 365
    of_year = of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * of_year + 2) // 153
    day = of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def utc_date_hour(ms: int) -> tuple[str, str]:
    """Epoch milliseconds -> (`YYYY-MM-DD`, `HH`) in UTC, the year four digits."""
    days, rest = divmod(ms, _DAY_MS)
    year, month, day = _civil_from_days(days)
    return f"{year:04d}-{month:02d}-{day:02d}", f"{rest // 3_600_000:02d}"


def format_event_time(ms: int) -> str:
    """Epoch milliseconds -> `2026-11-24T21:03:04.123Z` (the year always four digits)."""
    days, rest = divmod(ms, _DAY_MS)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def parse_event_time(text: str) -> int:
    """An RFC 3339 time with a zone -> epoch milliseconds (UTC). Raises ValueError.

    Fraction digits past the millisecond are cut off (the time stays in its second, its hour and its
    day); a leap second (`23:59:60`) counts as the first second of the next minute, as POSIX time
    counts it. The time must fall in years 1 to 9999 once shifted to UTC (`MIN_EVENT_MS`..)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:40]!r} is not an RFC 3339 time with a zone, such as 2026-11-24T21:03:04.123Z"
        )
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        raise ValueError(f"{text[:40]!r} names a day that does not exist")
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"{text[:40]!r} names a time of day that does not exist")
    fraction, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10)
    millis = int(fraction[:3].ljust(3, "0")) if fraction else 0
    offset = 0
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise ValueError(f"{text[:40]!r} has an offset outside -23:59..+23:59")
        offset = (int(offset_hours) * 60 + int(offset_minutes)) * (1 if sign == "+" else -1)
    minutes = (_days_from_civil(year, month, day) * 24 + hour) * 60 + minute - offset
    ms = (minutes * 60 + second) * 1000 + millis
    if not MIN_EVENT_MS <= ms <= MAX_EVENT_MS:
        raise ValueError(f"{text[:40]!r} is outside the years 1 to 9999 once shifted to UTC")
    return ms
