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
from digests.rules import per_worker_week, pick_quotes, ranked, rising, uses_rate
from flows.i18n import label, t
from flows.statuses import status_label
from flows.taxonomy import TAXONOMY_VERSION

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
    for code in ranked(shown, lambda c: c, lambda c: counts.get(c, 0)):
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
        for p in rising(pairs, RISING_MIN_COUNT, RISING_RATIO, activity)[:MAX_RISING]
    ]


# --- the comparison section ("Vertailu", "Jämförelse", "Comparison") --------------------
#
# This period against the previous period of equal length, and the region against the
# whole organisation, in counts and in observations per active worker-week. Its texts
# are in the ``digests`` catalog (``comparison.*``), its template block in
# ``templates/comparison.html.j2``.

COMPARISON_DOMAIN = "digests"


@dataclass(frozen=True)
class ComparisonFigures:
    """What the comparison section counts besides ``ReportFigures``: the region's active
    workers and worker-weeks now and in the previous period (``Activity`` with one
    earlier period), and the whole organisation's observations, per theme, active workers
    and worker-weeks in this period."""

    activity: Activity
    organisation_total: int
    organisation_themes: Mapping[str, int]
    organisation_workers: int
    organisation_worker_weeks: int


@dataclass(frozen=True)
class ComparisonLine:
    """A row of the comparison: the region now, before, the change, the organisation
    (each as printed: "< 5" and "–" for what is hidden). ``rate``: the cells are rates."""

    label: str
    now: str
    previous: str
    change: str
    organisation: str
    rate: bool = False


@dataclass(frozen=True)
class ComparisonTheme:
    """A theme's count in the region and its rate per active worker-week: now, in the
    previous period and in the whole organisation."""

    code: str
    label: str
    count: str
    rate: str
    previous_rate: str
    organisation_rate: str


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
    figures: ReportFigures, lang: str, privacy: Privacy = LEADERSHIP
) -> Comparison | None:
    """The comparison section from ``figures`` (None without ``figures.comparison``).

    Counts show as "< 5" as everywhere in the report (the theme counts hidden exactly as
    in the themes table). A rate per active worker-week is hidden wherever its count is
    and when fewer than ``min_cell`` workers were active (``numbers.rate``): with the
    worker-weeks printed beside it, a rate gives its count back. A change is printed only
    between two printed figures.
    """
    c = figures.comparison
    if c is None:
        return None
    a = c.activity
    before_workers = a.before_workers[0] if a.before_workers else 0

    def count(n: int) -> str:
        return numbers.count(n, lang, privacy)

    def change(now: int, before: int) -> str:
        return _change(now, before, lang, privacy.small(now) or privacy.small(before))

    rate_now = numbers.rate(figures.total, a.worker_weeks, a.workers, lang, privacy)
    rate_before = numbers.rate(
        figures.previous_total, a.before_worker_weeks, before_workers, lang, privacy
    )
    rate_change = "–"
    if rate_now is not None and rate_before is not None:
        now = per_worker_week(figures.total, a.worker_weeks) or 0.0
        was = per_worker_week(figures.previous_total, a.before_worker_weeks) or 0.0
        rate_change = numbers.percent(now / was - 1, lang, signed=True) if was else "–"
    organisation_rate = numbers.rate(
        c.organisation_total,
        c.organisation_worker_weeks,
        c.organisation_workers,
        lang,
        privacy,
    )
    lines = [
        ComparisonLine(
            _ct(lang, "comparison.observations"),
            count(figures.total),
            count(figures.previous_total),
            change(figures.total, figures.previous_total),
            count(c.organisation_total),
        ),
        ComparisonLine(
            _ct(lang, "comparison.workers"),
            count(a.workers),
            count(before_workers),
            change(a.workers, before_workers),
            count(c.organisation_workers),
        ),
        ComparisonLine(
            _ct(lang, "comparison.worker_weeks"),
            count(a.worker_weeks),
            count(a.before_worker_weeks),
            change(a.worker_weeks, a.before_worker_weeks),
            count(c.organisation_worker_weeks),
        ),
        ComparisonLine(
            _ct(lang, "comparison.rate"),
            rate_now or "–",
            rate_before or "–",
            rate_change,
            organisation_rate or "–",
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
    hidden_organisation = privacy.hidden(dict(c.organisation_themes))
    themes = []
    for code in ranked(shown, lambda code: code, lambda code: now_counts.get(code, 0)):
        n, before = now_counts.get(code, 0), before_counts.get(code, 0)
        everywhere = c.organisation_themes.get(code, 0)
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
                organisation_rate=numbers.rate(
                    everywhere,
                    c.organisation_worker_weeks,
                    c.organisation_workers,
                    lang,
                    privacy,
                    code in hidden_organisation,
                )
                or "–",
            )
        )
    notes = [_ct(lang, "comparison.definition", below=numbers.below(privacy.min_cell, lang))]
    if uses_rate(a):
        notes.append(_ct(lang, "comparison.rising_by_rate"))
    return Comparison(
        heading=_ct(lang, "comparison.heading"),
        intro=_ct(lang, "comparison.intro"),
        columns=(
            "",
            _ct(lang, "comparison.col.now"),
            _ct(lang, "comparison.col.previous"),
            _ct(lang, "comparison.col.change"),
            _ct(lang, "comparison.col.organisation"),
        ),
        lines=lines,
        theme_columns=(
            _ct(lang, "comparison.col.theme"),
            _ct(lang, "comparison.col.count"),
            _ct(lang, "comparison.col.rate"),
            _ct(lang, "comparison.col.previous_rate"),
            _ct(lang, "comparison.col.organisation_rate"),
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
        for e in figures.escalations
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
    polarity = privacy.hidden({"problems": problems, "good_practices": figures.good_practices})
    monthly_hidden = privacy.hidden({month: n for month, n in figures.monthly})

    def shown(n: int, hidden: bool = False) -> str:
        return numbers.count(n, lang, privacy, hidden)

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
            "total": shown(figures.total),
            "previous_total": shown(figures.previous_total),
            "problems": shown(problems, "problems" in polarity),
            "good_practices": shown(figures.good_practices, "good_practices" in polarity),
            "escalated": shown(figures.escalated),
            "shl48": shown(figures.shl48),
            "teams": numbers.number(figures.teams, lang),
            "workers": shown(figures.workers),
            "marked_growing": shown(figures.marked_growing),
        },
        monthly_drawn=[
            (month, 0 if month in monthly_hidden or privacy.small(n) else n)
            for month, n in figures.monthly
        ],
        comparison=build_comparison(figures, lang, privacy),
    )


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
    from weasyprint import HTML

    pdf = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    assert pdf is not None
    return bytes(pdf)


def social_report(
    figures: ReportFigures, lang: str, today: date, privacy: Privacy = LEADERSHIP
) -> Report:
    """Build the report and draw its charts: what ``render_html`` needs."""
    report = build_report(figures, lang, today, privacy)
    draw_charts(report, figures)
    return report
