"""What a digest says, as plain data: counted by the queries, decided by the rules, rendered.

Two kinds of objects live here. ``WeeklyFigures`` and ``MonthlyFigures`` are
what ``storage.digest_queries`` counts and lists for a period, in no
particular order of importance; ``digests.rules`` turns them into a
``WeeklyDigest`` or a ``MonthlySummary`` (what rose, which quotes, ranked and
grouped), which ``digests.render`` writes out.

Nothing here counts per worker. ``workers`` is a number of distinct people and
nothing else; no row, item or answer carries a person. Times are aware UTC.
Codes are taxonomy codes (``theme.housing``); labels are the renderer's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from digests.numbers import LEADERSHIP, Privacy
from flows.official_codes import NO_CODES, OfficialCodes
from flows.statuses import OPEN_STATUSES

# A week is compared with the average of the four weeks before it, a month with the
# average of the three months before it (the queries count over these windows).
AVERAGE_WEEKS = 4
AVERAGE_MONTHS = 3

# Defaults for "rising": this period against the average of the earlier ones.
RISING_MIN_COUNT = 3
RISING_RATIO = 1.5
WEEKLY_RISING_MIN_COUNT = 2


def is_rising(count: int, average: float, min_count: int, ratio: float) -> bool:
    """At least ``min_count`` now and at least ``ratio`` times the average (any, if it was 0)."""
    return count >= min_count and count >= ratio * average and count > average


@dataclass(frozen=True)
class Activity:
    """Who was active in a period and in the periods it is compared with.

    A worker is active in an ISO week when they recorded an observation in it (by the
    time it was observed, as the periods count) or confirmed one ("me too" on a
    phenomenon or an entry, "we were two"; by the time of confirming). ``workers``:
    the distinct active workers of the period; ``worker_weeks``: its distinct (worker,
    ISO week) pairs, a week cut by the period's edge counting in each period it touches
    (``digests.periods.week_cells``). ``before_workers``: the distinct active workers of
    each earlier period compared with (four weeks, three months, or the one previous
    period of a report), oldest first; ``before_worker_weeks``: their worker-weeks
    together. Numbers of people only: nothing here names or counts per worker.
    """

    workers: int = 0
    worker_weeks: int = 0
    before_workers: tuple[int, ...] = ()
    before_worker_weeks: int = 0

    @property
    def periods(self) -> int:
        """How many earlier periods the comparison is made over."""
        return len(self.before_workers)

    @property
    def known(self) -> bool:
        """Whether anything was counted (a digest built without the activity has none)."""
        return bool(self.worker_weeks or self.before_worker_weeks or self.before_workers)


@dataclass(frozen=True)
class CountRow:
    """A code and how many observations carry it."""

    code: str
    count: int


@dataclass(frozen=True)
class ThemeRow:
    """A theme this week against the team's average of the previous four weeks."""

    code: str
    count: int
    average: float

    @property
    def change(self) -> float:
        return self.count - self.average


@dataclass(frozen=True)
class NewOrGrowing:
    """A theme that workers marked new or growing, or that rose against the average."""

    code: str
    new: int
    growing: int
    rising: bool


@dataclass(frozen=True)
class Quote:
    """A client's own words (privacy-checked at capture) and the theme they belong to."""

    text: str
    theme: str
    # The entry quoted: the team digest offers "Make #N a phenomenon" / "Link #N" for it.
    observation_id: int | None = None


@dataclass(frozen=True)
class StatusInfo:
    """The latest status of an escalated observation; ``at`` is None while nobody has acted."""

    status: str
    at: datetime | None = None
    text: str | None = None
    # The first status other than "open" before the reporting moment: when a leader first
    # acknowledged (or otherwise acted on) the notice. None while nobody has.
    acknowledged_at: datetime | None = field(default=None, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class EscalationItem:
    """An observation raised to leadership or notified under SHL § 48."""

    observation_id: int
    team_id: str
    team_name: str
    region: str
    escalation: str
    theme: str
    population_group: str
    signal: str
    area: str | None
    description: str | None
    action: str | None
    observed_at: datetime
    recorded_at: datetime
    status: StatusInfo
    days_open: int


@dataclass(frozen=True)
class LeaderAnswer:
    """A status change with words from leadership, received in the period."""

    observation_id: int
    theme: str
    status: str
    text: str
    at: datetime


@dataclass(frozen=True)
class ThemeFigures:
    """A theme's count in the period, in the earlier periods its average is taken over
    (``before``, a sum), and the distinct teams that reported it in the period (``teams``;
    counted for the monthly summary only)."""

    code: str
    count: int
    before: int
    teams: int = 0


@dataclass(frozen=True)
class WeeklyFigures:
    """What the database counted and listed for one team's week (``storage.digest_queries``).

    ``themes`` covers the week and the ``AVERAGE_WEEKS`` before it; ``signals``, ``groups``,
    ``new`` and ``growing`` (frequency marks) are counts per code in the week; ``quotes``
    are candidates, newest first; ``escalations`` and ``answers`` are in time order.
    """

    team_id: str
    team_name: str
    language: str
    week: str
    start: datetime
    end: datetime
    total: int
    workers: int
    themes: list[ThemeFigures] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)
    growing: dict[str, int] = field(default_factory=dict)
    quotes: list[Quote] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)
    answers: list[LeaderAnswer] = field(default_factory=list)
    # The team's active workers this week and in each of the four weeks before.
    activity: Activity = field(default_factory=Activity)


@dataclass(frozen=True)
class WeeklyDigest:
    """One team's week."""

    team_id: str
    team_name: str
    language: str
    week: str
    start: datetime
    end: datetime
    total: int
    workers: int
    themes: list[ThemeRow] = field(default_factory=list)
    signals: list[CountRow] = field(default_factory=list)
    groups: list[CountRow] = field(default_factory=list)
    new_or_growing: list[NewOrGrowing] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)
    answers: list[LeaderAnswer] = field(default_factory=list)
    # The knowledge path: the team's open phenomena (with a "me too" button each) and
    # what moved this week: phenomena linked to, proposals made or moved.
    open_phenomena: list[PhenomenonLine] = field(default_factory=list)
    moved_proposals: list[ProposalLine] = field(default_factory=list)
    linked_phenomena: list[PhenomenonLine] = field(default_factory=list)
    # Rates: the active workers, the observations of the four weeks before (for their
    # rate), and whether "rising" compared rates (the active workers changed by more
    # than 20 %, ``digests.rules.uses_rate``) instead of counts.
    activity: Activity = field(default_factory=Activity)
    before_total: int = 0
    rate_basis: bool = False


@dataclass(frozen=True)
class PhenomenonLine:
    """An open phenomenon as a digest lists it (the knowledge path)."""

    id: int
    title: str
    observations: int
    confirmations: int


@dataclass(frozen=True)
class ProposalLine:
    """A proposal that moved in the period, with its status now."""

    id: int
    status: str
    text: str
    body: str | None = None


@dataclass(frozen=True)
class SpreadRow:
    """A theme and the number of distinct teams that reported it."""

    code: str
    teams: int
    count: int


@dataclass(frozen=True)
class RisingRow:
    """A theme this month against the average of the previous three months."""

    code: str
    count: int
    average: float
    # The sum the average is taken over (a small one would be given back by the average);
    # None: the average times the months.
    before: int | None = field(default=None, compare=False)
    # Observations per active worker-week now and in the months before, set when
    # "rising" compared rates (``digests.rules.uses_rate``); None otherwise.
    rate: float | None = field(default=None, compare=False)
    before_rate: float | None = field(default=None, compare=False)

    @property
    def before_sum(self) -> int:
        return self.before if self.before is not None else round(self.average * AVERAGE_MONTHS)

    @property
    def ratio(self) -> float | None:
        return self.count / self.average if self.average else None


@dataclass(frozen=True)
class ThemeGroup:
    """Escalated observations of one theme."""

    theme: str
    items: list[EscalationItem]


@dataclass(frozen=True)
class RegionFigures:
    """One region's month, counted for the whole organisation's summary: observations,
    per theme, and its active workers and worker-weeks (``Activity``)."""

    region: str
    name: str
    total: int
    workers: int
    worker_weeks: int
    themes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionRow:
    """A region side by side with the others (``region`` None: the whole organisation).

    ``top_themes``: its leading themes that may be named (``digests.rules``);
    ``open``: escalations and notices still open at the reporting moment (raised in the
    month or before); ``acknowledged``: the notices of the month acknowledged by then,
    ``median_days`` the median of their days from saving to the first acknowledgement."""

    region: str | None
    name: str
    total: int
    workers: int
    worker_weeks: int
    top_themes: tuple[str, ...] = ()
    open: int = 0
    acknowledged: int = 0
    median_days: float | None = None


@dataclass(frozen=True)
class MonthlyFigures:
    """What the database counted and listed for a region's (or, with ``region`` None, the
    whole organisation's) month (``storage.digest_queries``).

    ``themes`` covers the month and the ``AVERAGE_MONTHS`` before it, with the teams that
    reported each theme in the month. ``escalations`` is everything raised in the month
    (leadership and § 48) in time order; ``earlier_open`` what was raised before and is
    still open at ``as_of``, oldest first.
    """

    region: str | None
    scope_name: str
    month: str
    start: datetime
    end: datetime
    as_of: datetime
    total: int
    teams: int
    workers: int
    escalated: int
    shl48_count: int
    themes: list[ThemeFigures] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)
    earlier_open: list[EscalationItem] = field(default_factory=list)
    # Proposals of the scope that moved in the month (the knowledge path), newest first.
    proposals: list[ProposalLine] = field(default_factory=list)
    # Active workers of the month and of each of the three months before.
    activity: Activity = field(default_factory=Activity)
    # The whole organisation's summary: every region's month (empty for a region's).
    regions: list[RegionFigures] = field(default_factory=list)


@dataclass(frozen=True)
class MonthlySummary:
    """A region's (or, with ``region`` None, the whole organisation's) month."""

    region: str | None
    scope_name: str
    month: str
    start: datetime
    end: datetime
    as_of: datetime
    total: int
    teams: int
    workers: int
    escalated: int
    shl48_count: int
    # The same figures twice, ordered by observations (leading) and by teams (spread).
    leading: list[SpreadRow] = field(default_factory=list)
    spread: list[SpreadRow] = field(default_factory=list)
    rising: list[RisingRow] = field(default_factory=list)
    min_count: int = RISING_MIN_COUNT
    ratio: float = RISING_RATIO
    escalated_by_theme: list[ThemeGroup] = field(default_factory=list)
    shl48: list[EscalationItem] = field(default_factory=list)
    earlier_open: list[EscalationItem] = field(default_factory=list)
    proposals: list[ProposalLine] = field(default_factory=list)
    # Who reads it and what is hidden from them (``digests.numbers``): the themes whose
    # counts show as "< 5" (primary and secondary suppression over all themes, whose total
    # is shown), and the themes whose number of escalations does.
    privacy: Privacy = LEADERSHIP
    hidden_themes: frozenset[str] = frozenset()
    hidden_escalated: frozenset[str] = frozenset()
    # Rates: the active workers, the observations of the three months before (for their
    # rate), and whether "rising" compared rates instead of counts.
    activity: Activity = field(default_factory=Activity)
    before_total: int = 0
    rate_basis: bool = False
    # The whole organisation's summary: the regions side by side and the organisation as a
    # last row; the regions whose observation counts or open notices show as "< 5".
    regions: list[RegionRow] = field(default_factory=list)
    organisation: RegionRow | None = None
    hidden_region_totals: frozenset[str] = frozenset()
    hidden_region_open: frozenset[str] = frozenset()
    # The observations' total (and the open items' total of the regions) prints as "–":
    # every cell adding up to it is hidden and would still be given back by it
    # (``digests.numbers.total_hidden``).
    total_hidden: bool = False
    open_total_hidden: bool = False
    # The configuration's official region and municipality codes, for the CSV file.
    codes: OfficialCodes = NO_CODES

    @property
    def escalated_items(self) -> list[EscalationItem]:
        """Everything raised in the month (leadership and § 48), for the CSV file."""
        items = [item for group in self.escalated_by_theme for item in group.items]
        items.extend(self.shl48)
        return sorted(items, key=lambda item: (item.observed_at, item.observation_id))
