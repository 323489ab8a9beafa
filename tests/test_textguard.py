"""The identifier guard where text enters (flows.textguard): pure, no I/O."""

from __future__ import annotations

from flows import textguard
from flows.i18n import LANGUAGES, has_message, t


def test_a_hetu_is_always_removed_and_said() -> None:
    screened = textguard.screen("Asiakas 131052-308T jäi ilman palvelua")
    assert "131052" not in screened.text and "[HETU]" in screened.text
    assert screened.hetu_removed and not screened.needs_choice


def test_other_identifiers_are_named_not_removed() -> None:
    screened = textguard.screen("Soita 040 123 4567 tai a.b@example.org")
    assert screened.text == "Soita 040 123 4567 tai a.b@example.org"
    assert screened.kinds == ("email", "phone") and not screened.hetu_removed


def test_a_hetu_and_a_phone_together() -> None:
    screened = textguard.screen("131052-308T soitti numerosta 040 123 4567")
    assert "131052" not in screened.text
    assert screened.kinds == ("phone",)


def test_plain_text_passes_unchanged() -> None:
    text = "Yöpaikkoja ei ollut 12.3.2024 klo 22–23, jonossa 14 nuorta."
    assert textguard.screen(text) == textguard.Screened(text, False, ())


def test_the_question_offers_remove_keep_and_rewrite() -> None:
    question = textguard.question("fi", 7, ("phone",))
    assert t("fi", "privacy.kind.phone") in question.text
    payloads = [c.data for c in question.flat_choices()]
    assert payloads == ["pv:rm:7", "pv:keep:7", "pv:drop:7"]
    assert [textguard.parse(p) for p in payloads] == [("rm", 7), ("keep", 7), ("drop", 7)]


def test_choices_resolve_the_text() -> None:
    text = "Soita 040 123 4567"
    assert "040" not in (textguard.resolve("rm", text) or "x")
    assert textguard.resolve("keep", text) == text
    assert textguard.resolve("drop", text) is None


def test_forged_payloads_are_not_guard_choices() -> None:
    for data in ("pv:rm", "pv:rm:x", "pv:zap:1", "d:k:1:rm", "pv:keep:1:2", ""):
        assert textguard.parse(data) is None


def test_texts_exist_in_every_language() -> None:
    keys = ("privacy.found", "privacy.hetu_removed", "privacy.dropped", "button.keep_text")
    for lang in LANGUAGES:
        assert all(has_message(k, lang) for k in keys), lang
