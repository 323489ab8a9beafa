"""Numbers that protect people: the one number format and small-cell suppression
(``digests.numbers``), and the rendered outputs that use them."""

from __future__ import annotations

import pytest

from digests import numbers
from digests.numbers import LEADERSHIP, TEAM, Privacy

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


def test_quotes_only_from_themes_with_enough_observations() -> None:
    assert numbers.quotable_themes({"theme.housing": 5, "theme.income": 4}) == {"theme.housing"}


def test_an_average_of_a_small_sum_does_not_give_it_back() -> None:
    assert numbers.average_shown(3, 4, "fi", LEADERSHIP) == f"<{NBSP}1,25"
    assert numbers.average_shown(10, 4, "fi", LEADERSHIP) == "2,5"
    assert numbers.average_shown(3, 4, "en", TEAM) == "0.75"


def test_a_few_workers() -> None:
    assert [numbers.few_workers(n, TEAM) for n in (0, 1, 2, 3)] == [False, True, True, False]
