"""Clock times in English and Chinese, found as spans with an hour and a minute.

English: ``3pm``, ``3 PM``, ``3:30 p.m.``, ``11am``, ``15:30``, ``15:30:00`` (seconds dropped),
``noon`` and ``midnight``. Chinese: ``下午三点``, ``15点30分``, ``三点半``, ``八点一刻``,
``晚上8点``, ``十点零五分``, ``两点钟``, and ``今晚8点`` or ``明早9点``, which carry their own day.

A day period moves the hour: ``下午``, ``傍晚``, ``晚上``, ``夜里``, ``今晚`` and ``明晚`` add 12 to
hours 1 to 11, ``中午`` adds 12 to hours 1 to 3, and ``晚上十二点`` and ``凌晨十二点`` are 00:00.
Without a period, hours 1 to 12 are kept as written, so ``三点半`` is 03:30.

``点`` also means "point" and "a little" (``有三点建议``, ``快一点``). A Chinese hour with
nothing but ``点`` (``三点``, ``3点``) therefore needs a date right before it (``明天三点``);
``find_times`` marks such spans with ``needs_date``. Hours 13 to 24 written in digits
(``15点``) stand alone. Not supported: ``at 3``, ``3 o'clock``, ``half past three`` and ranges
such as ``9-5``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.rules.numerals import parse_count

_ENGLISH_MERIDIEM = re.compile(
    r"(?<![\d:.])(?P<hour>1[0-2]|0?[1-9])(?::(?P<minute>[0-5]\d))? ?"
    r"(?P<meridiem>[ap])(?:\.m\.|\.m|m)(?![A-Za-z])",
    re.IGNORECASE,
)
_CLOCK_24H = re.compile(
    r"(?<![\d:.])(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)(?::[0-5]\d)?(?!\d|:\d)"
)
_NOON_MIDNIGHT = re.compile(r"(?<![A-Za-z])(?P<word>noon|midnight)(?![A-Za-z])", re.IGNORECASE)

_CHINESE_DIGITS = "零一二两三四五六七八九十"
_CHINESE_TIME = re.compile(
    r"(?:(?P<period>凌晨|清晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|今早|今晚|明早|明晚) ?)?"
    rf"(?<![\d第{_CHINESE_DIGITS}])(?P<hour>\d{{1,2}}|[{_CHINESE_DIGITS}]{{1,3}}) ?[点點时時]"
    rf"(?:(?P<half>半)|(?P<quarter>一刻|三刻)|(?P<minute>\d{{1,2}}|[{_CHINESE_DIGITS}]{{1,3}}) ?分?"
    r"(?![月日号]))?"
    r"(?P<clock>钟)?"
)

_EVENING_PERIODS = {"下午", "傍晚", "晚上", "夜里", "今晚", "明晚"}
_NIGHT_PERIODS = {"晚上", "夜里", "今晚", "明晚", "凌晨"}
_PERIOD_DAY_OFFSETS = {"今早": 0, "今晚": 0, "明早": 1, "明晚": 1}


@dataclass(frozen=True)
class TimeSpan:
    """A clock time found in text.

    Attributes:
        start: Offset of the first character.
        end: Offset one past the last character.
        hour: 0 to 23.
        minute: 0 to 59.
        day_offset: Days after the reference date for times that name their day (``明晚8点``
            is 1), else ``None``.
        needs_date: True for a bare Chinese hour (``三点``), which counts only right after a
            date.
    """

    start: int
    end: int
    hour: int
    minute: int
    day_offset: int | None = None
    needs_date: bool = False


def find_times(folded: str) -> list[TimeSpan]:
    """Find clock times in width-folded text; spans may overlap each other."""
    spans = []
    for match in _ENGLISH_MERIDIEM.finditer(folded):
        hour = int(match["hour"]) % 12 + (12 if match["meridiem"].lower() == "p" else 0)
        spans.append(TimeSpan(match.start(), match.end(), hour, int(match["minute"] or 0)))
    for match in _CLOCK_24H.finditer(folded):
        spans.append(TimeSpan(match.start(), match.end(), int(match["hour"]), int(match["minute"])))
    for match in _NOON_MIDNIGHT.finditer(folded):
        hour = 12 if match["word"].lower() == "noon" else 0
        spans.append(TimeSpan(match.start(), match.end(), hour, 0))
    for match in _CHINESE_TIME.finditer(folded):
        span = _chinese_time(match)
        if span is not None:
            spans.append(span)
    return spans


def _chinese_time(match: re.Match[str]) -> TimeSpan | None:
    hour = parse_count(match["hour"])
    minute = _chinese_minute(match)
    if hour is None or minute is None or not 0 <= hour <= 24 or not 0 <= minute <= 59:
        return None

    period = match["period"]
    hour = _apply_period(0 if hour == 24 else hour, period)
    has_minutes = match["half"] or match["quarter"] or match["minute"]
    is_unambiguous_hour = match["hour"].isdigit() and int(match["hour"]) >= 13
    needs_date = not (period or has_minutes or match["clock"] or is_unambiguous_hour)
    return TimeSpan(
        start=match.start(),
        end=match.end(),
        hour=hour,
        minute=minute,
        day_offset=_PERIOD_DAY_OFFSETS.get(period) if period else None,
        needs_date=needs_date,
    )


def _chinese_minute(match: re.Match[str]) -> int | None:
    if match["half"]:
        return 30
    if match["quarter"]:
        return 15 if match["quarter"] == "一刻" else 45
    if match["minute"]:
        return parse_count(match["minute"])
    return 0


def _apply_period(hour: int, period: str | None) -> int:
    if period in _NIGHT_PERIODS and hour == 12:
        return 0
    if period in _EVENING_PERIODS and 1 <= hour <= 11:
        return hour + 12
    if period == "中午" and 1 <= hour <= 3:
        return hour + 12
    return hour
