"""Digests: reporting periods, digest figures as data, and their renderings.

Pure: no database, chat library or event loop. The figures come from
``storage.digest_queries`` (``weekly_digest_data``, ``monthly_summary_data``);
the delivery side renders them with ``render_weekly``/``render_monthly`` and
splits the text with ``bot.router.split_text``.
"""

from digests.model import (
    CountRow,
    EscalationItem,
    LeaderAnswer,
    MonthlySummary,
    NewOrGrowing,
    Quote,
    RisingRow,
    SpreadRow,
    StatusInfo,
    ThemeGroup,
    ThemeRow,
    WeeklyDigest,
)
from digests.periods import (
    HELSINKI,
    first_working_day,
    is_working_day,
    iso_week_bounds,
    iso_weeks_in_year,
    month_bounds,
    monthly_due_at,
    previous_iso_week,
    previous_month,
    shift_month,
    shift_week,
)
from digests.render import Rendered, escalations_csv, render_monthly, render_weekly

__all__ = [
    "HELSINKI",
    "CountRow",
    "EscalationItem",
    "LeaderAnswer",
    "MonthlySummary",
    "NewOrGrowing",
    "Quote",
    "Rendered",
    "RisingRow",
    "SpreadRow",
    "StatusInfo",
    "ThemeGroup",
    "ThemeRow",
    "WeeklyDigest",
    "escalations_csv",
    "first_working_day",
    "is_working_day",
    "iso_week_bounds",
    "iso_weeks_in_year",
    "month_bounds",
    "monthly_due_at",
    "previous_iso_week",
    "previous_month",
    "render_monthly",
    "render_weekly",
    "shift_month",
    "shift_week",
]
