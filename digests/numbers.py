"""Numbers that protect people: one format per language and small-cell suppression.

Every count a digest, summary, report or CSV file shows goes through this
module, so there is one rule for each of these questions:

* **How is a number written?** ``number``: "2 973" (a no-break space between
  thousands) in Finnish and Swedish text, "2,973" in English; ``decimal`` and
  ``percent`` the same way. Machine files (the CSV files, JSONL) write plain
  digits (``machine``).
* **Which counts are hidden?** A count of observations (or of people) that is
  greater than 0 and smaller than ``min_cell`` (``[privacy] min_cell``,
  default 5) may point at a client or a worker when shown to leadership or
  printed in a report: it is shown as "< 5" (``count``).
* **Can a hidden count be worked back from a total?** Not by subtraction:
  ``suppress`` applies *secondary suppression* to a group of counts whose total
  is shown. A hidden count below ``min_cell`` prints as "< 5" (a true statement);
  a count hidden only to protect another (a secondary cell, ``min_cell`` or more)
  prints as "–" (``HIDDEN``), never as "< 5", which would be false. A reader
  knows the total, the shown cells, that a "< 5" cell is 1..min_cell-1, that a
  "–" cell is at least ``min_cell`` and at most the smallest shown cell
  (``suppress`` hides the smallest), and so the hidden cells' sum S. A hidden
  cell is *pinned* when these bounds and S leave it one value (``_pinned``): one
  hidden cell; "< 5" cells that are all 1 or all min_cell - 1; a "< 5" cell
  beside a "–" cell of exactly ``min_cell``; and so on. ``suppress`` hides the
  smallest shown non-zero cells, one at a time (ties by key order), until no
  hidden cell is pinned; a list that ranks shown cells first
  (``digests.rules.ranked_shown``) says nothing more. Where every non-zero cell
  is hidden and one is still pinned, no cell is left to add: then the total
  itself must not be printed (``total_hidden``; a total below ``min_cell`` is
  hidden anyway, and with it k = min_cell - 1 cells of 1 are the pinned case).
* **How many workers wrote?** Below ``few_workers`` (3) a team digest says "a
  few workers" instead of the number (``few_workers``; the text is the
  renderer's).
* **Which quotes may leadership read?** Only those of a theme with at least
  ``min_cell`` observations in the period (``quotable_themes``).
* **When may a rate be shown?** Observations per active worker-week (``rate``) only
  where its count may be shown and at least ``min_cell`` workers (three in a team's
  digest) were active: a rate and its denominator give the count back.

What is hidden is decided here on whole distributions (all themes, all
signals), before a renderer takes the first few rows of one, so a top-five
list hides the same cells as the full table.

Pure: Babel only, no imports of our own.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from babel.numbers import format_decimal, format_percent

DEFAULT_MIN_CELL = 5
FEW_WORKERS = 3
#: How a count hidden to protect another (``min_cell`` or more) is printed.
HIDDEN = "–"

# The Babel locale of each language's numbers: Finnish and Swedish group thousands with a
# no-break space and use a decimal comma; English uses "2,973" and "1.5".
NUMBER_LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_GB"}

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Privacy:
    """How much of the numbers an audience may see.

    ``min_cell``: counts 1..min_cell-1 are hidden when ``suppress`` is on (leadership,
    reports, their CSV files). A team's own weekly digest has ``suppress`` off: the team
    sees how many observations it made itself, but never how many of its workers wrote
    when fewer than ``few_workers`` did.
    """

    min_cell: int = DEFAULT_MIN_CELL
    suppress: bool = True
    few_workers: int = FEW_WORKERS

    def small(self, n: int) -> bool:
        """Whether ``n`` is a count this audience must not see."""
        return self.suppress and 0 < n < self.min_cell

    def hidden(self, counts: Mapping[K, int]) -> frozenset[K]:
        """The cells of a group with a shown total that this audience does not see: "< 5"
        below ``min_cell``, "–" (``HIDDEN``) when hidden to protect another."""
        return suppress(counts, self.min_cell) if self.suppress else frozenset()

    def total_hidden(self, *groups: Mapping[Any, int]) -> bool:
        """Whether a total that ``groups`` (each adding up to it) share must not be printed
        to this audience (``total_hidden``: every cell of a group is hidden and pinned)."""
        return self.suppress and any(total_hidden(g, self.min_cell) for g in groups)

    @property
    def min_workers(self) -> int:
        """The fewest active workers a rate may be shown for: ``min_cell`` for leadership
        and reports, ``few_workers`` (3) in a team's own digest."""
        return self.min_cell if self.suppress else self.few_workers


LEADERSHIP = Privacy()
TEAM = Privacy(suppress=False)


def _locale(lang: str) -> str:
    return NUMBER_LOCALES.get(lang, NUMBER_LOCALES["fi"])


# Babel parses the locale and the pattern on every call (~0.1 ms): remembered per language.
@lru_cache(maxsize=4096)
def number(n: int, lang: str) -> str:
    """A whole number in running text of ``lang``: "2 973" (fi, sv), "2,973" (en)."""
    return format_decimal(n, locale=_locale(lang))


@lru_cache(maxsize=4096)
def decimal(x: float, lang: str) -> str:
    """At most two decimals: "2,5" (fi, sv), "2.5" (en)."""
    return format_decimal(x, format="#,##0.##", locale=_locale(lang))


def signed(x: float, lang: str) -> str:
    """A change with its sign; "±0" for none."""
    if round(x, 2) == 0:
        return "±0"
    return format_decimal(x, format="+#,##0.##;-#,##0.##", locale=_locale(lang))


def percent(ratio: float, lang: str, signed: bool = False) -> str:
    """A share or change in percent: "150 %" (fi, sv), "150%" (en); with a sign if asked."""
    if lang == "en":
        pattern = "+#,##0%;-#,##0%" if signed else "#,##0%"
    else:
        pattern = "+#,##0\u00a0%;-#,##0\u00a0%" if signed else "#,##0\u00a0%"
    return format_percent(ratio, format=pattern, locale=_locale(lang))


def machine(n: int) -> str:
    """A count in a machine file (CSV, JSONL): plain digits, no grouping."""
    return str(n)


def below(min_cell: int, lang: str) -> str:
    """What a hidden count shows: "< 5" in every language (the number in its format)."""
    return f"<\u00a0{number(min_cell, lang)}"


def count(n: int, lang: str, privacy: Privacy = LEADERSHIP, hidden: bool = False) -> str:
    """A count for ``privacy``'s audience: the number; "< 5" when it is small; "–"
    (``HIDDEN``) when it is ``min_cell`` or more and ``hidden`` by secondary suppression."""
    if privacy.suppress and privacy.small(n):
        return below(privacy.min_cell, lang)
    if privacy.suppress and hidden and n:
        return HIDDEN
    return number(n, lang)


def _pinned(values: list[int], min_cell: int, ceiling: int | None = None) -> bool:
    """Whether hidden cells of ``values`` (their sum S known from a printed total) give a
    reader one value for a cell. A reader bounds a "< 5" cell to 1..min_cell-1 and a "–"
    cell to min_cell..``ceiling`` (the smallest shown cell; None: no shown cell, no
    bound); with the others' bounds and S, a cell whose range is one value is pinned."""
    if not values:
        return False
    unbounded = sum(values) + 1  # no cell can be more than the sum
    lows = [1 if n < min_cell else min_cell for n in values]
    highs = [
        min_cell - 1 if n < min_cell else (ceiling if ceiling is not None else unbounded)
        for n in values
    ]
    total = sum(values)
    low_sum, high_sum = sum(lows), sum(highs)
    for low, high in zip(lows, highs, strict=True):
        least = max(low, total - (high_sum - high))
        most = min(high, total - (low_sum - low))
        if least == most:
            return True
    return False


def total(n: int, lang: str, privacy: Privacy = LEADERSHIP, hidden: bool = False) -> str:
    """A total for ``privacy``'s audience: as ``count``, or "–" when ``hidden``
    (``total_hidden``: printed, it would pin the hidden cells that add up to it)."""
    if privacy.suppress and hidden:
        return HIDDEN
    return count(n, lang, privacy)


def suppress(counts: Mapping[K, int], min_cell: int = DEFAULT_MIN_CELL) -> frozenset[K]:
    """The cells of a group to hide, when the group's total is shown.

    Primary: every count in 1..min_cell-1 ("< 5"). Secondary: while a hidden cell is
    ``_pinned`` (bounded by the others, the smallest shown cell and the total), the
    smallest shown non-zero cell (ties by key order of ``counts``) is hidden too ("–"),
    so that no hidden count follows from the total minus the shown ones. When every
    non-zero cell is hidden and one is still pinned, nothing is left to add:
    ``total_hidden`` says the total must not be printed.
    """
    hidden = {key for key, n in counts.items() if 0 < n < min_cell}
    if not hidden:
        return frozenset()
    others = sorted(
        (n, i, key) for i, (key, n) in enumerate(counts.items()) if n and key not in hidden
    )
    while others and _pinned([counts[k] for k in hidden], min_cell, others[0][0]):
        hidden.add(others.pop(0)[2])
    return frozenset(hidden)


def total_hidden(counts: Mapping[K, int], min_cell: int = DEFAULT_MIN_CELL) -> bool:
    """Whether the total of a group must not be printed: ``suppress`` hides every non-zero
    cell and one is still pinned by the total. A total below ``min_cell`` prints as "< 5"
    anyway; then k cells of 1 are pinned when k = min_cell - 1 (their sum is at least k
    and at most min_cell - 1), and this says so too."""
    values = [n for n in counts.values() if n]
    if len(values) < 2:
        return False  # a lone cell is the total: both hidden or both shown
    total = sum(values)
    if total < min_cell:
        return len(values) >= min_cell - 1
    hidden = suppress(counts, min_cell)
    if any(n and key not in hidden for key, n in counts.items()):
        return False
    return _pinned(values, min_cell)


def recoverable(
    counts: Mapping[K, int], hidden: Iterable[K], min_cell: int = DEFAULT_MIN_CELL
) -> bool:
    """Whether a hidden non-zero cell follows from the printed total and the printed cells
    (for tests and for checking a rendering): a hidden cell is ``_pinned`` while the total
    is printed. A total below ``min_cell`` is itself hidden; then the hidden cells are
    pinned only as k = min_cell - 1 cells of 1 (``total_hidden``)."""
    hidden = set(hidden)
    values = [counts[key] for key in hidden if counts.get(key, 0)]
    if not values:
        return False
    total = sum(counts.values())
    if 0 < total < min_cell:
        return len(values) >= min_cell - 1
    shown = [n for key, n in counts.items() if n and key not in hidden]
    return _pinned(values, min_cell, min(shown) if shown else None)


def quotable_themes(theme_counts: Mapping[str, int], min_cell: int = DEFAULT_MIN_CELL) -> set[str]:
    """The themes whose quotes leadership and reports may show: at least ``min_cell``
    observations in the period."""
    return {theme for theme, n in theme_counts.items() if n >= min_cell}


def few_workers(n: int, privacy: Privacy) -> bool:
    """Whether a number of workers is shown as "a few workers" (fewer than 3, more than 0)."""
    return 0 < n < privacy.few_workers


def rate(
    count: int,
    worker_weeks: int,
    workers: int,
    lang: str,
    privacy: Privacy,
    hidden: bool = False,
) -> str | None:
    """Observations per active worker-week in running text ("1,83"; at most two decimals),
    or None where it must not be shown.

    A rate gives its count back to anyone who knows the worker-weeks (they are printed, or
    follow from the total and its rate), so it is hidden wherever its count is: ``hidden``
    (secondary suppression) or small. It is hidden too when fewer than
    ``privacy.min_workers`` workers were active (fewer than ``min_cell`` for leadership,
    fewer than three in a team's digest): it would tell how many. No worker-weeks: None.
    """
    if not worker_weeks or workers < privacy.min_workers:
        return None
    if privacy.suppress and (hidden or privacy.small(count)):
        return None
    return decimal(round(count / worker_weeks, 2), lang)


def average_shown(total: int, periods: int, lang: str, privacy: Privacy) -> str:
    """The average of ``total`` over ``periods`` earlier periods; when ``total`` is a small
    count the average would give it back (times ``periods``), so it shows as "< 1,25"."""
    if privacy.small(total):
        return f"<\u00a0{decimal(privacy.min_cell / periods, lang)}"
    return decimal(total / periods, lang)
