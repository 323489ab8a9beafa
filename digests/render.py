"""Digests as text people read: plain text, chat HTML, charts and a CSV file.

``render_weekly`` and ``render_monthly`` turn the data of ``digests.model``
into a ``Rendered``: the same content as plain text and as the HTML subset
that Telegram and Matrix share (``<b>``, ``<i>``, ``<blockquote>``), the
charts as PNG files and, for the monthly summary, the escalated observations
as a CSV file for Excel.

Layout rules that the delivery side relies on:

* sections are separated by blank lines, so ``bot.router.split_text``
  cuts a long digest at section boundaries first, then at line ends;
* every HTML tag opens and closes on the same line, so a cut at any line end
  leaves each piece well-formed;
* everything that came from a person (team names, observation text, quotes,
  answers) goes through ``html.escape`` in the HTML version; whitespace in it
  is collapsed to keep one item on one line.

Importing this module loads no drawing library: ``digests.charts`` (matplotlib,
Pillow) is imported when the first chart is drawn.

Texts come from the ``digests`` gettext domain, labels of taxonomy codes from
the main catalog; numbers and dates are formatted by Babel for the language.
Nothing here names or counts a worker.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

from babel.dates import format_date, format_interval, format_skeleton
from babel.numbers import format_decimal, format_percent

from digests.model import (
    EscalationItem,
    LeaderAnswer,
    MonthlySummary,
    NewOrGrowing,
    WeeklyDigest,
)
from digests.periods import HELSINKI, TimeZone, parse_week, zone
from digests.spreadsheet import safe_cell
from flows import knowledge
from flows.events import Choice
from flows.i18n import label, t
from flows.statuses import OPEN
from flows.taxonomy import SHL48

DOMAIN = "digests"
BABEL_LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_FI"}
EXCERPT_CHARS = 120  # an escalation's text in a list: enough to recognise it
DESCRIPTION_CHARS = 600  # in the monthly summary; the CSV file has the full text
MAX_EARLIER_LISTED = 40  # earlier open escalations named in the text; the CSV has them all
BULLET = "• "
CSV_DELIMITER = ";"  # what Excel expects with Finnish and Swedish regional settings


@dataclass(frozen=True)
class Rendered:
    """One digest ready for a transport: text, HTML, PNG charts and an optional CSV file."""

    text: str
    html: str
    charts: list[tuple[str, bytes]] = field(default_factory=list)
    csv: bytes | None = None
    csv_filename: str | None = None
    # Buttons under the digest's last text part ("me too" on the open phenomena).
    buttons: tuple[tuple[Choice, ...], ...] = ()
    # How many observations it covers (the audit trail's row count for a read-out).
    observations: int = 0


# --- small formatting helpers ----------------------------------------------------


def _locale(lang: str) -> str:
    return BABEL_LOCALES.get(lang, BABEL_LOCALES["fi"])


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


def _plural(lang: str, key: str, n: int) -> str:
    return _t(lang, f"{key}.{'one' if n == 1 else 'other'}", n=_int(n, lang))


# Babel parses the locale and the pattern on every call (~0.1 ms); a weekly digest formats
# ~80 numbers, nearly all small counts and quarter averages: remembered per language.
@lru_cache(maxsize=4096)
def _int(n: int, lang: str) -> str:
    return format_decimal(n, locale=_locale(lang))


@lru_cache(maxsize=4096)
def _decimal(x: float, lang: str) -> str:
    # Two decimals at most: a four-week average is a multiple of 0.25 and shows exactly.
    return format_decimal(x, format="#,##0.##", locale=_locale(lang))


def _signed(x: float, lang: str) -> str:
    if round(x, 2) == 0:
        return "±0"
    return format_decimal(x, format="+#,##0.##;-#,##0.##", locale=_locale(lang))


def _percent(ratio: float, lang: str, signed: bool = False) -> str:
    pattern = "+#,##0 %;-#,##0 %" if signed else "#,##0 %"
    return format_percent(ratio, format=pattern, locale=_locale(lang))


def _day(moment: datetime, tz: tzinfo, lang: str, with_year: bool = False) -> str:
    local = moment.astimezone(tz).date()
    return format_skeleton("yMMMd" if with_year else "MMMd", local, locale=_locale(lang))


def _one_line(text: str, limit: int | None = None) -> str:
    """Whitespace collapsed; cut at a word boundary with an ellipsis past ``limit``."""
    flat = " ".join(text.split())
    if limit is None or len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut.rstrip(",.;:") + "…"


class _Doc:
    """Builds the plain and the HTML version side by side, one section at a time."""

    def __init__(self) -> None:
        self.text: list[list[str]] = []
        self.html: list[list[str]] = []

    def section(self, heading: str | None = None) -> None:
        self.text.append([heading] if heading else [])
        self.html.append([f"<b>{html.escape(heading)}</b>"] if heading else [])

    def line(self, plain: str, markup: str | None = None) -> None:
        """Add a line; ``markup`` is its HTML (default: ``plain`` escaped)."""
        self.text[-1].append(plain)
        self.html[-1].append(markup if markup is not None else html.escape(plain))

    def item(self, plain: str, markup: str | None = None) -> None:
        self.line(BULLET + plain, BULLET + (markup if markup is not None else html.escape(plain)))

    def render(self) -> tuple[str, str]:
        def join(sections: list[list[str]]) -> str:
            return "\n\n".join("\n".join(lines) for lines in sections if lines)

        return join(self.text), join(self.html)


def _both(lang: str, key: str, **params: str) -> tuple[str, str]:
    """A message as plain text and as HTML, with every parameter escaped in the HTML."""
    escaped = {name: html.escape(value) for name, value in params.items()}
    return _t(lang, key, **params), _t(lang, key, **escaped)


def _status(lang: str, status: str) -> str:
    return _t(lang, f"status.{status}")


def _ref(item_id: int) -> str:
    return f"#{item_id}"


# --- weekly --------------------------------------------------------------------------


def render_weekly(d: WeeklyDigest, lang: str, tz: TimeZone = HELSINKI) -> Rendered:
    """The weekly team digest in ``lang``. An empty week is exactly two lines."""
    zone_ = zone(tz)
    year, number = parse_week(d.week)
    first_day = d.start.astimezone(zone_).date()
    last_day = d.end.astimezone(zone_).date() - timedelta(days=1)
    dates = format_interval(first_day, last_day, "yMMMd", locale=_locale(lang))
    doc = _Doc()
    title = _both(
        lang, "weekly.title", team=d.team_name, week=str(number), year=str(year), dates=dates
    )
    doc.section()
    doc.line(title[0], f"<b>{title[1]}</b>")
    if d.total == 0:
        doc.line(_t(lang, "weekly.empty"))
    else:
        doc.line(
            _t(
                lang,
                "weekly.total",
                observations=_plural(lang, "weekly.observations", d.total),
                workers=_plural(lang, "weekly.workers", d.workers),
            )
        )
        _weekly_counts(doc, d, lang)
        _weekly_quotes(doc, d, lang)
        _weekly_escalations(doc, d.escalations, lang, zone_)
    _weekly_answers(doc, d.answers, lang, zone_)
    _weekly_knowledge(doc, d, lang)
    text, markup = doc.render()
    shown = [row for row in d.themes if row.count or row.average]
    chart_list: list[tuple[str, bytes]] = []
    if d.total and shown:
        from digests import charts  # matplotlib and Pillow: only when a chart is drawn

        week_no = _int(number, lang)
        chart_list.append(
            (
                f"themes-{d.team_id}-{d.week}.png",
                charts.weekly_themes_chart(
                    [label(row.code, lang) for row in shown],
                    [row.count for row in shown],
                    [row.average for row in shown],
                    title=_t(lang, "chart.weekly_title", week=week_no),
                    this_week_label=_t(lang, "chart.this_week", week=week_no),
                    average_label=_t(lang, "chart.average"),
                    number=lambda value: _decimal(value, lang),
                ),
            )
        )
    buttons = tuple((knowledge.me_too_button(lang, p.id),) for p in d.open_phenomena)
    return Rendered(
        text=text, html=markup, charts=chart_list, buttons=buttons, observations=d.total
    )


def _weekly_knowledge(doc: _Doc, d: WeeklyDigest, lang: str) -> None:
    """What happened to our observations, and the open phenomena to say "me too" to."""

    def kt(key: str, **params: object) -> str:
        return t(lang, key, domain=knowledge.DOMAIN, **params)

    if d.linked_phenomena or d.moved_proposals:
        doc.section(kt("knowledge.digest.title"))
        for view in d.linked_phenomena:
            plain = kt("knowledge.news.phenomenon.linked", number=view.id) + f": {view.title}"
            doc.item(plain, html.escape(plain))
        for proposal in d.moved_proposals:
            plain = kt(
                "knowledge.digest.proposal_line",
                number=proposal.id,
                status=knowledge.status_label(lang, proposal.status),
                text=_one_line(proposal.text),
            )
            doc.item(plain, html.escape(plain))
    if d.open_phenomena:
        doc.section(kt("knowledge.digest.open"))
        for view in d.open_phenomena:
            # Fewer than three confirmers are "a few", never the exact small count.
            few = knowledge.count_label(view.confirmations) is None
            plain = kt(
                "knowledge.digest.phenomenon_line_few"
                if few
                else "knowledge.digest.phenomenon_line",
                number=view.id,
                title=view.title,
                observations=_int(view.observations, lang),
                confirmations=_int(view.confirmations, lang),
            )
            doc.item(plain, html.escape(plain))


def _weekly_counts(doc: _Doc, d: WeeklyDigest, lang: str) -> None:
    doc.section(_t(lang, "weekly.themes"))
    for row in d.themes:
        doc.item(
            _t(
                lang,
                "weekly.theme_row",
                label=label(row.code, lang),
                count=_int(row.count, lang),
                average=_decimal(row.average, lang),
                change=_signed(row.change, lang),
            )
        )
    for heading, rows in (("weekly.signals", d.signals), ("weekly.groups", d.groups)):
        if rows:
            doc.section(_t(lang, heading))
            for count_row in rows:
                doc.item(f"{label(count_row.code, lang)}: {_int(count_row.count, lang)}")
    if d.new_or_growing:
        doc.section(_t(lang, "weekly.new_or_growing"))
        for trend in d.new_or_growing:
            doc.item(f"{label(trend.code, lang)}: {_trend_parts(trend, lang)}")


def _trend_parts(trend: NewOrGrowing, lang: str) -> str:
    parts = []
    if trend.new:
        parts.append(_plural(lang, "count.new", trend.new))
    if trend.growing:
        parts.append(_plural(lang, "count.growing", trend.growing))
    if trend.rising:
        parts.append(_t(lang, "weekly.rising"))
    return ", ".join(parts)


def _weekly_quotes(doc: _Doc, d: WeeklyDigest, lang: str) -> None:
    if not d.quotes:
        return
    doc.section(_t(lang, "weekly.quotes"))
    open_mark, close_mark = ("“", "”") if lang == "en" else ("”", "”")
    for quote in d.quotes:
        text = _one_line(quote.text)
        theme = label(quote.theme, lang)
        doc.line(
            f"{open_mark}{text}{close_mark} ({theme})",
            f"<blockquote>{open_mark}{html.escape(text)}{close_mark} "
            f"<i>({html.escape(theme)})</i></blockquote>",
        )


def _kind(item: EscalationItem, lang: str) -> str:
    return f" ({_t(lang, 'kind.shl48')})" if item.escalation == SHL48 else ""


def _weekly_escalations(doc: _Doc, items: Sequence[EscalationItem], lang: str, tz: tzinfo) -> None:
    if not items:
        return
    doc.section(_t(lang, "weekly.escalations"))
    for item in items:
        head = (
            f"{_ref(item.observation_id)}{_kind(item, lang)} {label(item.theme, lang)}, "
            f"{_day(item.observed_at, tz, lang)}: {_status(lang, item.status.status)}"
        )
        excerpt = _one_line(item.description or "", EXCERPT_CHARS)
        plain = f"{head} — {excerpt}" if excerpt else head
        markup = f"<b>{html.escape(head)}</b>" + (f" — {html.escape(excerpt)}" if excerpt else "")
        doc.item(plain, markup)


def _weekly_answers(doc: _Doc, answers: Sequence[LeaderAnswer], lang: str, tz: tzinfo) -> None:
    if not answers:
        return
    doc.section(_t(lang, "weekly.answers"))
    for answer in answers:
        head = (
            f"{_ref(answer.observation_id)} {label(answer.theme, lang)} — "
            f"{_status(lang, answer.status)}, {_day(answer.at, tz, lang)}:"
        )
        text = _one_line(answer.text)
        doc.item(f"{head} {text}", f"<b>{html.escape(head)}</b> <i>{html.escape(text)}</i>")


# --- monthly -------------------------------------------------------------------------


def _month_name(month: str, lang: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return format_date(date(year, number, 1), "LLLL yyyy", locale=_locale(lang))


def _scope(s: MonthlySummary, lang: str) -> str:
    return s.scope_name if s.region is not None else _t(lang, "monthly.whole_organisation")


def render_monthly(s: MonthlySummary, lang: str, tz: TimeZone = HELSINKI) -> Rendered:
    """The monthly escalation summary of a region or of the whole organisation."""
    zone_ = zone(tz)
    month = _month_name(s.month, lang)
    scope = _scope(s, lang)
    doc = _Doc()
    doc.section()
    title = _both(lang, "monthly.title", scope=scope, month=month)
    doc.line(title[0], f"<b>{title[1]}</b>")

    doc.section(_t(lang, "monthly.totals"))
    for key, n in (
        ("monthly.total_observations", s.total),
        ("monthly.total_teams", s.teams),
        ("monthly.total_workers", s.workers),
        ("monthly.total_escalated", s.escalated),
        ("monthly.total_shl48", s.shl48_count),
    ):
        doc.item(_t(lang, key, n=_int(n, lang)))

    if s.leading:
        doc.section(_t(lang, "monthly.leading"))
        for rank, row in enumerate(s.leading, 1):
            doc.line(
                _t(
                    lang,
                    "monthly.leading_row",
                    rank=str(rank),
                    label=label(row.code, lang),
                    count=_int(row.count, lang),
                )
            )
    if s.spread:
        doc.section(_t(lang, "monthly.spread"))
        for rank, spread in enumerate(s.spread, 1):
            doc.line(
                _t(
                    lang,
                    "monthly.spread_row",
                    rank=str(rank),
                    label=label(spread.code, lang),
                    teams=_plural(lang, "count.teams", spread.teams),
                    observations=_plural(lang, "count.observations", spread.count),
                )
            )

    doc.section(_t(lang, "monthly.rising"))
    rule = _t(
        lang,
        "monthly.rising_rule",
        min_count=_int(s.min_count, lang),
        ratio=_percent(s.ratio, lang),
    )
    doc.line(rule, f"<i>{html.escape(rule)}</i>")
    if not s.rising:
        doc.line(_t(lang, "monthly.rising_none"))
    for rising in s.rising:
        ratio = rising.ratio
        change = (
            _t(lang, "monthly.rising_new")
            if ratio is None
            else _percent(ratio - 1, lang, signed=True)
        )
        doc.item(
            _t(
                lang,
                "monthly.rising_row",
                label=label(rising.code, lang),
                count=_int(rising.count, lang),
                average=_decimal(rising.average, lang),
                change=change,
            )
        )

    doc.section(_t(lang, "monthly.escalated"))
    if not s.escalated_by_theme:
        doc.line(_t(lang, "monthly.escalated_none"))
    for group in s.escalated_by_theme:
        heading = f"{label(group.theme, lang)} ({_int(len(group.items), lang)})"
        doc.line(heading, f"<i>{html.escape(heading)}</i>")
        for item in group.items:
            _monthly_item(doc, item, lang, zone_, with_theme=False, describe=True)

    doc.section(_t(lang, "monthly.shl48"))
    if not s.shl48:
        doc.line(_t(lang, "monthly.shl48_none"))
    for item in s.shl48:
        _monthly_item(doc, item, lang, zone_, with_theme=True, describe=True)

    doc.section(_t(lang, "monthly.earlier_open"))
    if not s.earlier_open:
        doc.line(_t(lang, "monthly.earlier_none"))
    for item in s.earlier_open[:MAX_EARLIER_LISTED]:
        _monthly_item(doc, item, lang, zone_, with_theme=True, describe=False, with_year=True)
    if len(s.earlier_open) > MAX_EARLIER_LISTED:
        more = len(s.earlier_open) - MAX_EARLIER_LISTED
        doc.line(_t(lang, "monthly.earlier_more", n=_int(more, lang)))

    rows = [("this_month", item) for item in s.escalated_items]
    rows.extend(("earlier_open", item) for item in s.earlier_open)
    if rows:
        doc.section()
        doc.line(_t(lang, "monthly.attachment"))
    text, markup = doc.render()

    scope_slug = s.region or "all"
    chart_list: list[tuple[str, bytes]] = []
    if s.leading:
        from digests import charts  # matplotlib and Pillow: only when a chart is drawn

        chart_list.append(
            (
                f"themes-{scope_slug}-{s.month}.png",
                charts.monthly_themes_chart(
                    [label(row.code, lang) for row in s.leading],
                    [row.count for row in s.leading],
                    [row.teams for row in s.leading],
                    title=_t(lang, "chart.monthly_title", scope=scope, month=month),
                    count_label=_t(lang, "chart.observations"),
                    teams_label=_t(lang, "chart.teams"),
                ),
            )
        )
    return Rendered(
        text=text,
        html=markup,
        charts=chart_list,
        csv=escalations_csv(rows, lang, zone_) if rows else None,
        csv_filename=f"escalations-{scope_slug}-{s.month}.csv" if rows else None,
        observations=s.total,
    )


def _days(item: EscalationItem, lang: str) -> str:
    key = "count.days_open" if item.status.is_open else "count.days_closed"
    return _plural(lang, key, item.days_open)


def _monthly_item(
    doc: _Doc,
    item: EscalationItem,
    lang: str,
    tz: tzinfo,
    *,
    with_theme: bool,
    describe: bool,
    with_year: bool = False,
) -> None:
    parts = [
        f"{_ref(item.observation_id)}{_kind(item, lang)}",
        item.team_name,
        _day(item.observed_at, tz, lang, with_year=with_year),
    ]
    if with_theme:
        parts.append(label(item.theme, lang))
    if item.status.status != OPEN:  # "open" is said by the days open that follow
        parts.append(_status(lang, item.status.status))
    parts.append(_days(item, lang))
    head = " · ".join(parts)
    description = _one_line(item.description or "", DESCRIPTION_CHARS) if describe else ""
    plain = f"{head} — {description}" if description else head
    markup = f"<b>{html.escape(head)}</b>" + (
        f" — {html.escape(description)}" if description else ""
    )
    doc.item(plain, markup)
    if describe and item.action:
        action = _t(lang, "monthly.action", action=_one_line(item.action, DESCRIPTION_CHARS))
        doc.line(f"   {action}", f"   <i>{html.escape(action)}</i>")


# --- CSV -----------------------------------------------------------------------------

CSV_COLUMNS = (
    "listed_as",
    "observation_id",
    "observed_at",
    "recorded_at",
    "team_id",
    "team",
    "region",
    "area",
    "escalation",
    "escalation_label",
    "theme",
    "theme_label",
    "population_group",
    "population_group_label",
    "signal",
    "signal_label",
    "status",
    "status_label",
    "status_at",
    "days_open",
    "description",
    "proposed_action",
    "answer",
)


def _local_iso(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).isoformat(timespec="minutes") if moment else ""


def escalations_csv(
    rows: Iterable[tuple[str, EscalationItem]], lang: str, tz: TimeZone = HELSINKI
) -> bytes:
    """Escalated observations as CSV for Excel: UTF-8 with BOM, ``;``, codes and labels.

    Free text goes through ``digests.spreadsheet.safe_cell``: no cell runs as a formula.

    ``rows`` pairs each item with how the summary lists it: ``this_month`` (raised in
    the month) or ``earlier_open`` (raised before and still open).
    """
    zone_ = zone(tz)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for listed_as, item in rows:
        writer.writerow(
            [
                listed_as,
                str(item.observation_id),
                _local_iso(item.observed_at, zone_),
                _local_iso(item.recorded_at, zone_),
                item.team_id,
                safe_cell(item.team_name),
                item.region,
                safe_cell(item.area or ""),
                item.escalation,
                _t(lang, f"kind.{item.escalation.removeprefix('escalation.')}"),
                item.theme,
                label(item.theme, lang),
                item.population_group,
                label(item.population_group, lang),
                item.signal,
                label(item.signal, lang),
                item.status.status,
                _status(lang, item.status.status),
                _local_iso(item.status.at, zone_),
                str(item.days_open),
                safe_cell(item.description or ""),
                safe_cell(item.action or ""),
                safe_cell(item.status.text or ""),
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")
