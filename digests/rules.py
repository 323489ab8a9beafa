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
  first. The weekly digest marks its themes with the same predicate. When the
  number of active workers changed by more than 20 % against the earlier
  periods (``uses_rate``), the comparison is made in observations per active
  worker-week instead (``is_rising_rate``): more workers joining is not a rise.
* **quotes** (``pick_quotes``): newest first, one per theme while there are
  themes left, then filled up with the newest of the rest; blank ones never.
* **grouping** (``by_theme``): escalations grouped by theme, the largest
  group first, each group in the order given.

``weekly_digest`` and ``monthly_summary`` apply them to what the queries
hand in (``digests.model.WeeklyFigures``, ``MonthlyFigures``). Pure: no
database, no event loop, no drawing library.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from fractions import Fraction
from itertools import chain
from typing import Any, Protocol, TypeVar

from digests.model import (
    AVERAGE_MONTHS,
    AVERAGE_WEEKS,
    RISING_MIN_COUNT,
    RISING_RATIO,
    WEEKLY_RISING_MIN_COUNT,
    Activity,
    CountRow,
    EscalationItem,
    MonthlyFigures,
    MonthlySummary,
    NewOrGrowing,
    RegionRow,
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


def ranked_shown(
    items: Iterable[T],
    code: Callable[[T], Code],
    hidden: Collection[Code],
    *measures: Callable[[T], float],
) -> list[T]:
    """``ranked``, then ``shown_first``."""
    return shown_first(ranked(items, code, *measures), code, hidden)


def shown_first(items: Iterable[T], code: Callable[[T], Code], hidden: Collection[Code]) -> list[T]:
    """``items`` in their order, but those whose count is ``hidden`` after the shown ones,
    in ``position`` order only: ranked by their counts, two hidden cells would say which is
    larger (with their sum known, {2, 1} would be given back). ``digests.numbers.suppress``
    hides the smallest cells, so a hidden cell is never above a shown one anyway."""
    listed = list(items)
    return [i for i in listed if code(i) not in hidden] + ranked(
        (i for i in listed if code(i) in hidden), code
    )


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


# --- rates per active worker-week -----------------------------------------------------

# "Rising" compares rates when the active workers changed by more than this.
WORKERS_CHANGED = Fraction(1, 5)


def per_worker_week(count: int, worker_weeks: int) -> float | None:
    """Observations per active worker-week; None without any worker-week."""
    return count / worker_weeks if worker_weeks else None


def workers_changed(now: int, before: Sequence[int], limit: Fraction = WORKERS_CHANGED) -> bool:
    """Whether ``now`` active workers differ from the average of ``before`` (the active
    workers of each earlier period) by more than ``limit`` (20 %) of that average.

    Exact, in whole numbers: 19 % is no change, 21 % is, exactly 20 % is not. From nobody
    to somebody is a change; nobody before and nobody now is not; no earlier periods at
    all (nothing to compare with) is not either.
    """
    if not before:
        return False
    total = sum(before)
    if total == 0:
        return now > 0
    return abs(now * len(before) - total) > limit * total


def uses_rate(activity: Activity) -> bool:
    """Whether "rising" compares observations per active worker-week instead of counts."""
    return workers_changed(activity.workers, activity.before_workers)


def is_rising_rate(
    count: int,
    worker_weeks: int,
    before: int,
    before_worker_weeks: int,
    min_count: int,
    ratio: float,
) -> bool:
    """``is_rising`` in rates: at least ``min_count`` observations now, and observations
    per active worker-week at least ``ratio`` times, and more than, the rate of the earlier
    periods (``before`` observations over ``before_worker_weeks``); any, when nobody was
    active before. Exact fractions: no rounding decides a boundary."""
    if count < min_count or not worker_weeks:
        return False
    if not before_worker_weeks:
        return True
    now, was = Fraction(count, worker_weeks), Fraction(before, before_worker_weeks)
    return now >= Fraction(ratio) * was and now > was


def _before_sum(average: float, periods: int) -> int:
    return round(average * periods)


def rises(
    count: int,
    average: float,
    min_count: int,
    ratio: float,
    activity: Activity | None = None,
) -> bool:
    """The one "rising" predicate: in counts (``is_rising``: ``count`` against the earlier
    periods' ``average``), or in rates when ``activity`` says the active workers changed
    by more than 20 % (``uses_rate``)."""
    if activity is not None and uses_rate(activity):
        return is_rising_rate(
            count,
            activity.worker_weeks,
            _before_sum(average, activity.periods),
            activity.before_worker_weeks,
            min_count,
            ratio,
        )
    return is_rising(count, average, min_count, ratio)


def rising(
    rows: Iterable[TrendT],
    min_count: int,
    ratio: float,
    activity: Activity | None = None,
) -> list[TrendT]:
    """The rows that rose (``rises``): the largest rise first (in rates when rates were
    compared), then the largest count."""
    if activity is not None and uses_rate(activity):
        a = activity

        def gain(r: TrendT) -> float:
            now = per_worker_week(r.count, a.worker_weeks) or 0.0
            was = per_worker_week(_before_sum(r.average, a.periods), a.before_worker_weeks)
            return now - (was or 0.0)

    else:

        def gain(r: TrendT) -> float:
            return r.count - r.average

    return ranked(
        (r for r in rows if rises(r.count, r.average, min_count, ratio, activity)),
        _code,
        gain,
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
        rose = rises(row.count, row.average, WEEKLY_RISING_MIN_COUNT, RISING_RATIO, f.activity)
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
        activity=f.activity,
        before_total=sum(t.before for t in f.themes),
        rate_basis=uses_rate(f.activity),
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
    theme_counts = {t.code: t.count for t in f.themes}
    hidden_themes = privacy.hidden(theme_counts)
    a, rate_basis = f.activity, uses_rate(f.activity)
    averages = [
        RisingRow(
            t.code,
            t.count,
            t.before / AVERAGE_MONTHS,
            t.before,
            rate=per_worker_week(t.count, a.worker_weeks) if rate_basis else None,
            before_rate=per_worker_week(t.before, a.before_worker_weeks) if rate_basis else None,
        )
        for t in f.themes
    ]
    escalated_by_theme = by_theme(i for i in f.escalations if i.escalation == LEADERSHIP)
    regions, organisation = region_rows(f, privacy)
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
        leading=ranked_shown(reported, _code, hidden_themes, _count)[:leading],
        # Only themes whose count is shown: beside "< 5 observations", a number of teams
        # (or a place in a list ranked by teams) bounds the count from below.
        spread=ranked(
            (r for r in reported if r.code not in hidden_themes), _code, lambda r: r.teams, _count
        )[:leading],
        rising=rising(averages, min_count, ratio, a),
        min_count=min_count,
        ratio=ratio,
        escalated_by_theme=escalated_by_theme,
        shl48=[i for i in f.escalations if i.escalation == SHL48],
        earlier_open=list(f.earlier_open),
        proposals=list(f.proposals),
        privacy=privacy,
        hidden_themes=hidden_themes,
        total_hidden=privacy.total_hidden(theme_counts, {r.region or "": r.total for r in regions}),
        hidden_escalated=privacy.hidden({g.theme: len(g.items) for g in escalated_by_theme}),
        activity=a,
        before_total=sum(t.before for t in f.themes),
        rate_basis=rate_basis,
        regions=regions,
        organisation=organisation,
        hidden_region_totals=privacy.hidden({r.region or "": r.total for r in regions}),
        hidden_region_open=privacy.hidden({r.region or "": r.open for r in regions}),
        open_total_hidden=privacy.total_hidden({r.region or "": r.open for r in regions}),
    )


# --- regions side by side (the whole organisation's summary) ------------------------------

REGION_THEMES = 3  # leading themes named per region (the chat text shows fewer)


def acknowledge_days(items: Iterable[EscalationItem]) -> list[float]:
    """Days from saving each notice to its first acknowledgement, of those acknowledged."""
    return [
        max((i.status.acknowledged_at - i.recorded_at).total_seconds(), 0.0) / 86400
        for i in items
        if i.status.acknowledged_at is not None
    ]


def _median(days: Sequence[float]) -> float | None:
    return statistics.median(days) if days else None


def region_rows(
    f: MonthlyFigures, privacy: Privacy = LEADERSHIP_AUDIENCE
) -> tuple[list[RegionRow], RegionRow | None]:
    """Each region of the organisation's month side by side, by name, and the organisation.

    Observations and their rate per active worker-week, the leading themes (only themes
    with at least ``min_cell`` observations in the region are named to leadership: a
    theme of one or two entries would point at them), escalations and notices still open
    (raised in the month or before), and the median days to acknowledge the month's notices.
    """
    if f.region is not None or not f.regions:
        return [], None
    open_items = [i for i in chain(f.escalations, f.earlier_open) if i.status.is_open]
    open_by_region = Counter(i.region for i in open_items)
    days: dict[str, list[float]] = defaultdict(list)
    for item in f.escalations:
        days[item.region].extend(acknowledge_days([item]))

    def nameable(counts: Mapping[str, int]) -> tuple[str, ...]:
        rows = ranked_counts(counts)
        if privacy.suppress:
            rows = [r for r in rows if r.count >= privacy.min_cell]
        return tuple(r.code for r in rows[:REGION_THEMES])

    rows = [
        RegionRow(
            region=r.region,
            name=r.name,
            total=r.total,
            workers=r.workers,
            worker_weeks=r.worker_weeks,
            top_themes=nameable(r.themes),
            open=open_by_region.get(r.region, 0),
            acknowledged=len(days.get(r.region, ())),
            median_days=_median(days.get(r.region, ())),
        )
        for r in sorted(f.regions, key=lambda r: (r.name.casefold(), r.region))
    ]
    every = [d for region_days in days.values() for d in region_days]
    organisation = RegionRow(
        region=None,
        name="",
        total=f.total,
        workers=f.activity.workers,
        worker_weeks=f.activity.worker_weeks,
        top_themes=nameable({t.code: t.count for t in f.themes}),
        open=len(open_items),
        acknowledged=len(every),
        median_days=_median(every),
    )
    return rows, organisation
