"""The escalation desk's pure decisions (flows.escalation): presses, who may act, the notice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flows import escalation as desk
from flows.i18n import t


def test_presses_are_parsed_and_forgeries_refused() -> None:
    assert desk.parse("esc:ack:12") == desk.Press("ack", 12)
    assert desk.parse("esc:st:decided:12") == desk.Press("st", 12, "decided")
    assert desk.parse("esc:nt:3") == desk.Press("nt", 3)
    assert desk.parse("esc:ans:4") == desk.Press("ans", 4)
    for forged in ("esc:st:closed:12", "esc:ack", "esc:ack:x", "esc:zap:1", "d:k:1:save", ""):
        assert desk.parse(forged) is None, forged


@given(st.text(max_size=40))
def test_any_payload_parses_to_a_press_or_nothing(data: str) -> None:
    press = desk.parse(data)
    assert press is None or press.action in ("ack", "st", "ask", "nt", "ans")


def test_who_may_act() -> None:
    assert desk.refusal("leader", False, True, True) is None
    assert desk.refusal("admin", False, True, True) is None
    for role in ("worker", "lead", None):
        assert desk.refusal(role, False, True, True) == "leaders_only"
    assert desk.refusal("leader", True, True, True) == "leaders_only"
    assert desk.refusal("leader", False, False, True) == "not_this_channel"
    assert desk.refusal("leader", False, True, False) == "not_your_team"


def test_the_notice_says_what_and_escapes_what_people_typed() -> None:
    facts = desk.NoticeFacts(
        number=7,
        escalation="escalation.shl48",
        team="Helsingin etsivät",
        codes=("theme.housing", "group.youth", "signal.queues"),
        observed="3.12.2026 14:02",
        description="<b>ei</b> yöpaikkaa " * 400,
        action="Lisää paikkoja",
    )
    message = desk.notice(facts, "fi")
    assert message.ref == "notice:7" and "#7" in message.text
    assert t("fi", "theme.housing") in message.text
    assert message.html is not None and "<b>ei</b>" not in message.html
    assert len(message.html) < 4096  # one message that can be edited in place
    assert next(c.data for c in message.flat_choices()) == "esc:ack:7"
    acknowledged = desk.notice(
        desk.NoticeFacts(**{**facts.__dict__, "acknowledged": "Kuitattu", "status": "decided"}),
        "fi",
    )
    assert "esc:ack:7" not in [c.data for c in acknowledged.flat_choices()]
    assert t("fi", "status.decided", domain="escalation") in acknowledged.text
