"""Digests: reporting periods, the digest rules, digest figures as data, and their renderings.

Pure: no database, chat library or event loop. The figures come from
``storage.digest_queries`` (``weekly_digest_data``, ``monthly_summary_data``)
and ``storage.report_queries``; what a digest shows of them (rising themes,
which quotes, ranking and grouping) is decided once, in ``digests.rules``,
for the weekly digest, the monthly summary and the social report alike. The
delivery side renders them with ``render_weekly``/``render_monthly`` (or
``digests.report``) in a worker thread and splits the text with
``bot.router.split_text``.

Importing the package or its data modules (``model``, ``periods``, ``rules``,
``spreadsheet``) loads no drawing library: matplotlib and Pillow are imported
by ``digests.charts`` and the chart functions of ``digests.report``, WeasyPrint
by ``render_pdf``, only when something is drawn. The names below are therefore
loaded on first use (PEP 562), not when the package is imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    **dict.fromkeys(
        (
            "CountRow",
            "EscalationItem",
            "LeaderAnswer",
            "MonthlySummary",
            "NewOrGrowing",
            "Quote",
            "RisingRow",
            "SpreadRow",
            "StatusInfo",
            "ThemeGroup",
            "ThemeRow",
            "WeeklyDigest",
        ),
        "digests.model",
    ),
    **dict.fromkeys(
        (
            "HELSINKI",
            "first_working_day",
            "is_working_day",
            "iso_week_bounds",
            "iso_weeks_in_year",
            "month_bounds",
            "monthly_due_at",
            "previous_iso_week",
            "previous_month",
            "shift_month",
            "shift_week",
        ),
        "digests.periods",
    ),
    **dict.fromkeys(
        ("Rendered", "escalations_csv", "render_monthly", "render_weekly"), "digests.render"
    ),
}

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


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'digests' has no attribute {name!r}")
    return getattr(import_module(module), name)
