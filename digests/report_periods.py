"""The periods of the social report and of its conclusions: half-years, years, months.

``2026-H1`` is January to June, ``2026-H2`` July to December, ``2026`` the calendar
year and ``2026-11`` a month (days in local time, both ends included). A scheduled
report (``[[reports]]``) covers the last half-year or year that has ended, and is due
on the first working day at least ``after_days`` days after its last day: entries may
be dated up to a week back, so a period is complete a week after it ends.

Pure: no database, no clock of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from flows.workdays import is_working_day

_HALF = re.compile(r"^(\d{4})-H([12])$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

HALF_YEAR = "half-year"
YEAR = "year"
SCHEDULED_KINDS: tuple[str, ...] = (HALF_YEAR, YEAR)


@dataclass(frozen=True)
class ReportPeriod:
    """A named period: its label (``2026-H2``) and its first and last local day."""

    label: str
    start: date
    end: date

    def contains(self, other: ReportPeriod) -> bool:
        return self.start <= other.start and other.end <= self.end


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def parse_report_period(text: str) -> ReportPeriod:
    """``2026-H1``, ``2026-H2``, ``2026`` or ``2026-11``; ValueError for anything else."""
    text = text.strip().upper()
    if match := _HALF.match(text):
        year, half = int(match[1]), int(match[2])
        start = date(year, 1 if half == 1 else 7, 1)
        return ReportPeriod(f"{year}-H{half}", start, _month_end(year, 6 if half == 1 else 12))
    if match := _YEAR.match(text):
        year = int(match[1])
        return ReportPeriod(str(year), date(year, 1, 1), date(year, 12, 31))
    if (match := _MONTH.match(text)) and 1 <= int(match[2]) <= 12:
        year, month = int(match[1]), int(match[2])
        return ReportPeriod(f"{year}-{month:02d}", date(year, month, 1), _month_end(year, month))
    raise ValueError(f"not a period like 2026-H2, 2026 or 2026-11: {text!r}")


def period_of_range(start: date, end: date) -> ReportPeriod:
    """The named period that is exactly ``start``..``end``, else one labelled by its days."""
    for label in (f"{start.year}-H1", f"{start.year}-H2", str(start.year)):
        named = parse_report_period(label)
        if (named.start, named.end) == (start, end):
            return named
    if start.day == 1 and end == _month_end(start.year, start.month):
        return parse_report_period(f"{start.year}-{start.month:02d}")
    return ReportPeriod(f"{start.isoformat()}..{end.isoformat()}", start, end)


def last_ended(kind: str, today: date) -> ReportPeriod:
    """The last half-year (``half-year``) or year (``year``) that ended before ``today``."""
    if kind == YEAR:
        return parse_report_period(str(today.year - 1))
    if kind == HALF_YEAR:
        if today.month <= 6:
            return parse_report_period(f"{today.year - 1}-H2")
        return parse_report_period(f"{today.year}-H1")
    raise ValueError(f"a scheduled report covers a half-year or a year, not {kind!r}")


def due_on(period: ReportPeriod, after_days: int) -> date:
    """The first working day at least ``after_days`` days after ``period`` ended."""
    day = period.end + timedelta(days=max(after_days, 1))
    while not is_working_day(day):
        day += timedelta(days=1)
    return day
