"""Reporting periods: ISO weeks and calendar months in local time, as UTC ranges.

A digest covers local time (Europe/Helsinki): an ISO week runs from Monday
00:00 to the next Monday 00:00 and a month from the 1st 00:00 to the next 1st.
Each bound is converted to UTC on its own, so a week that contains a daylight
saving change is 167 or 169 hours long, as it is on the wall clock. Ranges are
half-open: ``start <= observed_at < end``.

Weeks are named ``"2026-W47"`` (ISO 8601) and months ``"2026-11"``. Some ISO
years have 53 weeks (2026 does); ``2026-W53`` runs from 28 Dec 2026 to
3 Jan 2027 and is followed by ``2027-W01``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from flows.workdays import is_working_day

HELSINKI = ZoneInfo("Europe/Helsinki")

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

TimeZone = tzinfo | str


def zone(tz: TimeZone) -> tzinfo:
    """A tzinfo from a zone name (``"Europe/Helsinki"``) or a tzinfo."""
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _local_midnight_utc(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# --- ISO weeks ---------------------------------------------------------------------


def iso_weeks_in_year(year: int) -> int:
    """52 or 53: 28 December always lies in the last ISO week of its year."""
    return date(year, 12, 28).isocalendar().week


def parse_week(week: str) -> tuple[int, int]:
    """``"2026-W47"`` -> ``(2026, 47)``; ValueError for a malformed or non-existent week."""
    match = _WEEK.match(week)
    if match is None:
        raise ValueError(f"not an ISO week like 2026-W47: {week!r}")
    year, number = int(match[1]), int(match[2])
    if not 1 <= number <= iso_weeks_in_year(year):
        raise ValueError(f"{year} has no ISO week {number}")
    return year, number


def week_label(year: int, number: int) -> str:
    return f"{year:04d}-W{number:02d}"


def week_of(day: date) -> str:
    """The ISO week a local date belongs to."""
    iso = day.isocalendar()
    return week_label(iso.year, iso.week)


def week_monday(week: str) -> date:
    year, number = parse_week(week)
    return date.fromisocalendar(year, number, 1)


def shift_week(week: str, weeks: int) -> str:
    """The week ``weeks`` weeks after (negative: before) ``week``, across year ends."""
    return week_of(week_monday(week) + timedelta(weeks=weeks))


def iso_week_bounds(week: str, tz: TimeZone = HELSINKI) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of an ISO week in local time."""
    monday = week_monday(week)
    zone_ = zone(tz)
    return (
        _local_midnight_utc(monday, zone_),
        _local_midnight_utc(monday + timedelta(weeks=1), zone_),
    )


def week_cells(
    start: datetime, end: datetime, tz: TimeZone = HELSINKI
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at local Monday midnights: one UTC range per ISO week it touches
    (the first and the last cut short by the period's edges). A worker-week is counted per
    cell (``digests.rules``), so a week that a month's edge cuts counts in both months."""
    tz_ = zone(tz)
    cells: list[tuple[datetime, datetime]] = []
    cursor, stop = start.astimezone(UTC), end.astimezone(UTC)
    while cursor < stop:
        day = cursor.astimezone(tz_).date()
        monday = day - timedelta(days=day.weekday())
        cut = min(_local_midnight_utc(monday + timedelta(days=7), tz_), stop)
        cells.append((cursor, cut))
        cursor = cut
    return cells


def previous_iso_week(now: datetime, tz: TimeZone = HELSINKI) -> str:
    """The ISO week before the one ``now`` falls in, in local time."""
    if now.tzinfo is None:
        raise ValueError("naive datetime; use an aware one")
    today = now.astimezone(zone(tz)).date()
    return week_of(today - timedelta(weeks=1))


# --- months ------------------------------------------------------------------------


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-11"`` -> ``(2026, 11)``; ValueError for anything else."""
    match = _MONTH.match(month)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"not a month like 2026-11: {month!r}")
    return int(match[1]), int(match[2])


def month_label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def shift_month(month: str, months: int) -> str:
    """The month ``months`` months after (negative: before) ``month``."""
    year, number = parse_month(month)
    index = year * 12 + (number - 1) + months
    return month_label(index // 12, index % 12 + 1)


def month_first_day(month: str) -> date:
    year, number = parse_month(month)
    return date(year, number, 1)


def month_bounds(month: str, tz: TimeZone = HELSINKI) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of a calendar month in local time."""
    zone_ = zone(tz)
    return (
        _local_midnight_utc(month_first_day(month), zone_),
        _local_midnight_utc(month_first_day(shift_month(month, 1)), zone_),
    )


def previous_month(now: datetime, tz: TimeZone = HELSINKI) -> str:
    """The calendar month before the one ``now`` falls in, in local time."""
    if now.tzinfo is None:
        raise ValueError("naive datetime; use an aware one")
    today = now.astimezone(zone(tz)).date()
    return shift_month(month_label(today.year, today.month), -1)


# --- working days ------------------------------------------------------------------


def first_working_day(year: int, month: int) -> date:
    """The first working day of a month: 1 Jan 2027 is a Friday holiday -> Mon 4 Jan."""
    day = date(year, month, 1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def monthly_due_at(month: str, tz: TimeZone = HELSINKI, at: time = time(9, 0)) -> datetime:
    """When the summary of ``month`` is due: 09:00 local on the next month's first working day."""
    year, number = parse_month(shift_month(month, 1))
    return datetime.combine(first_working_day(year, number), at, tzinfo=zone(tz)).astimezone(UTC)
