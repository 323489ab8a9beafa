"""The social report's new sections (conclusions, proposals, good practices, phenomena,
areas, the escalations' appendix, the colophon), its team and organisation scopes, and
the periods it covers: the model (pure), the figures from the database (SQLite and
PostgreSQL) and the rendered HTML."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.config import Config
from bot.reports import gather_figures, report_scope
from digests.numbers import Privacy
from digests.report import (
    EscalationLine,
    appendix_rows,
    build_report,
    render_html,
)
from digests.report_periods import due_on, last_ended, parse_report_period, period_of_range
from digests.report_sections import (
    ESCALATIONS_IN_BODY,
    NoteLine,
    PhenomenonLine,
    PracticeLine,
    ProposalLine,
    SectionFigures,
    appendix_csv,
)
from flows import knowledge as path
from flows.i18n import label, t
from flows.taxonomy import TAXONOMY_VERSION
from storage import knowledge
from storage.report_notes import add_note
from tests.support.datacare_helpers import World, seed
from tests.test_report import figures

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
TODAY = date(2027, 1, 11)
NBSP = "\u00a0"


def say(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain="socialreport", **params)


def plain(html: str) -> str:
    return " ".join(html.replace(NBSP, " ").replace("&lt;", "<").split())


def section(html: str, anchor: str) -> str:
    """The HTML of one section: from its heading to the next one."""
    after = html.split(f'<h2 id="{anchor}">', 1)[1]
    return after.split("<h2 ", 1)[0]


# --- periods ---------------------------------------------------------------------------------


def test_periods_half_years_years_and_months() -> None:
    h2 = parse_report_period("2026-h2")
    assert (h2.label, h2.start, h2.end) == ("2026-H2", date(2026, 7, 1), date(2026, 12, 31))
    assert parse_report_period("2026").end == date(2026, 12, 31)
    assert parse_report_period("2026-02").end == date(2026, 2, 28)
    for wrong in ("2026-H3", "2026-13", "H2", "2026-W47"):
        with pytest.raises(ValueError):
            parse_report_period(wrong)
    assert period_of_range(date(2026, 1, 1), date(2026, 6, 30)).label == "2026-H1"
    assert period_of_range(date(2026, 11, 1), date(2026, 11, 30)).label == "2026-11"
    # The last ended half-year and year, and the first working day a week after.
    assert last_ended("half-year", date(2027, 1, 11)).label == "2026-H2"
    assert last_ended("half-year", date(2026, 7, 2)).label == "2026-H1"
    assert last_ended("year", date(2027, 3, 1)).label == "2026"
    # 31 Dec 2026 + 7 days = Thu 7 Jan 2027; 6 Jan (Epiphany) is a holiday anyway.
    assert due_on(parse_report_period("2026-H2"), 7) == date(2027, 1, 7)
    # 30 Jun 2026 + 7 = Tue 7 Jul.
    assert due_on(parse_report_period("2026-H1"), 7) == date(2026, 7, 7)


# --- the model and the HTML ---------------------------------------------------------------------


def with_sections(**values: object) -> object:
    return figures(sections=SectionFigures(**values))  # type: ignore[arg-type]


def test_conclusions_are_printed_with_role_and_date_never_the_writer() -> None:
    notes = [
        NoteLine("team", "Helsingin etsivät", "2026-H2", "lead", date(2027, 1, 9), "Tiimi: A."),
        NoteLine(
            "region",
            "Helsinki",
            "2026-H2",
            "leader",
            date(2027, 1, 10),
            "Asunnottomuus kasvoi.\n\nEsitämme lisäpaikkoja.",
        ),
    ]
    html = render_html(build_report(with_sections(notes=notes), "fi", TODAY))  # type: ignore[arg-type]
    part = plain(section(html, "conclusions"))
    # The region's first (the widest scope), paragraph by paragraph.
    assert part.index("Alue: Helsinki") < part.index("Tiimi: Helsingin etsivät")
    assert "<p>Asunnottomuus kasvoi.</p><p>Esitämme lisäpaikkoja.</p>" in part
    assert "Johto, 10.1.2027 (jakso 2026-H2)" in part
    assert "Tiimin vastaava, 9.1.2027" in part
    # Right after the summary: decision makers read the conclusions first.
    assert html.index('id="conclusions"') < html.index('id="themes"')
    # None written: no empty section.
    assert 'id="conclusions"' not in render_html(build_report(figures(), "fi", TODAY))


def test_taxonomy_version_and_technical_facts_only_in_the_colophon() -> None:
    html = render_html(build_report(figures(), "fi", TODAY))
    first = html.split('<h2 id="themes">', 1)[0]
    assert TAXONOMY_VERSION not in first and "taksonomi" not in first.casefold()
    colophon = plain(section(html, "colophon"))
    assert TAXONOMY_VERSION in colophon and "< 5" in colophon
    assert html.index('id="colophon"') > html.index('id="method"')


def test_proposals_and_their_outcomes() -> None:
    lines = [
        ProposalLine(
            7,
            "Lisää hätämajoitusta",
            path.DECIDED,
            "Nuoret ilman yöpaikkaa",
            "Sosiaali- ja terveyslautakunta",
            date(2026, 12, 10),
            "20 lisäpaikkaa",
            note="Toteutus kevään aikana",
        ),
        ProposalLine(8, "Jonotusajat julki", path.PROPOSED, ""),
    ]
    html = render_html(build_report(with_sections(proposals=lines), "en", TODAY))  # type: ignore[arg-type]
    part = plain(section(html, "proposals"))
    assert "#7" in part and "Lisää hätämajoitusta" in part and "Nuoret ilman yöpaikkaa" in part
    assert "Presented to Sosiaali- ja terveyslautakunta on 12/10/2026." in part or (
        "Presented to Sosiaali- ja terveyslautakunta on 10.12.2026." in part
    )
    assert "Decision: 20 lisäpaikkaa" in part and "Decided" in part and "Proposed" in part
    assert "Note: Toteutus kevään aikana" in part
    empty = render_html(build_report(figures(), "en", TODAY))
    assert say("en", "proposals.none") in section(empty, "proposals")


def test_phenomena_show_status_and_hide_small_counts() -> None:
    lines = [
        PhenomenonLine(4, "Nuoret ilman yöpaikkaa", "theme.housing", "open", 12, 3),
        PhenomenonLine(5, "Jonot A-klinikalle", "theme.substance_mental", "closed", 2, 7, "Tiimi"),
    ]
    report = build_report(with_sections(phenomena=lines), "fi", TODAY)  # type: ignore[arg-type]
    assert report.sections is not None
    first, second = report.sections.phenomena
    assert (first.number, first.observations, plain(first.confirmations)) == (4, "12", "< 5")
    assert (plain(second.observations), second.confirmations) == ("< 5", "7")
    assert second.title == "Jonot A-klinikalle (Tiimi)" and second.status == "Suljettu"
    part = plain(section(render_html(report), "phenomena"))
    assert "#4 Nuoret ilman yöpaikkaa" in part and label("theme.housing", "fi") in part


def test_good_practice_descriptions_only_from_themes_with_enough_entries() -> None:
    practices = [
        PracticeLine("Yhteinen ilta-ajanvaraus toimii.", "theme.housing", date(2026, 5, 2)),
        PracticeLine("Pieni teema, ei saa näkyä.", "theme.violence", date(2026, 5, 3)),
    ]
    report = build_report(
        with_sections(  # type: ignore[arg-type]
            practice_themes={"theme.housing": 1, "theme.violence": 1}, practices=practices
        ),
        "fi",
        TODAY,
    )
    assert report.sections is not None
    # Housing has 12 observations in the period (figures()): its description is printed;
    # violence has none now (two before): its description is not.
    assert [p.text for p in report.sections.practices] == ["Yhteinen ilta-ajanvaraus toimii."]
    # The counts by theme are small: both hidden.
    assert all(plain(r.count) == "< 5" for r in report.sections.practice_rows)
    html = render_html(report)
    assert "Pieni teema" not in html and "Yhteinen ilta-ajanvaraus toimii." in html
    # A team's own audience (nothing suppressed) would see both.
    team = build_report(
        with_sections(practice_themes={"theme.housing": 1}, practices=practices),  # type: ignore[arg-type]
        "fi",
        TODAY,
        Privacy(suppress=False),
    )
    assert team.sections is not None and len(team.sections.practices) == 2


def test_areas_hide_a_small_cell_and_a_second_one() -> None:
    report = build_report(
        with_sections(  # type: ignore[arg-type]
            areas={"kallio": 11, "itakeskus": 6, "": 3}, area_names={"kallio": "Kallio"}
        ),
        "fi",
        TODAY,
    )
    assert report.sections is not None
    rows = {r.label: plain(r.count) for r in report.sections.areas}
    # Itäkeskus is hidden with the small one, and it is five or more: "–".
    assert rows == {"Kallio": "11", "itakeskus": "–", say("fi", "areas.none"): "< 5"}


def test_the_body_lists_a_few_escalations_and_the_appendix_all_of_them() -> None:
    many = [
        EscalationLine(
            100 + i,
            date(2026, 3, 1) + timedelta(days=i),
            "escalation.shl48" if i % 5 == 0 else "escalation.leadership",
            "theme.housing",
            "open" if i in (3, 40) else "decided" if 10 <= i < 20 else "handled",
            f"=Vastaus {i}",
        )
        for i in range(60)
    ]
    figs = figures(escalations=many, escalated=60)
    report = build_report(figs, "fi", TODAY)
    assert len(report.escalations) == ESCALATIONS_IN_BODY
    numbers_listed = {e.number for e in report.escalations}
    assert {103, 140} <= numbers_listed  # the open ones are listed first
    assert report.sections is not None and report.sections.escalations is not None
    assert report.sections.escalations.total == 60
    statuses = {r.label: r.count for r in report.sections.escalations.statuses}
    # Two open (hidden), so the next-smallest (ten decided) is hidden with them.
    assert statuses["Käsitelty"] == "48" and plain(statuses["Avoin"]) == "< 5"
    assert plain(statuses["Päätetty"]) == "–"  # ten: hidden, but never called "< 5"
    html = render_html(report)
    assert "koko luettelo (60 havaintoa) on liitteenä" in plain(html)
    csv = appendix_csv(appendix_rows(many), "fi").decode("utf-8-sig")
    lines = csv.split("\r\n")
    assert len([line for line in lines if line]) == 61  # a header and every escalation
    assert lines[0].startswith("number;observed_on;kind")
    assert ";'=Vastaus 0" in lines[1]  # a formula start never runs in a spreadsheet


# --- from the database: region, team and organisation --------------------------------------------


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    w = await seed(make_config(), NOW)
    yield w
    await w.db.close()


async def test_section_figures_from_the_database(
    world: World, make_config: Callable[..., Config]
) -> None:
    cfg = make_config()
    anna = world.people["anna"]
    async with world.db.transaction() as session:
        region_wide = await knowledge.create_phenomenon(
            session,
            region="helsinki",
            team_id=None,
            theme="theme.housing",
            title="Nuoret ilman yöpaikkaa",
            language="fi",
            actor_person_id=None,
            actor="test",
            now=NOW - timedelta(days=10),
        )
        await knowledge.link(
            session,
            region_wide.id,
            world.observations["housing"],
            actor_person_id=None,
            actor="test",
            now=NOW - timedelta(days=10),
        )
        team_one = await knowledge.create_phenomenon(
            session,
            region="helsinki",
            team_id="hki-etsiva",
            theme="theme.income",
            title="Toimeentulotuen jonot",
            language="fi",
            actor_person_id=None,
            actor="test",
            now=NOW - timedelta(days=5),
        )
        await knowledge.confirm(
            session,
            person_id=world.people["ben"].person_id,
            team_id="hki-etsiva",
            kind=path.ME_TOO,
            phenomenon_id=team_one.id,
            now=NOW - timedelta(days=4),
        )
        proposal = await knowledge.create_proposal(
            session,
            text="Lisää hätämajoitusta",
            phenomenon_id=region_wide.id,
            proposer_person_id=anna.person_id,
            owner_person_id=None,
            actor="test",
            now=NOW - timedelta(days=9),
        )
        assert proposal is not None
        refused = await knowledge.move_proposal(
            session,
            proposal.id,
            path.Move(path.PRESENTED, "sote", NOW.date(), note="Käsitellään tammikuussa"),
            bodies=["sote"],
            actor_person_id=None,
            actor="test",
            now=NOW - timedelta(days=2),
        )
        assert refused is None
        for kind, scope_id, text in (
            ("region", "helsinki", "Alueen johtopäätös."),
            ("team", "hki-etsiva", "Tiimin johtopäätös."),
            ("region", "pohjanmaa", "Österbottens slutsats."),
            ("organisation", "", "Koko organisaation johtopäätös."),
        ):
            await add_note(
                session,
                scope_kind=kind,
                scope_id=scope_id,
                period="2026-11",
                period_start=date(2026, 11, 1),
                period_end=date(2026, 11, 30),
                language="fi",
                author_role="leader",
                author="test",
                text=text,
                now=NOW,
            )
        # A year's conclusions are not printed in a month's report.
        await add_note(
            session,
            scope_kind="region",
            scope_id="helsinki",
            period="2026",
            period_start=date(2026, 1, 1),
            period_end=date(2026, 12, 31),
            language="fi",
            author_role="leader",
            author="test",
            text="Vuoden johtopäätös.",
            now=NOW,
        )
    start, end = date(2026, 10, 24), date(2026, 11, 30)
    async with world.db.snapshot() as session:
        region = await gather_figures(
            session, cfg, report_scope(cfg, region="helsinki"), start, end, "fi", "liite.csv"
        )
        team = await gather_figures(
            session, cfg, report_scope(cfg, team="hki-etsiva"), start, end, "fi"
        )
        whole = await gather_figures(session, cfg, report_scope(cfg), start, end, "fi")
    s = region.sections
    assert sorted(n.text for n in s.notes) == ["Alueen johtopäätös.", "Tiimin johtopäätös."]
    # Names as the report prints them: the test config has no [regions], so the region's id
    # written as a name, as in the report's header (bot.reports.region_printed).
    assert {n.scope_name for n in s.notes} == {"Helsinki", "Helsingin etsivät"}
    assert [n.text for n in team.sections.notes] == ["Tiimin johtopäätös."]
    assert sorted(n.text for n in whole.sections.notes) == [
        "Alueen johtopäätös.",
        "Koko organisaation johtopäätös.",
        "Österbottens slutsats.",
    ]
    [p] = s.proposals
    assert (p.status, p.subject, p.body, p.presented_on, p.note) == (
        path.PRESENTED,
        "Nuoret ilman yöpaikkaa",
        "sote",
        NOW.date(),
        "Käsitellään tammikuussa",  # the step's note, printed with the outcome
    )
    by_title = {ph.title: ph for ph in s.phenomena}
    assert by_title["Nuoret ilman yöpaikkaa"].observations == 1
    assert by_title["Toimeentulotuen jonot"].confirmations == 1
    assert by_title["Toimeentulotuen jonot"].team_name == "Helsingin etsivät"
    # The team's report: its own phenomena only.
    assert [ph.title for ph in team.sections.phenomena] == ["Toimeentulotuen jonot"]
    assert s.practice_themes == {"theme.early_support": 1}
    assert [(pr.text, pr.theme) for pr in s.practices] == [
        ("Yömajasta käännytettiin nuoria.", "theme.early_support")
    ]
    assert s.areas.get("kallio") == 1 and s.areas.get("itakeskus") == 1
    assert region.total == 5 and team.total == 5
    assert whole.total == region.total + 2  # Pohjanmaa's two
    assert s.appendix_name == "liite.csv"
    # The whole report renders with every section, and the team's carries its name.
    html = render_html(build_report(region, "fi", TODAY))
    for anchor in ("conclusions", "areas", "phenomena", "proposals", "practices", "colophon"):
        assert f'id="{anchor}"' in html, anchor
    assert "Vuoden johtopäätös." not in html
    team_html = render_html(build_report(team, "fi", TODAY))
    assert "Helsingin etsivät" in team_html and "Alueen johtopäätös." not in team_html
    # Early support has one observation: its good practice is not described for leadership.
    assert "Yömajasta" not in section(html, "practices")
    assert "< 5" in plain(section(html, "practices"))


def test_every_message_of_the_report_sections_is_in_finnish_swedish_and_english() -> None:
    from flows.i18n import LANGUAGES, _catalog

    keys = {str(m.id) for m in _catalog("fi", "socialreport") if m.id}
    assert len(keys) > 40
    for lang in LANGUAGES:
        catalog = _catalog(lang, "socialreport")
        assert {str(m.id) for m in catalog if m.id} == keys, lang
        for key in keys:
            message = catalog.get(key)
            assert message is not None and message.string, (lang, key)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_every_new_section_has_its_heading_in_each_language(lang: str) -> None:
    sections = SectionFigures(
        notes=[NoteLine("region", "Helsinki", "2026-H1", "leader", date(2026, 7, 9), "Teksti.")],
        proposals=[ProposalLine(1, "Ehdotus", path.PROPOSED, "")],
        phenomena=[PhenomenonLine(1, "Ilmiö", "theme.housing", "open", 6, 5)],
        practice_themes={"theme.housing": 6},
        practices=[PracticeLine("Hyvä tapa.", "theme.housing", date(2026, 5, 1))],
        areas={"kallio": 20},
        area_names={"kallio": "Kallio"},
    )
    html = render_html(build_report(figures(sections=sections), lang, TODAY))
    for key in (
        "section.conclusions",
        "section.areas",
        "section.phenomena",
        "section.proposals",
        "section.practices",
        "section.colophon",
    ):
        assert say(lang, key) in html, (lang, key)
    assert say(lang, "conclusions.role.leader") in html
    assert f'<html lang="{lang}">' in html and "Hyvä tapa." in html
