""" "Me too" at capture time, in the pure flow: after a new entry's text and before the theme,
the flow offers at most three similar open phenomena or recent team entries that the host
passed in; "Yes, me too" ends the draft with a confirmation, "No" goes on to the theme."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from flows import capture
from flows import knowledge as rules
from flows.capture import Confirm, Draft, FlowContext, Result, Step
from flows.events import ChoiceIn, Message, TextIn
from flows.i18n import LANGUAGES, has_message, t

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TEXT = "Nuori aikuinen ilman hätämajoitusta pakkasyönä"
POOL = (
    rules.Candidate("phenomenon", 4, "Nuoret aikuiset ilman hätämajoitusta pakkasöinä", 7),
    rules.Candidate("observation", 12, "Nuori ilman hätämajoitusta, yömaja täynnä", 1),
    rules.Candidate("observation", 13, "Kela-asiointi vaatii pankkitunnukset", 1),
)


def ctx(lang: str = "fi", **extra: Any) -> FlowContext:
    return FlowContext(lang=lang, now=NOW, nonce="k1", **extra)


def question(result: Result) -> Message:
    last = result.replies[-1]
    assert isinstance(last, Message)
    return last


def press(result: Result, value: str, c: FlowContext | None = None) -> Result:
    choice = next(ch for ch in question(result).flat_choices() if ch.data.endswith(":" + value))
    return capture.advance(result.draft, ChoiceIn(choice.data), c or ctx())


def test_a_similar_text_is_asked_about_before_the_theme() -> None:
    asked = capture.advance(None, TextIn(TEXT), ctx(candidates=POOL))
    assert asked.draft is not None and asked.draft.step is Step.SAME
    shown = question(asked)
    assert shown.text.startswith("Kuulostaa samalta kuin jokin näistä")
    assert "#4" in shown.text and "(7 kpl)" in shown.text and "#12" in shown.text
    assert "#13" not in shown.text  # an unrelated entry is not offered
    labels = [c.label for c in shown.flat_choices()]
    assert labels == [
        "Kyllä, minäkin (ilmiö #4)",
        "Kyllä, minäkin (havainto #12)",
        "Ei, uusi havainto",
    ]
    # The draft survives the store at this step (a restart asks the same again).
    assert Draft.from_json(asked.draft.to_json()) == asked.draft
    again = capture.reprompt(Draft.from_json(asked.draft.to_json()), ctx())
    assert again.text == shown.text


def test_yes_me_too_is_one_tap_and_ends_the_draft_with_a_confirmation() -> None:
    asked = capture.advance(None, TextIn(TEXT), ctx(candidates=POOL))
    done = press(asked, "p4")
    assert done.draft is None and done.replies == []
    assert isinstance(done.effect, Confirm)
    assert (done.effect.kind, done.effect.number) == ("phenomenon", 4)
    entry = press(asked, "o12")
    assert isinstance(entry.effect, Confirm)
    assert (entry.effect.kind, entry.effect.number) == ("observation", 12)
    # Typed, as on Matrix or the terminal: the number of the answer.
    typed = capture.advance(asked.draft, TextIn("1"), ctx())
    assert isinstance(typed.effect, Confirm) and typed.effect.number == 4


def test_no_goes_on_to_the_theme_and_the_draft_keeps_its_text() -> None:
    asked = capture.advance(None, TextIn(TEXT), ctx(candidates=POOL))
    going_on = press(asked, rules.NEW_VALUE)
    assert going_on.effect is None and going_on.draft is not None
    assert going_on.draft.step is Step.THEME and going_on.draft.description == TEXT
    assert question(going_on).text.startswith(t("fi", "ask.theme"))
    # The old suggestion buttons are stale now: a late "yes" confirms nothing.
    late = capture.advance(going_on.draft, ChoiceIn(question(asked).flat_choices()[0].data), ctx())
    assert late.effect is None and late.draft == going_on.draft


def test_a_single_match_is_named_in_the_question() -> None:
    asked = capture.advance(None, TextIn(TEXT), ctx(candidates=POOL[:1]))
    shown = question(asked)
    assert shown.text == (
        "Kuulostaa samalta kuin ilmiö #4 ”Nuoret aikuiset ilman hätämajoitusta pakkasöinä” "
        "(7 kpl) – sama asia?"
    )
    assert [c.label for c in shown.flat_choices()] == ["Kyllä, minäkin", "Ei, uusi havainto"]


def test_fewer_than_three_are_a_few_and_every_language_has_the_words() -> None:
    few = (dataclasses.replace(POOL[0], count=2),)
    for lang, word in (("fi", "muutama"), ("sv", "några"), ("en", "a few")):
        shown = question(capture.advance(None, TextIn(TEXT), ctx(lang, candidates=few)))
        assert f"({word})" in shown.text and "(2" not in shown.text
    keys = [
        f"knowledge.suggest.{k}"
        for k in (
            "one",
            "many",
            "phenomenon",
            "phenomenon_few",
            "observation",
            "yes",
            "yes_phenomenon",
            "yes_observation",
            "new",
            "gone",
        )
    ]
    for lang in LANGUAGES:
        assert all(has_message(k, lang, "knowledge") for k in keys), lang


def test_nothing_is_asked_without_a_match_or_when_correcting() -> None:
    plain = capture.advance(None, TextIn("Kela-asiointi vaatii pankkitunnukset"), ctx())
    assert plain.draft is not None and plain.draft.step is Step.THEME
    unrelated = capture.advance(
        None, TextIn("Iltaisin ei saa asumisneuvontaa"), ctx(candidates=POOL[2:])
    )
    assert unrelated.draft is not None and unrelated.draft.step is Step.THEME
    # Editing the text of a draft (or of a saved entry) never asks again.
    asked = press(capture.advance(None, TextIn(TEXT), ctx(candidates=POOL)), rules.NEW_VALUE)
    assert asked.draft is not None
    summary = dataclasses.replace(asked.draft, step=Step.DESCRIPTION, editing=True)
    edited = capture.advance(summary, TextIn(TEXT), ctx(candidates=POOL))
    assert edited.draft is not None and edited.draft.step is not Step.SAME


def test_a_forged_answer_at_the_question_changes_nothing() -> None:
    asked = capture.advance(None, TextIn(TEXT), ctx(candidates=POOL))
    assert asked.draft is not None
    forged = capture.advance(
        asked.draft, ChoiceIn(f"d:{asked.draft.key}:{asked.draft.seq}:p99"), ctx()
    )
    assert forged.effect is None and forged.draft == asked.draft
