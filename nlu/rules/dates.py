"""Calendar dates in English and Chinese, resolved against a reference date.

Found shapes:

- ISO and year-first: ``2026-12-05``, ``2026/12/05``, ``2026.12.05`` (years 1900 to 2099);
- numeric with the year last: ``12/05/2026``, ``12-05-26``, ``05.12.2026`` (dots need a
  four-digit year). ``numeric_date_order`` chooses month-first (``MDY``, the default) or
  day-first (``DMY``); when the first number is over 12, the other order is used;
- month names: ``5 Dec 2026``, ``5th of December``, ``December 5``, ``Dec. 5th, 2026``. A
  date without a year is in the reference year. Lower-case ``may`` is skipped, because it
  is usually the verb;
- Chinese: ``12月5日``, ``2026年12月5日``, ``二〇二六年十二月五号``;
- relative days: ``today``, ``tonight``, ``tomorrow``, ``yesterday``, ``day after tomorrow``,
  ``day before yesterday``, ``今天``, ``明天``, ``后天``, ``大后天``, ``昨天``, ``前天``;
- weekdays, with weeks starting on Monday: ``next Monday`` and ``下周一`` are that day in
  the following week, and ``下下周一`` two weeks on. ``last Monday`` and ``上周一`` are in the
  previous week, and ``this Monday`` and ``这周一`` in the current week, possibly past. A bare
  ``Monday``, ``周一`` or ``星期一`` is the next such day, today included;
- offsets: ``in 3 days``, ``in two weeks``, ``3 days later``, ``a month ago``, ``3天后``,
  ``两周后``, ``三个月后``, ``5天前``. Months and years keep the day of month, clamped to the
  month's last day.

Not supported: a day alone (``5号``), a month alone (``December``), a year alone, weekday
abbreviations (``Mon``), ``next week``, ``end of the month`` and holidays.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from nlu.rules.numerals import ENGLISH_NUMBER_WORDS, parse_chinese_number, parse_count

NUMERIC_DATE_ORDERS = ("MDY", "DMY")

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
    r"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?P<day>3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s{1,3}(?P<year>\d{4}))?"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_COUNT_WORDS = "|".join(ENGLISH_NUMBER_WORDS)
_CHINESE_COUNT = "[零一二两三四五六七八九十]{1,3}"

_ISO = re.compile(
    r"(?<![\d./-])(?P<year>(?:19|20)\d{2})(?P<sep>[-/.])(?P<month>\d{1,2})(?P=sep)"
    r"(?P<day>\d{1,2})(?!\d|[./-]\d)"
)
_NUMERIC = re.compile(
    r"(?<![\d./-])(?P<first>\d{1,2})(?P<sep>[-/.])(?P<second>\d{1,2})(?P=sep)"
    r"(?P<year>\d{4}|\d{2})(?!\d|[./-]\d)"
)
_DAY_MONTH = re.compile(
    rf"(?<![A-Za-z0-9]){_DAY}\s{{1,3}}(?:of\s{{1,3}})?{_MONTH}{_YEAR}(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"(?<![A-Za-z0-9]){_MONTH}\s{{1,3}}{_DAY}{_YEAR}(?![A-Za-z0-9]|[:.]\d)", re.IGNORECASE
)
_CHINESE_DATE = re.compile(
    r"(?<!\d)(?:(?P<year>\d{4}|[〇零一二三四五六七八九]{4}) ?年 ?)?"
    r"(?P<month>\d{1,2}|十[一二]?|[一二三四五六七八九]) ?月 ?"
    r"(?P<day>\d{1,2}|[一二三]?十[一二三四五六七八九]?|[一二三四五六七八九]) ?[日号號]"
)
_RELATIVE_DAY_OFFSETS = {
    "day after tomorrow": 2, "day before yesterday": -2, "today": 0, "tonight": 0,
    "tomorrow": 1, "yesterday": -1,
    "大后天": 3, "后天": 2, "明天": 1, "明日": 1, "今天": 0, "今日": 0,
    "昨天": -1, "昨日": -1, "大前天": -3, "前天": -2,
}  # fmt: skip
_RELATIVE_DAY = re.compile(
    r"(?<![A-Za-z])(?P<word>day after tomorrow|day before yesterday|today|tonight|tomorrow"
    r"|yesterday)(?![A-Za-z])|(?P<chinese>大后天|后天|明天|明日|今天|今日|昨天|昨日|大前天|前天)",
    re.IGNORECASE,
)
_ENGLISH_WEEKDAY = re.compile(
    r"(?<![A-Za-z])(?:(?P<relation>next|last|this|coming)\s{1,3})?"
    rf"(?P<weekday>{'|'.join(_WEEKDAYS)})(?![A-Za-z])",
    re.IGNORECASE,
)
_CHINESE_WEEKDAY = re.compile(
    r"(?P<relation>下下个?|上上个?|下个?|上个?|这个?|本)?(?:周|星期|礼拜|禮拜)"
    r"(?P<weekday>[一二三四五六日天1-7])"
)
_WEEK_RELATIONS = {
    "next": 1, "last": -1, "this": 0,
    "下": 1, "下个": 1, "下下": 2, "下下个": 2, "上": -1, "上个": -1, "上上": -2, "上上个": -2,
    "这": 0, "这个": 0, "本": 0,
}  # fmt: skip
_CHINESE_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_ENGLISH_OFFSET_IN = re.compile(
    rf"(?<![A-Za-z])in\s{{1,3}}(?P<count>\d{{1,3}}|{_COUNT_WORDS})\s{{1,3}}"
    r"(?P<unit>day|week|month|year)s?(?![A-Za-z])",
    re.IGNORECASE,
)
_ENGLISH_OFFSET_AFTER = re.compile(
    rf"(?<![A-Za-z0-9])(?P<count>\d{{1,3}}|{_COUNT_WORDS})\s{{1,3}}(?P<unit>day|week|month|year)s?"
    r"\s{1,3}(?P<direction>later|from now|ago)(?![A-Za-z])",
    re.IGNORECASE,
)
_CHINESE_OFFSET = re.compile(
    rf"(?<![\d零一二两三四五六七八九十])(?P<count>\d{{1,3}}|{_CHINESE_COUNT}) ?"
    r"(?P<unit>天|日|周|个?星期|个?礼拜|个月|年) ?(?P<direction>之后|以后|后|之前|以前|前)"
)
_CHINESE_UNITS = {"天": "day", "日": "day", "周": "week", "个月": "month", "年": "year"}


@dataclass(frozen=True)
class DateSpan:
    """A calendar date found in text, with its character offsets."""

    start: int
    end: int
    day: date


def find_dates(folded: str, today: date, numeric_date_order: str = "MDY") -> list[DateSpan]:
    """Find calendar dates in width-folded text; spans may overlap each other.

    Args:
        folded: The text, with full-width characters folded to ASCII.
        today: The reference date that relative dates count from.
        numeric_date_order: ``MDY`` or ``DMY``, the order of ``12/05/2026``.

    Returns:
        One span per date found; invalid dates such as ``2026-02-30`` are skipped.
    """
    spans: list[DateSpan | None] = []
    spans += [_year_first(match) for match in _ISO.finditer(folded)]
    spans += [_numeric(match, numeric_date_order) for match in _NUMERIC.finditer(folded)]
    spans += [_month_name(match, today) for match in _DAY_MONTH.finditer(folded)]
    spans += [_month_name(match, today) for match in _MONTH_DAY.finditer(folded)]
    spans += [_chinese_date(match, today) for match in _CHINESE_DATE.finditer(folded)]
    spans += [_relative_day(match, today) for match in _RELATIVE_DAY.finditer(folded)]
    spans += [_english_weekday(match, today) for match in _ENGLISH_WEEKDAY.finditer(folded)]
    spans += [_chinese_weekday(match, today) for match in _CHINESE_WEEKDAY.finditer(folded)]
    spans += [_english_offset(match, today) for match in _ENGLISH_OFFSET_IN.finditer(folded)]
    spans += [_english_offset(match, today) for match in _ENGLISH_OFFSET_AFTER.finditer(folded)]
    spans += [_chinese_offset(match, today) for match in _CHINESE_OFFSET.finditer(folded)]
    return [span for span in spans if span is not None]


def _span(match: re.Match[str], year: int, month: int, day: int) -> DateSpan | None:
    try:
        return DateSpan(match.start(), match.end(), date(year, month, day))
    except ValueError:
        return None


def _year_first(match: re.Match[str]) -> DateSpan | None:
    return _span(match, int(match["year"]), int(match["month"]), int(match["day"]))


def _numeric(match: re.Match[str], order: str) -> DateSpan | None:
    if match["sep"] == "." and len(match["year"]) != 4:
        return None  # 1.2.10 is a version number more often than a date.

    first, second = int(match["first"]), int(match["second"])
    year = int(match["year"]) + (2000 if len(match["year"]) == 2 else 0)
    month, day = (first, second) if order == "MDY" else (second, first)
    if month > 12:
        month, day = day, month
    return _span(match, year, month, day)


def _month_name(match: re.Match[str], today: date) -> DateSpan | None:
    if match["month"] == "may" and not match["year"]:
        return None  # "you may 5 ..." uses the verb.

    year = int(match["year"]) if match["year"] else today.year
    return _span(match, year, _MONTHS[match["month"][:3].lower()], int(match["day"]))


def _chinese_date(match: re.Match[str], today: date) -> DateSpan | None:
    year = _parse_number(match["year"]) if match["year"] else today.year
    month = _parse_number(match["month"])
    day = _parse_number(match["day"])
    if year is None or month is None or day is None:
        return None
    return _span(match, year, month, day)


def _parse_number(text: str) -> int | None:
    return int(text) if text.isdigit() else parse_chinese_number(text)


def _relative_day(match: re.Match[str], today: date) -> DateSpan:
    word = (match["word"] or match["chinese"]).lower()
    day = today + timedelta(days=_RELATIVE_DAY_OFFSETS[" ".join(word.split())])
    return DateSpan(match.start(), match.end(), day)


def _english_weekday(match: re.Match[str], today: date) -> DateSpan:
    weekday = _WEEKDAYS.index(match["weekday"].lower())
    relation = (match["relation"] or "").lower()
    if relation in ("", "coming"):
        return DateSpan(match.start(), match.end(), _coming_weekday(today, weekday))
    return DateSpan(
        match.start(), match.end(), _weekday_in_week(today, weekday, _WEEK_RELATIONS[relation])
    )


def _chinese_weekday(match: re.Match[str], today: date) -> DateSpan:
    symbol = match["weekday"]
    weekday = int(symbol) - 1 if symbol.isdigit() else _CHINESE_WEEKDAYS[symbol]
    if match["relation"] is None:
        return DateSpan(match.start(), match.end(), _coming_weekday(today, weekday))
    weeks = _WEEK_RELATIONS[match["relation"]]
    return DateSpan(match.start(), match.end(), _weekday_in_week(today, weekday, weeks))


def _coming_weekday(today: date, weekday: int) -> date:
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def _weekday_in_week(today: date, weekday: int, weeks: int) -> date:
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=weeks, days=weekday)


def _english_offset(match: re.Match[str], today: date) -> DateSpan | None:
    count = parse_count(match["count"])
    if count is None:
        return None
    direction = (match.groupdict().get("direction") or "later").lower()
    sign = -1 if direction == "ago" else 1
    day = _add(today, sign * count, match["unit"].lower())
    return DateSpan(match.start(), match.end(), day) if day else None


def _chinese_offset(match: re.Match[str], today: date) -> DateSpan | None:
    count = parse_count(match["count"])
    if count is None:
        return None
    unit = _CHINESE_UNITS.get(match["unit"], "week")  # 星期 and 礼拜, with or without 个
    sign = -1 if "前" in match["direction"] else 1
    day = _add(today, sign * count, unit)
    return DateSpan(match.start(), match.end(), day) if day else None


def _add(today: date, count: int, unit: str) -> date | None:
    """Return ``today`` moved by ``count`` units, or ``None`` outside the supported years."""
    try:
        if unit == "day":
            return today + timedelta(days=count)
        if unit == "week":
            return today + timedelta(weeks=count)
        months = count * (12 if unit == "year" else 1)
        year, month_index = divmod(today.year * 12 + today.month - 1 + months, 12)
        last_day = calendar.monthrange(year, month_index + 1)[1]
        return date(year, month_index + 1, min(today.day, last_day))
    except (OverflowError, ValueError):
        return None
