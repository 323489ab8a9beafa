"""The social report: figures from the database, the model, HTML, and the printed PDF."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from PIL import Image, ImageStat

from bot.config import Config
from digests.model import Activity
from digests.numbers import Privacy
from digests.report import (
    ComparisonFigures,
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
from storage.models import Confirmation
from storage.report_queries import report_figures
from tests.support.datacare_helpers import World, enrol, seed

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
    # printed previous total minus income (8) is the sum of two hidden counts. Housing is
    # not fewer than five: it prints as "–", never as a false "< 5".
    assert (plain(violence.previous_text), plain(housing.previous_text)) == ("< 5", "–")
    assert income.previous_text == "8" and plain(housing.change) == "–"
    assert (housing.count_text, housing.previous_drawn, housing.drawn) == ("12", 0, 12)
    # Income-queues, 2 now and none before: its count and its change are not printed.
    assert plain(report.rising[1].count_text) == "< 5" and report.rising[1].change == "–"
    # Good practices 2: hidden, and problems (18 of 20) with it: "–", not a false "< 5".
    assert plain(report.shown["good_practices"]) == "< 5"
    assert plain(report.shown["problems"]) == "–"
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


# --- the comparison section ("Vertailu") --------------------------------------------------

COMPARED = ComparisonFigures(
    # 8 workers in 60 worker-weeks now, 6 in 50 in the previous period (+33 %: rates).
    activity=Activity(8, 60, (6,), 50),
    organisation_total=200,
    organisation_themes={
        "theme.housing": 90,
        "theme.income": 60,
        "theme.violence": 3,
        "theme.other": 47,
    },
    organisation_workers=30,
    organisation_worker_weeks=250,
)


def comparison_rows(html: str) -> list[list[str]]:
    """The comparison section's table rows as printed (spaces made plain)."""
    import re

    section = html.split('<h2 id="comparison">', 1)[1].split("<h2 ", 1)[0]
    return [
        [plain(cell).replace("&lt;", "<") for cell in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
        for row in re.findall(r"<tr><td>.*?</tr>", section)
    ]


def test_comparison_section_in_counts_and_rates() -> None:
    report = build_report(figures(comparison=COMPARED), "fi", date(2026, 7, 1))
    assert report.comparison is not None
    html = render_html(report)
    assert '<h2 id="comparison">Vertailu</h2>' in html
    assert comparison_rows(html) == [
        # this period, the previous period, change, the whole organisation
        ["Havainnot", "20", "10", "+100 %", "200"],
        ["Aktiiviset työntekijät", "8", "6", "+33 %", "30"],
        ["Aktiiviset työntekijäviikot", "60", "50", "+20 %", "250"],
        # 20 / 60, 10 / 50, 0.33 against 0.2, 200 / 250
        ["Havaintoja / aktiivinen työntekijäviikko", "0,33", "0,2", "+67 %", "0,8"],
        # theme, count, rate now, rate before, rate of the organisation. Before, violence 2
        # is small and housing 6 hidden with it; in the organisation violence 3, and
        # "other" (47, the next smallest) with it: their rates are not printed either.
        ["Asuminen ja asunnottomuus", "12", "0,2", "–", "0,36"],
        ["Toimeentulo", "8", "0,13", "0,16", "0,24"],
        ["Väkivalta ja kaltoinkohtelu", "0", "0", "–", "–"],
    ]
    # Active workers changed by more than 20 %: the rising phenomena went by rates.
    assert "nousevat ilmiöt on valittu ja niiden muutos laskettu havaintoina" in plain(html)


def test_comparison_hides_rates_of_few_workers_and_small_counts() -> None:
    few = ComparisonFigures(
        activity=Activity(4, 9, (3,), 7),
        organisation_total=3,
        organisation_themes={"theme.housing": 3},
        organisation_workers=2,
        organisation_worker_weeks=4,
    )
    report = build_report(figures(comparison=few), "en", date(2026, 7, 1))
    rows = comparison_rows(render_html(report))
    assert rows[:4] == [
        ["Observations", "20", "10", "+100%", "< 5"],
        ["Active workers", "< 5", "< 5", "–", "< 5"],
        ["Active worker-weeks", "9", "7", "+29%", "< 5"],
        ["Observations per active worker-week", "–", "–", "–", "–"],
    ]
    assert all(row[2:] == ["–", "–", "–"] for row in rows[4:])


def test_rising_goes_by_rates_when_the_workers_changed() -> None:
    open_ = Privacy(suppress=False)
    by_rate = build_report(figures(comparison=COMPARED), "fi", date(2026, 7, 1), open_)
    by_count = build_report(figures(), "fi", date(2026, 7, 1), open_)
    # Housing-queues 9 now, 3 before: +200 % in counts; in rates 9 / 60 against 3 / 50.
    assert plain(by_count.rising[0].change) == "+200 %"
    assert plain(by_rate.rising[0].change) == "+150 %"
    # Seven workers against six (+17 %): counts again.
    steady = replace_activity(COMPARED, Activity(7, 60, (6,), 50))
    same = build_report(figures(comparison=steady), "fi", date(2026, 7, 1), open_)
    assert plain(same.rising[0].change) == "+200 %"
    assert same.comparison is not None and len(same.comparison.notes) == 1


def replace_activity(compared: ComparisonFigures, activity: Activity) -> ComparisonFigures:
    from dataclasses import replace

    return replace(compared, activity=activity)


async def test_comparison_figures_from_the_database(world: World) -> None:
    # Dora only confirms an entry (Wednesday 11 November, W46): she is active.
    dora = await enrol(world, "dora", "hki-etsiva", NOW - timedelta(days=400))
    async with world.db.transaction() as session:
        session.add(
            Confirmation(
                person_id=dora.person_id,
                team_id="hki-etsiva",
                kind="me_too",
                observation_id=world.observations["housing"],
                created_at=NOW - timedelta(days=12),
            )
        )
    async with world.db.transaction() as session:
        got = await report_figures(
            session, "helsinki", "Helsinki", date(2026, 10, 24), date(2026, 11, 23), ZONE
        )
    assert got.comparison is not None
    # Helsinki: anna in W45 (3 Nov), W46 (13 Nov) and W47 (18 and 20 Nov), ben in W47
    # (19 Nov; his withdrawn entry never counts), dora in W46; nobody before.
    assert got.comparison.activity == Activity(3, 5, (0,), 0)
    # The organisation adds cecilia (Pohjanmaa, 17 and 21 Nov: one worker-week).
    assert (
        got.comparison.organisation_total,
        got.comparison.organisation_workers,
        got.comparison.organisation_worker_weeks,
    ) == (7, 4, 6)
    assert got.comparison.organisation_themes == {
        "theme.housing": 2,
        "theme.violence": 1,
        "theme.substance_mental": 1,
        "theme.early_support": 1,
        "theme.income": 2,
    }
    html = render_html(build_report(got, "sv", date(2026, 11, 23), Privacy(min_cell=1)))
    assert comparison_rows(html)[:4] == [
        ["Iakttagelser", "5", "0", "ny", "7"],
        ["Aktiva medarbetare", "3", "0", "ny", "4"],
        ["Aktiva medarbetarveckor", "5", "0", "ny", "6"],
        ["Iakttagelser / aktiv medarbetarvecka", "1", "–", "–", "1,17"],
    ]


# --- a team's comparison: the team against its region and the organisation -------------


def two_teams(make_config: Callable[..., Config], **overrides: object) -> Config:
    """The test config with a second Helsinki team, "hki-toinen"."""
    import copy

    from tests.conftest import TEST_TEAMS

    teams = copy.deepcopy(TEST_TEAMS)
    teams.append(
        {
            "id": "hki-toinen",
            "name": "Toinen tiimi",
            "region": "helsinki",
            "language": "fi",
            "chats": {"telegram": "-1009"},
            "leadership": "hki-johto",
        }
    )
    return make_config(teams=teams, **overrides)


async def test_a_team_is_compared_with_its_region_and_the_organisation(
    make_config: Callable[..., Config],
) -> None:
    from bot.reports import gather_figures, report_scope
    from tests.support.datacare_helpers import add, observation

    cfg = two_teams(make_config)
    world = await seed(cfg, NOW)
    try:
        # Six workers of the second Helsinki team, three entries each in the period.
        for i in range(6):
            member = await enrol(world, f"toinen{i}", "hki-toinen", NOW - timedelta(days=400))
            for j in range(3):
                when = NOW - timedelta(days=5 + j)
                await add(world, f"toinen{i}-{j}", observation(member, when, "helsinki"))
        start, end = date(2026, 10, 24), date(2026, 11, 30)
        async with world.db.snapshot() as session:
            team = await gather_figures(
                session, cfg, report_scope(cfg, team="hki-etsiva"), start, end, "en"
            )
            organisation = await gather_figures(session, cfg, report_scope(cfg), start, end, "en")
    finally:
        await world.db.close()
    assert team.comparison is not None and organisation.comparison is not None
    # hki-etsiva: anna and ben wrote 5 (ben's withdrawn entry never counts); two workers
    # in four worker-weeks, its own, not the region's eight workers.
    assert team.total == 5
    assert team.comparison.activity == Activity(2, 4, (0,), 0)
    region = team.comparison.region
    assert region is not None and (region.total, region.workers, region.worker_weeks) == (
        23,
        8,
        10,
    )
    assert team.comparison.region_name == "Helsinki"
    html = render_html(build_report(team, "en", date(2026, 12, 1), Privacy(min_cell=1)))
    rows = comparison_rows(html)
    # now, before, change, the region, the whole organisation
    assert rows[:4] == [
        ["Observations", "5", "0", "new", "23", "25"],
        ["Active workers", "2", "0", "new", "8", "9"],
        ["Active worker-weeks", "4", "0", "new", "10", "11"],
        ["Observations per active worker-week", "1.25", "–", "–", "2.3", "2.27"],
    ]
    assert "Region: Helsinki" in html
    # For leadership the team's two workers are "< 5" and its rate is not shown.
    leaders = comparison_rows(render_html(build_report(team, "en", date(2026, 12, 1))))
    assert leaders[1] == ["Active workers", "< 5", "0", "–", "8", "9"]
    assert leaders[3][1] == "–"
    # The organisation's report is not compared with itself: the previous period only.
    assert organisation.comparison.of_organisation and organisation.comparison.region is None
    whole = render_html(build_report(organisation, "en", date(2026, 12, 1), Privacy(min_cell=1)))
    assert comparison_rows(whole)[0] == ["Observations", "25", "0", "new"]
    assert "Whole organisation" not in whole.split('<h2 id="comparison">', 1)[1].split("<h2 ")[0]


async def test_the_report_carries_municipality_numbers_and_region_codes(
    make_config: Callable[..., Config],
) -> None:
    """The area table prints an area's municipality number beside its name; the appendix
    has the region's official code and the area's municipality number, as the monthly
    escalations CSV has them (``digests.spreadsheet.official_cells``)."""
    import copy

    from bot.reports import gather_figures, report_scope
    from digests.report import appendix_rows
    from digests.report_sections import appendix_csv
    from tests.conftest import TEST_TEAMS
    from tests.support.datacare_helpers import add, observation

    teams = copy.deepcopy(TEST_TEAMS)
    teams[0]["areas"][0]["municipality"] = "091"  # Kallio; Itäkeskus has none
    cfg = make_config(teams=teams, regions={"helsinki": {"name": "Helsinki", "code": "90"}})
    world = await seed(cfg, NOW)
    try:
        member = await enrol(world, "kalle", "hki-etsiva", NOW - timedelta(days=400))
        for i in range(6):
            area = "kallio" if i < 5 else "itakeskus"
            values = observation(member, NOW - timedelta(days=3), "helsinki", area=area)
            if i == 0:
                values["escalation"] = "escalation.leadership"
            await add(world, f"area{i}", values)
        async with world.db.snapshot() as session:
            got = await gather_figures(
                session,
                cfg,
                report_scope(cfg, region="helsinki"),
                date(2026, 10, 24),
                date(2026, 11, 30),
                "fi",
            )
    finally:
        await world.db.close()
    report = build_report(got, "fi", date(2026, 12, 1))
    assert report.sections is not None
    areas = {row.label: plain(row.count) for row in report.sections.areas}
    assert areas["Kallio (091)"] == "6"  # the five above and one of the seed
    assert "Itäkeskus" in areas  # no municipality number configured: the name alone
    csv = appendix_csv(appendix_rows(got.escalations), "fi", codes=got.codes)
    lines = csv.decode("utf-8-sig").splitlines()
    header = lines[0].split(";")
    assert {"region", "region_code", "area", "municipality"} <= set(header)
    rows = [dict(zip(header, line.split(";"), strict=False)) for line in lines[1:]]
    kallio = [r for r in rows if r["area"] == "kallio"]
    assert kallio and all(
        (r["region"], r["region_code"], r["municipality"]) == ("helsinki", "90", "091")
        for r in kallio
    )
    # The seeded escalations without an area: the region's code, no municipality.
    assert all(r["region_code"] == "90" for r in rows if r["region"] == "helsinki")
    assert all(r["municipality"] == "" for r in rows if r["area"] != "kallio")
