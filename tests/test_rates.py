"""Rates per active worker-week and "rising" by rate: the pure rules (``digests.rules``),
the rate's suppression (``digests.numbers.rate``), the ISO week cells of a period, and
what the digests print of them. The counting from a database is in
``tests/test_digest_queries.py`` and ``tests/test_report.py`` (both backends)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from digests import numbers, rules
from digests.model import (
    Activity,
    EscalationItem,
    MonthlyFigures,
    RegionFigures,
    StatusInfo,
    ThemeFigures,
    WeeklyFigures,
)
from digests.numbers import LEADERSHIP, TEAM, Privacy
from digests.periods import iso_week_bounds, month_bounds, week_cells
from digests.render import render_monthly, render_weekly

HEL = ZoneInfo("Europe/Helsinki")
NBSP = "\u00a0"


def hel(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=HEL).astimezone(UTC)


# --- the 20 % rule ---------------------------------------------------------------------


def test_workers_changed_at_the_boundary() -> None:
    assert not rules.workers_changed(119, [100])  # +19 %
    assert rules.workers_changed(121, [100])  # +21 %
    assert not rules.workers_changed(120, [100])  # exactly 20 % is not more than 20 %
    assert not rules.workers_changed(81, [100])  # -19 %
    assert rules.workers_changed(79, [100])  # -21 %
    assert not rules.workers_changed(80, [100])  # exactly -20 %
    # Against the average of the earlier periods (4 weeks averaging 100; 3 months 10).
    assert not rules.workers_changed(119, [90, 110, 95, 105])
    assert rules.workers_changed(121, [90, 110, 95, 105])
    assert not rules.workers_changed(12, [9, 10, 11])  # +20 % exactly, in thirds
    assert rules.workers_changed(13, [9, 10, 11])
    # Exact: 1/3 of a worker over the limit is over it (no float rounding at the edge).
    assert rules.workers_changed(5, [4, 4, 4], limit=Fraction(1, 5))  # +25 %


def test_workers_changed_with_zero_workers() -> None:
    assert not rules.workers_changed(0, [0, 0, 0, 0])  # nobody before, nobody now
    assert rules.workers_changed(1, [0, 0, 0, 0])  # from nobody to somebody
    assert rules.workers_changed(0, [3, 2, 4])  # everybody gone: -100 %
    assert not rules.workers_changed(7, [])  # nothing to compare with


def test_rising_by_rate_only_when_the_workers_changed_by_more_than_20_percent() -> None:
    # 15 now against 10 a month before (30 in three months, 1,200 worker-weeks): by counts
    # at least 1.5 times the average. By rates 15 in 476 worker-weeks (0.0315) against
    # 0.025 is only 1.26 times.
    nineteen = Activity(119, 476, (100, 100, 100), 1200)  # +19 %: counts decide
    twenty_one = Activity(121, 484, (100, 100, 100), 1200)  # +21 %: rates decide
    assert not rules.uses_rate(nineteen) and rules.uses_rate(twenty_one)
    assert rules.rises(15, 10.0, 3, 1.5, nineteen)
    assert not rules.rises(15, 10.0, 3, 1.5, twenty_one)
    # Fewer workers, the same count: by rate a rise that counts would not show.
    fewer = Activity(60, 240, (100, 100, 100), 1200)  # -40 %
    assert not rules.rises(10, 10.0, 3, 1.5, None)
    assert rules.rises(10, 10.0, 3, 1.5, fewer)  # 10 / 240 against 30 / 1200: 1.67 times
    # Zero workers: nobody before (nothing observed) and three now.
    fresh = Activity(3, 3, (0, 0, 0), 0)
    assert rules.uses_rate(fresh)
    assert rules.rises(3, 0.0, 3, 1.5, fresh)
    assert not rules.rises(2, 0.0, 3, 1.5, fresh)  # under the minimum count
    assert not rules.rises(0, 1.0, 3, 1.5, Activity(0, 0, (1, 1, 1), 3))  # nobody now


def test_is_rising_rate_is_exact_at_the_ratio() -> None:
    # 15 in 10 worker-weeks is exactly 1.5 times 10 in 10.
    assert rules.is_rising_rate(15, 10, 10, 10, 3, 1.5)
    assert not rules.is_rising_rate(14, 10, 10, 10, 3, 1.5)
    # Equal rates never rise, whatever the ratio.
    assert not rules.is_rising_rate(10, 10, 10, 10, 3, 1.0)
    assert rules.is_rising_rate(3, 1, 0, 0, 3, 1.5)  # nobody active before
    assert not rules.is_rising_rate(3, 0, 0, 0, 3, 1.5)  # no worker-week now


def test_rising_rows_are_ranked_by_the_rate_gain_when_rates_decide() -> None:
    month = MonthlyFigures(
        region="helsinki",
        scope_name="Helsinki",
        month="2026-11",
        start=month_bounds("2026-11")[0],
        end=month_bounds("2026-11")[1],
        as_of=month_bounds("2026-11")[1],
        total=65,
        teams=3,
        workers=20,
        escalated=0,
        shl48_count=0,
        themes=[
            # By counts income gains most (25 against none, housing 40 against 20 a month);
            # by rates housing does (0.5 against 0.17: +0.33; income 0.31 against none).
            ThemeFigures("theme.housing", 40, 60),
            ThemeFigures("theme.income", 25, 0),
        ],
        activity=Activity(20, 80, (30, 30, 30), 360),
    )
    summary = rules.monthly_summary(month)
    assert summary.rate_basis
    # 20 workers against 30 a month: rates decide, and rank.
    assert [r.code for r in summary.rising] == ["theme.housing", "theme.income"]
    assert summary.rising[0].rate == 0.5
    assert summary.rising[0].before_rate == pytest.approx(1 / 6)
    # The same month with steady workers: counts decide, and rank.
    steady = rules.monthly_summary(replace(month, activity=Activity(30, 120, (30, 30, 30), 360)))
    assert not steady.rate_basis
    assert [r.code for r in steady.rising] == ["theme.income", "theme.housing"]
    assert steady.rising[0].rate is None


# --- the rate and what hides it ------------------------------------------------------------


def test_a_rate_is_hidden_with_its_count_and_with_few_workers() -> None:
    assert numbers.rate(20, 8, 5, "fi", LEADERSHIP) == "2,5"
    assert numbers.rate(2973, 1000, 40, "en", LEADERSHIP) == "2.97"
    assert numbers.rate(4, 8, 5, "fi", LEADERSHIP) is None  # its count is small
    assert numbers.rate(20, 8, 5, "fi", LEADERSHIP, hidden=True) is None  # secondary
    assert numbers.rate(20, 8, 4, "fi", LEADERSHIP) is None  # four workers would tell
    assert numbers.rate(20, 0, 0, "fi", LEADERSHIP) is None  # no worker-weeks
    assert numbers.rate(0, 8, 5, "fi", LEADERSHIP) == "0"
    # A team sees its own small counts, but no rate when fewer than three were active.
    assert numbers.rate(4, 3, 3, "fi", TEAM) == "1,33"
    assert numbers.rate(4, 2, 2, "fi", TEAM) is None
    assert numbers.rate(3, 3, 3, "fi", Privacy(min_cell=10)) is None


# --- ISO week cells ------------------------------------------------------------------------


def test_week_cells_of_a_month_and_of_a_week() -> None:
    start, end = month_bounds("2026-11")  # Sunday 1 Nov .. Monday 30 Nov
    cells = week_cells(start, end)
    assert [(a.astimezone(HEL).date().day, b.astimezone(HEL).date().day) for a, b in cells] == [
        (1, 2),  # W44: its Sunday only
        (2, 9),
        (9, 16),
        (16, 23),
        (23, 30),
        (30, 1),  # W49: its Monday only (to 1 December)
    ]
    assert cells[0][0] == start and cells[-1][1] == end
    assert all(a < b for a, b in cells)
    assert all(cells[i][1] == cells[i + 1][0] for i in range(len(cells) - 1))
    week = iso_week_bounds("2026-W43")  # the clocks go back on its Sunday
    assert week_cells(*week) == [week]
    # A DST change inside the period: the cut is still local Monday midnight.
    october = week_cells(*month_bounds("2026-10"))
    assert october[-1][0] == hel(2026, 10, 26)


# --- what the digests print --------------------------------------------------------------


def week(total: int, writers: int, activity: Activity) -> WeeklyFigures:
    start, end = iso_week_bounds("2026-W47")
    return WeeklyFigures(
        team_id="t1",
        team_name="Tiimi",
        language="fi",
        week="2026-W47",
        start=start,
        end=end,
        total=total,
        workers=writers,
        themes=[ThemeFigures("theme.housing", total, 8)],
        activity=activity,
    )


def test_the_team_digest_shows_no_rate_when_fewer_than_three_wrote_or_were_active() -> None:
    rate_line = "Havaintoja aktiivista työntekijäviikkoa kohden"
    shown = render_weekly(rules.weekly_digest(week(6, 3, Activity(3, 3, (3, 3, 3, 3), 12))), "fi")
    assert f"{rate_line}: 2 (edelliset neljä viikkoa: 0,67)" in shown.text
    for writers, active in ((2, 3), (2, 2), (3, 2)):
        activity = Activity(active, active, (3, 3, 3, 3), 12)
        text = render_weekly(rules.weekly_digest(week(6, writers, activity)), "fi").text
        assert rate_line not in text, (writers, active)
    # Leadership (an administrator's preview) needs five.
    five = rules.weekly_digest(week(6, 4, Activity(4, 4, (5, 5, 5, 5), 20)))
    assert rate_line not in render_weekly(five, "fi", privacy=LEADERSHIP).text
    # An empty week stays two lines.
    empty = rules.weekly_digest(week(0, 0, Activity(0, 0, (3, 3, 3, 3), 12)))
    assert len(render_weekly(empty, "fi").text.splitlines()) == 2


def escalation(i: int, region: str, status: StatusInfo, recorded: datetime) -> EscalationItem:
    return EscalationItem(
        observation_id=i,
        team_id="t1",
        team_name="Tiimi",
        region=region,
        escalation="escalation.leadership",
        theme="theme.housing",
        population_group="group.youth",
        signal="signal.queues",
        area=None,
        description="Jono.",
        action=None,
        observed_at=recorded,
        recorded_at=recorded,
        status=status,
        days_open=1,
    )


def organisation_month() -> MonthlyFigures:
    start, end = month_bounds("2026-11")
    recorded = hel(2026, 11, 2, 9)
    acted = [
        escalation(
            10 + i,
            "helsinki",
            StatusInfo("handled", recorded, acknowledged_at=recorded + timedelta(days=days)),
            recorded,
        )
        for i, days in enumerate((1, 2, 3, 4, 10))
    ]
    waiting = [escalation(30 + i, "helsinki", StatusInfo("open"), recorded) for i in range(6)]
    waiting.append(escalation(40, "lappi", StatusInfo("open"), recorded))
    return MonthlyFigures(
        region=None,
        scope_name="",
        month="2026-11",
        start=start,
        end=end,
        as_of=end,
        total=130,
        teams=12,
        workers=38,
        escalated=12,
        shl48_count=0,
        themes=[ThemeFigures("theme.housing", 70, 150), ThemeFigures("theme.income", 60, 150)],
        escalations=acted + waiting,
        activity=Activity(42, 150, (40, 41, 43), 460),
        regions=[
            RegionFigures(
                "helsinki", "Helsinki", 120, 38, 140, {"theme.housing": 64, "theme.income": 56}
            ),
            RegionFigures("lappi", "Lappi", 10, 4, 10, {"theme.housing": 6, "theme.income": 4}),
            RegionFigures("kainuu", "Kainuu", 0, 0, 0, {}),
        ],
    )


def test_the_organisations_summary_sets_the_regions_side_by_side() -> None:
    summary = rules.monthly_summary(organisation_month())
    assert [r.name for r in summary.regions] == ["Helsinki", "Kainuu", "Lappi"]
    helsinki, kainuu, lappi = summary.regions
    assert helsinki.top_themes == ("theme.housing", "theme.income")
    assert lappi.top_themes == ("theme.housing",)  # income 4 is not named to leadership
    assert (helsinki.open, lappi.open, kainuu.open) == (6, 1, 0)
    assert (helsinki.acknowledged, helsinki.median_days) == (5, 3.0)
    assert summary.organisation is not None and summary.organisation.open == 7
    # Lappi's 10 and 1 open: shown 10; its single open one hidden, and Helsinki's 6 with it.
    assert summary.hidden_region_totals == frozenset()
    assert summary.hidden_region_open == {"helsinki", "lappi"}
    text = render_monthly(summary, "fi").text.replace(NBSP, " ")
    block = next(b for b in text.split("\n\n") if b.startswith("Alueet rinnakkain"))
    assert block.splitlines()[2:] == [
        # Helsinki: 120 in 140 worker-weeks; Lappi: four workers, no rate.
        "• Helsinki: 120 · 0,86 · Asuminen ja asunnottomuus · – · 3 pv",
        "• Kainuu: 0 · – · – · 0 · –",
        "• Lappi: 10 · – · Asuminen ja asunnottomuus · < 5 · –",
        "• Koko organisaatio: 130 · 0,87 · Asuminen ja asunnottomuus · 7 · 3 pv",
    ]
    # The whole list (the PDF) names up to three themes per region.
    full = render_monthly(summary, "en", limit=10**6, messages=1).text
    assert "Helsinki: 120 · 0.86 · Housing and homelessness" in full
    # A region's own summary has no such section.
    own = rules.monthly_summary(replace(organisation_month(), region="helsinki", regions=[]))
    assert own.regions == [] and "Alueet rinnakkain" not in render_monthly(own, "fi").text
