"""The capture flow as a pure state machine: plain function calls, no event loop.

Example-based tests pin the worker's paths (quick capture in one text and six
taps, edit, details, privacy, resume); property-based tests throw arbitrary
event sequences at it and check that it never raises and never leaves a valid
state.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import capture, taxonomy, textguard
from flows.capture import Area, Draft, FlowContext, Result, Save, Step
from flows.events import (
    Alert,
    ChoiceIn,
    CommandIn,
    EditedIn,
    Event,
    LocationIn,
    MediaIn,
    Message,
    Reprompt,
    TextIn,
)
from flows.i18n import LANGUAGES, has_message, label, t

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
AREAS = (
    Area("kallio", "Kallio", 60.184, 24.950),
    Area("itakeskus", "Itäkeskus", 60.210, 25.081),
)


def ctx(lang: str = "fi", nonce: str = "k1", **extra: Any) -> FlowContext:
    return FlowContext(lang=lang, now=NOW, areas=AREAS, nonce=nonce, **extra)


def question(result: Result) -> Message:
    last = result.replies[-1]
    assert isinstance(last, Message)
    return last


def press(result: Result, value: str, c: FlowContext | None = None) -> Result:
    """Press the button whose payload ends with ``value`` on the last question."""
    message = question(result)
    choice = next(ch for ch in message.flat_choices() if ch.data.endswith(":" + value))
    return capture.advance(result.draft, ChoiceIn(choice.data), c or ctx())


def quick_capture(text: str = "Nuorilla ei ole asuntoa") -> Result:
    result = capture.advance(None, TextIn(text), ctx())
    for value in (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.growing",
        "escalation.none",
    ):
        result = press(result, value)
    return result


def test_quick_capture_is_one_text_and_six_taps() -> None:
    interactions = 1
    result = capture.advance(None, TextIn("Nuorilla ei ole asuntoa"), ctx())
    assert result.draft is not None and result.draft.step is Step.THEME
    for value in (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.growing",
        "escalation.none",
    ):
        result = press(result, value)
        interactions += 1
    assert result.draft is not None and result.draft.step is Step.SUMMARY
    result = press(result, "save")
    interactions += 1
    assert interactions == 7
    assert isinstance(result.effect, Save)
    saved = result.effect.draft
    assert (saved.theme, saved.group, saved.signal) == (
        "theme.housing",
        "group.youth",
        "signal.queues",
    )
    assert saved.frequency == "frequency.growing" and saved.escalation == "escalation.none"
    assert saved.description == "Nuorilla ei ole asuntoa"
    assert saved.observed_at == NOW.isoformat()
    assert result.draft is None


def test_new_command_asks_for_the_text_first() -> None:
    result = capture.advance(None, CommandIn("uusi"), ctx())
    assert result.draft is not None and result.draft.step is Step.DESCRIPTION
    assert question(result).text == t("fi", "ask.description")
    result = capture.advance(result.draft, TextIn("Jono päihdehoitoon 3 kk"), ctx())
    assert result.draft is not None and result.draft.step is Step.THEME


def test_every_step_offers_every_code_and_other() -> None:
    result = capture.advance(None, TextIn("x"), ctx())
    for step, dimension in ((Step.THEME, taxonomy.THEME), (Step.GROUP, taxonomy.GROUP)):
        assert result.draft is not None and result.draft.step is step
        payloads = [c.data.rsplit(":", 1)[1] for c in question(result).flat_choices()]
        assert payloads == list(dimension.codes)
        assert any(code.endswith(".other") for code in payloads)
        result = press(result, dimension.codes[0])


def test_summary_shows_labels_and_edit_jumps_back_to_a_step() -> None:
    result = quick_capture()
    summary = question(result).text
    assert label("theme.housing", "fi") in summary and "Nuorilla ei ole asuntoa" in summary
    result = press(result, "edit")
    assert result.draft is not None and result.draft.step is Step.EDIT_MENU
    result = press(result, "group")
    assert result.draft is not None and result.draft.step is Step.GROUP
    result = press(result, "group.older")
    assert result.draft is not None and result.draft.step is Step.SUMMARY
    assert result.draft.group == "group.older"
    # Editing the text also returns to the summary, keeping every other answer.
    result = press(press(result, "edit"), "description")
    result = capture.advance(result.draft, TextIn("Korjattu teksti"), ctx())
    assert result.draft is not None and result.draft.step is Step.SUMMARY
    assert result.draft.description == "Korjattu teksti" and result.draft.theme == "theme.housing"


def test_details_area_quote_action_and_good_practice() -> None:
    result = press(quick_capture(), "details")
    assert result.draft is not None and result.draft.step is Step.DETAILS_MENU
    result = press(press(result, "area"), "kallio")
    assert result.draft is not None and result.draft.area == "kallio"
    result = press(result, "quote")
    result = capture.advance(result.draft, TextIn("Ei kukaan kysy meiltä mitään"), ctx())
    result = press(result, "action")
    result = capture.advance(result.draft, TextIn("Matalan kynnyksen asumisneuvonta"), ctx())
    result = press(press(result, "polarity"), "polarity.good_practice")
    assert result.draft is not None and result.draft.step is Step.DETAILS_MENU
    result = press(result, "done")
    summary = question(result).text
    assert "Kallio" in summary and "Ei kukaan kysy meiltä mitään" in summary
    assert label("polarity.good_practice", "fi") in summary
    saved = press(result, "save").effect
    assert isinstance(saved, Save)
    assert saved.draft.quote == "Ei kukaan kysy meiltä mitään"
    assert saved.draft.action == "Matalan kynnyksen asumisneuvonta"
    assert saved.draft.polarity == "polarity.good_practice"


def test_stale_and_forged_buttons_change_nothing() -> None:
    first = capture.advance(None, TextIn("x"), ctx())
    old_theme_button = question(first).flat_choices()[0].data
    second = press(first, "theme.income")
    refused = capture.advance(second.draft, ChoiceIn(old_theme_button), ctx())
    assert refused.draft == second.draft
    assert refused.replies[0].text == t("fi", "flow.stale_button")
    assert refused.note == "choice_refused"
    # Another worker's draft key, right sequence number: refused as well.
    assert second.draft is not None
    forged = f"d:someone-else:{second.draft.seq}:group.youth"
    assert capture.advance(second.draft, ChoiceIn(forged), ctx()).draft == second.draft
    # A value that is not a code of the step: refused.
    bogus = f"d:{second.draft.key}:{second.draft.seq}:theme.housing"
    assert capture.advance(second.draft, ChoiceIn(bogus), ctx()).draft == second.draft


def test_typed_number_or_label_answers_a_choice_step() -> None:
    result = capture.advance(None, TextIn("x"), ctx())
    by_number = capture.advance(result.draft, TextIn("2"), ctx())
    assert by_number.draft is not None and by_number.draft.theme == taxonomy.THEME.codes[1]
    by_label = capture.advance(by_number.draft, TextIn(label("group.older", "fi").upper()), ctx())
    assert by_label.draft is not None and by_label.draft.group == "group.older"
    # Any other text is not dropped: the worker is asked where it goes (see below).
    unmatched = capture.advance(by_label.draft, TextIn("jotain muuta"), ctx())
    assert unmatched.draft is not None and unmatched.draft.step is Step.NEW_TEXT
    assert unmatched.draft.pending_text == "jotain muuta"
    assert unmatched.draft.group == "group.older" and unmatched.draft.back_step is Step.SIGNAL


def test_bad_text_is_refused_and_the_draft_keeps_what_it_had() -> None:
    result = capture.advance(None, TextIn("   \n "), ctx())
    assert result.draft is None and result.replies[0].text == t("fi", "flow.empty_text")
    result = capture.advance(None, TextIn("x" * 4001), ctx())
    assert result.draft is None and "4001" in result.replies[0].text
    open_draft = press(press(quick_capture(), "details"), "quote")
    refused = capture.advance(open_draft.draft, TextIn("y" * 5000), ctx())
    assert refused.draft == open_draft.draft
    assert refused.replies[-1].text == t("fi", "ask.quote")


def test_emoji_and_right_to_left_text_are_kept_intact() -> None:
    text = "Asiakas sanoi: مرحبا بكم 🙏🏽 — שלום ‏(RTL)‏ 👨‍👩‍👧"
    result = capture.advance(None, TextIn(text), ctx())
    assert result.draft is not None and result.draft.description == text


def test_media_and_edits_are_refused_with_a_reason() -> None:
    draft = capture.advance(None, TextIn("x"), ctx()).draft
    for event in (MediaIn("voice"), MediaIn("photo"), MediaIn("sticker"), EditedIn()):
        result = capture.advance(draft, event, ctx())
        assert result.draft == draft
        assert result.replies[-1].text == t("fi", "ask.theme")
    assert capture.advance(None, MediaIn("voice"), ctx()).replies[0].text == t(
        "fi", "flow.media_refused"
    )


def test_text_reaches_the_draft_as_the_boundary_screened_it() -> None:
    # Identifiers are handled where text enters (flows.textguard, tests/test_textguard.py):
    # a text the writer chose to keep is taken in as it is, with no second question.
    result = capture.advance(None, TextIn("Kriisipuhelin 09 2525 0111 ei vastannut"), ctx())
    assert result.draft is not None and result.draft.step is Step.THEME
    assert result.draft.description == "Kriisipuhelin 09 2525 0111 ei vastannut"


def test_a_draft_stored_while_asking_about_identifiers_is_restored_safely() -> None:
    # Stored by the version whose flow asked itself: the identifiers are removed.
    result = quick_capture()
    assert result.draft is not None
    old = result.draft.to_json() | {
        "step": "privacy",
        "back_step": "summary",
        "privacy_field": "quote",
        "privacy_kinds": ["email"],
        "quote": "mail me: a.b@example.org",
    }
    restored = Draft.from_json(old)
    assert restored.step is Step.SUMMARY and restored.back_step is None
    assert "@" not in (restored.quote or "")


def test_a_stale_press_is_answered_to_the_presser_only() -> None:
    result = quick_capture()
    assert result.draft is not None
    stale = f"d:{result.draft.key}:{result.draft.seq - 1}:theme.housing"
    again = capture.advance(result.draft, ChoiceIn(stale), ctx())
    assert again.draft == result.draft
    # The pop-up for the presser, and the current question for the transport to show
    # where it is not shown already (nothing new in the chat on Telegram).
    assert [type(r) for r in again.replies] == [Alert, Reprompt]
    assert again.replies[0].text == t("fi", "flow.stale_button")
    reprompt = again.replies[1]
    assert isinstance(reprompt, Reprompt) and reprompt.message == capture.reprompt(
        result.draft, ctx()
    )
    assert [type(r) for r in capture.advance(None, ChoiceIn(stale), ctx()).replies] == [Alert]


def test_second_new_asks_continue_or_discard() -> None:
    open_draft = capture.advance(None, TextIn("eka"), ctx())
    asked = capture.advance(open_draft.draft, CommandIn("new"), ctx())
    assert asked.draft is not None and asked.draft.step is Step.RESUME
    continued = press(asked, "continue")
    assert continued.draft is not None and continued.draft.step is Step.THEME
    assert continued.draft.description == "eka"
    discarded = press(asked, "discard", ctx(nonce="k2"))
    assert discarded.draft is not None and discarded.draft.description is None
    assert discarded.draft.key == "k2" and discarded.draft.step is Step.DESCRIPTION


def test_cancel_discards() -> None:
    draft = capture.advance(None, TextIn("x"), ctx()).draft
    result = capture.advance(draft, CommandIn("peru"), ctx())
    assert result.draft is None and isinstance(result.effect, capture.Discard)
    assert capture.advance(None, CommandIn("peru"), ctx()).replies[0].text == t(
        "fi", "flow.nothing_to_cancel"
    )


def test_location_maps_to_an_area_or_a_one_km_cell() -> None:
    area_step = press(press(quick_capture(), "details"), "area")
    near_kallio = capture.advance(area_step.draft, LocationIn(60.1851, 24.9512), ctx())
    assert near_kallio.draft is not None and near_kallio.draft.area == "kallio"
    far = capture.advance(area_step.draft, LocationIn(61.49812, 23.76103), ctx())
    assert far.draft is not None and far.draft.area == "geo:61.50,23.76"
    # The exact position appears nowhere in the stored draft.
    assert "61.498" not in str(far.draft.to_json())


def test_draft_survives_a_json_round_trip_at_every_step() -> None:
    result = capture.advance(None, TextIn("x"), ctx())
    for value in ("theme.other", "group.other", "signal.no_service", "frequency.new"):
        assert result.draft is not None
        assert Draft.from_json(result.draft.to_json()) == result.draft
        result = press(result, value)


def test_every_message_key_and_code_has_all_three_languages() -> None:
    keys = {code for dimension in taxonomy.DIMENSIONS.values() for code in dimension.codes}
    # The summary is its own text; "the same thing?" is asked in the knowledge domain's words.
    keys |= {f"ask.{s.value}" for s in Step if s not in (Step.SUMMARY, Step.SAME)}
    keys |= {f"field.{s.value}" for s in (*capture.MAIN_STEPS, *capture.DETAIL_STEPS)}
    for lang in LANGUAGES:
        missing = sorted(k for k in keys if not has_message(k, lang))
        assert not missing, (lang, missing)


def test_the_flow_speaks_swedish_and_english() -> None:
    for lang in ("sv", "en"):
        result = capture.advance(None, TextIn("x"), ctx(lang))
        assert question(result).text == t(lang, "ask.theme")
        assert question(result).flat_choices()[0].label == label("theme.housing", lang)
        assert question(result).text != t("fi", "ask.theme")


def test_callback_payloads_fit_telegram_64_bytes() -> None:
    draft = Draft(key="abcdef", seq=999)
    for step in Step:
        message = capture._question(dataclasses.replace(draft, step=step), step, ctx())
        for choice in message.flat_choices():
            assert len(choice.data.encode()) <= 64, choice.data


def test_a_text_at_a_choice_step_is_kept_new_or_as_the_description() -> None:
    first = capture.advance(None, TextIn("Eka"), ctx())
    asked = capture.advance(first.draft, TextIn("Toka"), ctx(nonce="k2"))
    assert asked.draft is not None and asked.draft.step is Step.NEW_TEXT
    values = [c.data.rsplit(":", 1)[1] for c in question(asked).flat_choices()]
    assert values == ["new", "describe", "forget"]
    # A second text before answering joins the first: none is lost.
    joined = capture.advance(asked.draft, TextIn("lisää"), ctx())
    assert joined.draft is not None and joined.draft.pending_text == "Toka\nlisää"
    new = press(asked, "new", ctx(nonce="k2"))
    assert isinstance(new.effect, capture.Keep)
    assert new.effect.draft.description == "Eka" and new.effect.draft.step is Step.THEME
    assert new.draft is not None and new.draft.description == "Toka" and new.draft.key == "k2"
    described = press(asked, "describe")
    assert described.draft is not None and described.draft.description == "Toka"
    assert described.draft.step is Step.THEME and described.effect is None
    # With three drafts open (two kept aside) no fourth is offered.
    full = capture.advance(first.draft, TextIn("Toka"), ctx(kept_drafts=2))
    assert "new" not in [c.data.rsplit(":", 1)[1] for c in question(full).flat_choices()]
    assert (
        capture.advance(
            full.draft, ChoiceIn(f"d:k1:{full.draft.seq}:new"), ctx(kept_drafts=2)
        ).effect
        is None
    )  # type: ignore[union-attr]


def test_same_as_last_time_and_the_default_area() -> None:
    last = ("theme.income", "group.older", "signal.no_service")
    c = ctx(last_codes=last, default_area="itakeskus")
    result = capture.advance(None, TextIn("Taas sama"), c)
    assert result.draft is not None and result.draft.area == "itakeskus"
    same = press(result, "same", c)
    assert same.draft is not None and same.draft.step is Step.FREQUENCY
    assert (same.draft.theme, same.draft.group, same.draft.signal) == last
    # An unknown default area (removed from the config) is not filled in.
    assert capture.advance(None, TextIn("x"), ctx(default_area="poistettu")).draft.area is None  # type: ignore[union-attr]


def test_when_in_add_details_and_the_summary() -> None:
    result = press(press(quick_capture(), "details"), "when")
    assert result.draft is not None and result.draft.step is Step.WHEN
    yesterday = press(result, "yesterday")
    assert yesterday.draft is not None and yesterday.draft.observed_day_only
    assert yesterday.draft.observed_at == "2026-11-22T10:00:00+00:00"
    summary = question(press(yesterday, "done")).text
    assert f"{t('fi', 'field.when')}: {t('fi', 'when.yesterday')}" in summary
    typed = capture.advance(result.draft, TextIn("klo 9"), ctx())
    assert typed.draft is not None and typed.draft.observed_at == "2026-11-23T07:00:00+00:00"


# --- properties -------------------------------------------------------------------------


def _events(draft_keys: list[str]) -> st.SearchStrategy[Event]:
    codes = [c for d in taxonomy.DIMENSIONS.values() for c in d.codes]
    values = st.sampled_from(
        [
            *codes,
            "save",
            "edit",
            "details",
            "cancel",
            "back",
            "done",
            "remove",
            "continue",
            "discard",
            "keep",
            "same",
            "new",
            "describe",
            "forget",
            "now",
            "today",
            "yesterday",
            "when",
            "area",
            "quote",
            "kallio",
            "none",
            *[s.value for s in Step],
        ]
    )
    choice = st.builds(
        lambda key, seq, value: ChoiceIn(f"d:{key}:{seq}:{value}"),
        st.sampled_from(draft_keys),
        st.integers(0, 30),
        values,
    )
    return st.one_of(
        st.builds(TextIn, st.text(max_size=60)),
        st.builds(TextIn, st.sampled_from(["1", "3", "12", "040 123 4567", "131052-308T", ""])),
        choice,
        st.builds(ChoiceIn, st.text(max_size=20)),
        st.builds(
            CommandIn,
            st.sampled_from(["uusi", "new", "peru", "ny", "cancel", "x"]),
            st.text(max_size=10),
        ),
        st.builds(LocationIn, st.floats(allow_nan=True), st.floats(allow_infinity=True)),
        st.builds(MediaIn, st.sampled_from(["voice", "photo"])),
        st.just(EditedIn()),
    )


def _follow_buttons(result: Result) -> list[Event]:
    if not result.replies or isinstance(result.replies[-1], Alert):
        return []
    last = result.replies[-1]
    message = last.message if isinstance(last, Reprompt) else question(result)
    return [ChoiceIn(c.data) for c in message.flat_choices()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_events(["k1", "k2", "zz"]), st.integers(0, 5)), max_size=40))
def test_any_event_sequence_keeps_a_valid_state(steps: list[tuple[Event, int]]) -> None:
    draft: Draft | None = None
    last: Result | None = None
    for n, (event, pick) in enumerate(steps):
        # Half of the time press a real button of the last question, as a worker would.
        offered = _follow_buttons(last) if last is not None else []
        if offered and pick % 2 == 0:
            event = offered[pick % len(offered)]
        if isinstance(event, TextIn):
            event = TextIn(textguard.screen(event.text).text)  # as the boundary passes it on
        result = capture.advance(draft, event, ctx(nonce=f"k{n % 2 + 1}"))
        assert all(
            (isinstance(r, Message | Alert) and r.text) or isinstance(r, Reprompt)
            for r in result.replies
        )
        if result.draft is not None:
            restored = Draft.from_json(result.draft.to_json())
            assert restored == result.draft
            assert result.draft.step in Step
            for name in ("theme", "group", "signal", "frequency", "escalation", "polarity"):
                value = getattr(result.draft, name)
                assert value is None or taxonomy.is_valid(value)
            # Every question's buttons belong to the current draft and step.
            for reply in result.replies[-1:]:
                if isinstance(reply, Alert):
                    continue
                if isinstance(reply, Reprompt):
                    reply = reply.message
                for choice in reply.flat_choices():
                    parsed = capture.parse_choice(choice.data)
                    assert parsed == (result.draft.key, result.draft.seq, parsed[2])
            # No personal identity code is ever kept.
            assert "131052-308T" not in str(result.draft.to_json())
        if isinstance(result.effect, Save):
            saved = result.effect.draft
            assert saved.is_complete()
            for name in ("description", "quote", "action"):
                assert "131052" not in (getattr(saved, name) or "")
        draft = result.draft
        last = result
