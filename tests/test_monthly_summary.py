"""The monthly summary fits a screen: two messages at Telegram's limit, the rest attached."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bot.delivery import digest_parts
from digests import rules
from digests.model import Activity, MonthlySummary, RegionFigures, WeeklyDigest
from digests.numbers import TEAM
from digests.periods import iso_week_bounds
from digests.render import MESSAGE_LIMIT, render_monthly, render_weekly
from flows.events import Document, Message
from flows.taxonomy import LEADERSHIP, SHL48
from tests.test_small_cells import THEMES, escalation, random_month


def busy_month(escalations: int = 400) -> MonthlySummary:
    rng = random.Random(7)
    figures = random_month(rng)
    start = figures.start
    items = [
        replace(
            escalation(rng, i, LEADERSHIP if i % 9 else SHL48, start),
            description="Asiakas jäi ilman palvelua, koska jono venyi kuukausiin. " * 8,
            action="Lisätään resursseja ja tehdään jonotusaika näkyväksi. " * 3,
        )
        for i in range(escalations)
    ]
    earlier = [escalation(rng, 5000 + i, LEADERSHIP, start) for i in range(60)]
    figures = replace(
        figures,
        escalations=items,
        earlier_open=earlier,
        escalated=sum(1 for i in items if i.escalation == LEADERSHIP),
        shl48_count=sum(1 for i in items if i.escalation == SHL48),
    )
    return rules.monthly_summary(figures)


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_a_busy_month_fits_in_two_messages_and_attaches_the_rest(lang: str) -> None:
    summary = busy_month()
    rendered = render_monthly(summary, lang)
    parts = digest_parts(rendered, MESSAGE_LIMIT)
    messages = [p for p in parts if isinstance(p, Message)]
    assert 1 <= len(messages) <= 2
    assert all(len(m.html or m.text) <= MESSAGE_LIMIT for m in messages)
    more = {"fi": "muuta liitteenä", "sv": "till i bilagan", "en": "more in the attached file"}
    assert more[lang] in rendered.text
    # At most three escalations under each theme.
    for group in summary.escalated_by_theme:
        listed = [i for i in group.items if f"#{i.observation_id} ·" in rendered.text]
        assert len(listed) <= 3
    # The CSV has every escalation of the month and every earlier open one.
    [csv_file] = [p for p in parts if isinstance(p, Document)]
    lines = csv_file.data.decode("utf-8").count("\r\n")
    assert lines == 1 + len(summary.escalated_items) + len(summary.earlier_open)


# The 21 wellbeing services counties and Helsinki, as the organisation's summary names them.
COUNTIES = (
    "Helsinki, Itä-Uusimaa, Keski-Uusimaa, Länsi-Uusimaa, Vantaa ja Kerava, Varsinais-Suomi, "
    "Satakunta, Kanta-Häme, Pirkanmaa, Päijät-Häme, Kymenlaakso, Etelä-Karjala, Etelä-Savo, "
    "Pohjois-Savo, Pohjois-Karjala, Keski-Suomi, Etelä-Pohjanmaa, Pohjanmaa, Keski-Pohjanmaa, "
    "Pohjois-Pohjanmaa, Kainuu, Lappi"
).split(", ")


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_the_organisations_busy_month_with_22_regions_fits_in_two_messages(lang: str) -> None:
    rng = random.Random(11)
    summary = busy_month()
    regions = [
        RegionFigures(
            f"r{i}",
            name,
            total=rng.randint(200, 2500),
            workers=rng.randint(5, 90),
            worker_weeks=rng.randint(30, 400),
            themes={code: rng.randint(5, 400) for code in rng.sample(THEMES, 6)},
        )
        for i, name in enumerate(COUNTIES)
    ]
    figures = replace(
        random_month(random.Random(7)),
        region=None,
        scope_name="",
        regions=regions,
        escalations=[
            replace(item, region=rng.choice(regions).region) for item in summary.escalated_items
        ],
        activity=Activity(900, 3600, (850, 870, 880), 10400),
    )
    organisation = rules.monthly_summary(figures)
    rendered = render_monthly(organisation, lang)
    messages = [p for p in digest_parts(rendered, MESSAGE_LIMIT) if isinstance(p, Message)]
    assert 1 <= len(messages) <= 2
    assert all(len(m.html or m.text) <= MESSAGE_LIMIT for m in messages)
    # Every region has its line, and the organisation its own, whatever the budget cut.
    lines = [line for line in rendered.text.splitlines() if line.startswith("• ")]
    for name in COUNTIES:
        assert any(line.startswith(f"• {name}: ") for line in lines), name
    whole = {"fi": "Koko organisaatio", "sv": "Hela organisationen", "en": "Whole organisation"}
    assert any(line.startswith(f"• {whole[lang]}: ") for line in lines)


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (pdftotext)")
def test_the_pdf_of_the_summary_lists_every_escalation(tmp_path: Path) -> None:
    summary = busy_month(120)
    rendered = render_monthly(summary, "fi", pdf=True)
    assert rendered.pdf is not None and rendered.pdf_filename == "summary-helsinki-2026-11.pdf"
    parts = digest_parts(rendered, MESSAGE_LIMIT)
    kinds = [p.mime_type for p in parts if isinstance(p, Document)]
    assert kinds == ["text/csv", "application/pdf"]  # both in the same delivery
    path = tmp_path / "summary.pdf"
    path.write_bytes(rendered.pdf)
    text = subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    for item in summary.escalated_items:
        assert f"#{item.observation_id}" in text
    assert "Ehdotettu toimenpide" in text  # the proposed actions, which the chat leaves out
    assert "liitteinä: CSV-tiedosto ja koko kooste PDF-tiedostona" in rendered.text


@pytest.mark.parametrize(
    ("lang", "few"),
    [("fi", "muutama työntekijä"), ("sv", "några medarbetare"), ("en", "a few workers")],
)
def test_a_team_digest_never_says_how_many_workers_when_fewer_than_three(
    lang: str, few: str
) -> None:
    start, end = iso_week_bounds("2026-W47")
    week = WeeklyDigest("t1", "Tiimi", lang, "2026-W47", start, end, total=4, workers=1)
    for workers in (1, 2):
        text = render_weekly(replace(week, workers=workers), lang, privacy=TEAM).text
        assert few in text
        assert f" {workers} " not in text.splitlines()[1]
        assert "4" in text.splitlines()[1]  # the team sees its own count of observations
    assert few not in render_weekly(replace(week, workers=3), lang).text
