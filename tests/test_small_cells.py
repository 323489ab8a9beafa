"""Numbers that protect people: the one number format and small-cell suppression
(``digests.numbers``), and the rendered outputs that use them."""

from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digests import numbers, rules
from digests.model import (
    Activity,
    EscalationItem,
    MonthlyFigures,
    Quote,
    RegionFigures,
    StatusInfo,
    ThemeFigures,
    WeeklyFigures,
)
from digests.numbers import LEADERSHIP, TEAM, Privacy
from digests.periods import iso_week_bounds, month_bounds
from digests.render import render_monthly, render_weekly
from digests.report import ComparisonFigures, QuoteLine, ReportFigures, build_report, render_html
from flows.i18n import label
from flows.taxonomy import DIMENSIONS, SHL48
from flows.taxonomy import LEADERSHIP as RAISED
from tests.support.fuzz import fuzz_seed, rerun_hint

NBSP = "\u00a0"


def test_one_number_format_per_language() -> None:
    assert numbers.number(2973, "fi") == f"2{NBSP}973"
    assert numbers.number(2973, "sv") == f"2{NBSP}973"
    assert numbers.number(2973, "en") == "2,973"
    assert numbers.decimal(2.5, "fi") == "2,5"
    assert numbers.decimal(2.5, "en") == "2.5"
    assert numbers.percent(1.5, "fi", signed=True) == f"+150{NBSP}%"
    assert numbers.percent(1.5, "en", signed=True) == "+150%"
    assert numbers.machine(2973) == "2973"


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_small_counts_show_as_below_min_cell(lang: str) -> None:
    below = f"<{NBSP}5"
    assert [numbers.count(n, lang) for n in (0, 1, 4, 5)] == ["0", below, below, "5"]
    assert numbers.count(3, lang, Privacy(min_cell=10)) == f"<{NBSP}10"
    assert numbers.count(3, lang, TEAM) == "3"  # a team sees its own counts


def test_secondary_suppression_hides_a_second_cell_when_one_is_hidden() -> None:
    counts = {"a": 40, "b": 3, "c": 12, "d": 0, "e": 7}
    hidden = numbers.suppress(counts)
    assert hidden == {"b", "e"}  # b is small; e is the next-smallest non-zero cell
    assert not numbers.recoverable(counts, hidden)
    # Two small cells already protect each other; zeros are shown.
    assert numbers.suppress({"a": 2, "b": 1, "c": 0, "d": 9}) == {"a", "b"}
    # Nothing small, nothing hidden.
    assert numbers.suppress({"a": 5, "b": 9}) == frozenset()
    # A lone non-zero cell is the total itself, which is hidden where it is shown.
    assert numbers.suppress({"a": 3, "b": 0}) == {"a"}
    assert numbers.count(3, "fi") == f"<{NBSP}5"
    assert TEAM.hidden(counts) == frozenset()
    assert LEADERSHIP.hidden(counts) == {"b", "e"}


def test_quotes_only_from_themes_with_enough_observations() -> None:
    assert numbers.quotable_themes({"theme.housing": 5, "theme.income": 4}) == {"theme.housing"}


def test_an_average_of_a_small_sum_does_not_give_it_back() -> None:
    assert numbers.average_shown(3, 4, "fi", LEADERSHIP) == f"<{NBSP}1,25"
    assert numbers.average_shown(10, 4, "fi", LEADERSHIP) == "2,5"
    assert numbers.average_shown(3, 4, "en", TEAM) == "0.75"


def test_a_few_workers() -> None:
    assert [numbers.few_workers(n, TEAM) for n in (0, 1, 2, 3)] == [False, True, True, False]


# --- the property: random data sets, every leadership output --------------------------
#
# A seeded generator (``HAVAINTO_TEST_SEED`` replays a run; the seed is printed) builds
# random months, weeks and report periods with many small counts, renders what
# leadership reads (monthly summary text, the weekly digest rendered for leadership, the
# social report's HTML, the escalations CSV) and reads every count back out of the
# rendered text: none may be 1..min_cell-1, and no hidden count may be the printed total
# minus the printed cells.

DATA_SETS = 25
THEMES = list(DIMENSIONS["theme"].codes)
SIGNALS = list(DIMENSIONS["signal"].codes)
GROUPS = list(DIMENSIONS["group"].codes)
HEL = ZoneInfo("Europe/Helsinki")


def small_heavy(rng: random.Random, top: int = 14) -> int:
    """A count with many zeros and small values, sometimes a large one."""
    return rng.choice([0, 0, 1, 1, 2, 3, 4, 5, 6, rng.randint(0, top), rng.randint(0, 300)])


def spread_over(rng: random.Random, total: int, codes: list[str]) -> dict[str, int]:
    """``total`` observations spread over some of ``codes`` (a distribution with that total)."""
    chosen = rng.sample(codes, rng.randint(1, len(codes)))
    counts = dict.fromkeys(chosen, 0)
    for _ in range(total):
        counts[rng.choice(chosen)] += 1
    return counts


REGIONS = ["helsinki", "lappi", "kainuu", "pohjanmaa"]


def random_activity(rng: random.Random, periods: int) -> Activity:
    """Active workers and worker-weeks with many small numbers, now and before."""
    workers = rng.choice([0, 1, 2, 3, 4, 5, 6, rng.randint(0, 40)])
    before = tuple(rng.choice([0, 1, 3, 5, rng.randint(0, 40)]) for _ in range(periods))
    return Activity(
        workers=workers,
        worker_weeks=workers * rng.randint(1, 4),
        before_workers=before,
        before_worker_weeks=sum(n * rng.randint(1, 4) for n in before),
    )


def escalation(rng: random.Random, i: int, kind: str, start: datetime) -> EscalationItem:
    at = start + timedelta(hours=rng.randint(0, 24 * 27))
    status = rng.choice(["open", "acknowledged", "in_progress", "decided", "handled"])
    acted = at + timedelta(hours=rng.randint(1, 24 * 9)) if status != "open" else None
    return EscalationItem(
        observation_id=1000 + i,
        team_id="t1",
        team_name="Tiimi",
        region=rng.choice(REGIONS),
        escalation=kind,
        theme=rng.choice(THEMES),
        population_group=rng.choice(GROUPS),
        signal=rng.choice(SIGNALS),
        area=None,
        description="Jono venyi, apua ei löytynyt.",
        action=None,
        observed_at=at,
        recorded_at=at + timedelta(minutes=5),
        status=StatusInfo(
            status, at + timedelta(days=1) if status != "open" else None, acknowledged_at=acted
        ),
        days_open=rng.randint(0, 40),
    )


def random_month(rng: random.Random) -> MonthlyFigures:
    start, end = month_bounds("2026-11")
    themes = [
        ThemeFigures(code, small_heavy(rng), small_heavy(rng), rng.randint(1, 6))
        for code in rng.sample(THEMES, rng.randint(1, len(THEMES)))
    ]
    escalations = [
        escalation(rng, i, rng.choice([RAISED, RAISED, SHL48]), start)
        for i in range(rng.choice([0, 1, 3, 7, rng.randint(0, 60)]))
    ]
    # Half of the months are the whole organisation's, with its regions side by side.
    whole = rng.random() < 0.5
    regions = []
    if whole:
        for region in REGIONS:
            counts = {code: small_heavy(rng) for code in rng.sample(THEMES, rng.randint(0, 4))}
            workers = rng.choice([0, 1, 2, 4, 5, 9, rng.randint(0, 30)])
            regions.append(
                RegionFigures(
                    region,
                    region.title(),
                    sum(counts.values()),
                    workers,
                    workers * rng.randint(1, 4),
                    counts,
                )
            )
    return MonthlyFigures(
        region=None if whole else "helsinki",
        scope_name="" if whole else "Helsinki",
        month="2026-11",
        start=start,
        end=end,
        as_of=end,
        total=sum(t.count for t in themes),
        teams=rng.randint(1, 9),
        workers=rng.randint(1, 12),
        escalated=sum(1 for e in escalations if e.escalation == RAISED),
        shl48_count=sum(1 for e in escalations if e.escalation == SHL48),
        themes=themes,
        escalations=escalations,
        earlier_open=[escalation(rng, 500 + i, RAISED, start) for i in range(rng.randint(0, 8))],
        activity=random_activity(rng, 3),
        regions=regions,
    )


def random_week(rng: random.Random) -> WeeklyFigures:
    start, end = iso_week_bounds("2026-W47")
    themes = [
        ThemeFigures(code, small_heavy(rng), small_heavy(rng))
        for code in rng.sample(THEMES, rng.randint(1, 6))
    ]
    total = sum(t.count for t in themes)
    return WeeklyFigures(
        team_id="t1",
        team_name="Tiimi",
        language="fi",
        week="2026-W47",
        start=start,
        end=end,
        total=total,
        workers=rng.randint(1, 6) if total else 0,
        themes=themes,
        signals=spread_over(rng, total, SIGNALS),
        groups=spread_over(rng, total, GROUPS),
        new={t.code: rng.randint(0, t.count) for t in themes},
        growing={t.code: rng.randint(0, t.count) for t in themes},
        quotes=[Quote(f"Sitaatti {i % 4}", rng.choice(THEMES)) for i in range(rng.randint(0, 6))],
        activity=random_activity(rng, 4),
    )


def random_report(rng: random.Random) -> ReportFigures:
    total, previous_total = small_heavy(rng, 40), small_heavy(rng, 40)
    themes = spread_over(rng, total, THEMES)
    combos: dict[tuple[str, str], int] = {}
    for code, n in themes.items():
        for signal, m in spread_over(rng, n, SIGNALS).items():
            combos[(code, signal)] = m
    months = spread_over(rng, total, [f"2026-{m:02d}" for m in range(1, 7)])
    organisation = spread_over(rng, small_heavy(rng, 40), THEMES)
    return ReportFigures(
        region="helsinki",
        region_name="Helsinki",
        start=date(2026, 1, 1),
        end=date(2026, 6, 30),
        total=total,
        previous_total=previous_total,
        good_practices=rng.randint(0, total),
        marked_growing=rng.randint(0, total),
        teams=rng.randint(1, 9),
        workers=rng.randint(1, 12),
        themes=themes,
        previous_themes=spread_over(rng, previous_total, THEMES),
        signals=spread_over(rng, total, SIGNALS),
        groups=spread_over(rng, total, GROUPS),
        combos=combos,
        previous_combos={k: rng.randint(0, 3) for k in combos},
        monthly=[(date(2026, m, 1), months.get(f"2026-{m:02d}", 0)) for m in range(1, 7)],
        escalations=[],
        quotes=[QuoteLine("Ei paikkaa.", rng.choice(THEMES), date(2026, 3, 1)) for _ in range(3)],
        escalated=rng.randint(0, total),
        shl48=rng.randint(0, 3),
        comparison=ComparisonFigures(
            activity=random_activity(rng, 1),
            organisation_total=total + sum(organisation.values()),
            organisation_themes={
                code: themes.get(code, 0) + organisation.get(code, 0)
                for code in {*themes, *organisation}
            },
            organisation_workers=rng.choice([2, 4, 5, rng.randint(0, 60)]),
            organisation_worker_weeks=rng.randint(0, 200),
        ),
    )


def as_int(token: str) -> int | None:
    """A rendered count as a number; None for "< 5" (or anything that is not digits)."""
    digits = token.replace(NBSP, "").replace(",", "").replace(" ", "").strip()
    return int(digits) if digits.isdigit() else None


def small_in(tokens: list[str], min_cell: int) -> list[str]:
    return [t for t in tokens if (n := as_int(t)) is not None and 0 < n < min_cell]


def monthly_counts(text: str) -> list[str]:
    """Every count of observations or people in a Finnish monthly summary's text."""
    text = text.replace(NBSP, " ")
    sections = {block.split("\n", 1)[0]: block for block in text.split("\n\n")}
    found: list[str] = []
    found += re.findall(
        r"^• (?:Havaintoja|Kirjaajia|Nostettu johdolle|Epäkohtailmoituksia \(valvontalaki 29 §\)):"
        r" (.+)$",
        sections["Yhteensä"],
        re.M,
    )
    # The regions side by side: observations and open escalations of each region.
    for line in sections.get("Alueet rinnakkain", "").splitlines()[2:]:
        count, _rate, _themes, open_, _days = line.split(": ", 1)[1].split(" · ")
        found += [count, open_]
    found += re.findall(r"^\d+\. .+?: (.+)$", sections.get("Yleisimmät ilmiöt", ""), re.M)
    spread = sections.get("Laajimmin raportoidut (raportoineiden tiimien määrä)", "")
    found += re.findall(r"\((.+?) havainto", spread)
    rising = sections["Nousevat ilmiöt"]
    found += re.findall(r"^• .+?: (.+?) \(\S+ / työntekijäviikko", rising, re.M)
    for count, average in re.findall(r"^• .+?: (.+?) \(keskiarvo (.+?)(?:, |\))", rising, re.M):
        found.append(count)
        if not average.startswith("<"):  # an average gives its three months' sum back
            found.append(str(round(float(average.replace(" ", "").replace(",", ".")) * 3)))
    escalated = sections["Johdolle nostetut havainnot teemoittain"]
    found += re.findall(r"^[^•\s].* \((.+)\)$", escalated, re.M)
    found += re.findall(r"^ja (.+) muuta liitteenä$", text, re.M)
    return found


def hidden_rates_follow_counts(text: str) -> list[str]:
    """Lines of a Finnish monthly summary where a count shows as "< 5" but its rate per
    active worker-week does not show as "–" (the rate would give the count back)."""
    text = text.replace(NBSP, " ")
    sections = {block.split("\n", 1)[0]: block for block in text.split("\n\n")}
    wrong = []
    for line in sections.get("Alueet rinnakkain", "").splitlines()[2:]:
        count, rate, *_ = line.split(": ", 1)[1].split(" · ")
        if count.startswith("<") and rate != "–":
            wrong.append(line)
    rising = sections.get("Nousevat ilmiöt", "")
    for line, count, rate in re.findall(
        r"^(• .+?: (.+?) \((\S+) / työntekijäviikko.*)$", rising, re.M
    ):
        if count.startswith("<") and rate != "–":
            wrong.append(line)
    total = re.search(r"^• Havaintoja: (.+)$", text, re.M)
    rate_line = re.search(r"^• Havaintoja aktiivista työntekijäviikkoa kohden: (\S+)", text, re.M)
    if total and rate_line and total[1].startswith("<") and rate_line[1] != "–":
        wrong.append(rate_line[0])
    return wrong


def weekly_counts(text: str) -> list[str]:
    """Every count in a Finnish weekly digest's text."""
    text = text.replace(NBSP, " ")
    found = list(re.findall(r"^Viikon aikana (.+?) kirjasi (.+?) havainto", text, re.M)[0])
    for count, average in re.findall(r"^• .+?: (\S+|< \S+) \(keskiarvo (.+?), ", text, re.M):
        found.append(count)
        if not average.startswith("<"):
            found.append(str(round(float(average.replace(" ", "").replace(",", ".")) * 4)))
    for heading in ("Palvelujärjestelmän signaalit", "Väestöryhmät"):
        block = next((b for b in text.split("\n\n") if b.startswith(heading)), "")
        found += re.findall(r"^• .+: (.+)$", block, re.M)
    found += re.findall(r"(\S+|< \S+) merkitty (?:uudeksi|kasvavaksi)", text)
    return [token.replace(NBSP, " ") for token in found]


def report_counts(html_text: str) -> list[str]:
    """The printed counts of the report: its tiles (but the number of teams), its notes and
    the count columns of its tables."""
    text = html_text.replace("&lt;", "<")
    found = [
        value
        for value, name in re.findall(
            r'<span class="n">([^<]*)</span><span class="l">([^<]*)<', text
        )
        if name != "Tiimejä"
    ]
    found += re.findall(r"Edellisellä yhtä pitkällä jaksolla (.+?)</p>", text)
    found += re.findall(r"Merkitty uudeksi tai kasvavaksi: (.+?) havaintoa", text)
    for row in re.findall(r"<tr><td>[^#<][^<]*</td>(.*?)</tr>", text):
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        found += [c for c in cells if "%" not in c and c not in ("–", "uusi", "")]
    return found


def hidden_cells(html_text: str, section: str) -> tuple[dict[str, str], int]:
    """The label -> printed count of the first table after ``section``'s heading, and the
    number of its rows."""
    text = html_text.replace("&lt;", "<")
    table = text.split(f'<h2 id="{section}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><td>([^<]*)</td><td class="num">([^<]*)</td>', table)
    return dict(rows), len(rows)


def test_no_leadership_output_shows_a_small_count_nor_lets_one_be_worked_back() -> None:
    seed = fuzz_seed()
    rng = random.Random(seed)
    hint = rerun_hint(seed)
    checked = {"monthly": 0, "weekly": 0, "report": 0, "hidden": 0, "regions": 0}
    for _ in range(DATA_SETS):
        privacy = Privacy(min_cell=rng.choice([5, 5, 5, 3, 10]))
        below = numbers.below(privacy.min_cell, "fi")

        # The monthly summary, and its CSV of escalations (row-level: one row per entry).
        figures = random_month(rng)
        summary = rules.monthly_summary(figures, privacy=privacy)
        all_themes = {t.code: t.count for t in figures.themes}
        assert not numbers.recoverable(all_themes, summary.hidden_themes, privacy.min_cell), hint
        rendered = render_monthly(summary, "fi")
        small = small_in(monthly_counts(rendered.text), privacy.min_cell)
        assert not small, (hint, small)
        assert not hidden_rates_follow_counts(rendered.text), hint
        if summary.regions:
            region_totals = {r.region or "": r.total for r in summary.regions}
            region_open = {r.region or "": r.open for r in summary.regions}
            for counts, hidden in (
                (region_totals, summary.hidden_region_totals),
                (region_open, summary.hidden_region_open),
            ):
                assert not numbers.recoverable(counts, hidden, privacy.min_cell), hint
            checked["regions"] += 1
        for row in summary.leading:
            if row.code in summary.hidden_themes:
                assert f"{label(row.code, 'fi')}: {below}" in rendered.text, hint
        # The same cells hidden in every language (at a length no language is cut to fit).
        shown = [
            render_monthly(summary, lang, limit=10**6).text.count(below)
            for lang in ("fi", "sv", "en")
        ]
        assert len(set(shown)) == 1, (hint, shown)
        items = len(summary.escalated_items) + len(summary.earlier_open)
        if rendered.csv is not None:
            assert rendered.csv.decode("utf-8").count("\r\n") == 1 + items, hint
        checked["monthly"] += 1
        checked["hidden"] += len(summary.hidden_themes)

        # The weekly digest, rendered for leadership.
        week = rules.weekly_digest(random_week(rng))
        text = render_weekly(week, "fi", privacy=privacy).text
        if week.total:
            tokens = weekly_counts(text)
            assert not small_in(tokens, privacy.min_cell), (
                hint,
                small_in(tokens, privacy.min_cell),
            )
            allowed = numbers.quotable_themes(
                {r.code: r.count for r in week.themes}, privacy.min_cell
            )
            for quote in week.quotes:
                if quote.theme not in allowed:
                    assert f"({label(quote.theme, 'fi')})" not in text.split("Asiakkaan ääni")[
                        -1
                    ] or any(q.theme == quote.theme for q in week.quotes if q.theme in allowed), (
                        hint
                    )
            checked["weekly"] += 1

        # The social report's HTML: tiles, notes, tables; and no table gives a cell back.
        report_figures = random_report(rng)
        page = render_html(build_report(report_figures, "fi", date(2026, 7, 1), privacy))
        small = small_in(report_counts(page), privacy.min_cell)
        assert not small, (hint, small)
        # The comparison: a theme whose count is hidden has its rate hidden too.
        section = page.replace("&lt;", "<").split('<h2 id="comparison">', 1)[1]
        for count, rate in re.findall(
            r'<tr><td>[^<]*</td><td class="num">([^<]*)</td><td class="num rate">([^<]*)<',
            section.split("<h2 ", 1)[0],
        ):
            assert not count.startswith("<") or rate == "–", (hint, count, rate)
        for section, counts in (
            ("themes", report_figures.themes),
            ("signals", report_figures.signals),
            ("groups", report_figures.groups),
        ):
            printed, _ = hidden_cells(page, section)
            by_label = {label(code, "fi"): n for code, n in counts.items()}
            hidden = [name for name, value in printed.items() if value.startswith("<")]
            assert not numbers.recoverable(by_label, hidden, privacy.min_cell), (hint, section)
        checked["report"] += 1
    print(f"checked {checked}")
    assert checked["monthly"] == checked["report"] == DATA_SETS and checked["hidden"] > 0
    assert checked["regions"] > 0
