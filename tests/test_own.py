"""A worker's own entries (flows.own): pure, and withdrawal needs its own confirmation."""

from __future__ import annotations

from flows import own
from flows.events import Alert, Message
from flows.i18n import t


def entry(number: int, editable: bool = True) -> own.OwnEntry:
    return own.OwnEntry(number, "3.12. 14:02", "theme.housing", "Yösuoja täynnä " * 8, editable)


def test_the_list_offers_correct_and_withdraw_for_editable_entries_only() -> None:
    listing = own.listing([entry(2), entry(1, editable=False)], "fi", "24")
    assert listing.text.splitlines()[0] == t("fi", "svc.own_title")
    assert "#2" in listing.text and "#1" in listing.text and "…" in listing.text
    assert [c.data for c in listing.flat_choices()] == ["own:edit:2", "own:del:2"]
    assert own.listing([], "sv", "24").text == t("sv", "svc.own_empty")


def test_withdraw_takes_the_confirmation_it_opened() -> None:
    asked = own.advance(None, own.Press("del", 7), "fi", key="k1")
    assert asked.action == "ask" and asked.pending == own.Pending(7, "k1")
    [question] = asked.replies
    assert isinstance(question, Message)
    yes, no = (c.data for c in question.flat_choices())
    assert (yes, no) == ("own:delyes:7:k1", "own:delno:7:k1")
    press = own.parse(yes)
    assert press is not None
    done = own.advance(asked.pending, press, "fi", key="k2")
    assert done.action == "withdraw" and done.pending is None


def test_a_yes_without_its_confirmation_changes_nothing() -> None:
    for pending in (None, own.Pending(7, "other"), own.Pending(8, "k1")):
        for data in ("own:delyes:7", "own:delyes:7:k1", "own:delno:7:k1"):
            press = own.parse(data)
            assert press is not None
            if pending == own.Pending(7, "k1"):
                continue
            decision = own.advance(pending, press, "fi", key="k9")
            assert decision.action == "refuse" and decision.pending == pending
            assert [type(r) for r in decision.replies] == [Alert]


def test_pending_survives_the_store() -> None:
    assert own.Pending.from_text(own.Pending(12, "ab12cd").to_text()) == own.Pending(12, "ab12cd")
    assert own.Pending.from_text("") is None and own.Pending.from_text(None) is None


def test_the_help_shows_command_words_from_the_catalogue() -> None:
    from flows import commands
    from flows.i18n import LANGUAGES

    for lang in LANGUAGES:
        for name, word in commands.shown(lang).items():
            if name == "off":
                assert word in commands.OFF_WORDS, (lang, word)
                continue
            assert word in commands.words(name), (lang, name, word)
        help_text = t(lang, "svc.help", **commands.shown(lang))
        assert "{" not in help_text and f"/{commands.shown(lang)['new']}" in help_text
        # Each language's help shows its own words: the Swedish one /ny, /mina, /avbryt...
        for name in ("new", "own", "cancel", "area", "reminder", "language"):
            assert f"/{commands.shown(lang)[name]}" in help_text, (lang, name)
    assert "/avbryt" in t("sv", "svc.help", **commands.shown("sv"))
    assert "/hjälp" in t("sv", "svc.unknown_command", **commands.shown("sv"))


def test_the_list_pages_five_entries_with_their_buttons_and_show_older() -> None:
    entries = [entry(n) for n in range(12, 7, -1)]
    page = own.listing(entries, "fi", "24", offset=0, more=True)
    data = [c.data for c in page.flat_choices()]
    assert data[:2] == ["own:edit:12", "own:del:12"] and len(data) == 11
    assert data[-1] == "own:more:5"
    assert len(page.text.splitlines()) == 1 + 5 + 1  # title, five entries, the window note
    last = own.listing([entry(3), entry(2, editable=False)], "fi", "24", offset=10, more=False)
    assert [c.data for c in last.flat_choices()] == ["own:edit:3", "own:del:3"]
    assert own.listing([], "fi", "24", offset=15).text == t("fi", "svc.own_no_more")


def test_open_drafts_are_listed_with_continue() -> None:
    drafts = (own.OpenDraft(own.CURRENT, "Auki oleva"), own.OpenDraft(7, "Odottava " * 10))
    page = own.listing([entry(2)], "fi", "24", drafts)
    lines = page.text.splitlines()
    assert lines[0] == t("fi", "svc.own_drafts_title")
    assert t("fi", "svc.own_draft_current") in lines[1] and "Odottava" in lines[2]
    assert [c.data for c in page.flat_choices()][:2] == ["own:resume:0", "own:resume:7"]
    # Drafts only, no saved entries yet.
    only = own.listing([], "fi", "24", drafts[1:])
    assert [c.data for c in only.flat_choices()] == ["own:resume:7"]
    assert t("fi", "svc.own_empty") in only.text
    # Withdrawing a saved entry is never called "Peru" in Finnish: that cancels a draft.
    assert "Peru" not in t("fi", "button.own_withdraw", number=1)
    assert "peru" not in t("fi", "svc.withdraw_confirm", number=1).casefold()


def test_presses_on_entries_not_ones_own_or_too_old_change_nothing() -> None:
    asked = own.Pending(7, "k1")
    for data in ("own:edit:7", "own:del:7", "own:delyes:7:k1", "own:delno:7:k1"):
        press = own.parse(data)
        assert press is not None
        theirs = own.advance(asked, press, "fi", "k2", own.Found(mine=False, editable=False))
        assert (theirs.action, theirs.pending, theirs.note) == ("refuse", asked, "not_owner")
        assert theirs.replies == (Alert(t("fi", "svc.not_yours")),)
        old = own.advance(asked, press, "fi", "k2", own.Found(editable=False, window_hours="24"))
        assert (old.action, old.pending, old.note) == ("refuse", asked, "too_old")
        assert old.replies == (Message(t("fi", "svc.too_old", number=7, hours="24")),)


def test_correcting_waits_for_the_open_draft() -> None:
    busy = own.advance(None, own.Press("edit", 7), "fi", "k1", own.Found(drafting=True))
    assert busy.action == "refuse" and busy.note == "drafting"
    assert busy.replies == (Message(t("fi", "svc.finish_draft_first")),)
    assert own.advance(None, own.Press("edit", 7), "fi", "k1").action == "edit"


def test_answering_the_confirmation_closes_it() -> None:
    asked = own.advance(None, own.Press("del", 7), "fi", "k1")
    kept = own.advance(asked.pending, own.Press("delno", 7, "k1"), "fi", "k2")
    assert kept.action == "keep" and kept.pending is None
    again = own.advance(kept.pending, own.Press("delyes", 7, "k1"), "fi", "k3")
    assert again.action == "refuse" and again.note == "unconfirmed"
    # A newer confirmation replaces the older one: the older "Yes" is stale.
    first = own.advance(None, own.Press("del", 7), "fi", "k1")
    second = own.advance(first.pending, own.Press("del", 8), "fi", "k2")
    stale = own.advance(second.pending, own.Press("delyes", 7, "k1"), "fi", "k3")
    assert stale.action == "refuse" and stale.pending == own.Pending(8, "k2")


def test_each_entry_shows_its_place_on_the_knowledge_path() -> None:
    entries = [
        own.OwnEntry(3, "3.12. 14:02", "theme.housing", "Yösuoja täynnä", True, "decided"),
        own.OwnEntry(2, "2.12. 10:00", "theme.housing", "Jono", False, "recorded"),
    ]
    for lang, decided, recorded in (
        ("fi", "päätetty", "kirjattu"),
        ("sv", None, None),
        ("en", None, None),
    ):
        lines = own.listing(entries, lang, "24").text.splitlines()
        first = next(line for line in lines if line.startswith("#3"))
        second = next(line for line in lines if line.startswith("#2"))
        assert f"[{t(lang, 'knowledge.marker.decided', domain='knowledge')}]" in first
        assert f"[{t(lang, 'knowledge.marker.recorded', domain='knowledge')}]" in second
        if decided is not None:
            assert f"[{decided}]" in first and f"[{recorded}]" in second
    # Without a known position the line has no marker.
    plain = own.listing([entry(1)], "fi", "24").text
    assert "[" not in plain
