"""The digest rules: what a digest shows of the counted figures, each rule written once.

The weekly team digest, the monthly leadership summary and the social report
(``digests.report``) show the same kinds of things, decided here and only
here; the queries in ``storage`` count and list, and decide nothing:

* **ranking** (``ranked``): largest first, measure by measure; ties in
  taxonomy order, codes of another taxonomy version after the known ones,
  by code. Themes, signals, groups, leading and widespread themes, rising
  themes and phenomena, groups of escalations: all ranked by it.
* **rising** (``rising``): at least ``min_count`` now and at least ``ratio``
  times the earlier average (``digests.model.is_rising``), the largest rise
  first. The weekly digest marks its themes with the same predicate.
* **quotes** (``pick_quotes``): newest first, one per theme while there are
  themes left, then filled up with the newest of the rest; blank ones never.
* **grouping** (``by_theme``): escalations grouped by theme, the largest
  group first, each group in the order given.

``weekly_digest`` and ``monthly_summary`` apply them to what the queries
hand in (``digests.model.WeeklyFigures``, ``MonthlyFigures``). Pure: no
database, no event loop, no drawing library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from digests.model import (
    AVERAGE_MONTHS,
    AVERAGE_WEEKS,
    RISING_MIN_COUNT,
    RISING_RATIO,
    WEEKLY_RISING_MIN_COUNT,
    CountRow,
    EscalationItem,
    MonthlyFigures,
    MonthlySummary,
    NewOrGrowing,
    RisingRow,
    SpreadRow,
    ThemeGroup,
    ThemeRow,
    WeeklyDigest,
    WeeklyFigures,
    is_rising,
)
from digests.numbers import LEADERSHIP as LEADERSHIP_AUDIENCE
from digests.numbers import Privacy
from flows.taxonomy import DIMENSIONS, LEADERSHIP, SHL48

WEEKLY_QUOTES = 3  # quotes in a weekly digest
LEADING = 5  # themes in each top list of the monthly summary

T = TypeVar("T")
Code = str | tuple[str, ...]

_POSITION = {code: i for d in DIMENSIONS.values() for i, code in enumerate(d.codes)}
_UNKNOWN = len(_POSITION)


def position(code: Code) -> tuple[Any, ...]:
    """Where ``code`` goes among equals: taxonomy order, then unknown codes by code.

    A pair of codes (a theme and a signal: a phenomenon) goes by its theme, then signal.
    """
    if isinstance(code, tuple):
        return tuple(position(part) for part in code)
    found = _POSITION.get(code)
    return (found, "") if found is not None else (_UNKNOWN, code)


def ranked(
    items: Iterable[T], code: Callable[[T], Code], *measures: Callable[[T], float]
) -> list[T]:
    """``items`` largest first by each of ``measures`` in turn, ties by ``position``."""
    return sorted(items, key=lambda item: (*(-m(item) for m in measures), position(code(item))))


def ranked_counts(counts: Mapping[str, int]) -> list[CountRow]:
    """A row per code with a count, largest first."""
    return ranked((CountRow(c, n) for c, n in counts.items() if n), _code, _count)


class Trend(Protocol):
    """A code's count now and the average it is compared with."""

    @property
    def code(self) -> Code: ...
    @property
    def count(self) -> int: ...
    @property
    def average(self) -> float: ...


TrendT = TypeVar("TrendT", bound=Trend)


def rising(rows: Iterable[TrendT], min_count: int, ratio: float) -> list[TrendT]:
    """The rows that rose (``is_rising``): the largest rise first, then the largest count."""
    return ranked(
        (r for r in rows if is_rising(r.count, r.average, min_count, ratio)),
        _code,
        lambda r: r.count - r.average,
        _count,
    )


class Quoted(Protocol):
    """A client's own words and their theme."""

    @property
    def text(self) -> str: ...
    @property
    def theme(self) -> str: ...


QuotedT = TypeVar("QuotedT", bound=Quoted)


def pick_quotes(newest_first: Iterable[QuotedT], limit: int) -> list[QuotedT]:
    """Up to ``limit`` quotes: the newest of each theme first (newest first), then the newest
    of the rest. The same words are shown once (whatever their theme, case or spacing);
    blank ones never."""
    candidates: list[QuotedT] = []
    seen: set[str] = set()
    for quote in newest_first:
        words = " ".join(quote.text.split()).casefold()
        if words and words not in seen:
            seen.add(words)
            candidates.append(quote)
    picked: list[QuotedT] = []
    themes: set[str] = set()
    for quote in candidates:  # one per theme...
        if len(picked) < limit and quote.theme not in themes:
            picked.append(quote)
            themes.add(quote.theme)
    for quote in candidates:  # ...then fill up with the rest
        if len(picked) >= limit:
            break
        if quote not in picked:
            picked.append(quote)
    return picked


def by_theme(items: Iterable[EscalationItem]) -> list[ThemeGroup]:
    """``items`` grouped by theme: the largest group first, each in the order given."""
    groups: dict[str, list[EscalationItem]] = {}
    for item in items:
        groups.setdefault(item.theme, []).append(item)
    return ranked(
        (ThemeGroup(theme, members) for theme, members in groups.items()),
        lambda g: g.theme,
        lambda g: len(g.items),
    )


def _code(row: Any) -> Code:
    code: Code = row.code
    return code


def _count(row: Any) -> float:
    count: float = row.count
    return count


# --- the weekly team digest ----------------------------------------------------------


def weekly_digest(f: WeeklyFigures) -> WeeklyDigest:
    """One team's week: themes against their four-week average, counts, marks, quotes."""
    themes = ranked(
        (ThemeRow(t.code, t.count, t.before / AVERAGE_WEEKS) for t in f.themes),
        _code,
        _count,
        lambda r: r.average,
    )
    new_or_growing = []
    for row in themes:
        new, growing = f.new.get(row.code, 0), f.growing.get(row.code, 0)
        rose = is_rising(row.count, row.average, WEEKLY_RISING_MIN_COUNT, RISING_RATIO)
        if new or growing or rose:
            new_or_growing.append(NewOrGrowing(row.code, new, growing, rose))
    return WeeklyDigest(
        team_id=f.team_id,
        team_name=f.team_name,
        language=f.language,
        week=f.week,
        start=f.start,
        end=f.end,
        total=f.total,
        workers=f.workers,
        themes=themes,
        signals=ranked_counts(f.signals),
        groups=ranked_counts(f.groups),
        new_or_growing=new_or_growing,
        quotes=pick_quotes(f.quotes, WEEKLY_QUOTES),
        escalations=list(f.escalations),
        answers=list(f.answers),
    )


# --- the monthly summary --------------------------------------------------------------


def monthly_summary(
    f: MonthlyFigures,
    *,
    min_count: int = RISING_MIN_COUNT,
    ratio: float = RISING_RATIO,
    leading: int = LEADING,
    privacy: Privacy = LEADERSHIP_AUDIENCE,
) -> MonthlySummary:
    """A month: the leading and the most widespread themes, what rose against the average of
    the three months before, and the escalations (leadership by theme, § 48, earlier open).

    What ``privacy``'s audience sees as "< 5" is decided on all themes at once
    (``digests.numbers``), so the top lists hide what the whole distribution hides.
    """
    reported = [SpreadRow(t.code, t.teams, t.count) for t in f.themes if t.count]
    averages = [RisingRow(t.code, t.count, t.before / AVERAGE_MONTHS, t.before) for t in f.themes]
    escalated_by_theme = by_theme(i for i in f.escalations if i.escalation == LEADERSHIP)
    return MonthlySummary(
        region=f.region,
        scope_name=f.scope_name,
        month=f.month,
        start=f.start,
        end=f.end,
        as_of=f.as_of,
        total=f.total,
        teams=f.teams,
        workers=f.workers,
        escalated=f.escalated,
        shl48_count=f.shl48_count,
        leading=ranked(reported, _code, _count)[:leading],
        spread=ranked(reported, _code, lambda r: r.teams, _count)[:leading],
        rising=rising(averages, min_count, ratio),
        min_count=min_count,
        ratio=ratio,
        escalated_by_theme=escalated_by_theme,
        shl48=[i for i in f.escalations if i.escalation == SHL48],
        earlier_open=list(f.earlier_open),
        proposals=list(f.proposals),
        privacy=privacy,
        hidden_themes=privacy.hidden({t.code: t.count for t in f.themes}),
        hidden_escalated=privacy.hidden({g.theme: len(g.items) for g in escalated_by_theme}),
    )
