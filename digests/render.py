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

import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from babel.dates import format_date, format_interval, format_skeleton

from digests import numbers, rules
from digests.model import (
    AVERAGE_MONTHS,
    AVERAGE_WEEKS,
    CountRow,
    EscalationItem,
    LeaderAnswer,
    MonthlySummary,
    NewOrGrowing,
    RegionRow,
    RisingRow,
    ThemeRow,
    WeeklyDigest,
)
from digests.numbers import TEAM, Privacy
from digests.periods import HELSINKI, TimeZone, parse_week, zone
from digests.spreadsheet import DEFAULT_CSV_DIALECT as CSV_DEFAULT_DIALECT
from digests.spreadsheet import csv_writer, official_cells, safe_cell
from flows import knowledge
from flows.events import Choice
from flows.i18n import label, t
from flows.official_codes import NO_CODES, OfficialCodes
from flows.statuses import OPEN, status_label
from flows.taxonomy import SHL48
from flows.text import split_text

DOMAIN = "digests"
BABEL_LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_FI"}
EXCERPT_CHARS = 120  # an escalation's text in a list: enough to recognise it
DESCRIPTION_CHARS = 600  # in the monthly summary; the CSV file has the full text
BULLET = "• "


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
    # The whole monthly summary as a PDF, attached to the same delivery.
    pdf: bytes | None = None
    pdf_filename: str | None = None


# --- small formatting helpers ----------------------------------------------------


def _locale(lang: str) -> str:
    return BABEL_LOCALES.get(lang, BABEL_LOCALES["fi"])


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


def _plural(lang: str, key: str, n: int) -> str:
    return _t(lang, f"{key}.{'one' if n == 1 else 'other'}", n=_int(n, lang))


def _int(n: int, lang: str) -> str:
    return numbers.number(n, lang)


def _decimal(x: float, lang: str) -> str:
    return numbers.decimal(x, lang)


def _signed(x: float, lang: str) -> str:
    return numbers.signed(x, lang)


def _percent(ratio: float, lang: str, signed: bool = False) -> str:
    return numbers.percent(ratio, lang, signed=signed)


def _count(n: int, lang: str, privacy: Privacy, hidden: bool = False) -> str:
    """A count as ``privacy``'s audience sees it: the number or "< 5"."""
    return numbers.count(n, lang, privacy, hidden)


def _plural_count(lang: str, key: str, n: int, privacy: Privacy, hidden: bool = False) -> str:
    """``_plural`` with the count as the audience sees it ("< 5 havaintoa")."""
    shown = _count(n, lang, privacy, hidden)
    form = "one" if n == 1 and shown == _int(n, lang) else "other"
    return _t(lang, f"{key}.{form}", n=shown)


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
    return status_label(lang, status)


def _ref(item_id: int) -> str:
    return f"#{item_id}"


# --- weekly --------------------------------------------------------------------------


def render_weekly(
    d: WeeklyDigest, lang: str, tz: TimeZone = HELSINKI, privacy: Privacy = TEAM
) -> Rendered:
    """The weekly team digest in ``lang``. An empty week is exactly two lines.

    ``privacy``: the team's own chat (``TEAM``, the default) sees its counts, but never
    how many workers wrote when fewer than three did; rendered for leadership
    (``LEADERSHIP``) small counts show as "< 5" and quotes come only from themes with
    at least ``min_cell`` observations in the week.
    """
    zone_ = zone(tz)
    year, number = parse_week(d.week)
    first_day = d.start.astimezone(zone_).date()
    last_day = d.end.astimezone(zone_).date() - timedelta(days=1)
    dates = format_interval(first_day, last_day, "yMMMd", locale=_locale(lang))
    doc = _Doc()
    hidden = privacy.hidden({row.code: row.count for row in d.themes})
    # The total is shared by the themes, the signals and the groups.
    total_hidden = privacy.total_hidden(
        {row.code: row.count for row in d.themes},
        {row.code: row.count for row in d.signals},
        {row.code: row.count for row in d.groups},
    )
    title = _both(
        lang, "weekly.title", team=d.team_name, week=str(number), year=str(year), dates=dates
    )
    doc.section()
    doc.line(title[0], f"<b>{title[1]}</b>")
    if d.total == 0:
        doc.line(_t(lang, "weekly.empty"))
    else:
        workers = (
            _t(lang, "weekly.workers.few")
            if numbers.few_workers(d.workers, privacy)
            else _plural_count(lang, "weekly.workers", d.workers, privacy)
        )
        doc.line(
            _t(
                lang,
                "weekly.total",
                observations=_t(
                    lang,
                    "weekly.observations.other",
                    n=numbers.total(d.total, lang, privacy, total_hidden),
                )
                if total_hidden
                else _plural_count(lang, "weekly.observations", d.total, privacy),
                workers=workers,
            )
        )
        rate = None if total_hidden else _weekly_rate(d, lang, privacy)
        if rate is not None:
            doc.line(rate)
        _weekly_counts(doc, d, lang, privacy, hidden)
        _weekly_quotes(doc, d, lang, privacy)
        _weekly_escalations(doc, d.escalations, lang, zone_)
    _weekly_answers(doc, d.answers, lang, zone_)
    _weekly_knowledge(doc, d, lang)
    text, markup = doc.render()
    shown = [row for row in d.themes if row.count or row.average]
    chart_list: list[tuple[str, bytes]] = []
    # The chart writes each bar's number: for leadership it is drawn only when no count or
    # average of it is hidden (a bar of a hidden count would show its size).
    veiled = privacy.suppress and any(
        row.code in hidden
        or privacy.small(row.count)
        or privacy.small(round(row.average * AVERAGE_WEEKS))
        for row in shown
    )
    if d.total and shown and not veiled:
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
    buttons: tuple[tuple[Choice, ...], ...] = tuple(
        (knowledge.me_too_button(lang, p.id),) for p in d.open_phenomena
    )
    if not privacy.suppress:  # the team's chat: its leads make phenomena of quoted entries
        quoted = [q.observation_id for q in d.quotes if q.observation_id is not None]
        buttons += tuple(knowledge.digest_entry_buttons(lang, n) for n in dict.fromkeys(quoted))
    return Rendered(
        text=text, html=markup, charts=chart_list, buttons=buttons, observations=d.total
    )


def _weekly_rate(d: WeeklyDigest, lang: str, privacy: Privacy) -> str | None:
    """Observations per active worker-week this week and in the four weeks before; None
    when the week's rate may not be shown (``numbers.rate``: for the team, fewer than three
    workers wrote or were active)."""
    a = d.activity
    workers = min(d.workers, a.workers)
    now = numbers.rate(d.total, a.worker_weeks, workers, lang, privacy)
    if not a.known or now is None:
        return None
    before = numbers.rate(
        d.before_total, a.before_worker_weeks, max(a.before_workers, default=0), lang, privacy
    )
    return _t(lang, "weekly.rate", rate=now, before=before or "–")


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


def _weekly_counts(
    doc: _Doc, d: WeeklyDigest, lang: str, privacy: Privacy, hidden: frozenset[str]
) -> None:
    doc.section(_t(lang, "weekly.themes"))
    for row in rules.shown_first(d.themes, _row_code, hidden):
        count_hidden = privacy.suppress and (row.code in hidden or privacy.small(row.count))
        before = round(row.average * AVERAGE_WEEKS)
        # With one of the count and the average hidden, the change would give it back.
        change = "–" if count_hidden or privacy.small(before) else _signed(row.change, lang)
        doc.item(
            _t(
                lang,
                "weekly.theme_row",
                label=label(row.code, lang),
                count=_count(row.count, lang, privacy, row.code in hidden),
                average=numbers.average_shown(before, AVERAGE_WEEKS, lang, privacy),
                change=change,
            )
        )
    for heading, rows in (("weekly.signals", d.signals), ("weekly.groups", d.groups)):
        if rows:
            doc.section(_t(lang, heading))
            group_hidden = privacy.hidden({r.code: r.count for r in rows})
            for count_row in rules.shown_first(rows, _row_code, group_hidden):
                shown = _count(count_row.count, lang, privacy, count_row.code in group_hidden)
                doc.item(f"{label(count_row.code, lang)}: {shown}")
    if d.new_or_growing:
        doc.section(_t(lang, "weekly.new_or_growing"))
        for trend in d.new_or_growing:
            doc.item(f"{label(trend.code, lang)}: {_trend_parts(trend, lang, privacy)}")
        if d.rate_basis and any(trend.rising for trend in d.new_or_growing):
            note = _t(lang, "weekly.rising_by_rate")
            doc.line(note, f"<i>{html.escape(note)}</i>")


def _row_code(row: CountRow | ThemeRow) -> str:
    return row.code


def _trend_parts(trend: NewOrGrowing, lang: str, privacy: Privacy) -> str:
    parts = []
    if trend.new:
        parts.append(_plural_count(lang, "count.new", trend.new, privacy))
    if trend.growing:
        parts.append(_plural_count(lang, "count.growing", trend.growing, privacy))
    if trend.rising:
        parts.append(_t(lang, "weekly.rising"))
    return ", ".join(parts)


def _weekly_quotes(doc: _Doc, d: WeeklyDigest, lang: str, privacy: Privacy) -> None:
    quotes = d.quotes
    if privacy.suppress:  # leadership: only quotes of themes with enough observations
        allowed = numbers.quotable_themes({r.code: r.count for r in d.themes}, privacy.min_cell)
        quotes = [quote for quote in quotes if quote.theme in allowed]
    if not quotes:
        return
    doc.section(_t(lang, "weekly.quotes"))
    open_mark, close_mark = ("“", "”") if lang == "en" else ("”", "”")
    for quote in quotes:  # ``rules.pick_quotes`` chose them: the same words never twice
        text = _one_line(quote.text)
        theme = label(quote.theme, lang)
        # The team's own digest names the entry, for its "Make #N a phenomenon" button.
        ref = (
            f"{_ref(quote.observation_id)} "
            if quote.observation_id is not None and not privacy.suppress
            else ""
        )
        doc.line(
            f"{ref}{open_mark}{text}{close_mark} ({theme})",
            f"<blockquote>{ref}{open_mark}{html.escape(text)}{close_mark} "
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


@dataclass(frozen=True)
class _Budget:
    """How much of the escalations the chat text lists (the PDF and CSV list them all)."""

    per_theme: int | None  # escalations listed under each theme (None: all)
    excerpt: int | None  # characters of each description (0: none, None: up to 600)
    shl48: int | None  # § 48 notices listed
    earlier: int | None  # earlier open escalations listed
    actions: bool = False  # proposed actions under the items
    region_themes: int = 1  # leading themes named per region (the organisation's summary)


# Tried in this order until the chat text fits in ``MAX_MESSAGES`` messages.
CHAT_BUDGETS = (
    _Budget(3, 160, 5, 5),
    _Budget(3, 90, 5, 5),
    _Budget(2, 90, 3, 3),
    _Budget(1, 90, 3, 3),
    _Budget(1, 0, 3, 3),
    _Budget(0, 0, 0, 0),
)
FULL = _Budget(None, None, None, None, actions=True, region_themes=3)
MESSAGE_LIMIT = 4096  # Telegram's limit; Matrix takes more
MAX_MESSAGES = 2
MAX_PROPOSALS = 5


def render_monthly(
    s: MonthlySummary,
    lang: str,
    tz: TimeZone = HELSINKI,
    *,
    limit: int = MESSAGE_LIMIT,
    messages: int = MAX_MESSAGES,
    pdf: bool = False,
    csv_dialect: str = CSV_DEFAULT_DIALECT,
) -> Rendered:
    """The monthly escalation summary of a region or of the whole organisation.

    The chat text fits in ``messages`` messages of ``limit`` characters: totals, the
    leading and widespread themes, what rose, proposals that moved, and at most three
    escalations per theme ("and N more in the attached file"), fewer and shorter if it
    must. The attached CSV lists every escalation, and with ``pdf`` the whole summary
    (every escalation with its text) is attached as a PDF too.
    """
    zone_ = zone(tz)
    text = markup = ""
    for budget in CHAT_BUDGETS:
        text, markup = _monthly_doc(s, lang, zone_, budget, pdf).render()
        if len(split_text(markup, limit)) <= messages:
            break
    rows = [("this_month", item) for item in s.escalated_items]
    rows.extend(("earlier_open", item) for item in s.earlier_open)

    scope = _scope(s, lang)
    month = _month_name(s.month, lang)
    scope_slug = s.region or "all"
    chart_list: list[tuple[str, bytes]] = []
    if s.leading:
        from digests import charts  # matplotlib and Pillow: only when a chart is drawn

        chart_list.append(
            (
                f"themes-{scope_slug}-{s.month}.png",
                charts.monthly_themes_chart(
                    [label(row.code, lang) for row in s.leading],
                    [_drawn(row.count, row.code, s) for row in s.leading],
                    # A number of teams bounds a hidden count from below: not drawn.
                    [0 if _drawn(row.count, row.code, s) == 0 else row.teams for row in s.leading],
                    title=_t(lang, "chart.monthly_title", scope=scope, month=month),
                    count_label=_t(lang, "chart.observations"),
                    teams_label=_t(lang, "chart.teams"),
                ),
            )
        )
    pdf_bytes = None
    if pdf:
        full_markup = _monthly_doc(s, lang, zone_, FULL, pdf).render()[1]
        pdf_bytes = monthly_pdf(full_markup, lang, title=text.split("\n", 1)[0], charts=chart_list)
    return Rendered(
        text=text,
        html=markup,
        charts=chart_list,
        csv=escalations_csv(rows, lang, zone_, dialect=csv_dialect, codes=s.codes)
        if rows
        else None,
        csv_filename=f"escalations-{scope_slug}-{s.month}.csv" if rows else None,
        pdf=pdf_bytes,
        pdf_filename=f"summary-{scope_slug}-{s.month}.pdf" if pdf_bytes else None,
        observations=s.total,
    )


def _drawn(n: int, code: str, s: MonthlySummary) -> int:
    """A bar's length in a chart: a hidden count is drawn as 0 (its number is not shown)."""
    return 0 if s.privacy.suppress and (code in s.hidden_themes or s.privacy.small(n)) else n


def _monthly_doc(
    s: MonthlySummary, lang: str, zone_: tzinfo, budget: _Budget, pdf: bool = False
) -> _Doc:
    """The summary's text with the escalations listed as ``budget`` allows."""
    p = s.privacy
    month = _month_name(s.month, lang)
    scope = _scope(s, lang)
    doc = _Doc()
    doc.section()
    title = _both(lang, "monthly.title", scope=scope, month=month)
    doc.line(title[0], f"<b>{title[1]}</b>")

    doc.section(_t(lang, "monthly.totals"))
    total = numbers.total(s.total, lang, p, s.total_hidden)
    doc.item(_t(lang, "monthly.total_observations", n=total))
    if s.activity.known:
        a = s.activity
        now = numbers.rate(s.total, a.worker_weeks, a.workers, lang, p, s.total_hidden)
        before = numbers.rate(
            s.before_total, a.before_worker_weeks, max(a.before_workers, default=0), lang, p
        )
        doc.item(_t(lang, "monthly.total_rate", rate=now or "–", before=before or "–"))
    # Teams are units the organisation names itself, not people: their number is shown.
    doc.item(_t(lang, "monthly.total_teams", n=_int(s.teams, lang)))
    for key, n in (
        ("monthly.total_workers", s.workers),
        ("monthly.total_escalated", s.escalated),
        ("monthly.total_shl48", s.shl48_count),
    ):
        doc.item(_t(lang, key, n=_count(n, lang, p)))

    def theme_count(n: int, code: str) -> str:
        return _count(n, lang, p, hidden=code in s.hidden_themes)

    if s.regions:
        _monthly_regions(doc, s, lang, budget)

    if s.leading:
        doc.section(_t(lang, "monthly.leading"))
        for rank, row in enumerate(s.leading, 1):
            doc.line(
                _t(
                    lang,
                    "monthly.leading_row",
                    rank=str(rank),
                    label=label(row.code, lang),
                    count=theme_count(row.count, row.code),
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
                    observations=_plural_count(
                        lang,
                        "count.observations",
                        spread.count,
                        p,
                        hidden=spread.code in s.hidden_themes,
                    ),
                )
            )

    doc.section(_t(lang, "monthly.rising"))
    rule = _t(
        lang,
        "monthly.rising_rule_rate" if s.rate_basis else "monthly.rising_rule",
        min_count=_int(s.min_count, lang),
        ratio=_percent(s.ratio, lang),
    )
    doc.line(rule, f"<i>{html.escape(rule)}</i>")
    if not s.rising:
        doc.line(_t(lang, "monthly.rising_none"))
    # A row without its change (a hidden number) after the shown ones: ranked by growth
    # between two shown rows, its hidden count would be narrowed down (rules.shown_first).
    few = {
        r.code
        for r in s.rising
        if p.suppress and (r.code in s.hidden_themes or p.small(r.count) or p.small(r.before_sum))
    }
    for rising in rules.shown_first(s.rising, lambda r: r.code, few):
        if s.rate_basis:
            doc.item(_rising_rate_row(s, rising, lang))
            continue
        count_hidden = p.suppress and (rising.code in s.hidden_themes or p.small(rising.count))
        average = numbers.average_shown(rising.before_sum, AVERAGE_MONTHS, lang, p)
        if count_hidden or p.small(rising.before_sum):
            # The change with one of its two numbers would give the other back.
            row_text = _t(
                lang,
                "monthly.rising_row_few",
                label=label(rising.code, lang),
                count=theme_count(rising.count, rising.code),
                average=average,
            )
        else:
            ratio = rising.ratio
            change = (
                _t(lang, "monthly.rising_new")
                if ratio is None
                else _percent(ratio - 1, lang, signed=True)
            )
            row_text = _t(
                lang,
                "monthly.rising_row",
                label=label(rising.code, lang),
                count=theme_count(rising.count, rising.code),
                average=average,
                change=change,
            )
        doc.item(row_text)

    if s.proposals:
        doc.section(_t(lang, "monthly.proposals"))
        for proposal in s.proposals[:MAX_PROPOSALS]:
            doc.item(
                _t(
                    lang,
                    "monthly.proposal_row",
                    number=str(proposal.id),
                    status=knowledge.status_label(lang, proposal.status),
                    text=_one_line(proposal.text, EXCERPT_CHARS),
                )
            )
        if len(s.proposals) > MAX_PROPOSALS:
            more = len(s.proposals) - MAX_PROPOSALS
            doc.line(_t(lang, "monthly.proposals_more", n=_int(more, lang)))

    doc.section(_t(lang, "monthly.escalated"))
    if not s.escalated_by_theme:
        doc.line(_t(lang, "monthly.escalated_none"))
    for index, group in enumerate(s.escalated_by_theme):
        if index:  # a paragraph per theme: a long list is cut between themes, not inside
            doc.section()
        hidden = group.theme in s.hidden_escalated
        heading = f"{label(group.theme, lang)} ({_count(len(group.items), lang, p, hidden)})"
        doc.line(heading, f"<i>{html.escape(heading)}</i>")
        listed = _open_first(group.items)
        listed = listed if budget.per_theme is None else listed[: budget.per_theme]
        for item in listed:
            _monthly_item(doc, item, lang, zone_, with_theme=False, budget=budget)
        _more(doc, lang, len(group.items) - len(listed), p, hidden)

    doc.section(_t(lang, "monthly.shl48"))
    if not s.shl48:
        doc.line(_t(lang, "monthly.shl48_none"))
    listed = _open_first(s.shl48)
    listed = listed if budget.shl48 is None else listed[: budget.shl48]
    for item in listed:
        _monthly_item(doc, item, lang, zone_, with_theme=True, budget=budget)
    _more(doc, lang, len(s.shl48) - len(listed), p, p.small(len(s.shl48)))

    doc.section(_t(lang, "monthly.earlier_open"))
    if not s.earlier_open:
        doc.line(_t(lang, "monthly.earlier_none"))
    listed = s.earlier_open if budget.earlier is None else s.earlier_open[: budget.earlier]
    for item in listed:
        _monthly_item(
            doc, item, lang, zone_, with_theme=True, budget=_Budget(0, 0, 0, 0), with_year=True
        )
    _more(doc, lang, len(s.earlier_open) - len(listed), p, p.small(len(s.earlier_open)))

    if s.escalated_items or s.earlier_open:
        doc.section()
        doc.line(_t(lang, "monthly.attachment_pdf" if pdf else "monthly.attachment"))
    return doc


def _rising_rate_row(s: MonthlySummary, rising: RisingRow, lang: str) -> str:
    """A rising theme compared in observations per active worker-week (the active workers
    changed by more than 20 %): its count, its rate now and before, and the change of the
    rate. A rate is shown only where its count may be (``numbers.rate``)."""
    p, a = s.privacy, s.activity
    hidden = rising.code in s.hidden_themes
    count = _count(rising.count, lang, p, hidden)
    now = numbers.rate(rising.count, a.worker_weeks, a.workers, lang, p, hidden)
    before_workers = max(a.before_workers, default=0)
    before = numbers.rate(rising.before_sum, a.before_worker_weeks, before_workers, lang, p)
    if now is None or before is None:
        return _t(
            lang,
            "monthly.rising_row_rate_few",
            label=label(rising.code, lang),
            count=count,
            rate=now or "–",
            before=before or "–",
        )
    change = (
        _t(lang, "monthly.rising_new")
        if not rising.before_rate
        else _percent((rising.rate or 0.0) / rising.before_rate - 1, lang, signed=True)
    )
    return _t(
        lang,
        "monthly.rising_row_rate",
        label=label(rising.code, lang),
        count=count,
        rate=now,
        before=before,
        change=change,
    )


def _days_short(days: float, lang: str) -> str:
    return _t(lang, "monthly.days_short", n=_decimal(round(days, 1), lang))


def _monthly_regions(doc: _Doc, s: MonthlySummary, lang: str, budget: _Budget) -> None:
    """The regions side by side (the whole organisation's summary), one line each and the
    organisation last: observations, their rate per active worker-week, the leading
    themes, escalations and notices still open, median days to acknowledge a notice.

    Counts of observations and of open items are hidden on all regions together (their
    totals are on the organisation's line); a rate wherever its count is, or where fewer
    than ``min_cell`` workers were active; a median of fewer than ``min_cell`` notices."""
    p = s.privacy
    doc.section(_t(lang, "monthly.regions"))
    legend = _t(lang, "monthly.regions_legend")
    doc.line(legend, f"<i>{html.escape(legend)}</i>")
    rows: list[tuple[RegionRow, str | None]] = [(row, row.region or "") for row in s.regions]
    if s.organisation is not None:
        rows.append((s.organisation, None))
    for row, key in rows:
        totals_hidden = key in s.hidden_region_totals if key is not None else s.total_hidden
        open_hidden = key in s.hidden_region_open if key is not None else s.open_total_hidden
        rate = numbers.rate(row.total, row.worker_weeks, row.workers, lang, p, totals_hidden)
        themes = ", ".join(label(code, lang) for code in row.top_themes[: budget.region_themes])
        days = (
            _days_short(row.median_days, lang)
            if row.median_days is not None and not p.small(row.acknowledged)
            else "–"
        )
        name = row.name if key is not None else _t(lang, "monthly.regions_all")
        doc.item(
            _t(
                lang,
                "monthly.region_row",
                name=name,
                count=_region_count(row.total, key, totals_hidden, lang, p),
                rate=rate or "–",
                themes=themes or "–",
                open=_region_count(row.open, key, open_hidden, lang, p),
                days=days,
            )
        )


def _region_count(n: int, key: str | None, hidden: bool, lang: str, p: Privacy) -> str:
    """A region's count ("< 5" when hidden), or the organisation's total ("–" when hidden)."""
    return _count(n, lang, p, hidden) if key is not None else numbers.total(n, lang, p, hidden)


def _open_first(items: Sequence[EscalationItem]) -> list[EscalationItem]:
    """What leadership must act on first: open entries, the longest open first; then the
    closed ones in time order."""
    return sorted(
        items,
        key=lambda i: (not i.status.is_open, -i.days_open if i.status.is_open else 0),
    )


def _more(doc: _Doc, lang: str, n: int, privacy: Privacy, hidden: bool) -> None:
    """ "and N more in the attached file", N as the audience may see it."""
    if n > 0:
        doc.line(_t(lang, "monthly.more_in_file", n=_count(n, lang, privacy, hidden)))


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
    budget: _Budget,
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
    chars = DESCRIPTION_CHARS if budget.excerpt is None else budget.excerpt
    description = _one_line(item.description or "", chars) if chars else ""
    plain = f"{head} — {description}" if description else head
    markup = f"<b>{html.escape(head)}</b>" + (
        f" — {html.escape(description)}" if description else ""
    )
    doc.item(plain, markup)
    if budget.actions and item.action:
        action = _t(lang, "monthly.action", action=_one_line(item.action, DESCRIPTION_CHARS))
        doc.line(f"   {action}", f"   <i>{html.escape(action)}</i>")


# --- PDF -----------------------------------------------------------------------------


def monthly_pdf(
    markup: str, lang: str, *, title: str, charts: Sequence[tuple[str, bytes]] = ()
) -> bytes:
    """The whole summary (the chat HTML subset, every escalation listed) as an A4 PDF."""
    import base64

    from weasyprint import HTML

    sections = []
    for section in markup.split("\n\n"):
        lines = "".join(f"<p>{line}</p>" for line in section.split("\n"))
        sections.append(f"<section>{lines}</section>")
    images = "".join(
        f'<img alt="" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        for _, png in charts
    )
    page = (
        f'<!DOCTYPE html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_PDF_STYLE}</style></head><body>"
        f"{sections[0] if sections else ''}{images}{''.join(sections[1:])}</body></html>"
    )
    pdf = HTML(string=page).write_pdf()
    assert pdf is not None
    return bytes(pdf)


_PDF_STYLE = """
@page { size: A4; margin: 16mm 16mm 18mm 16mm;
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 9.5pt;
  line-height: 1.35; color: #1b1b1b; }
section { margin: 0 0 4mm 0; }
section:first-child { font-size: 14pt; color: #1f5f8b; }
p { margin: 0 0 1mm 0; }
b { color: #1f5f8b; }
img { width: 100%; margin: 2mm 0 4mm 0; }
"""


# --- CSV -----------------------------------------------------------------------------

CSV_COLUMNS = (
    "listed_as",
    "observation_id",
    "observed_at",
    "recorded_at",
    "team_id",
    "team",
    "region",
    "region_code",
    "area",
    "municipality",
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
    rows: Iterable[tuple[str, EscalationItem]],
    lang: str,
    tz: TimeZone = HELSINKI,
    dialect: str = CSV_DEFAULT_DIALECT,
    codes: OfficialCodes = NO_CODES,
) -> bytes:
    """Escalated observations as CSV, codes and labels, in the CSV ``dialect``
    (``digests.spreadsheet``; default ``;`` and UTF-8 with BOM, for Excel). ``codes``
    fills the official region code and municipality number columns.

    Free text goes through ``digests.spreadsheet.safe_cell``: no cell runs as a formula.

    ``rows`` pairs each item with how the summary lists it: ``this_month`` (raised in
    the month) or ``earlier_open`` (raised before and still open).
    """
    zone_ = zone(tz)
    buffer = io.StringIO(newline="")
    writer = csv_writer(buffer, dialect)
    writer.writerow(CSV_COLUMNS)
    for listed_as, item in rows:
        region_code, municipality = official_cells(codes, item.region, item.team_id, item.area)
        writer.writerow(
            [
                listed_as,
                str(item.observation_id),
                _local_iso(item.observed_at, zone_),
                _local_iso(item.recorded_at, zone_),
                item.team_id,
                safe_cell(item.team_name),
                item.region,
                region_code,
                safe_cell(item.area or ""),
                municipality,
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
                numbers.machine(item.days_open),
                safe_cell(item.description or ""),
                safe_cell(item.action or ""),
                safe_cell(item.status.text or ""),
            ]
        )
    return buffer.getvalue().encode("utf-8")
