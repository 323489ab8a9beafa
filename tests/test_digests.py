"""The pure digest parts: periods, golden renderings in fi/sv/en, charts and the CSV file.

Golden files live in ``tests/golden/``; after a deliberate change of wording or
layout, regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_digests.py``
and read the diff before committing it.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from bot.transports.base import split_text
from digests import charts, rules
from digests.model import (
    Activity,
    CountRow,
    EscalationItem,
    LeaderAnswer,
    MonthlySummary,
    NewOrGrowing,
    PhenomenonLine,
    Quote,
    RisingRow,
    SpreadRow,
    StatusInfo,
    ThemeGroup,
    ThemeRow,
    WeeklyDigest,
    is_rising,
)
from digests.periods import (
    first_working_day,
    iso_week_bounds,
    iso_weeks_in_year,
    month_bounds,
    monthly_due_at,
    parse_week,
    previous_iso_week,
    previous_month,
    shift_month,
    shift_week,
)
from digests.render import CSV_COLUMNS, escalations_csv, render_monthly, render_weekly
from flows.i18n import LANGUAGES, _catalog
from flows.statuses import OPEN_STATUSES
from flows.workdays import is_working_day

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parent.parent
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
HEL = ZoneInfo("Europe/Helsinki")


def hel(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Helsinki wall-clock time as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=HEL).astimezone(UTC)


def check_golden(name: str, content: str | bytes) -> None:
    path = GOLDEN / name
    data = content.encode() if isinstance(content, str) else content
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"{name} missing: run with UPDATE_GOLDEN=1 once and read it"
    assert data == path.read_bytes(), f"{name} differs from the golden file"


# --- periods ---------------------------------------------------------------------------


def test_iso_week_bounds_are_helsinki_midnights_in_utc() -> None:
    # Winter: UTC+2.
    assert iso_week_bounds("2026-W47") == (
        datetime(2026, 11, 15, 22, tzinfo=UTC),
        datetime(2026, 11, 22, 22, tzinfo=UTC),
    )
    # Summer: UTC+3, and a zone name works as well as a tzinfo.
    assert iso_week_bounds("2026-W27", "Europe/Helsinki") == (
        datetime(2026, 6, 28, 21, tzinfo=UTC),
        datetime(2026, 7, 5, 21, tzinfo=UTC),
    )


def test_dst_weeks_are_167_and_169_hours_long() -> None:
    # Clocks go forward on Sun 29 Mar 2026 (week 13) and back on Sun 25 Oct 2026 (week 43).
    start, end = iso_week_bounds("2026-W13")
    assert (start, end) == (
        datetime(2026, 3, 22, 22, tzinfo=UTC),
        datetime(2026, 3, 29, 21, tzinfo=UTC),
    )
    assert end - start == timedelta(hours=167)
    start, end = iso_week_bounds("2026-W43")
    assert (start, end) == (
        datetime(2026, 10, 18, 21, tzinfo=UTC),
        datetime(2026, 10, 25, 22, tzinfo=UTC),
    )
    assert end - start == timedelta(hours=169)
    # Sunday 23:30 local belongs to the week, Monday 00:30 to the next one.
    for week in ("2026-W13", "2026-W43"):
        start, end = iso_week_bounds(week)
        sunday_late = (end.astimezone(HEL) - timedelta(minutes=30)).astimezone(UTC)
        assert start <= sunday_late < end
        assert sunday_late.astimezone(HEL).strftime("%a %H:%M") == "Sun 23:30"
        assert iso_week_bounds(shift_week(week, 1))[0] == end


def test_week_53_and_the_year_change() -> None:
    assert iso_weeks_in_year(2026) == 53
    assert iso_weeks_in_year(2027) == 52
    assert iso_week_bounds("2026-W53") == (
        datetime(2026, 12, 27, 22, tzinfo=UTC),
        datetime(2027, 1, 3, 22, tzinfo=UTC),
    )
    assert iso_week_bounds("2026-W53")[1] == iso_week_bounds("2027-W01")[0]
    assert shift_week("2026-W53", 1) == "2027-W01"
    assert shift_week("2027-W01", -1) == "2026-W53"
    assert shift_week("2027-W02", -4) == "2026-W51"  # across week 53
    with pytest.raises(ValueError):
        parse_week("2027-W53")
    with pytest.raises(ValueError):
        parse_week("2026-47")
    # Monday 4 Jan 2027 09:00 Helsinki: the previous week is 2026-W53.
    assert previous_iso_week(hel(2027, 1, 4, 9, 0)) == "2026-W53"
    # Monday 00:10 local is still Sunday 22:10 UTC: local time decides.
    assert previous_iso_week(hel(2026, 11, 23, 0, 10)) == "2026-W47"
    with pytest.raises(ValueError):
        previous_iso_week(datetime(2026, 11, 23, 9))


def test_months() -> None:
    assert month_bounds("2026-11") == (
        datetime(2026, 10, 31, 22, tzinfo=UTC),
        datetime(2026, 11, 30, 22, tzinfo=UTC),
    )
    # March starts in winter time and ends in summer time.
    assert month_bounds("2026-03") == (
        datetime(2026, 2, 28, 22, tzinfo=UTC),
        datetime(2026, 3, 31, 21, tzinfo=UTC),
    )
    assert shift_month("2026-01", -3) == "2025-10"
    assert shift_month("2026-12", 1) == "2027-01"
    assert previous_month(hel(2027, 1, 4, 9, 0)) == "2026-12"
    assert previous_month(hel(2026, 12, 1, 0, 30)) == "2026-11"
    with pytest.raises(ValueError):
        month_bounds("2026-13")


def test_first_working_day_skips_weekends_and_finnish_holidays() -> None:
    assert first_working_day(2026, 12) == date(2026, 12, 1)  # Tuesday
    assert first_working_day(2026, 11) == date(2026, 11, 2)  # 1 Nov is a Sunday
    assert first_working_day(2027, 1) == date(2027, 1, 4)  # Fri 1 Jan is New Year's Day
    assert first_working_day(2026, 1) == date(2026, 1, 2)  # Thu 1 Jan holiday -> Friday
    assert first_working_day(2026, 5) == date(2026, 5, 4)  # Fri 1 May is May Day
    assert first_working_day(2024, 4) == date(2024, 4, 2)  # Mon 1 Apr 2024 is Easter Monday
    assert not is_working_day(date(2026, 12, 24))  # Christmas Eve
    assert monthly_due_at("2026-12") == datetime(2027, 1, 4, 7, tzinfo=UTC)
    assert monthly_due_at("2026-03") == datetime(2026, 4, 1, 6, tzinfo=UTC)  # summer time


def test_rising_rule() -> None:
    assert is_rising(3, 0, 3, 1.5)
    assert not is_rising(2, 0, 3, 1.5)  # too few: noise is not news
    assert is_rising(6, 4, 3, 1.5)
    assert not is_rising(5, 4, 3, 1.5)
    assert not is_rising(3, 3, 3, 1.0)  # not more than before


def test_ranking_rule_largest_first_ties_in_taxonomy_order() -> None:
    counts = {
        "theme.violence": 2,
        "theme.housing": 2,
        "theme.old_code": 2,  # another taxonomy version: after the known ones of its count
        "theme.income": 5,
        "theme.regional": 0,
    }
    assert [(r.code, r.count) for r in rules.ranked_counts(counts)] == [
        ("theme.income", 5),
        ("theme.housing", 2),
        ("theme.violence", 2),
        ("theme.old_code", 2),
    ]
    # Measures in turn; a pair of codes (a phenomenon) ties by theme, then by signal.
    pairs = [
        (("theme.service_access", "signal.queues"), 3, 1),
        (("theme.violence", "signal.criteria"), 3, 1),
        (("theme.violence", "signal.queues"), 3, 1),
        (("theme.housing", "signal.queues"), 3, 2),
    ]
    assert [p[0] for p in rules.ranked(pairs, lambda p: p[0], lambda p: p[1], lambda p: p[2])] == [
        ("theme.housing", "signal.queues"),
        ("theme.violence", "signal.queues"),
        ("theme.violence", "signal.criteria"),
        ("theme.service_access", "signal.queues"),
    ]


def test_rising_rows_the_largest_rise_first() -> None:
    rows = [
        RisingRow("theme.income", 9, 3.0),  # +6
        RisingRow("theme.housing", 4, 0.0),  # +4, new
        RisingRow("theme.violence", 4, 0.0),  # +4, new: after housing
        RisingRow("theme.regional", 5, 4.0),  # not 1.5 times the average
        RisingRow("theme.other", 2, 0.0),  # too few
    ]
    assert [r.code for r in rules.rising(rows, 3, 1.5)] == [
        "theme.income",
        "theme.housing",
        "theme.violence",
    ]


def test_quote_rule_one_per_theme_then_fill_up() -> None:
    newest_first = [
        Quote("a", "theme.housing"),
        Quote("b", "theme.housing"),
        Quote("  ", "theme.violence"),  # blank: never shown
        Quote("c", "theme.income"),
        Quote("a", "theme.housing"),  # the same words again: shown once
        Quote("d", "theme.housing"),
    ]
    assert [q.text for q in rules.pick_quotes(newest_first, 2)] == ["a", "c"]
    assert [q.text for q in rules.pick_quotes(newest_first, 4)] == ["a", "c", "b", "d"]
    assert rules.pick_quotes([], 3) == []


def test_the_same_quote_is_never_shown_twice_in_one_digest() -> None:
    quotes = [
        Quote("Kukaan ei soittanut takaisin.", "theme.service_access"),
        Quote("kukaan ei  soittanut takaisin.", "theme.housing"),  # same words, other theme
        Quote("Jonossa kuukausia.", "theme.housing"),
    ]
    assert [q.text for q in rules.pick_quotes(quotes, 3)] == [
        "Kukaan ei soittanut takaisin.",
        "Jonossa kuukausia.",
    ]


def test_escalations_grouped_by_theme_largest_group_first() -> None:
    items = [
        item(1, "escalation.leadership", "theme.violence", hel(2026, 11, 1), StatusInfo("open"), 1),
        item(2, "escalation.leadership", "theme.income", hel(2026, 11, 2), StatusInfo("open"), 1),
        item(3, "escalation.leadership", "theme.violence", hel(2026, 11, 3), StatusInfo("open"), 1),
        item(4, "escalation.leadership", "theme.housing", hel(2026, 11, 4), StatusInfo("open"), 1),
    ]
    groups = rules.by_theme(items)
    assert [(g.theme, [i.observation_id for i in g.items]) for g in groups] == [
        ("theme.violence", [1, 3]),
        ("theme.housing", [4]),
        ("theme.income", [2]),
    ]


# --- sample digests ----------------------------------------------------------------------


def item(
    observation_id: int,
    escalation: str,
    theme: str,
    observed_at: datetime,
    status: StatusInfo,
    days_open: int,
    *,
    description: str | None = "Nuori jäi ilman asuntoa, kun tukiasunnon jono venyi.",
    action: str | None = None,
    team: tuple[str, str] = ("hki-etsiva", "Helsingin etsivät"),
) -> EscalationItem:
    return EscalationItem(
        observation_id=observation_id,
        team_id=team[0],
        team_name=team[1],
        region="helsinki",
        escalation=escalation,
        theme=theme,
        population_group="group.youth",
        signal="signal.queues",
        area="kallio",
        description=description,
        action=action,
        observed_at=observed_at,
        recorded_at=observed_at + timedelta(minutes=5),
        status=status,
        days_open=days_open,
    )


def sample_weekly() -> WeeklyDigest:
    start, end = iso_week_bounds("2026-W47")
    return WeeklyDigest(
        team_id="hki-etsiva",
        team_name="Helsingin etsivät",
        language="fi",
        week="2026-W47",
        start=start,
        end=end,
        total=12,
        workers=4,
        # Five active (one only confirmed) against 4.5 a week before: counts are compared.
        activity=Activity(5, 5, (4, 5, 4, 5), 18),
        before_total=33,
        themes=[
            ThemeRow("theme.housing", 5, 2.5),
            ThemeRow("theme.substance_mental", 3, 3.0),
            ThemeRow("theme.income", 2, 0.0),
            ThemeRow("theme.service_access", 2, 1.25),
            ThemeRow("theme.early_support", 0, 1.5),
        ],
        signals=[
            CountRow("signal.queues", 5),
            CountRow("signal.criteria", 3),
            CountRow("signal.mismatch", 2),
            CountRow("signal.no_service", 2),
        ],
        groups=[
            CountRow("group.youth", 6),
            CountRow("group.working_age", 4),
            CountRow("group.immigrants", 2),
        ],
        new_or_growing=[
            NewOrGrowing("theme.housing", 1, 2, True),
            NewOrGrowing("theme.income", 2, 0, True),
        ],
        quotes=[
            Quote('Jonossa <kuukausia> & "ei paikkaa"\n  missään.', "theme.housing"),
            Quote("Kukaan ei soittanut takaisin.", "theme.service_access"),
        ],
        escalations=[
            item(
                101,
                "escalation.leadership",
                "theme.housing",
                hel(2026, 11, 17, 14, 20),
                StatusInfo("open"),
                5,
            ),
            item(
                102,
                "escalation.shl48",
                "theme.substance_mental",
                hel(2026, 11, 19, 9, 5),
                StatusInfo("acknowledged", hel(2026, 11, 19, 10, 0)),
                3,
                description="Asiakas ei saanut <b>lääkitystä</b> kolmeen päivään & kukaan "
                "ei vastannut yhteydenottoihin, vaikka asiasta ilmoitettiin useaan kertaan "
                "sekä puhelimitse että kirjallisesti.",
            ),
        ],
        answers=[
            LeaderAnswer(
                87,
                "theme.income",
                "decided",
                "Toimeentulotuen päivystysaikoja lisätään joulukuusta alkaen <heti>.",
                hel(2026, 11, 20, 15, 45),
            )
        ],
    )


def sample_empty_weekly() -> WeeklyDigest:
    start, end = iso_week_bounds("2026-W53")
    return WeeklyDigest(
        team_id="vaasa-uppsok",
        team_name="Vasa uppsökande",
        language="sv",
        week="2026-W53",
        start=start,
        end=end,
        total=0,
        workers=0,
    )


def sample_monthly() -> MonthlySummary:
    start, end = month_bounds("2026-11")
    other = ("hki-nuoret", "Helsingin nuorten tiimi")
    return MonthlySummary(
        region="helsinki",
        scope_name="Helsinki",
        month="2026-11",
        start=start,
        end=end,
        as_of=end,
        total=142,
        teams=9,
        workers=31,
        escalated=3,
        shl48_count=1,
        # 34 active against 30 a month before (+13 %): counts are compared.
        activity=Activity(34, 120, (30, 31, 29), 350),
        before_total=390,
        leading=[
            SpreadRow("theme.housing", 7, 40),
            SpreadRow("theme.substance_mental", 5, 30),
            SpreadRow("theme.income", 2, 21),
            SpreadRow("theme.service_access", 6, 12),
            SpreadRow("theme.early_support", 3, 9),
        ],
        spread=[
            SpreadRow("theme.housing", 7, 40),
            SpreadRow("theme.service_access", 6, 12),
            SpreadRow("theme.substance_mental", 5, 30),
            SpreadRow("theme.income", 2, 21),
            SpreadRow("theme.violence", 1, 1),
        ],
        rising=[
            RisingRow("theme.housing", 40, 16.0),
            RisingRow("theme.violence", 4, 0.0),
        ],
        escalated_by_theme=[
            ThemeGroup(
                "theme.housing",
                [
                    item(
                        120,
                        "escalation.leadership",
                        "theme.housing",
                        hel(2026, 11, 3, 10, 0),
                        StatusInfo("in_progress", hel(2026, 11, 10, 8, 0)),
                        27,
                        action="Tukiasuntoja lisää =heti, jonotusaika näkyviin.",
                    ),
                    item(
                        131,
                        "escalation.leadership",
                        "theme.housing",
                        hel(2026, 11, 20, 16, 0),
                        StatusInfo("decided", hel(2026, 11, 27, 12, 0), "Otetaan budjettiin."),
                        6,
                        team=other,
                    ),
                ],
            ),
            ThemeGroup(
                "theme.income",
                [
                    item(
                        125,
                        "escalation.leadership",
                        "theme.income",
                        hel(2026, 11, 12, 9, 30),
                        StatusInfo("open"),
                        18,
                        description="Toimeentulotuen päätökset viipyvät yli 7 arkipäivää.",
                        action=None,
                    )
                ],
            ),
        ],
        shl48=[
            item(
                128,
                "escalation.shl48",
                "theme.violence",
                hel(2026, 11, 15, 22, 10),
                StatusInfo("handled", hel(2026, 11, 16, 11, 0)),
                1,
                description="Asumisyksikössä asukasta kohdeltiin kaltoin; ilmoitettu heti.",
            )
        ],
        earlier_open=[
            item(
                77,
                "escalation.leadership",
                "theme.employment_education",
                hel(2026, 8, 28, 13, 0),
                StatusInfo("acknowledged", hel(2026, 9, 2, 9, 0)),
                94,
            ),
            item(
                95,
                "escalation.shl48",
                "theme.other",
                hel(2026, 10, 9, 11, 0),
                StatusInfo("open"),
                52,
                team=other,
            ),
        ],
    )


# --- golden renderings ---------------------------------------------------------------


class _TagChecker(HTMLParser):
    """Fails on any tag outside the Telegram/Matrix subset or left unclosed on its line."""

    ALLOWED = {"b", "i", "blockquote", "code"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag


def assert_lines_well_formed(markup: str) -> None:
    for line in markup.splitlines():
        checker = _TagChecker()
        checker.feed(line)
        checker.close()
        assert checker.stack == [], line


@pytest.mark.parametrize("lang", LANGUAGES)
def test_weekly_golden(lang: str) -> None:
    rendered = render_weekly(sample_weekly(), lang)
    check_golden(f"weekly_{lang}.txt", rendered.text)
    check_golden(f"weekly_{lang}.html", rendered.html)
    assert_lines_well_formed(rendered.html)
    # User text is escaped in HTML and left alone in plain text.
    assert "&lt;kuukausia&gt; &amp; &quot;ei paikkaa&quot;" in rendered.html
    assert "<kuukausia>" in rendered.text and "<kuukausia>" not in rendered.html
    assert "&lt;b&gt;lääkitystä&lt;/b&gt;" in rendered.html
    # Quote newlines are folded so that every item stays on one line.
    assert "missään" in rendered.text and '"ei paikkaa" missään.' in rendered.text
    [(filename, png)] = rendered.charts
    assert filename == "themes-hki-etsiva-2026-W47.png"
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_empty_week_is_two_lines(lang: str) -> None:
    rendered = render_weekly(sample_empty_weekly(), lang)
    check_golden(f"weekly_empty_{lang}.txt", rendered.text)
    assert len(rendered.text.splitlines()) == 2
    assert len(rendered.html.splitlines()) == 2
    assert rendered.charts == []
    assert "53" in rendered.text and "2027" in rendered.text  # 28 Dec 2026 – 3 Jan 2027


def test_empty_week_still_shows_answers_from_leadership() -> None:
    digest = replace(
        sample_empty_weekly(),
        answers=[LeaderAnswer(5, "theme.housing", "handled", "Korjattu.", hel(2026, 12, 30, 9))],
    )
    rendered = render_weekly(digest, "fi")
    assert rendered.text.splitlines()[1].startswith("Tällä viikolla ei kirjattu")
    assert "Korjattu." in rendered.text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_monthly_golden(lang: str) -> None:
    rendered = render_monthly(sample_monthly(), lang)
    check_golden(f"monthly_{lang}.txt", rendered.text)
    check_golden(f"monthly_{lang}.html", rendered.html)
    assert_lines_well_formed(rendered.html)
    assert rendered.csv is not None
    check_golden(f"monthly_{lang}.csv", rendered.csv)
    assert rendered.csv_filename == "escalations-helsinki-2026-11.csv"
    [(filename, png)] = rendered.charts
    assert filename == "themes-helsinki-2026-11.png"
    assert png.startswith(b"\x89PNG")


def test_a_long_backlog_names_the_five_oldest_and_attaches_the_rest() -> None:
    summary = sample_monthly()
    backlog = [
        replace(
            summary.earlier_open[0], observation_id=500 + i, observed_at=hel(2025, 1, 1 + i % 28)
        )
        for i in range(45)
    ]
    rendered = render_monthly(replace(summary, earlier_open=backlog), "fi")
    assert "#504 · " in rendered.text and "#505 · " not in rendered.text
    assert "ja 40 muuta liitteenä" in rendered.text
    assert rendered.csv is not None
    rows = list(csv.reader(io.StringIO(rendered.csv.decode("utf-8-sig")), delimiter=";"))[1:]
    assert [r[0] for r in rows].count("earlier_open") == 45
    assert [r[0] for r in rows].count("this_month") == 4


def test_monthly_for_the_whole_organisation_with_nothing_escalated() -> None:
    start, end = month_bounds("2026-02")
    summary = MonthlySummary(
        region=None,
        scope_name="",
        month="2026-02",
        start=start,
        end=end,
        as_of=end,
        total=0,
        teams=0,
        workers=0,
        escalated=0,
        shl48_count=0,
    )
    rendered = render_monthly(summary, "en")
    assert rendered.text.splitlines()[0] == "Monthly summary · whole organisation · February 2026"
    assert "No observations were raised to leadership this month." in rendered.text
    assert "No notices of a grievance (Supervision Act § 29) this month." in rendered.text
    assert "No earlier escalations are open." in rendered.text
    assert "No rising phenomena." in rendered.text
    assert rendered.csv is None and rendered.charts == []


def test_no_worker_is_named_or_counted_apart() -> None:
    """The digest model has no field that could carry a person; the renderings none either."""
    for cls in (WeeklyDigest, MonthlySummary, EscalationItem, LeaderAnswer, Quote):
        fields = set(cls.__dataclass_fields__)
        assert not {"person_id", "pseudonym", "actor_person_id", "worker"} & fields, cls


def test_every_escalation_status_has_one_name_in_every_output() -> None:
    """A status is spelled the same in notices, digests, the report, exports and the pack:
    one catalog names it (``flows.statuses.status_label``), no other catalog has a copy."""
    from flows.statuses import ESCALATION_STATUSES, STATUS_DOMAIN, status_label

    assert OPEN_STATUSES < set(ESCALATION_STATUSES)
    for lang in LANGUAGES:
        names = {status_label(lang, status) for status in ESCALATION_STATUSES}
        assert len(names) == len(ESCALATION_STATUSES), lang
        for status in ESCALATION_STATUSES:
            assert _catalog(lang, STATUS_DOMAIN).get(f"status.{status}") is not None
            for domain in ("digests", "datacare", "havainto", "knowledge"):
                assert _catalog(lang, domain).get(f"status.{status}") is None, (lang, domain)
    assert status_label("fi", "in_progress") == "Käsittelyssä"
    assert status_label("sv", "in_progress") == "Under behandling"


def test_every_message_exists_in_every_language() -> None:
    keys = {str(m.id) for m in _catalog("fi", "digests") if m.id}
    assert len(keys) > 50
    for lang in LANGUAGES:
        catalog = _catalog(lang, "digests")
        other = {str(m.id) for m in catalog if m.id}
        assert other == keys, lang
        for key in keys:
            message = catalog.get(key)
            assert message is not None and message.string, (lang, key)


# --- long digests --------------------------------------------------------------------


def long_weekly() -> WeeklyDigest:
    base = sample_weekly()
    many = [
        replace(
            base.escalations[0],
            observation_id=1000 + i,
            description=f"Havainto {i}: " + "jono venyy ja tukea ei saa " * 4,
        )
        for i in range(60)
    ]
    return replace(base, escalations=many)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_long_digest_splits_into_well_formed_pieces(lang: str) -> None:
    rendered = render_weekly(long_weekly(), lang)
    assert len(rendered.html) > 4096
    pieces = split_text(rendered.html, 4096)
    assert len(pieces) >= 2
    for piece in pieces:
        assert len(piece) <= 4096
        assert_lines_well_formed(piece)
    # Nothing is lost: the pieces hold every line of the digest.
    assert [line for p in pieces for line in p.splitlines() if line] == [
        line for line in rendered.html.splitlines() if line
    ]
    # The first cut falls between sections, not inside one.
    assert pieces[0].endswith(rendered.html.split("\n\n")[pieces[0].count("\n\n")].strip())


# --- charts and CSV ------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_charts_are_small_fast_and_deterministic() -> None:
    labels = ["Asuminen ja asunnottomuus", "Sosiaaliset suhteet ja osallisuus", "Muu teema"] * 4
    kwargs = {"title": "Teemat", "this_week_label": "Viikko 47", "average_label": "Keskiarvo"}
    charts.weekly_themes_chart(labels, list(range(12)), [0.5] * 12, **kwargs)  # warm-up
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        first = charts.weekly_themes_chart(labels, list(range(12)), [0.5] * 12, **kwargs)
        timings.append(time.perf_counter() - started)
    second = charts.weekly_themes_chart(labels, list(range(12)), [0.5] * 12, **kwargs)
    assert first == second
    assert len(first) < 100_000
    # ~0.15 s for this largest chart on a quiet machine. Not a benchmark: the best of
    # three with a wide margin only catches a pathological slowdown on a busy CI machine.
    assert min(timings) < 1.5
    width, height = png_size(first)
    assert width == 800 and height > 500
    monthly = charts.monthly_themes_chart(
        labels[:5],
        [40, 30, 20, 10, 5],
        [7, 5, 6, 2, 1],
        title="T",
        count_label="A",
        teams_label="B",
    )
    assert monthly.startswith(b"\x89PNG") and len(monthly) < 100_000
    # All zeros still draw.
    assert charts.weekly_themes_chart(["x"], [0], [0.0], **kwargs).startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        charts.weekly_themes_chart(["x"], [1, 2], [0.0], **kwargs)


def pixels(png: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)


WEEKLY_TEXTS = {"title": "Teemat", "this_week_label": "Viikko 47", "average_label": "Keskiarvo"}


def test_weekly_chart_layout_bars_labels_and_numbers() -> None:
    """Rows top down in the given order, bars of the right length, the count at each bar
    end, no value axis; the image is as tall as its rows."""
    png = charts.weekly_themes_chart(
        ["Asuminen", "Toimeentulo"], [8, 2], [4.0, 0.0], number=lambda v: f"{v:g}", **WEEKLY_TEXTS
    )
    image = pixels(png)
    head, row, left = charts._HEAD_PX, charts._ROW_PX, charts._LABELS_PX
    assert image.shape == (head + 2 * row + charts._FOOT_PX, 800, 3)
    middle = head + row // 2  # the first row's two bars meet here
    this_week = image[middle - 8, left + 2 :]
    # The this-week bar of row 0 (8, the longest) is blue from the axis to its end, then
    # white but for its number.
    blue = np.all(this_week == rgb(charts.THIS_COLOUR), axis=1)
    end = int(np.argmin(blue))
    assert blue[:end].all() and end > 400
    average = np.all(image[middle + 8, left + 2 :] == rgb(charts.AVERAGE_COLOUR), axis=1)
    assert abs(int(np.argmin(average)) - end / 2) <= 2  # 4.0 is half of 8
    # Numbers: dark pixels just right of each bar end; none far right of them.
    number = image[middle - 14 : middle - 2, left + end + 4 : left + end + 40]
    assert (number.min(axis=2) < 128).any()
    # Row 1: "2" against an empty average, which is written "0" at the axis.
    second = head + row + row // 2
    assert (image[second + 2 : second + 14, left + 4 : left + 20].min(axis=2) < 128).any()
    # Labels: dark pixels in the label column of both rows, right-aligned near the bars.
    for top in (head, head + row):
        column = image[top : top + row, : left - charts._LABEL_PAD_PX + 1]
        assert (column.min(axis=2) < 128).any()
        assert (column[:, -40:].min(axis=2) < 128).any()
    # No value axis below the bars: the foot is white.
    assert (image[head + 2 * row + 1 :, left + 10 :] == 255).all()


def test_weekly_chart_is_the_same_with_cold_or_warm_caches_and_from_threads() -> None:
    args = (["Asuminen ja asunnottomuus", "Muu teema", "Toimeentulo"], [3, 1, 0], [1.25, 0, 2])
    charts.clear_caches()
    cold = charts.weekly_themes_chart(*args, **WEEKLY_TEXTS)
    # Other charts in between: other labels, texts, sizes and numbers.
    charts.weekly_themes_chart(["Muu teema"], [40], [12.5], **WEEKLY_TEXTS)
    charts.weekly_themes_chart(
        ["x", "y"], [1, 2], [0.5, 0], title="Teman", this_week_label="V", average_label="M"
    )
    assert charts.weekly_themes_chart(*args, **WEEKLY_TEXTS) == cold
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda i: charts.weekly_themes_chart(
                    args[0][i % 3 :], args[1][i % 3 :], args[2][i % 3 :], **WEEKLY_TEXTS
                ),
                range(24),
            )
        )
    for i, png in enumerate(results):
        expected = charts.weekly_themes_chart(
            args[0][i % 3 :], args[1][i % 3 :], args[2][i % 3 :], **WEEKLY_TEXTS
        )
        assert png == expected
    assert results[0] == cold


def test_weekly_chart_caches_are_bounded() -> None:
    canvas = charts._weekly_canvas(1)
    for i in range(charts._LABEL_TILES + 10):
        charts.weekly_themes_chart([f"teema {i}"], [i], [i / 4], **WEEKLY_TEXTS)
    for i in range(charts._FRAMES + 3):
        charts.weekly_themes_chart(["x"], [1], [1.0], **{**WEEKLY_TEXTS, "title": f"Viikko {i}"})
    assert len(canvas.labels) == charts._LABEL_TILES
    assert len(canvas.frames) == charts._FRAMES
    assert len(canvas.numbers) <= charts._NUMBER_TILES
    # A label too long for its row ends in an ellipsis instead of spilling over.
    assert charts._wrap("sana " * 40, charts._MAX_LABEL_LINES).endswith("…")
    assert charts._wrap("sana " * 40, charts._MAX_LABEL_LINES).count("\n") == 1


def test_charts_leave_no_pyplot_state() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    render_weekly(sample_weekly(), "fi")
    render_monthly(sample_monthly(), "sv")
    assert plt.get_fignums() == before


DRAWING_LIBRARIES = ("matplotlib", "PIL", "weasyprint")


def test_importing_storage_loads_no_drawing_library() -> None:
    """The queries import the digest data classes, never the renderers' libraries."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, storage.digest_queries, storage.report_queries, storage.export; "
            "assert not any(m.split('.')[0] in ('matplotlib','PIL','weasyprint') "
            "for m in sys.modules)",
        ],
        check=True,
        cwd=ROOT,
    )
    # Every module of storage, and the digest modules that hold data and rules only.
    script = f"""
import importlib, pkgutil, sys
import storage
for found in pkgutil.iter_modules(storage.__path__):
    importlib.import_module("storage." + found.name)
import digests, digests.model, digests.periods, digests.render, digests.report
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {DRAWING_LIBRARIES!r})
assert not loaded, loaded[:5]
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_one_rule_for_text_cells_of_every_csv_file() -> None:
    from digests.spreadsheet import safe_cell
    from storage.export import _csv_value

    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_cell(f"{start}1+1") == f"'{start}1+1"
        assert _csv_value("description", f"{start}1+1") == f"'{start}1+1"
    assert safe_cell("") == ""
    assert safe_cell("Kela 1+1") == "Kela 1+1"
    assert _csv_value("team", "-team") == "-team"  # an id from the configuration, not free text


def test_csv_is_excel_friendly_and_defuses_formulas() -> None:
    summary = sample_monthly()
    data = escalations_csv([("this_month", i) for i in summary.escalated_items], "fi")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [r["observation_id"] for r in body] == ["120", "125", "128", "131"]
    assert {r["listed_as"] for r in body} == {"this_month"}
    first = body[0]
    assert first["theme"] == "theme.housing"
    assert first["theme_label"] == "Asuminen ja asunnottomuus"
    assert first["status"] == "in_progress" and first["status_label"] == "Käsittelyssä"
    assert first["observed_at"] == "2026-11-03T10:00+02:00"
    assert first["proposed_action"] == "Tukiasuntoja lisää =heti, jonotusaika näkyviin."
    assert body[2]["escalation"] == "escalation.shl48" and body[2]["days_open"] == "1"
    assert body[3]["answer"] == "Otetaan budjettiin."
    dangerous = replace(summary.shl48[0], description='=HYPERLINK("http://x")', action="-1")
    text = escalations_csv([("this_month", dangerous)], "en").decode("utf-8-sig")
    row = list(csv.reader(io.StringIO(text), delimiter=";"))[1]
    values = dict(zip(CSV_COLUMNS, row, strict=True))
    assert values["description"] == '\'=HYPERLINK("http://x")'
    assert values["proposed_action"] == "'-1"


def test_open_phenomena_show_fewer_than_three_confirmers_as_a_few() -> None:
    lines = [
        PhenomenonLine(4, "Yömajat täynnä", 6, 2),
        PhenomenonLine(5, "Kotihoidon käynnit lyhyet", 3, 7),
    ]
    digest = replace(sample_weekly(), open_phenomena=lines)
    for lang, few, many in (
        ("fi", "muutama vahvistus", "7 vahvistusta"),
        ("sv", "några bekräftelser", "7 bekräftelser"),
        ("en", "a few confirmations", "7 confirmations"),
    ):
        text = render_weekly(digest, lang).text
        first = next(line for line in text.splitlines() if "Yömajat täynnä" in line)
        second = next(line for line in text.splitlines() if "Kotihoidon käynnit" in line)
        assert few in first and "2" not in first.split(":", 1)[1], first
        assert many in second, second
