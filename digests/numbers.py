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
  is shown. A reader knows the total, the shown cells, that every hidden cell
  is at least 1 (a zero is shown as 0: it names nobody) and, reading "< 5",
  perhaps that it is at most ``min_cell`` - 1. The hidden cells' sum S is then
  known, and with k hidden cells one of them is pinned to its value when
  k = 1 (it is S), when S = k (every hidden cell is 1) or when every hidden
  cell is min_cell - 1 (S = k * (min_cell - 1), each read as at most
  min_cell - 1). ``suppress`` hides the
  smallest shown non-zero cells, one at a time (ties by key order), until none
  of the three holds; the cells added are never smaller than a primary one, so a
  hidden cell is at most the smallest shown cell, and a list that ranks shown
  cells first (``digests.rules.ranked_shown``) says nothing more. Only where
  every non-zero cell is hidden and still one of the three holds (every cell 1,
  or every cell min_cell - 1) is no cell left to add: then the total itself
  must not be printed (``total_hidden``; a total below ``min_cell`` is hidden
  anyway, and with it k = min_cell - 1 cells of 1 are the pinned case).
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
        """The cells of a group with a shown total that this audience sees as "< 5"."""
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
    """A count for ``privacy``'s audience: the number, or "< 5" when it is small or ``hidden``
    (hidden by secondary suppression)."""
    if privacy.suppress and (hidden or privacy.small(n)):
        return below(privacy.min_cell, lang)
    return number(n, lang)


def _pinned(values: list[int], min_cell: int) -> bool:
    """Whether hidden cells of ``values`` (their sum known from a printed total) give a
    reader one value for a cell: one cell, every cell 1, or every cell ``min_cell`` - 1."""
    # With S = k * (min_cell - 1) and a secondary cell (min_cell or more) among them, a
    # reader who takes "< 5" at its word finds every cell min_cell - 1: wrong, not pinned.
    return len(values) == 1 or all(n == 1 for n in values) or all(n == min_cell - 1 for n in values)


def total(n: int, lang: str, privacy: Privacy = LEADERSHIP, hidden: bool = False) -> str:
    """A total for ``privacy``'s audience: as ``count``, or "–" when ``hidden``
    (``total_hidden``: printed, it would pin the hidden cells that add up to it)."""
    if privacy.suppress and hidden:
        return "–"
    return count(n, lang, privacy)


def suppress(counts: Mapping[K, int], min_cell: int = DEFAULT_MIN_CELL) -> frozenset[K]:
    """The cells of a group to hide, when the group's total is shown.

    Primary: every count in 1..min_cell-1. Secondary: while the hidden cells are
    ``_pinned`` (one cell; all 1; all ``min_cell`` - 1), the smallest other non-zero cell
    (ties by key order of ``counts``) is hidden too, so that no hidden count follows from
    the total minus the shown ones. When every non-zero cell is hidden and they are still
    pinned, nothing is left to add: ``total_hidden`` says the total must not be printed
    (a lone non-zero cell is the whole total, which is then below ``min_cell`` and hidden
    where it is shown, ``count``).
    """
    hidden = {key for key, n in counts.items() if 0 < n < min_cell}
    if not hidden:
        return frozenset()
    others = sorted(
        (n, i, key) for i, (key, n) in enumerate(counts.items()) if n and key not in hidden
    )
    for _, _, key in others:
        if not _pinned([counts[k] for k in hidden], min_cell):
            break
        hidden.add(key)
    return frozenset(hidden)


def total_hidden(counts: Mapping[K, int], min_cell: int = DEFAULT_MIN_CELL) -> bool:
    """Whether the total of a group must not be printed: every non-zero cell is hidden by
    ``suppress`` and they would still be pinned by it (every cell 1, or every cell
    ``min_cell`` - 1, at least two of them). A total below ``min_cell`` prints as "< 5"
    anyway; then k cells of 1 are pinned when k = min_cell - 1 (their sum is at least k
    and at most min_cell - 1), and this says so too."""
    values = [n for n in counts.values() if n]
    if len(values) < 2 or any(n >= min_cell for n in values):
        return False
    total = sum(values)
    if total < min_cell:
        return len(values) >= min_cell - 1
    return _pinned(values, min_cell)


def recoverable(
    counts: Mapping[K, int], hidden: Iterable[K], min_cell: int = DEFAULT_MIN_CELL
) -> bool:
    """Whether a hidden non-zero cell follows from the printed total and the printed cells
    (for tests and for checking a rendering): the hidden cells are ``_pinned`` while the
    total is printed. A total below ``min_cell`` is itself hidden; then the hidden cells
    are pinned only as k = min_cell - 1 cells of 1 (``total_hidden``)."""
    values = [counts[key] for key in set(hidden) if counts.get(key, 0)]
    if not values:
        return False
    total = sum(counts.values())
    if 0 < total < min_cell:
        return len(values) >= min_cell - 1
    return _pinned(values, min_cell)


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
