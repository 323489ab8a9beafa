"""The escalation desk's decisions and texts, free of I/O.

The host (``bot/escalation.py``) reads the facts from storage and the config;
this module decides: what a button press in a leadership channel asks for
(``parse``), whether the presser may do it (``refusal``), and what the notice
about an escalated entry says (``notice``), in plain text and HTML with its
buttons. The texts are in the ``escalation`` catalogs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from flows.events import Choice, Message
from flows.i18n import label, t
from flows.statuses import ANSWER_STATUSES

DOMAIN = "escalation"
PREFIX = "esc"
LEADER_ROLES = frozenset({"leader", "admin"})
# Description and proposed action are cut (measured as escaped HTML) so that a whole
# notice stays one message that can be edited in place (Telegram: 4,096 characters).
DESCRIPTION_LIMIT = 2200
ACTION_LIMIT = 800


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


@dataclass(frozen=True)
class Press:
    """A button of the desk: ``ack``/``st``/``ask`` name an entry, ``nt`` (status without
    text) and ``ans`` (the reporter answers) name a relay."""

    action: str
    number: int
    status: str | None = None


def parse(data: str) -> Press | None:
    """The press a payload stands for, or None for anything forged or malformed."""
    parts = data.split(":")
    if len(parts) < 3 or parts[0] != PREFIX or not parts[-1].isdecimal():
        return None
    action, number = parts[1], int(parts[-1])
    if action in ("ack", "ask", "nt", "ans") and len(parts) == 3:
        return Press(action, number)
    if action == "st" and len(parts) == 4 and parts[2] in ANSWER_STATUSES:
        return Press(action, number, parts[2])
    return None


def refusal(role: str | None, revoked: bool, posted_here: bool, leads: bool) -> str | None:
    """None when the presser may act on the notice here; else the reason (a text key).

    Leaders and admins only; only in a channel the notice was posted to; a leader only
    for the teams they lead (the host decides ``leads`` from the config)."""
    if role is None or revoked or role not in LEADER_ROLES:
        return "leaders_only"
    if not posted_here:
        return "not_this_channel"
    if not leads:
        return "not_your_team"
    return None


def cut(text: str, limit: int) -> str:
    """``text`` shortened (with "…") until its escaped HTML fits in ``limit`` characters."""
    if len(html.escape(text)) <= limit:
        return text
    end = min(len(text), limit)
    while end > 0 and len(html.escape(text[:end])) + 1 > limit:
        end -= max(1, (len(html.escape(text[:end])) + 1 - limit) // 5)
    return text[:end] + "…"


@dataclass(frozen=True)
class NoticeFacts:
    """What a notice shows, as the host found it (texts already read out and scrubbed)."""

    number: int
    escalation: str  # the taxonomy code: escalation.shl48 or escalation.leadership
    team: str
    codes: tuple[str, ...]  # theme, population group, signal
    observed: str  # formatted in the channel's language and zone
    description: str
    area: str | None = None  # a label
    action: str | None = None
    reporter: str | None = None  # a pseudonym, only where the config shows it
    status: str = "open"
    status_text: str | None = None
    acknowledged: str | None = None  # "Acknowledged: leader X, 3.12.2026 14:02"
    reminder_hours: float | None = None


def notice(facts: NoticeFacts, lang: str) -> Message:
    """The channel message about an escalated entry, in plain text and HTML, with buttons."""
    lines: list[tuple[str, str]] = []  # (plain, html) pairs; html escapes all user text

    def add(key: str, value: str) -> None:
        name = _t(lang, key)
        lines.append((f"{name}: {value}", f"<b>{html.escape(name)}:</b> {html.escape(value)}"))

    number = facts.number
    if facts.reminder_hours is not None:
        reminder = _t(lang, "esc.reminder", number=number, hours=f"{facts.reminder_hours:g}")
        lines.append((reminder, f"<b>{html.escape(reminder)}</b>"))
    title = _t(lang, f"esc.title.{facts.escalation.split('.', 1)[1]}", number=number)
    lines.append((title, f"<b>{html.escape(title)}</b>"))
    add("esc.field.team", facts.team)
    add("esc.field.codes", " · ".join(label(code, lang) for code in facts.codes))
    if facts.area:
        add("esc.field.area", facts.area)
    add("esc.field.observed", facts.observed)
    add("esc.field.description", cut(facts.description or "-", DESCRIPTION_LIMIT))
    if facts.action:
        add("esc.field.action", cut(facts.action, ACTION_LIMIT))
    if facts.reporter is not None:
        add("esc.field.reporter", facts.reporter)
    if facts.acknowledged is not None:
        lines.append((f"✅ {facts.acknowledged}", f"✅ {html.escape(facts.acknowledged)}"))
    if facts.status not in ("open", "acknowledged"):
        shown = f"{_t(lang, 'esc.field.status')}: {_t(lang, f'status.{facts.status}')}"
        if facts.status_text:
            shown += f" – {facts.status_text}"
        lines.append((shown, html.escape(shown)))
    buttons: list[tuple[Choice, ...]] = []
    if facts.acknowledged is None:
        buttons.append((Choice(_t(lang, "button.acknowledge"), f"{PREFIX}:ack:{number}"),))
    buttons.append(
        tuple(
            Choice(_t(lang, f"status.{code}"), f"{PREFIX}:st:{code}:{number}")
            for code in ANSWER_STATUSES
        )
    )
    buttons.append((Choice(_t(lang, "button.ask_reporter"), f"{PREFIX}:ask:{number}"),))
    return Message(
        "\n".join(plain for plain, _ in lines),
        tuple(buttons),
        html="\n".join(markup for _, markup in lines),
        ref=f"notice:{number}",
    )
