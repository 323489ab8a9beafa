"""A typed answer to a question with options (flows.events.match_choice)."""

from __future__ import annotations

from flows.events import Choice, match_choice

CHOICES = [Choice("Asuminen", "t:1"), Choice("Toimeentulo", "t:2")]


def test_a_number_or_a_label_names_an_option() -> None:
    assert match_choice(CHOICES, "2") == CHOICES[1]
    assert match_choice(CHOICES, " asuminen. ") == CHOICES[0]
    assert match_choice(CHOICES, "3") is None


def test_a_very_long_number_is_no_option_and_no_crash() -> None:
    """Found by tests/test_fuzz_telegram.py (seed 2956847083): 4,726 Arabic-Indic digits
    made int() raise, and the worker's text failed."""
    assert match_choice(CHOICES, "\u06f2" * 4726) is None
    assert match_choice(CHOICES, "1" * 5000) is None
