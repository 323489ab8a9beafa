"""A worker's own entries (``/omat``): list, correct, withdraw. Pure, no I/O.

The host gives the entries it read (``OwnEntry``, a page of ``PAGE`` at a time),
the drafts still open (``OpenDraft``) and the withdrawal the worker was last asked
to confirm (``Pending``: the conversation's state, stored between events);
``listing`` renders the list with each entry's own buttons and "Show older" for the
next page, ``advance`` decides what a press on one of its buttons does, from what the
host found about the entry it names (``Found``).
Withdrawing takes two presses: "Withdraw #N" opens a confirmation with a fresh
key, and only "Yes" of that very confirmation withdraws (a copied or replayed
``own:delyes`` changes nothing); answering it, either way, closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flows.events import Alert, Choice, Message
from flows.i18n import label, t
from flows.knowledge import position_marker

PREFIX = "own"
SHORT = 60  # characters of an entry's text shown in the list
PAGE = 5  # entries per page: each with its own buttons, then "Show older"
CURRENT = 0  # the number ``own:resume:`` carries for the draft open now


@dataclass(frozen=True)
class OwnEntry:
    """One of the worker's recent entries, as the list shows it."""

    number: int
    when: str  # observed, formatted in the worker's language and zone
    theme: str
    text: str
    editable: bool  # still within the correction window, not withdrawn
    position: str | None = None  # its step on the knowledge path (flows.knowledge.PATH)


@dataclass(frozen=True)
class OpenDraft:
    """A draft still open: the one being answered (``number`` 0) or one kept aside."""

    number: int
    text: str


@dataclass(frozen=True)
class Pending:
    """A withdrawal the worker was asked to confirm."""

    number: int
    key: str

    def to_text(self) -> str:
        return f"{self.number}:{self.key}"

    @classmethod
    def from_text(cls, text: str | None) -> Pending | None:
        number, _, key = (text or "").partition(":")
        return cls(int(number), key) if number.isdecimal() and key else None


@dataclass(frozen=True)
class Press:
    """A parsed ``own:`` button."""

    action: str
    number: int
    key: str = ""


@dataclass(frozen=True)
class Found:
    """What the host found about the entry a press names."""

    mine: bool = True  # it exists and is the worker's own
    editable: bool = True  # still within the correction window, not withdrawn
    window_hours: str = ""  # the correction window, as the "too old" answer says it
    drafting: bool = False  # the worker has an entry (or a correction) open


Action = Literal["edit", "withdraw", "ask", "keep", "refuse"]
#: Presses that are not about one saved entry: the host handles them before ``advance``.
LIST_ACTIONS = frozenset({"more", "resume"})


@dataclass(frozen=True)
class Decision:
    """What to do: the action for the host, the pending withdrawal to store, the replies;
    ``note`` says why a press was refused (for the log)."""

    action: Action
    pending: Pending | None
    replies: tuple[Message | Alert, ...] = ()
    note: str = ""


def parse(data: str) -> Press | None:
    parts = data.split(":")
    if len(parts) not in (3, 4) or parts[0] != PREFIX or not parts[2].isdecimal():
        return None
    return Press(parts[1], int(parts[2]), parts[3] if len(parts) == 4 else "")


def _short(text: str, limit: int = SHORT) -> str:
    flat = text.replace("\n", " ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def listing(
    entries: list[OwnEntry],
    lang: str,
    window_hours: str,
    drafts: tuple[OpenDraft, ...] = (),
    offset: int = 0,
    more: bool = False,
) -> Message:
    """One page of the worker's entries (from ``offset``), newest first, each editable one
    with its Correct / Withdraw buttons; the open drafts (first page only) with Continue;
    and "Show older" when ``more`` entries follow."""
    lines: list[str] = []
    rows: list[tuple[Choice, ...]] = []
    if drafts and offset == 0:
        lines.append(t(lang, "svc.own_drafts_title"))
        for draft in drafts:
            mark = f" ({t(lang, 'svc.own_draft_current')})" if draft.number == CURRENT else ""
            lines.append(f"• {_short(draft.text or '-')}{mark}")
            rows.append(
                (
                    Choice(
                        t(lang, "button.own_resume", text=_short(draft.text or "-", 24)),
                        f"{PREFIX}:resume:{draft.number}",
                    ),
                )
            )
    if not entries:
        if offset:
            lines.append(t(lang, "svc.own_no_more"))
        elif not lines:
            return Message(t(lang, "svc.own_empty"))
        else:
            lines.append(t(lang, "svc.own_empty"))
        return Message("\n".join(lines), tuple(rows))
    if lines:
        lines.append("")
    lines.append(t(lang, "svc.own_title"))
    editable = False
    for entry in entries:
        short = _short(entry.text)
        marker = f" · [{position_marker(lang, entry.position)}]" if entry.position else ""
        lines.append(
            f"#{entry.number} · {entry.when} · {label(entry.theme, lang)}{marker} · {short}"
        )
        if entry.editable:
            editable = True
            rows.append(
                (
                    Choice(
                        t(lang, "button.own_edit", number=entry.number),
                        f"{PREFIX}:edit:{entry.number}",
                    ),
                    Choice(
                        t(lang, "button.own_withdraw", number=entry.number),
                        f"{PREFIX}:del:{entry.number}",
                    ),
                )
            )
    if editable:
        lines.append(t(lang, "svc.own_editable", hours=window_hours))
    if more:
        rows.append((Choice(t(lang, "button.own_more"), f"{PREFIX}:more:{offset + len(entries)}"),))
    return Message("\n".join(lines), tuple(rows))


def advance(
    pending: Pending | None, press: Press, lang: str, key: str, found: Found = Found()
) -> Decision:
    """A press on an own-entry button. ``pending`` is the confirmation the worker was
    last asked (the state), ``key`` a fresh random token for a new confirmation,
    ``found`` what the host found about the entry the press names."""
    number = press.number
    if not found.mine:
        return Decision("refuse", pending, (Alert(t(lang, "svc.not_yours")),), "not_owner")
    if not found.editable:
        too_old = t(lang, "svc.too_old", number=number, hours=found.window_hours)
        return Decision("refuse", pending, (Message(too_old),), "too_old")
    if press.action == "edit":
        if found.drafting:
            busy = Message(t(lang, "svc.finish_draft_first"))
            return Decision("refuse", pending, (busy,), "drafting")
        return Decision("edit", pending)
    if press.action == "del":
        asked = Pending(number, key)
        buttons = (
            Choice(t(lang, "button.yes_withdraw"), f"{PREFIX}:delyes:{number}:{key}"),
            Choice(t(lang, "button.no"), f"{PREFIX}:delno:{number}:{key}"),
        )
        return Decision(
            "ask", asked, (Message(t(lang, "svc.withdraw_confirm", number=number), (buttons,)),)
        )
    if press.action in ("delyes", "delno") and pending == Pending(number, press.key):
        if press.action == "delyes":
            return Decision("withdraw", None, (Message(t(lang, "svc.withdrawn", number=number)),))
        return Decision("keep", None, (Message(t(lang, "svc.kept", number=number)),))
    return Decision("refuse", pending, (Alert(t(lang, "flow.stale_button")),), "unconfirmed")
