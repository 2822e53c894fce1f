"""The date and time extractor: dates, clock times, and the two joined into one datetime.

A date and a time become one ``datetime`` entity when only a short joint separates them.
After the date, the joint may be nothing, spaces, a comma, ``at``, ``@``, ``by``,
``around``, ``T`` or ``的`` (``明天下午三点``, ``Dec 5 at 3pm``, ``2026-12-05T15:30``). Before
the date, it may be spaces, a comma and ``on`` (``3pm tomorrow``, ``15:30 on 5 Dec``).

Values are wall-clock times in the reference time's zone, with no offset: ``2026-12-05``,
``15:00`` and ``2026-12-05T15:00``.
"""

from __future__ import annotations

import bisect
import logging
import re
from datetime import date, datetime, timedelta

from nlu.merge import select_non_overlapping
from nlu.rules.base import make_entity
from nlu.rules.dates import NUMERIC_DATE_ORDERS, DateSpan, find_dates
from nlu.rules.times import TimeSpan, find_times
from nlu.types import Entity

logger = logging.getLogger(__name__)

_JOINT_AFTER_DATE = re.compile(
    r"\s{0,3},?\s{0,3}(?:(?:at|by|around)\s{1,3}|@\s{0,3}|T|的\s?)?", re.IGNORECASE
)
_JOINT_BEFORE_DATE = re.compile(r"\s{0,3},?\s{0,3}(?:on\s{1,3})?", re.IGNORECASE)


class DateTimeExtractor:
    """Find dates, times and datetimes, resolved against the reference time.

    Args:
        numeric_date_order: ``MDY`` (``12/05/2026`` is 5 December) or ``DMY`` (12 May).
        join_date_and_time: Whether a date next to a time becomes one ``datetime`` entity;
            when False, both are returned separately.

    Raises:
        ValueError: If ``numeric_date_order`` is neither ``MDY`` nor ``DMY``.
    """

    name = "datetime"
    entity_types = frozenset({"date", "time", "datetime"})

    def __init__(self, numeric_date_order: str = "MDY", join_date_and_time: bool = True) -> None:
        if numeric_date_order not in NUMERIC_DATE_ORDERS:
            raise ValueError(
                f"Invalid numeric_date_order {numeric_date_order!r}: use 'MDY' for 12/05/2026 "
                "as 5 December or 'DMY' for 12 May."
            )

        self.numeric_date_order = numeric_date_order
        self.join_date_and_time = join_date_and_time

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Return one entity per date, time or joined datetime in ``text``."""
        today = reference_time.date()
        found = find_dates(folded, today, self.numeric_date_order) + find_times(folded)
        # The longest of overlapping spans wins, the earliest on a tie.
        ranked = sorted(found, key=lambda span: (span.start - span.end, span.start))
        kept = select_non_overlapping(ranked, lambda span: (span.start, span.end))
        dates = [span for span in kept if isinstance(span, DateSpan)]
        times = [span for span in kept if isinstance(span, TimeSpan)]

        pairs = self._pair(folded, dates, times) if self.join_date_and_time else []
        paired = {id(span) for pair in pairs for span in pair}
        entities = [self._datetime_entity(text, day, time) for day, time in pairs]
        for day in dates:
            if id(day) not in paired:
                value = day.day.isoformat()
                entities.append(make_entity(text, day.start, day.end, "date", value, self.name))
        for time in times:
            if id(time) not in paired and not time.needs_date:
                entities.append(self._time_entity(text, time, today))
        return entities

    def _pair(
        self, folded: str, dates: list[DateSpan], times: list[TimeSpan]
    ) -> list[tuple[DateSpan, TimeSpan]]:
        """Pair each date with the time right after it, or else right before it.

        Both lists are sorted by start and free of overlaps, so the nearest time on each
        side is found by bisection.
        """
        starts = [time.start for time in times]
        pairs = []
        used: set[int] = set()
        for day in dates:
            index = bisect.bisect_left(starts, day.end)
            after = times[index] if index < len(times) else None
            before = times[index - 1] if index > 0 and times[index - 1].end <= day.start else None
            if self._can_pair(after, used) and _JOINT_AFTER_DATE.fullmatch(
                folded, day.end, after.start
            ):
                pairs.append((day, after))
                used.add(id(after))
            elif (
                self._can_pair(before, used)
                and not before.needs_date
                and _JOINT_BEFORE_DATE.fullmatch(folded, before.end, day.start)
            ):
                pairs.append((day, before))
                used.add(id(before))
        return pairs

    @staticmethod
    def _can_pair(time: TimeSpan | None, used: set[int]) -> bool:
        # A time that names its own day (明晚8点) keeps it.
        return time is not None and time.day_offset is None and id(time) not in used

    def _datetime_entity(self, text: str, day: DateSpan, time: TimeSpan) -> Entity:
        start, end = min(day.start, time.start), max(day.end, time.end)
        value = f"{day.day.isoformat()}T{time.hour:02d}:{time.minute:02d}"
        return make_entity(text, start, end, "datetime", value, self.name)

    def _time_entity(self, text: str, time: TimeSpan, today: date) -> Entity:
        if time.day_offset is None:
            value = f"{time.hour:02d}:{time.minute:02d}"
            return make_entity(text, time.start, time.end, "time", value, self.name)
        day = today + timedelta(days=time.day_offset)
        value = f"{day.isoformat()}T{time.hour:02d}:{time.minute:02d}"
        return make_entity(text, time.start, time.end, "datetime", value, self.name)
