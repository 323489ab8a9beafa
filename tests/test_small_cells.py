"""Numbers that protect people: the one number format and small-cell suppression
(``digests.numbers``), and the rendered outputs that use them."""

from __future__ import annotations

import random
import re
from dataclasses import replace
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
from digests.report import (
    ComparisonFigures,
    EscalationLine,
    QuoteLine,
    ReportFigures,
    build_report,
    render_html,
)
from digests.report_sections import PhenomenonLine, PracticeLine, SectionFigures
from flows.i18n import label
from flows.statuses import status_label
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
    # Hidden cells all 1 (11 - 9 = 2 over two cells) or all min_cell - 1 (8 over two "< 5")
    # would each be given back by the total: the next-smallest cell is hidden with them.
    assert numbers.suppress({"a": 1, "b": 1, "c": 9, "d": 30}) == {"a", "b", "c"}
    assert numbers.suppress({"a": 4, "b": 4, "c": 20}) == {"a", "b", "c"}
    assert not numbers.recoverable({"a": 1, "b": 1, "c": 9, "d": 30}, {"a", "b", "c"})
    assert numbers.recoverable({"a": 1, "b": 1, "c": 9}, {"a", "b"})
    # A secondary cell among them: "every cell 4" would be a wrong reading, not a leak.
    assert numbers.suppress({"a": 3, "b": 5, "c": 9}) == {"a", "b"}
    # Every cell hidden and still pinned (six 1s; two 4s): the total is not printed.
    assert numbers.total_hidden(dict.fromkeys("abcdef", 1))
    assert numbers.total_hidden({"a": 4, "b": 4, "c": 0})
    assert not numbers.total_hidden({"a": 1, "b": 2, "c": 9})
    assert numbers.total(6, "fi", LEADERSHIP, hidden=True) == "–"


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
        # The organisation's themes spread over its regions: the regions add up to it.
        by_region: dict[str, dict[str, int]] = {region: {} for region in REGIONS}
        for theme in themes:
            for region, n in spread_over(rng, theme.count, REGIONS).items():
                if n:
                    by_region[region][theme.code] = n
        for region in REGIONS:
            counts = by_region[region]
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
    good = rng.randint(0, total)
    statuses = ["open", "acknowledged", "in_progress", "decided", "no_action", "handled"]
    sections = SectionFigures(
        phenomena=[
            PhenomenonLine(
                i, f"Ilmiö {i}", rng.choice(THEMES), "open", small_heavy(rng), small_heavy(rng)
            )
            for i in range(rng.randint(0, 8))
        ],
        practice_themes=spread_over(rng, good, THEMES) if good else {},
        practices=[
            PracticeLine(f"Käytäntö {i}", rng.choice(THEMES), date(2026, 3, 1))
            for i in range(rng.randint(0, 10))
        ],
        areas=spread_over(rng, total, ["kallio", "itakeskus", "", "vuosaari"]) if total else {},
        area_names={"kallio": "Kallio", "itakeskus": "Itäkeskus", "vuosaari": "Vuosaari"},
    )
    escalation_lines = [
        EscalationLine(
            2000 + i, date(2026, 2, 1), rng.choice([RAISED, SHL48]), rng.choice(THEMES),
            rng.choice(statuses), None,
        )
        for i in range(rng.choice([0, 1, 3, 7, rng.randint(0, 40)]))
    ]  # fmt: skip
    return ReportFigures(
        region="helsinki",
        region_name="Helsinki",
        start=date(2026, 1, 1),
        end=date(2026, 6, 30),
        total=total,
        previous_total=previous_total,
        good_practices=good,
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
        escalations=escalation_lines,
        quotes=[QuoteLine("Ei paikkaa.", rng.choice(THEMES), date(2026, 3, 1)) for _ in range(3)],
        escalated=len(escalation_lines),  # as the query counts them: the escalations listed
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
        sections=sections,
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


def concealed(printed: str) -> bool:
    """Whether a printed count is hidden: "< 5" (fewer) or "–" (hidden to protect another)."""
    return printed.startswith("<") or printed == numbers.HIDDEN


def hidden_rates_follow_counts(text: str) -> list[str]:
    """Lines of a Finnish monthly summary where a count is hidden but its rate per
    active worker-week does not show as "–" (the rate would give the count back)."""
    text = text.replace(NBSP, " ")
    sections = {block.split("\n", 1)[0]: block for block in text.split("\n\n")}
    wrong = []
    for line in sections.get("Alueet rinnakkain", "").splitlines()[2:]:
        count, rate, *_ = line.split(": ", 1)[1].split(" · ")
        if concealed(count) and rate != "–":
            wrong.append(line)
    rising = sections.get("Nousevat ilmiöt", "")
    for line, count, rate in re.findall(
        r"^(• .+?: (.+?) \((\S+) / työntekijäviikko.*)$", rising, re.M
    ):
        if concealed(count) and rate != "–":
            wrong.append(line)
    total = re.search(r"^• Havaintoja: (.+)$", text, re.M)
    rate_line = re.search(r"^• Havaintoja aktiivista työntekijäviikkoa kohden: (\S+)", text, re.M)
    if total and rate_line and concealed(total[1]) and rate_line[1] != "–":
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
    # The phenomena: observations linked and confirmations, each a count.
    for row in re.findall(r'<tr class="phenomenon">(.*?)</tr>', text):
        found += re.findall(r'<td class="num">([^<]*)</td>', row)
    return found


def table_cells(html_text: str, anchor: str, nth: int = 0) -> dict[str, str]:
    """The label -> printed count of a section's ``nth`` table (a section of
    ``digests.report_sections``, its heading ``<h2 id=...>``), or {} without one."""
    if f'<h2 id="{anchor}">' not in html_text:
        return {}
    part = html_text.split(f'<h2 id="{anchor}">', 1)[1].split("<h2 ", 1)[0]
    tables = part.split("</table>")[:-1]
    if len(tables) <= nth:
        return {}
    rows = re.findall(r'<tr><td>([^<]*)</td><td class="num">([^<]*)</td>', tables[nth])
    return {name: value.replace("&lt;", "<") for name, value in rows}


def hidden_cells(html_text: str, section: str) -> tuple[dict[str, str], int]:
    """The label -> printed count of the first table after ``section``'s heading, and the
    number of its rows."""
    text = html_text.replace("&lt;", "<")
    table = text.split(f'<h2 id="{section}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><td>([^<]*)</td><td class="num">([^<]*)</td>', table)
    return dict(rows), len(rows)


# --- what a reader can work out: the feasible range of each hidden cell ------------------


def given_back(
    counts: dict[str, int],
    hidden: set[str] | frozenset[str],
    total: str,
    min_cell: int,
    lower: dict[str, int] | None = None,
) -> list[str]:
    """The hidden cells of a group that a reader pins to their true value.

    The reader sees every shown cell, ``total`` as printed (digits, "< 5" or "–"), and
    how each hidden cell is printed: "< 5" is 1..min_cell-1, "–" (hidden to protect
    another) is min_cell or more. Every hidden cell is at least 1 (zeros are shown) and
    at least ``lower`` (e.g. the number of teams that reported a theme: each wrote one
    observation at least), and a "–" cell is at most the smallest shown cell
    (``suppress`` hides the smallest; a list ranks shown cells first). For each hidden
    cell the values left by these bounds and the sum are a range; the cell is given back
    when that range is its true value alone."""
    lower = lower or {}
    cells = [k for k, n in counts.items() if n and k in hidden]
    if not cells:
        return []
    shown_sum = sum(n for k, n in counts.items() if k not in hidden)
    digits = as_int(total)
    if digits is not None:
        low_sum = high_sum = digits - shown_sum
    elif total.startswith("<"):
        low_sum, high_sum = 0, min_cell - 1 - shown_sum
    else:  # not printed
        low_sum, high_sum = 0, 10**9
    small = {k for k in cells if counts[k] < min_cell}  # printed "< 5"; the others "–"
    shown_cells = [n for k, n in counts.items() if n and k not in hidden]
    ceiling = min(shown_cells) if shown_cells else 10**9
    floor = {k: max(1 if k in small else min_cell, lower.get(k, 0)) for k in cells}
    roof = {k: min_cell - 1 if k in small else ceiling for k in cells}
    pinned = []
    for k in cells:
        others_low = sum(floor[j] for j in cells if j != k)
        others_high = sum(roof[j] for j in cells if j != k)
        lo = max(floor[k], low_sum - others_high)
        hi = min(roof[k], high_sum - others_low)
        if lo == hi == counts[k]:
            pinned.append(k)
    return pinned


def spread_teams(text: str) -> dict[str, int]:
    """Theme label -> the number of teams its spread line prints (Finnish summary)."""
    text = text.replace(NBSP, " ")
    block = next((b for b in text.split("\n\n") if b.startswith("Laajimmin raportoidut")), "")
    return {
        name: int(n.replace(" ", ""))
        for name, n in re.findall(r"^\d+\. (.+?): ([\d ]+) tiimi", block, re.M)
    }


def total_line(text: str) -> str:
    """The observations' total of a Finnish monthly summary as printed."""
    found = re.search(r"^• Havaintoja: (.+)$", text.replace(NBSP, " "), re.M)
    assert found is not None
    return found[1]


def random_spread(rng: random.Random, figures: MonthlyFigures) -> MonthlyFigures:
    """``figures`` with each theme's number of teams drawn consistent with its count (at
    most one team per observation, at most the month's teams)."""
    themes = [
        ThemeFigures(t.code, t.count, t.before, rng.randint(1, max(1, min(t.count, figures.teams))))
        for t in figures.themes
    ]
    return replace(figures, themes=themes)


def test_no_leadership_output_shows_a_small_count_nor_lets_one_be_worked_back() -> None:
    seed = fuzz_seed()
    rng = random.Random(seed)
    hint = rerun_hint(seed)
    checked = {
        "monthly": 0,
        "weekly": 0,
        "report": 0,
        "hidden": 0,
        "regions": 0,
        "tables": 0,
        "practices": 0,
        "feasible": 0,
    }
    for _ in range(DATA_SETS):
        privacy = Privacy(min_cell=rng.choice([5, 5, 5, 3, 10]))
        below = numbers.below(privacy.min_cell, "fi")

        # The monthly summary, and its CSV of escalations (row-level: one row per entry).
        figures = random_spread(rng, random_month(rng))
        summary = rules.monthly_summary(figures, privacy=privacy)
        all_themes = {t.code: t.count for t in figures.themes}
        # Given back by the total, unless the total is not printed (``total_hidden``).
        assert summary.total_hidden or not numbers.recoverable(
            all_themes, summary.hidden_themes, privacy.min_cell
        ), hint
        rendered = render_monthly(summary, "fi")
        # The themes: the total as printed, and the teams the spread lines print as lower
        # bounds (a theme reported by four teams has four observations at least).
        teams = spread_teams(rendered.text)
        lower = {code: teams.get(label(code, "fi"), 0) for code in all_themes}
        leaked = given_back(
            all_themes, summary.hidden_themes, total_line(rendered.text), privacy.min_cell, lower
        )
        assert not leaked, (hint, "themes", figures.themes, leaked)
        checked["feasible"] += 1
        small = small_in(monthly_counts(rendered.text), privacy.min_cell)
        assert not small, (hint, small)
        assert not hidden_rates_follow_counts(rendered.text), hint
        if summary.regions:
            region_totals = {r.region or "": r.total for r in summary.regions}
            region_open = {r.region or "": r.open for r in summary.regions}
            organisation = rendered.text.replace(NBSP, " ").split("• Koko organisaatio: ")[1]
            org_count, _rate, _themes, org_open, _days = organisation.split("\n")[0].split(" · ")
            for counts, hidden, printed in (
                (region_totals, summary.hidden_region_totals, org_count),
                (region_open, summary.hidden_region_open, org_open),
            ):
                leaked = given_back(counts, hidden, printed, privacy.min_cell)
                assert not leaked, (hint, "regions", counts, leaked)
            checked["regions"] += 1
        for row in summary.leading:
            if row.code in summary.hidden_themes:
                # "< 5" when it is fewer, "–" when it is hidden to protect another.
                mark = below if row.count < privacy.min_cell else numbers.HIDDEN
                assert f"{label(row.code, 'fi')}: {mark}" in rendered.text, hint
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
            printed_total = weekly_counts(text)[1]
            for group in (week.themes, week.signals, week.groups):
                counts = {r.code: r.count for r in group}
                leaked = given_back(counts, privacy.hidden(counts), printed_total, privacy.min_cell)
                assert not leaked, (hint, "weekly", counts, leaked)
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
        built = build_report(report_figures, "fi", date(2026, 7, 1), privacy)
        page = render_html(built)
        totals = {
            "total": built.shown["total"].replace(NBSP, " "),
            "previous": built.shown["previous_total"].replace(NBSP, " "),
            "good": built.shown["good_practices"].replace(NBSP, " "),
            "escalated": built.shown["escalated"].replace(NBSP, " "),
        }
        small = small_in(report_counts(page), privacy.min_cell)
        assert not small, (hint, small)
        # The comparison: a theme whose count is hidden has its rate hidden too.
        section = page.replace("&lt;", "<").split('<h2 id="comparison">', 1)[1]
        for count, rate in re.findall(
            r'<tr><td>[^<]*</td><td class="num">([^<]*)</td><td class="num rate">([^<]*)<',
            section.split("<h2 ", 1)[0],
        ):
            assert not concealed(count) or rate == "–", (hint, count, rate)
        for section, counts in (
            ("themes", report_figures.themes),
            ("signals", report_figures.signals),
            ("groups", report_figures.groups),
        ):
            printed, _ = hidden_cells(page, section)
            by_label = {label(code, "fi"): n for code, n in counts.items()}
            hidden = {name for name, value in printed.items() if concealed(value)}
            leaked = given_back(by_label, hidden, totals["total"], privacy.min_cell)
            assert not leaked, (hint, section, by_label, leaked)
            checked["feasible"] += 1
        # The sections of digests.report_sections: areas, good practices by theme and the
        # escalations by status are tables whose totals are printed; none gives a cell back.
        extra = report_figures.sections
        area_names = {"kallio": "Kallio", "itakeskus": "Itäkeskus", "vuosaari": "Vuosaari",
                      "": "Alue ei tiedossa"}  # fmt: skip
        statuses: dict[str, int] = {}
        for e in report_figures.escalations:
            statuses[status_label("fi", e.status)] = (
                statuses.get(status_label("fi", e.status), 0) + 1
            )
        for anchor, nth, counts, total in (
            ("areas", 0, {area_names[a]: n for a, n in extra.areas.items()}, totals["total"]),
            (
                "practices",
                0,
                {label(c, "fi"): n for c, n in extra.practice_themes.items()},
                totals["good"],
            ),
            ("escalations", 0, statuses, totals["escalated"]),
        ):
            printed = table_cells(page, anchor, nth)
            assert set(printed) == {k for k, n in counts.items() if n}, (hint, anchor)
            hidden = {name for name, value in printed.items() if concealed(value)}
            leaked = given_back(counts, hidden, total, privacy.min_cell)
            assert not leaked, (hint, anchor, counts, leaked)
            checked["tables"] += 1
        # Good practices are described only from themes with at least min_cell entries.
        allowed = {label(c, "fi") for c in numbers.quotable_themes(report_figures.themes,
                                                                   privacy.min_cell)}  # fmt: skip
        for meta in re.findall(r'<blockquote class="practice">[^<]*<span class="meta">([^<]*),',
                               page):  # fmt: skip
            assert meta in allowed, (hint, meta)
            checked["practices"] += 1
        checked["report"] += 1
    print(f"checked {checked}")
    assert checked["monthly"] == checked["report"] == DATA_SETS and checked["hidden"] > 0
    assert checked["regions"] > 0
    assert checked["tables"] == 3 * DATA_SETS
