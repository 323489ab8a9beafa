"""The social report (sosiaalinen raportti): figures in, a printable HTML or PDF out.

A region hands this report to its decision makers and uses it in its welfare
report (hyvinvointikertomus). The module is pure: ``storage.report_queries``
collects ``ReportFigures`` from the database, ``build_report`` turns them into
a ``Report`` in one language (labels, trends against the previous period of
equal length, rising phenomena), ranking the rows, choosing the rising
phenomena and the quotes by the rules the digests use (``digests.rules``:
a phenomenon rises when it is at least ``RISING_MIN_COUNT`` now and more than
in the previous period), ``render_html`` fills the Jinja2 template in
``digests/templates/`` with charts drawn by matplotlib and embedded as
``data:`` URIs, and ``render_pdf`` prints the very same HTML with WeasyPrint.

Importing the module loads none of matplotlib, Jinja2 or WeasyPrint (the
queries import it for the figure classes): each is imported by the function
that draws, fills or prints. Drawing uses ``matplotlib.figure.Figure`` only,
never ``pyplot``, so reports may be drawn in worker threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from babel.dates import format_date

from digests import numbers
from digests.model import Activity
from digests.numbers import LEADERSHIP, Privacy
from digests.report_sections import (
    ESCALATIONS_IN_BODY,
    AppendixRow,
    SectionFigures,
    Sections,
    appendix_csv,
    build_sections,
)
from digests.rules import (
    per_worker_week,
    pick_quotes,
    ranked_shown,
    rising,
    shown_first,
    uses_rate,
)
from flows.i18n import label, t
from flows.official_codes import NO_CODES, OfficialCodes
from flows.statuses import OPEN_STATUSES, status_label
from flows.taxonomy import SHL48, TAXONOMY_VERSION

if TYPE_CHECKING:
    from jinja2 import Environment
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DOMAIN = "datacare"
TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_QUOTES = 8
MAX_RISING = 5
# A (theme, signal) pair rises with at least two observations and more than before.
RISING_MIN_COUNT = 2
RISING_RATIO = 1.0


# --- what the queries hand in ------------------------------------------------------


@dataclass(frozen=True)
class EscalationLine:
    """One escalated observation and the latest word on it."""

    observation_id: int
    observed_on: date
    kind: str  # escalation.leadership or escalation.shl48
    theme: str
    status: str  # one of flows.statuses.ESCALATION_STATUSES
    response: str | None  # the latest text a leader wrote, if any
    # Where it was observed: for the appendix's region code and municipality number.
    team_id: str = ""
    region: str = ""
    area: str | None = None


@dataclass(frozen=True)
class QuoteLine:
    """A client's own words, with the theme and month they were recorded under."""

    text: str
    theme: str
    observed_on: date


@dataclass(frozen=True)
class ReportFigures:
    """Everything the report shows, counted by the database for one region and period.

    ``end`` is the last day included. ``previous_*`` count the period of equal
    length just before ``start``; ``combos`` and ``previous_combos`` count
    (theme, signal) pairs, the unit of a "phenomenon" in the rising list.
    """

    region: str
    region_name: str
    start: date
    end: date
    total: int
    previous_total: int
    good_practices: int
    marked_growing: int
    teams: int
    workers: int
    themes: Mapping[str, int]
    previous_themes: Mapping[str, int]
    signals: Mapping[str, int]
    groups: Mapping[str, int]
    combos: Mapping[tuple[str, str], int]
    previous_combos: Mapping[tuple[str, str], int]
    monthly: Sequence[tuple[date, int]]
    escalations: Sequence[EscalationLine]
    quotes: Sequence[QuoteLine]
    escalated: int = 0
    shl48: int = 0
    # The comparison section: the region's active workers, the whole organisation.
    comparison: ComparisonFigures | None = None
    # The knowledge path, conclusions, good practices and areas (digests.report_sections).
    sections: SectionFigures = field(default_factory=SectionFigures)
    # The official codes of the config: the appendix's region_code and municipality.
    codes: OfficialCodes = NO_CODES


# --- the report model ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a figures table: a code, its label and counts (``*_text``: as printed,
    "< 5" for a hidden count; ``drawn``: the bar in a chart, 0 for a hidden count)."""

    code: str
    label: str
    count: int
    share: str
    previous: int | None = None
    change: str = ""
    count_text: str = ""
    previous_text: str = ""
    drawn: int = 0
    previous_drawn: int = 0


@dataclass(frozen=True)
class Rising:
    theme: str
    signal: str
    count: int
    previous: int
    change: str
    count_text: str = ""
    previous_text: str = ""


@dataclass(frozen=True)
class EscalationItem:
    number: int
    date: str
    kind: str
    theme: str
    status: str
    status_code: str
    response: str


@dataclass(frozen=True)
class Quote:
    text: str
    meta: str


@dataclass(frozen=True)
class Chart:
    title: str
    data_uri: str


@dataclass
class Report:
    """The social report in one language, ready for the template."""

    lang: str
    title: str
    region: str
    period: str
    generated: str
    total: int
    previous_total: int
    problems: int
    good_practices: int
    escalated: int
    shl48: int
    teams: int
    workers: int
    marked_growing: int
    themes: list[Row]
    signals: list[Row]
    groups: list[Row]
    rising: list[Rising]
    escalations: list[EscalationItem]
    quotes: list[Quote]
    charts: dict[str, Chart] = field(default_factory=dict)
    # Every count as printed ("2 973", "< 5"): the tiles and notes of the template.
    shown: dict[str, str] = field(default_factory=dict)
    # Months and their counts as drawn (a hidden count is drawn as 0).
    monthly_drawn: list[tuple[date, int]] = field(default_factory=list)
    # The comparison section (``build_comparison``); None without its figures.
    comparison: Comparison | None = None
    # Conclusions, proposals, good practices, phenomena, areas, colophon.
    sections: Sections | None = None

    def text(self, key: str, **params: object) -> str:
        """A fixed text of the report in its language (used by the template)."""
        return t(self.lang, key, domain=DOMAIN, **params)


def _share(count: int, total: int, lang: str, hidden: bool = False) -> str:
    # A hidden count's share would give it back (times the total): not printed.
    if hidden or not total:
        return "–"
    return numbers.percent(count / total, lang)


def _change(count: int, previous: int, lang: str, hidden: bool = False) -> str:
    if hidden:  # with one of its two counts hidden, the change would give it back
        return "–"
    if previous == 0:
        return t(lang, "report.new", domain=DOMAIN) if count else "–"
    return numbers.percent((count - previous) / previous, lang, signed=True)


def _rows(
    counts: Mapping[str, int],
    total: int,
    lang: str,
    previous: Mapping[str, int] | None = None,
    privacy: Privacy = LEADERSHIP,
) -> list[Row]:
    """Rows for every code with a count (now or before), ranked by the count now; hidden
    counts decided on the whole distribution (its total is printed) and on the previous
    period's (whose total is printed too)."""
    before_counts = previous or {}
    shown = [c for c in {*counts, *before_counts} if counts.get(c) or before_counts.get(c)]
    hidden_now = privacy.hidden({c: counts.get(c, 0) for c in shown})
    hidden_before = privacy.hidden({c: before_counts.get(c, 0) for c in shown})
    rows = []
    order = ranked_shown(shown, _same, hidden_now, lambda c: counts.get(c, 0))
    for code in order:
        count = counts.get(code, 0)
        before = previous.get(code, 0) if previous is not None else None
        now_hidden = code in hidden_now or privacy.small(count)
        before_hidden = code in hidden_before or privacy.small(before or 0)
        rows.append(
            Row(
                code=code,
                label=label(code, lang),
                count=count,
                share=_share(count, total, lang, now_hidden),
                previous=before,
                change=(
                    _change(count, before, lang, now_hidden or before_hidden)
                    if before is not None
                    else ""
                ),
                count_text=numbers.count(count, lang, privacy, now_hidden),
                previous_text=(
                    numbers.count(before, lang, privacy, before_hidden)
                    if before is not None
                    else ""
                ),
                drawn=0 if now_hidden else count,
                previous_drawn=0 if before_hidden or before is None else before,
            )
        )
    return rows


def _same(code: str) -> str:
    return code


@dataclass(frozen=True)
class _Phenomenon:
    """A (theme, signal) pair now, against its count in the previous period."""

    code: tuple[str, str]
    count: int
    before: int

    @property
    def average(self) -> float:
        """What ``count`` is compared with: the previous period is as long as this one."""
        return self.before


def _rising(figures: ReportFigures, lang: str, privacy: Privacy = LEADERSHIP) -> list[Rising]:
    """The (theme, signal) pairs that grew most against the previous period; in
    observations per active worker-week when the active workers changed by more than
    20 % (``digests.rules.uses_rate``), and then the change printed is the rate's."""
    pairs = (
        _Phenomenon(pair, count, figures.previous_combos.get(pair, 0))
        for pair, count in figures.combos.items()
    )
    activity = figures.comparison.activity if figures.comparison is not None else None
    by_rate = activity is not None and uses_rate(activity)

    def change(p: _Phenomenon) -> str:
        hidden = privacy.small(p.count) or privacy.small(p.before)
        if not by_rate or activity is None or hidden or not p.before:
            return _change(p.count, p.before, lang, hidden)
        now = per_worker_week(p.count, activity.worker_weeks) or 0.0
        was = per_worker_week(p.before, activity.before_worker_weeks) or 0.0
        return numbers.percent(now / was - 1, lang, signed=True) if was else _change(1, 0, lang)

    return [
        Rising(
            theme=label(p.code[0], lang),
            signal=label(p.code[1], lang),
            count=p.count,
            previous=p.before,
            change=change(p),
            count_text=numbers.count(p.count, lang, privacy),
            previous_text=numbers.count(p.before, lang, privacy),
        )
        for p in _hidden_last(
            rising(pairs, RISING_MIN_COUNT, RISING_RATIO, activity)[:MAX_RISING], privacy
        )
    ]


def _hidden_last(found: list[_Phenomenon], privacy: Privacy) -> list[_Phenomenon]:
    """Rows with a hidden number after the shown ones (``rules.shown_first``): ranked by
    their growth, a hidden count between two shown rows would be narrowed down by them."""
    hidden = {p.code for p in found if privacy.small(p.count) or privacy.small(p.before)}
    return shown_first(found, lambda p: p.code, hidden)


# --- the comparison section ("Vertailu", "Jämförelse", "Comparison") --------------------
#
# This period against the previous period of equal length, and the region against the
# whole organisation, in counts and in observations per active worker-week. Its texts
# are in the ``digests`` catalog (``comparison.*``), its template block in
# ``templates/comparison.html.j2``.

COMPARISON_DOMAIN = "digests"


@dataclass(frozen=True)
class PeerFigures:
    """What the report's scope is compared with in this period: observations (per theme),
    active workers and active worker-weeks of the team's region or of the organisation."""

    total: int
    themes: Mapping[str, int]
    workers: int
    worker_weeks: int


@dataclass(frozen=True)
class ComparisonFigures:
    """What the comparison section counts besides ``ReportFigures``: the scope's own
    active workers and worker-weeks now and in the previous period (``Activity`` with one
    earlier period; a team's own for a team's report), and the whole organisation's
    observations, per theme, active workers and worker-weeks in this period.

    ``region``: a team's report compares the team with its region too (``region_name``
    heads its column). ``of_organisation``: the organisation's own report, compared with
    its previous period only (not with itself)."""

    activity: Activity
    organisation_total: int
    organisation_themes: Mapping[str, int]
    organisation_workers: int
    organisation_worker_weeks: int
    region: PeerFigures | None = None
    region_name: str = ""
    of_organisation: bool = False

    def peers(self) -> list[tuple[str, PeerFigures]]:
        """The columns the scope is compared with: ("region", its figures) for a team, then
        ("organisation", ...) unless the report is the organisation's."""
        out = [("region", self.region)] if self.region is not None else []
        if not self.of_organisation:
            organisation = PeerFigures(
                self.organisation_total,
                self.organisation_themes,
                self.organisation_workers,
                self.organisation_worker_weeks,
            )
            out.append(("organisation", organisation))
        return out


@dataclass(frozen=True)
class ComparisonLine:
    """A row of the comparison: the scope now, before, the change, and each peer (its
    region for a team, the organisation), each as printed: "< 5" and "–" for what is
    hidden. ``rate``: the cells are rates."""

    label: str
    now: str
    previous: str
    change: str
    peers: tuple[str, ...] = ()
    rate: bool = False


@dataclass(frozen=True)
class ComparisonTheme:
    """A theme's count in the scope and its rate per active worker-week: now, in the
    previous period and in each peer (the team's region, the whole organisation)."""

    code: str
    label: str
    count: str
    rate: str
    previous_rate: str
    peer_rates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """The comparison section in one language, ready for its template block."""

    heading: str
    intro: str
    columns: tuple[str, ...]
    lines: list[ComparisonLine]
    theme_columns: tuple[str, ...]
    themes: list[ComparisonTheme]
    notes: list[str]


def _ct(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=COMPARISON_DOMAIN, **params)


def build_comparison(
    figures: ReportFigures,
    lang: str,
    privacy: Privacy = LEADERSHIP,
    total_hidden: bool = False,
    previous_total_hidden: bool = False,
) -> Comparison | None:
    """The comparison section from ``figures`` (None without ``figures.comparison``).

    A team's report compares the team with its region and the organisation, a region's
    with the organisation, the organisation's only with its previous period. Counts show
    as "< 5" as everywhere in the report (the theme counts hidden exactly as in the themes
    table; a total "–" where ``build_report`` hides it). A rate per active worker-week is
    hidden wherever its count is and when fewer than ``min_cell`` workers were active
    (``numbers.rate``): with the worker-weeks printed beside it, a rate gives its count
    back. A change is printed only between two printed figures.
    """
    c = figures.comparison
    if c is None:
        return None
    a = c.activity
    before_workers = a.before_workers[0] if a.before_workers else 0
    peers = c.peers()

    def count(n: int) -> str:
        return numbers.count(n, lang, privacy)

    def change(now: int, before: int, hidden: bool = False) -> str:
        return _change(now, before, lang, hidden or privacy.small(now) or privacy.small(before))

    rate_now = numbers.rate(figures.total, a.worker_weeks, a.workers, lang, privacy, total_hidden)
    rate_before = numbers.rate(
        figures.previous_total,
        a.before_worker_weeks,
        before_workers,
        lang,
        privacy,
        previous_total_hidden,
    )
    rate_change = "–"
    if rate_now is not None and rate_before is not None:
        now = per_worker_week(figures.total, a.worker_weeks) or 0.0
        was = per_worker_week(figures.previous_total, a.before_worker_weeks) or 0.0
        rate_change = numbers.percent(now / was - 1, lang, signed=True) if was else "–"
    peer_totals_hidden = [privacy.total_hidden(peer.themes) for _, peer in peers]
    peer_hidden = [privacy.hidden(dict(peer.themes)) for _, peer in peers]
    lines = [
        ComparisonLine(
            _ct(lang, "comparison.observations"),
            numbers.total(figures.total, lang, privacy, total_hidden),
            numbers.total(figures.previous_total, lang, privacy, previous_total_hidden),
            change(figures.total, figures.previous_total, total_hidden or previous_total_hidden),
            tuple(
                numbers.total(peer.total, lang, privacy, hidden)
                for (_, peer), hidden in zip(peers, peer_totals_hidden, strict=True)
            ),
        ),
        ComparisonLine(
            _ct(lang, "comparison.workers"),
            count(a.workers),
            count(before_workers),
            change(a.workers, before_workers),
            tuple(count(peer.workers) for _, peer in peers),
        ),
        ComparisonLine(
            _ct(lang, "comparison.worker_weeks"),
            count(a.worker_weeks),
            count(a.before_worker_weeks),
            change(a.worker_weeks, a.before_worker_weeks),
            tuple(count(peer.worker_weeks) for _, peer in peers),
        ),
        ComparisonLine(
            _ct(lang, "comparison.rate"),
            rate_now or "–",
            rate_before or "–",
            rate_change,
            tuple(
                numbers.rate(peer.total, peer.worker_weeks, peer.workers, lang, privacy, hidden)
                or "–"
                for (_, peer), hidden in zip(peers, peer_totals_hidden, strict=True)
            ),
            rate=True,
        ),
    ]

    now_counts, before_counts = figures.themes, figures.previous_themes
    shown = [
        code
        for code in {*now_counts, *before_counts}
        if now_counts.get(code) or before_counts.get(code)
    ]
    hidden_now = privacy.hidden({code: now_counts.get(code, 0) for code in shown})
    hidden_before = privacy.hidden({code: before_counts.get(code, 0) for code in shown})
    themes = []
    order = ranked_shown(shown, _same, hidden_now, lambda code: now_counts.get(code, 0))
    for code in order:
        n, before = now_counts.get(code, 0), before_counts.get(code, 0)
        themes.append(
            ComparisonTheme(
                code=code,
                label=label(code, lang),
                count=numbers.count(n, lang, privacy, code in hidden_now),
                rate=numbers.rate(n, a.worker_weeks, a.workers, lang, privacy, code in hidden_now)
                or "–",
                previous_rate=numbers.rate(
                    before,
                    a.before_worker_weeks,
                    before_workers,
                    lang,
                    privacy,
                    code in hidden_before,
                )
                or "–",
                peer_rates=tuple(
                    numbers.rate(
                        peer.themes.get(code, 0),
                        peer.worker_weeks,
                        peer.workers,
                        lang,
                        privacy,
                        code in hidden,
                    )
                    or "–"
                    for (_, peer), hidden in zip(peers, peer_hidden, strict=True)
                ),
            )
        )
    notes = [_ct(lang, "comparison.definition", below=numbers.below(privacy.min_cell, lang))]
    if uses_rate(a):
        notes.append(_ct(lang, "comparison.rising_by_rate"))
    kinds = [kind for kind, _ in peers]
    intro = "comparison.intro"
    if "region" in kinds:
        intro = "comparison.intro.team"
    elif not kinds:
        intro = "comparison.intro.organisation"
    peer_columns = tuple(
        _ct(lang, "comparison.col.region", region=c.region_name)
        if kind == "region"
        else _ct(lang, "comparison.col.organisation")
        for kind in kinds
    )
    peer_rate_columns = tuple(
        _ct(lang, "comparison.col.region_rate", region=c.region_name)
        if kind == "region"
        else _ct(lang, "comparison.col.organisation_rate")
        for kind in kinds
    )
    return Comparison(
        heading=_ct(lang, "comparison.heading"),
        intro=_ct(lang, intro),
        columns=(
            "",
            _ct(lang, "comparison.col.now"),
            _ct(lang, "comparison.col.previous"),
            _ct(lang, "comparison.col.change"),
            *peer_columns,
        ),
        lines=lines,
        theme_columns=(
            _ct(lang, "comparison.col.theme"),
            _ct(lang, "comparison.col.count"),
            _ct(lang, "comparison.col.rate"),
            _ct(lang, "comparison.col.previous_rate"),
            *peer_rate_columns,
        ),
        themes=themes,
        notes=notes,
    )


def _day(day: date, lang: str) -> str:
    return format_date(day, "d.M.yyyy", locale=lang)


def build_report(
    figures: ReportFigures, lang: str, today: date, privacy: Privacy = LEADERSHIP
) -> Report:
    """The report model in ``lang`` (fi, sv or en) from the counted figures.

    A printed report is read by decision makers: counts below ``privacy.min_cell`` show as
    "< 5" with secondary suppression in every table whose total is printed, and quotes
    come only from themes with at least ``min_cell`` observations in the period.
    """
    quotable = numbers.quotable_themes(figures.themes, privacy.min_cell)
    listed = in_body(figures.escalations)
    escalations = [
        EscalationItem(
            number=e.observation_id,
            date=_day(e.observed_on, lang),
            kind=label(e.kind, lang),
            theme=label(e.theme, lang),
            status=status_label(lang, e.status),
            status_code=e.status,
            response=e.response or t(lang, "report.no_response", domain=DOMAIN),
        )
        for e in listed
    ]
    quotes = [
        Quote(
            text=q.text,
            meta=t(
                lang,
                "report.quote_meta",
                domain=DOMAIN,
                theme=label(q.theme, lang),
                month=format_date(q.observed_on, "LLLL yyyy", locale=lang),
            ),
        )
        for q in pick_quotes(
            sorted(
                (q for q in figures.quotes if not privacy.suppress or q.theme in quotable),
                key=lambda q: q.observed_on,
                reverse=True,
            ),
            MAX_QUOTES,
        )
    ]
    problems = figures.total - figures.good_practices
    # Problems and good practices add up to the printed total: hidden together if one is.
    polarity_counts = {"problems": problems, "good_practices": figures.good_practices}
    polarity = privacy.hidden(polarity_counts)
    monthly_counts = {month: n for month, n in figures.monthly}
    monthly_hidden = privacy.hidden(monthly_counts)

    def shown(n: int, hidden: bool = False) -> str:
        return numbers.count(n, lang, privacy, hidden)

    statuses: dict[str, int] = {}
    for e in figures.escalations:
        statuses[e.status] = statuses.get(e.status, 0) + 1
    # A total is printed as "–" where the cells adding up to it would be given back by it
    # (``numbers.total_hidden``): the total by themes, signals, groups, months, areas and
    # polarity; the previous one by themes; good practices by theme; escalations by status.
    total_hidden = privacy.total_hidden(
        figures.themes,
        figures.signals,
        figures.groups,
        monthly_counts,
        polarity_counts,
        figures.sections.areas,
    )
    previous_hidden = privacy.total_hidden(figures.previous_themes)
    good_hidden = privacy.total_hidden(figures.sections.practice_themes)
    escalated_hidden = privacy.total_hidden(statuses)
    sections = build_sections(
        figures.sections,
        figures.themes,
        statuses,
        len(listed),
        lang,
        today,
        TAXONOMY_VERSION,
        privacy,
    )
    return Report(
        lang=lang,
        title=t(lang, "report.title", domain=DOMAIN),
        region=figures.region_name,
        period=t(
            lang,
            "report.period",
            domain=DOMAIN,
            start=_day(figures.start, lang),
            end=_day(figures.end, lang),
        ),
        generated=t(
            lang,
            "report.generated",
            domain=DOMAIN,
            date=_day(today, lang),
            version=TAXONOMY_VERSION,
        ),
        total=figures.total,
        previous_total=figures.previous_total,
        problems=problems,
        good_practices=figures.good_practices,
        escalated=figures.escalated,
        shl48=figures.shl48,
        teams=figures.teams,
        workers=figures.workers,
        marked_growing=figures.marked_growing,
        themes=_rows(
            figures.themes, figures.total, lang, previous=figures.previous_themes, privacy=privacy
        ),
        signals=_rows(figures.signals, figures.total, lang, privacy=privacy),
        groups=_rows(figures.groups, figures.total, lang, privacy=privacy),
        rising=_rising(figures, lang, privacy),
        escalations=escalations,
        quotes=quotes,
        shown={
            "total": numbers.total(figures.total, lang, privacy, total_hidden),
            "previous_total": numbers.total(figures.previous_total, lang, privacy, previous_hidden),
            # With the total hidden, the two parts would add up to it: hidden too.
            "problems": numbers.total(problems, lang, privacy, total_hidden)
            if total_hidden
            else shown(problems, "problems" in polarity),
            "good_practices": numbers.total(
                figures.good_practices, lang, privacy, total_hidden or good_hidden
            )
            if total_hidden or good_hidden
            else shown(figures.good_practices, "good_practices" in polarity),
            "escalated": numbers.total(figures.escalated, lang, privacy, escalated_hidden),
            "shl48": shown(figures.shl48),
            "teams": numbers.number(figures.teams, lang),
            "workers": shown(figures.workers),
            "marked_growing": shown(figures.marked_growing),
        },
        monthly_drawn=[
            (month, 0 if month in monthly_hidden or privacy.small(n) else n)
            for month, n in figures.monthly
        ],
        comparison=build_comparison(figures, lang, privacy, total_hidden, previous_hidden),
        sections=sections,
    )


def in_body(escalations: Sequence[EscalationLine]) -> list[EscalationLine]:
    """The escalations the report's body lists (at most ``ESCALATIONS_IN_BODY``): notices
    of a grievance still open first, then other open ones, then the newest; in date
    order. The full list is the appendix file (``appendix_rows``)."""
    open_first = sorted(
        escalations,
        key=lambda e: (
            e.status not in OPEN_STATUSES,
            e.kind != SHL48,
            -e.observed_on.toordinal(),
            -e.observation_id,
        ),
    )
    chosen = open_first[:ESCALATIONS_IN_BODY]
    return sorted(chosen, key=lambda e: (e.observed_on, e.observation_id))


def appendix_rows(escalations: Sequence[EscalationLine]) -> list[AppendixRow]:
    return [
        AppendixRow(
            e.observation_id,
            e.observed_on,
            e.kind,
            e.theme,
            e.status,
            e.response,
            e.team_id,
            e.region,
            e.area,
        )
        for e in escalations
    ]


# --- charts ----------------------------------------------------------------------------


def _png_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _themes_chart(report: Report) -> Chart:
    from matplotlib.figure import Figure

    rows = [r for r in report.themes if r.count or r.previous][:10]
    names = [r.label for r in rows][::-1]
    figure = Figure(figsize=(7.0, 0.42 * max(len(rows), 2) + 0.9))
    axes = figure.subplots()
    positions = range(len(rows))
    axes.barh(
        [p + 0.2 for p in positions],
        [r.drawn for r in rows][::-1],
        height=0.4,
        color="#1f5f8b",
        label=report.text("report.chart.this_period"),
    )
    axes.barh(
        [p - 0.2 for p in positions],
        [r.previous_drawn for r in rows][::-1],
        height=0.4,
        color="#a9c4d9",
        label=report.text("report.chart.previous_period"),
    )
    axes.set_yticks(list(positions), names, fontsize=8)
    axes.legend(fontsize=8, loc="lower right", frameon=False)
    _tidy(axes)
    return Chart(report.text("report.chart.themes"), _png_uri(figure))


def _signals_chart(report: Report) -> Chart:
    from matplotlib.figure import Figure

    rows = report.signals
    figure = Figure(figsize=(7.0, 0.42 * max(len(rows), 2) + 0.6))
    axes = figure.subplots()
    axes.barh([r.label for r in rows][::-1], [r.drawn for r in rows][::-1], color="#b5533c")
    axes.tick_params(axis="y", labelsize=8)
    _tidy(axes)
    return Chart(report.text("report.chart.signals"), _png_uri(figure))


def _monthly_chart(report: Report, monthly: Sequence[tuple[date, int]]) -> Chart:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 2.4))
    axes = figure.subplots()
    labels = [format_date(month, "LLL yy", locale=report.lang) for month, _ in monthly]
    positions = list(range(len(monthly)))
    axes.bar(positions, [count for _, count in monthly], color="#1f5f8b")
    axes.set_xticks(positions, labels)
    axes.tick_params(axis="x", labelsize=7, labelrotation=45 if len(monthly) > 6 else 0)
    _tidy(axes, counts_on="y")
    return Chart(report.text("report.chart.monthly"), _png_uri(figure))


def _tidy(axes: Axes, counts_on: str = "x") -> None:
    from matplotlib.ticker import MaxNLocator

    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    # Counts are whole observations: no 2.5 ticks.
    (axes.xaxis if counts_on == "x" else axes.yaxis).set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(labelsize=8)


def draw_charts(report: Report, figures: ReportFigures) -> None:
    """Attach the charts (themes, signals, months) to ``report``; none when nothing to show."""
    if report.total == 0 and report.previous_total == 0:
        return
    report.charts["themes"] = _themes_chart(report)
    if report.signals:
        report.charts["signals"] = _signals_chart(report)
    if len(figures.monthly) > 1:
        report.charts["monthly"] = _monthly_chart(report, report.monthly_drawn)


# --- rendering -------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (styles and charts inline)."""
    return _environment().get_template("report.html.j2").render(report=report)


def render_pdf(html: str) -> bytes:
    """The same HTML printed to PDF (A4, page numbers) by WeasyPrint."""
    return render_pdf_pages(html)[0]


def render_pdf_pages(html: str) -> tuple[bytes, int]:
    """The PDF and its number of pages (laid out once)."""
    from weasyprint import HTML

    document = HTML(string=html, base_url=str(TEMPLATES)).render()
    pdf = document.write_pdf()
    assert pdf is not None
    return bytes(pdf), len(document.pages)


@dataclass(frozen=True)
class Printed:
    """A report as files: the PDF (and its pages), the appendix CSV (None: no escalations)."""

    pdf: bytes
    pages: int
    appendix: bytes | None


def printed_report(
    figures: ReportFigures,
    lang: str,
    today: date,
    privacy: Privacy = LEADERSHIP,
    csv_dialect: str = "semicolon",
) -> Printed:
    """Build, draw, fill and print the report, and write its appendix: for a worker
    process (every argument pickles)."""
    html = render_html(social_report(figures, lang, today, privacy))
    pdf, pages = render_pdf_pages(html)
    appendix = (
        appendix_csv(appendix_rows(figures.escalations), lang, csv_dialect, figures.codes)
        if figures.escalations
        else None
    )
    return Printed(pdf, pages, appendix)


def social_report(
    figures: ReportFigures, lang: str, today: date, privacy: Privacy = LEADERSHIP
) -> Report:
    """Build the report and draw its charts: what ``render_html`` needs."""
    report = build_report(figures, lang, today, privacy)
    draw_charts(report, figures)
    return report
