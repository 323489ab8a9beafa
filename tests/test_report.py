"""The social report: figures from the database, the model, HTML, and the printed PDF."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from PIL import Image, ImageStat

from bot.config import Config
from digests.numbers import Privacy
from digests.report import (
    EscalationLine,
    QuoteLine,
    ReportFigures,
    build_report,
    render_html,
    render_pdf,
    social_report,
)
from flows.i18n import label, t
from flows.statuses import status_label
from storage.report_queries import report_figures
from tests.support.datacare_helpers import World, seed

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Helsinki")
HEADINGS = (
    "report.title",
    "report.section.summary",
    "report.section.themes",
    "report.section.signals",
    "report.section.groups",
    "report.section.rising",
    "report.section.escalations",
    "report.section.quotes",
)


def heading(lang: str, key: str) -> str:
    return t(lang, key, domain="datacare")


def figures(**changes: object) -> ReportFigures:
    values: dict[str, object] = {
        "region": "helsinki",
        "region_name": "Helsinki",
        "start": date(2026, 1, 1),
        "end": date(2026, 6, 30),
        "total": 20,
        "previous_total": 10,
        "good_practices": 2,
        "marked_growing": 4,
        "teams": 2,
        "workers": 5,
        "themes": {"theme.housing": 12, "theme.income": 8},
        "previous_themes": {"theme.housing": 6, "theme.income": 8, "theme.violence": 2},
        "signals": {"signal.queues": 15, "signal.criteria": 5},
        "groups": {"group.youth": 20},
        "combos": {("theme.housing", "signal.queues"): 9, ("theme.income", "signal.queues"): 2},
        "previous_combos": {("theme.housing", "signal.queues"): 3},
        "monthly": [(date(2026, m, 1), 3 + m % 2) for m in range(1, 7)],
        "escalations": [
            EscalationLine(
                7, date(2026, 2, 1), "escalation.shl48", "theme.violence", "handled", "Korjattu."
            ),
            EscalationLine(
                9, date(2026, 3, 1), "escalation.leadership", "theme.housing", "open", None
            ),
        ],
        "quotes": [QuoteLine("Ei <b>mitään</b> paikkaa.", "theme.housing", date(2026, 4, 2))],
        "escalated": 2,
        "shl48": 1,
    }
    values.update(changes)
    return ReportFigures(**values)  # type: ignore[arg-type]


def plain(text: str) -> str:
    """Non-breaking spaces as plain ones, for comparing."""
    return " ".join(text.split())


def test_model_orders_rows_and_computes_trends() -> None:
    # The arithmetic, with nothing hidden (what is hidden: test_small_counts_are_hidden...).
    report = build_report(figures(), "fi", date(2026, 7, 1), Privacy(suppress=False))
    assert [r.code for r in report.themes] == ["theme.housing", "theme.income", "theme.violence"]
    housing, income, violence = report.themes
    assert housing.label == label("theme.housing", "fi")
    assert (housing.count, housing.previous, plain(housing.change)) == (12, 6, "+100 %")
    assert plain(income.change) == "+0 %"
    assert (violence.count, plain(violence.change)) == (0, "-100 %")
    assert plain(housing.share) == "60 %"
    assert [r.theme for r in report.rising] == [
        label("theme.housing", "fi"),
        label("theme.income", "fi"),
    ]
    assert report.rising[0].count == 9 and report.rising[0].previous == 3
    assert report.rising[1].change == t("fi", "report.new", domain="datacare")
    assert report.problems == 18
    assert report.escalations[0].status == status_label("fi", "handled") == "Käsitelty"
    assert report.escalations[1].response == t("fi", "report.no_response", domain="datacare")


def test_small_counts_are_hidden_and_cannot_be_worked_back() -> None:
    report = build_report(figures(teams=7), "fi", date(2026, 7, 1))
    housing, income, violence = report.themes
    # Before: violence 2 is small; housing 6, the next-smallest, is hidden with it, so the
    # printed previous total (10) minus income (8) is the sum of two hidden counts.
    assert (plain(violence.previous_text), plain(housing.previous_text)) == ("< 5", "< 5")
    assert income.previous_text == "8" and plain(housing.change) == "–"
    assert (housing.count_text, housing.previous_drawn, housing.drawn) == ("12", 0, 12)
    # Income-queues, 2 now and none before: its count and its change are not printed.
    assert plain(report.rising[1].count_text) == "< 5" and report.rising[1].change == "–"
    # Good practices 2: hidden, and problems (18 of 20) with it.
    assert plain(report.shown["good_practices"]) == plain(report.shown["problems"]) == "< 5"
    assert plain(report.shown["marked_growing"]) == "< 5"
    assert report.shown["workers"] == "5" and report.shown["total"] == "20"
    # Every month has 3 or 4: all hidden, and drawn as nothing.
    assert all(n == 0 for _, n in report.monthly_drawn)
    html = render_html(report)
    assert ">2<" not in html and ">18<" not in html and "< 5" in plain(html).replace("&lt;", "<")
    # A quote of a theme with fewer than five observations is left out.
    few = build_report(
        figures(quotes=[QuoteLine("Ei apua.", "theme.violence", date(2026, 4, 2))]),
        "fi",
        date(2026, 7, 1),
    )
    assert few.quotes == []


def test_rising_and_quotes_follow_the_digest_rules() -> None:
    report = build_report(
        figures(
            combos={
                ("theme.service_access", "signal.queues"): 2,
                ("theme.violence", "signal.queues"): 2,
                ("theme.housing", "signal.criteria"): 1,  # too few
                ("theme.income", "signal.queues"): 4,  # no more than before
            },
            previous_combos={("theme.income", "signal.queues"): 4},
            quotes=[
                QuoteLine("a", "theme.housing", date(2026, 4, 2)),
                QuoteLine("b", "theme.housing", date(2026, 4, 3)),
                QuoteLine("c", "theme.income", date(2026, 4, 1)),
            ],
        ),
        "en",
        date(2026, 7, 1),
    )
    # Equal rises in taxonomy order, as in the monthly summary (digests.rules.rising).
    assert [r.theme for r in report.rising] == [
        label("theme.violence", "en"),
        label("theme.service_access", "en"),
    ]
    # Newest first, one per theme, then filled up (digests.rules.pick_quotes).
    assert [q.text for q in report.quotes] == ["b", "c", "a"]


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_html_has_every_heading_and_escapes_text(lang: str) -> None:
    html = render_html(social_report(figures(), lang, date(2026, 7, 1)))
    for key in HEADINGS:
        assert escape(heading(lang, key)) in html
    assert escape(label("signal.queues", lang)) in html
    assert "Ei &lt;b&gt;mitään&lt;/b&gt; paikkaa." in html
    assert "<b>mitään" not in html
    assert html.count("data:image/png;base64,") == 3  # themes, signals, months
    assert f'<html lang="{lang}">' in html


def test_empty_period_still_renders() -> None:
    empty = figures(
        total=0,
        previous_total=0,
        good_practices=0,
        marked_growing=0,
        themes={},
        previous_themes={},
        signals={},
        groups={},
        combos={},
        previous_combos={},
        monthly=[],
        escalations=[],
        quotes=[],
        escalated=0,
        shl48=0,
    )
    html = render_html(social_report(empty, "en", date(2026, 7, 1)))
    assert heading("en", "report.none") in html
    assert heading("en", "report.no_escalations") in html
    assert "data:image" not in html


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    w = await seed(make_config(), NOW)
    yield w
    await w.db.close()


async def test_figures_from_the_database(world: World) -> None:
    async with world.db.transaction() as session:
        got = await report_figures(
            session, "helsinki", "Helsinki", date(2026, 10, 24), date(2026, 11, 23), ZONE
        )
    # In the last 31 days: housing, shl48, leadership, good, ben1 (withdrawn excluded).
    assert got.total == 5
    assert got.previous_total == 0  # the old entry is 800 days back
    assert got.workers == 2 and got.teams == 1
    assert got.good_practices == 1
    assert got.marked_growing == 2  # growing + new
    assert got.themes == {
        "theme.housing": 2,
        "theme.violence": 1,
        "theme.substance_mental": 1,
        "theme.early_support": 1,
    }
    assert got.escalated == 2 and got.shl48 == 1
    assert sum(count for _, count in got.monthly) == 5
    assert [m for m, _ in got.monthly] == [date(2026, 10, 1), date(2026, 11, 1)]
    by_id = {e.observation_id: e for e in got.escalations}
    shl48 = by_id[world.observations["shl48"]]
    assert (shl48.status, shl48.response) == ("handled", "Ohjeistus korjattu, asia käsitelty.")
    assert by_id[world.observations["leadership"]].status == "open"
    assert [q.text for q in got.quotes] == ["Mä oon jonottanut vuoden."]
    # Pohjanmaa is another region: none of its entries are here.
    async with world.db.transaction() as session:
        vaasa = await report_figures(
            session, "pohjanmaa", "Pohjanmaa", date(2026, 10, 24), date(2026, 11, 23), ZONE
        )
    assert vaasa.total == 2 and vaasa.themes == {"theme.income": 2}


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (pdftoppm)")
def test_pdf_pages_are_not_blank_and_carry_the_headings(tmp_path: Path) -> None:
    figs = figures()
    pdf = render_pdf(render_html(social_report(figs, "fi", date(2026, 7, 1))))
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    for page in pages:
        with Image.open(page) as image:
            grey = image.convert("L")
            # A blank page is all white: no dark pixels and no variation.
            assert grey.getextrema()[0] < 100, page.name
            assert ImageStat.Stat(grey).stddev[0] > 5, page.name
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    for key in HEADINGS:
        assert heading("fi", key) in text, key
    first_page = subprocess.run(
        ["pdftotext", "-l", "1", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert heading("fi", "report.title") in first_page
    assert heading("fi", "report.section.summary") in first_page
