"""The escalation desk, free of I/O: one notice's conversation as a pure state machine.

When a worker saves an entry marked ``escalation.shl48`` (or ``escalation.leadership``)
the desk posts a notice to the leadership channel responsible for the worker's team,
on every transport the channel has. Leaders answer under it: Acknowledge, a status
(in progress, decided, no action) with a short text for the reporter, or "Ask the
reporter", whose question is relayed to the reporter's private chat with an Answer
button; the reporter's answer comes back to the channel without their name. Only an
enrolled leader or admin may act, only in a channel the notice was posted to, and a
leader only for the teams they lead (``refusal``, ``leads``); anybody else is refused
with one short sentence that only they see.

``Notice`` is everything that conversation is at one moment: where the notice is
posted (``Post``), who acknowledged it and when, the newest status, the texts the
desk is waiting for (``Window``: a leader's status note or question, a reporter's
answer, each with its reply window), the questions relayed to the reporter
(``Question``: where their answers go) and who is responsible (``Leadership``).
``advance(state, event, now, rules)`` takes one event -- a press (``Pressed``), a
typed text (``Typed``), the clock (``Tick``) or the notice's own life (``Escalate``,
``Delivered``, ``Undelivered``) -- and returns a ``Step``: the new state and the
effects, neutral records the host carries out in order in one transaction (store an
acknowledgement or a status on the audit trail, open or close a reply window, claim
a due reminder, bring the posted notices up to date, send a reply, log a line).

Effects that two processes (or two leaders pressing at once) could race on are
*claims* (``Acknowledge``, ``CloseWindow``, ``Remind``): the host stores each with a
conditional update, and when one finds that somebody else was first, it stops,
loads the state again and asks ``advance`` once more. A claim comes before every
write that depends on it, so nothing of a lost race is stored.

The host (``bot/escalation.py``) only loads the state (``storage/escalations.py``),
calls ``advance``, stores the effects and sends; it also renders the notice itself
(``notice``) from the entry and the new state. The texts are in the ``escalation``
catalogs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from flows.events import Alert, Choice, Message, Outbound
from flows.i18n import label, t
from flows.knowledge import notice_buttons, pack_offer
from flows.statuses import (
    ACKNOWLEDGED,
    ANSWER_STATUSES,
    GRIEVANCE_ANSWER_STATUSES,
    NO_ACTION,
    NOT_REMEDIED,
    OPEN,
    status_label,
)
from flows.taxonomy import ESCALATED_CODES, SHL48
from flows.workdays import is_working_day

DOMAIN = "escalation"
PREFIX = "esc"
LEADER_ROLES = frozenset({"leader", "admin"})
# The kinds of notice reminded about until acknowledged.
REMINDED: frozenset[str] = frozenset({SHL48})
MAX_REPLY = 1000  # characters of a leader's note or question, or a reporter's answer
# Description and proposed action are cut (measured as escaped HTML) so that a whole
# notice stays one message that can be edited in place (Telegram: 4,096 characters).
DESCRIPTION_LIMIT = 2200
ACTION_LIMIT = 800
NEW = 0  # the id of a post or window the host has not stored yet


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


# --- buttons -----------------------------------------------------------------------


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
    if action == "st" and len(parts) == 4 and parts[2] in GRIEVANCE_ANSWER_STATUSES:
        return Press(action, number, parts[2])
    return None


def escalated(code: str | None) -> bool:
    """Whether an entry with this escalation code goes to leadership."""
    return code in ESCALATED_CODES


# --- who may act ---------------------------------------------------------------------


def refusal(role: str | None, revoked: bool, posted_here: bool, leads: bool) -> str | None:
    """None when the presser may act on the notice here; else the reason (a text key).

    Leaders and admins only; only in a channel the notice was posted to; a leader only
    for the teams they lead (``leads``)."""
    if role is None or revoked or role not in LEADER_ROLES:
        return "leaders_only"
    if not posted_here:
        return "not_this_channel"
    if not leads:
        return "not_your_team"
    return None


@dataclass(frozen=True)
class Leadership:
    """A leadership channel, as the desk needs it."""

    id: str
    name: str = ""
    region: str = ""  # empty: the whole organisation
    language: str = "fi"
    chats: tuple[tuple[str, str], ...] = ()  # (transport, chat id) where it is


def leads(role: str | None, own: Leadership | None, notice: Notice) -> bool:
    """Whether a person may act on the notices of the notice's team.

    An administrator may act on every notice. A leader acts on the notices of the
    teams whose leadership channel is their own team's (``own``), or whose region they
    lead: their own team's leadership channel covers that region (an
    organisation-wide channel, with no region, covers every region).
    """
    if role == "admin":
        return True
    if own is None:
        return False
    theirs = notice.responsible
    if theirs is not None and theirs.id == own.id:
        return True
    return not own.region or (notice.team_region is not None and notice.team_region == own.region)


# --- the state -----------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """The notice in one chat on one transport."""

    id: int  # the host's key (``NEW`` until stored)
    transport: str
    chat_id: str
    kind: str  # the escalation code it was posted as
    channel: str = ""  # the leadership channel's id
    language: str = "fi"  # the channel's
    ref: str | None = None  # the platform's id of the posted message: it can be edited
    sent_at: datetime | None = None  # when the platform took it
    last_reminded: datetime | None = None
    reminders: int = 0


WindowKind = Literal["status", "question", "answer"]


@dataclass(frozen=True)
class Window:
    """A text the desk waits for, from ``person`` in ``transport``/``chat_id``.

    ``status``: a leader's note for ``status``; ``question``: a leader's question to the
    reporter; ``answer``: the reporter's answer to ``question``. A leader's text counts
    when it replies to the prompt (``prompt_ref``), or, where the transport cannot tell
    what a message replies to (``prompt_ref`` None), as the leader's next message in
    the chat. Every text counts only within the reply window after ``opened``."""

    id: int  # the host's key (``NEW`` until stored); the prompt's buttons carry it
    kind: WindowKind
    person: int
    transport: str
    chat_id: str
    opened: datetime
    status: str | None = None  # status windows
    prompt_ref: str | None = None
    question: int | None = None  # answer windows: the question's id

    def at(self, transport: str, chat_id: str) -> bool:
        return (self.transport, self.chat_id) == (transport, chat_id)


@dataclass(frozen=True)
class Question:
    """A leader's question relayed to the reporter: the reporter's answers go back here.
    Its id is the id of the window it was typed in (its Answer button carries it)."""

    id: int
    transport: str
    chat_id: str
    language: str = "fi"  # the channel's


@dataclass(frozen=True)
class Contact:
    """Where the reporter is reached privately, and in which language."""

    transport: str
    chat_id: str
    language: str

    def say(self, text: str, *rows: tuple[Choice, ...]) -> Outbound:
        return Outbound(self.transport, self.chat_id, Message(text, tuple(rows)))


@dataclass(frozen=True)
class Acknowledgement:
    person: int | None  # None: the person's record is gone
    at: datetime


@dataclass(frozen=True)
class Notice:
    """One escalated entry's conversation with leadership (the desk's state)."""

    number: int  # the entry
    escalation: str  # its escalation code now
    reporter_person: int  # who wrote the entry
    reporter: Contact | None = None  # None: not reachable (revoked, no identity left)
    responsible: Leadership | None = None  # the leadership channel of the entry's team
    team_region: str | None = None  # the entry's team's region (None: not configured)
    posts: tuple[Post, ...] = ()
    acknowledged: Acknowledgement | None = None
    status: str = OPEN
    status_text: str | None = None
    windows: tuple[Window, ...] = ()  # texts still awaited (expired ones included)
    questions: tuple[Question, ...] = ()
    withdrawn: bool = False
    measures_reminded: bool = False  # the "no measure recorded" reminder was made

    def posted_at(self, transport: str, chat_id: str) -> bool:
        return any((p.transport, p.chat_id) == (transport, chat_id) for p in self.posts)

    def editable_posts(self) -> tuple[Post, ...]:
        """The posts whose message can be edited to show a change."""
        return tuple(p for p in self.posts if p.ref is not None)

    def window(self, window_id: int) -> Window | None:
        return next((w for w in self.windows if w.id == window_id), None)

    def question(self, question_id: int | None) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    @property
    def kind_key(self) -> str:
        return "shl48" if self.escalation == SHL48 else "leadership"


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who pressed or typed, as far as the desk needs to know."""

    person: int | None = None  # None: not enrolled
    role: str | None = None
    revoked: bool = False
    language: str = "fi"  # theirs (the channel's when unknown)
    chat: str = ""  # their private chat on the transport: a pop-up answer goes there
    channel: Leadership | None = None  # the leadership channel of their own team


@dataclass(frozen=True)
class Place:
    """Where an event happened: a leadership channel, or (``private``) someone's own chat."""

    transport: str
    chat_id: str
    language: str = "fi"  # the channel's language (a private chat: its owner's)
    private: bool = False


@dataclass(frozen=True)
class Pressed:
    """A desk button (``parse``; None for a forged or malformed one)."""

    press: Press | None
    actor: Actor
    place: Place


@dataclass(frozen=True)
class Typed:
    """A text: a leader's in a leadership channel (``reply_to``: the platform's id of
    the message it replies to, when known) or the reporter's in their private chat."""

    text: str
    actor: Actor
    place: Place
    reply_to: str | None = None


@dataclass(frozen=True)
class Tick:
    """The scheduled check: remind where due, on ``transports`` (None: all)."""

    transports: frozenset[str] | None = None


@dataclass(frozen=True)
class Escalate:
    """The entry was saved (or corrected) as escalated: post it where nothing is posted.

    ``here``: the transports this process runs (the others are left for an instance
    that runs them); ``worker``: the saver's chat, in their language."""

    here: frozenset[str]
    worker: Place


@dataclass(frozen=True)
class Delivered:
    """A post of the notice got through; ``first``: the first of the entry's posts to."""

    first: bool


@dataclass(frozen=True)
class Undelivered:
    """A post the platform did not take; ``first``: it was the first try after the save."""

    first: bool


Event = Pressed | Typed | Tick | Escalate | Delivered | Undelivered


@dataclass(frozen=True)
class Rules:
    """The desk's settings (``[escalation]`` and the organisation's time zone)."""

    reply_window: timedelta = timedelta(minutes=60)
    reminder_hours: float = 24.0
    zone: str = "Europe/Helsinki"
    # The first reminder of an unacknowledged notice: this many working days after posting.
    acknowledge_days: int = 1
    # No measure (status) recorded this many days after posting: leaders and notifier told.
    measures_days: int = 14

    @property
    def minutes(self) -> int:
        return int(self.reply_window / timedelta(minutes=1))

    def open_since(self, now: datetime) -> datetime:
        """The earliest a window can have opened and still take a text now."""
        return now - self.reply_window


# --- effects -------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledge:
    """Claim the first acknowledgement and put it on the audit trail (status
    ``acknowledged``). Fails when somebody acknowledged first."""

    person: int


@dataclass(frozen=True)
class SetStatus:
    """A status on the audit trail, with the leader's note; it acknowledges the notice
    too if nobody has."""

    status: str
    person: int
    text: str | None = None


@dataclass(frozen=True)
class OpenWindow:
    """Store a window; for a leader's window post its prompt (``prompt_for``, once the
    window has its id: the prompt's button and the reply to it name the window)."""

    window: Window
    prompt: str | None = None
    without_text: str | None = None  # the "Without text" button of a status prompt

    def prompt_for(self, window_id: int) -> Outbound | None:
        if self.prompt is None:
            return None
        choices: tuple[tuple[Choice, ...], ...] = ()
        if self.without_text is not None:
            choices = ((Choice(self.without_text, f"{PREFIX}:nt:{window_id}"),),)
        message = Message(self.prompt, choices, ref=f"relay:{window_id}")
        meta = {"track": f"relay:{window_id}"}
        return Outbound(self.window.transport, self.window.chat_id, message, meta)


@dataclass(frozen=True)
class CloseWindow:
    """Claim the awaited text as received. Fails when it was received already."""

    window: int


@dataclass(frozen=True)
class Remind:
    """Claim a due reminder (fails when the post's ``reminders`` changed meanwhile) and
    post the notice again with a reminder line."""

    post: Post
    hours: float


@dataclass(frozen=True)
class RemindMeasures:
    """Claim the one "no measure recorded" reminder of the notice (fails when another
    process made it); the messages to the leaders and the notifier follow as ``Send``."""


@dataclass(frozen=True)
class AddPost:
    """Store a post; ``send``: this process posts it now (the rest are left unclaimed
    for an instance that runs their transport)."""

    post: Post
    send: bool


@dataclass(frozen=True)
class Refresh:
    """Edit these posted notices to show the new state."""

    posts: tuple[Post, ...]


@dataclass(frozen=True)
class Send:
    """A reply to send once the transaction is committed."""

    outbound: Outbound


Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Note:
    """A log line: an event name and ids (``fields``), never a text anybody typed."""

    event: str
    fields: tuple[tuple[str, int | str | None], ...] = ()
    level: Level = "info"


def _note(event: str, level: Level = "info", **fields: int | str | None) -> Note:
    return Note(event, tuple(fields.items()), level)


Effect = (
    Acknowledge
    | SetStatus
    | OpenWindow
    | CloseWindow
    | Remind
    | RemindMeasures
    | AddPost
    | Refresh
    | Send
    | Note
)


@dataclass(frozen=True)
class Step:
    """The new state, and the effects to carry out in order. ``handled`` False: the event
    is not the desk's business (ordinary talk in a channel, a text after its window)."""

    state: Notice | None
    effects: tuple[Effect, ...] = ()
    handled: bool = True

    @property
    def outbound(self) -> list[Outbound]:
        return [e.outbound for e in self.effects if isinstance(e, Send)]


# --- advance -------------------------------------------------------------------------


def advance(state: Notice | None, event: Event, now: datetime, rules: Rules) -> Step:
    """One event on one notice's conversation (``state`` None: there is no such notice)."""
    if isinstance(event, Pressed):
        if event.place.private:
            return _answer_press(state, event, now, rules)
        return _channel_press(state, event, now, rules)
    if isinstance(event, Typed):
        if event.place.private:
            return _reporter_text(state, event, now, rules)
        return _leader_text(state, event, now, rules)
    if isinstance(event, Tick):
        return _tick(state, event, now, rules)
    if isinstance(event, Escalate):
        return _escalate(state, event)
    return _delivery(state, event)


def expired(window: Window, now: datetime, rules: Rules) -> bool:
    return window.opened < rules.open_since(now)


def _alert(actor: Actor, place: Place, text: str) -> Send:
    """Said to the presser alone (a pop-up where the platform has one): one person's
    presses never flood a channel. In a group it goes to their private chat on
    platforms without pop-ups, or nowhere when they have none."""
    chat = place.chat_id if place.private else ("" if actor.revoked else actor.chat)
    return Send(Outbound(place.transport, chat, Alert(text)))


def _say(place: Place, text: str, meta: dict[str, str] | None = None) -> Send:
    return Send(Outbound(place.transport, place.chat_id, Message(text), meta or {}))


def _stale(state: Notice | None, actor: Actor, place: Place, *notes: Note) -> Step:
    return Step(state, (*notes, _alert(actor, place, _t(actor.language, "esc.stale"))))


def _refused(state: Notice, actor: Actor, place: Place) -> Step | None:
    reason = refusal(
        actor.role,
        actor.revoked,
        state.posted_at(place.transport, place.chat_id),
        actor.person is not None and leads(actor.role, actor.channel, state),
    )
    if reason is None:
        return None
    person = actor.person if actor.person is not None else "-"
    note = _note("escalation_refused", "warning", id=state.number, reason=reason, person=person)
    return Step(state, (note, _alert(actor, place, _t(actor.language, f"esc.refused.{reason}"))))


def when(moment: datetime, zone: str, lang: str) -> str:
    """A moment as the desk's texts show it, in the organisation's time zone."""
    return format_datetime(moment, "d.M.yyyy HH:mm", tzinfo=ZoneInfo(zone), locale=lang)


def _channel_press(state: Notice | None, event: Pressed, now: datetime, rules: Rules) -> Step:
    press, actor, place = event.press, event.actor, event.place
    if press is not None and press.action == "nt":
        return _without_text(state, press.number, actor, place, now)
    if (
        state is None
        or press is None
        or press.action not in ("ack", "st", "ask")
        or not escalated(state.escalation)
        or (press.action == "st" and press.status not in answer_statuses(state.escalation))
    ):
        return _stale(
            state, actor, place, _note("escalation_choice_refused", "warning", reason="stale")
        )
    refused = _refused(state, actor, place)
    if refused is not None:
        return refused
    assert actor.person is not None  # a leader or an admin is enrolled
    if press.action == "ack":
        return _acknowledge(state, actor, place, actor.person, now, rules)
    lang, minutes, number = actor.language, rules.minutes, state.number
    if press.action == "st":
        assert press.status is not None
        status = status_label(lang, press.status)
        opened = OpenWindow(
            Window(NEW, "status", actor.person, place.transport, place.chat_id, now, press.status),
            _t(lang, "esc.status_prompt", number=number, status=status, minutes=minutes),
            _t(lang, "button.without_text"),
        )
    else:
        opened = OpenWindow(
            Window(NEW, "question", actor.person, place.transport, place.chat_id, now),
            _t(lang, "esc.question_prompt", number=number, minutes=minutes),
        )
    return Step(replace(state, windows=(*state.windows, opened.window)), (opened,))


def _acknowledge(
    state: Notice, actor: Actor, place: Place, person: int, now: datetime, rules: Rules
) -> Step:
    if state.acknowledged is not None:
        text = _t(actor.language, "esc.already_acknowledged", number=state.number)
        return Step(state, (_alert(actor, place, text),))
    new = replace(
        state, acknowledged=Acknowledgement(person, now), status=ACKNOWLEDGED, status_text=None
    )
    effects: list[Effect] = [
        Acknowledge(person),
        _note("escalation_acknowledged", id=state.number, person=person),
    ]
    if shown := new.editable_posts():
        effects.append(Refresh(shown))
    else:  # no posted message to edit (no message id): say it in the channel
        effects.append(
            _say(place, _t(place.language, "esc.acknowledged_here", number=state.number))
        )
    if (reporter := state.reporter) is not None:
        moment = when(now, rules.zone, reporter.language)
        text = _t(reporter.language, "esc.worker_acknowledged", number=state.number, when=moment)
        effects.append(Send(reporter.say(text)))
    return Step(new, tuple(effects))


def _without_text(
    state: Notice | None, window_id: int, actor: Actor, place: Place, now: datetime
) -> Step:
    window = state.window(window_id) if state is not None else None
    if (
        state is None
        or window is None
        or window.kind != "status"
        or window.status is None
        or not window.at(place.transport, place.chat_id)
    ):
        return _stale(state, actor, place)
    refused = _refused(state, actor, place)
    if refused is not None:
        return refused
    assert actor.person is not None
    return _record_status(state, window, actor.person, place, None, now)


def _close_prompt(window: Window, place: Place, text: str) -> Send:
    """The prompt's answer is in: replace the prompt (and its button) with ``text``."""
    return _say(place, text, {"edit": window.prompt_ref} if window.prompt_ref else None)


def answer_statuses(escalation: str) -> tuple[str, ...]:
    """The statuses a leader may set on an escalated entry: a notice of a grievance also
    "not remedied" (valvontalaki § 29), a raise to leadership only the common three."""
    return GRIEVANCE_ANSWER_STATUSES if escalation == SHL48 else ANSWER_STATUSES


def not_remedied(escalation: str, status: str) -> bool:
    """A notice of a grievance (valvontalaki § 29) closed as "not remedied", or with "no
    action" (nothing will be done about it, so the grievance stays): its notifier may take
    it to the supervisory authority."""
    return escalation == SHL48 and status in (NOT_REMEDIED, NO_ACTION)


def _record_status(
    state: Notice, window: Window, person: int, place: Place, text: str | None, now: datetime
) -> Step:
    """Store a status with its note, count it as acknowledgement, tell everyone."""
    status = window.status
    assert status is not None
    new = replace(
        state,
        status=status,
        status_text=text,
        acknowledged=state.acknowledged or Acknowledgement(person, now),
        windows=tuple(w for w in state.windows if w.id != window.id),
    )
    number, lang = state.number, place.language
    effects: list[Effect] = [
        CloseWindow(window.id),
        SetStatus(status, person, text),
        _note("escalation_status", id=number, status=status, person=person),
    ]
    if shown := new.editable_posts():
        effects.append(Refresh(shown))
    saved = _t(lang, "esc.status_saved", number=number, status=status_label(lang, status))
    effects.append(_close_prompt(window, place, saved))
    if (reporter := state.reporter) is not None:
        wlang = reporter.language
        body = _t(wlang, "esc.worker_status", number=number, status=status_label(wlang, status))
        if text:
            body += "\n" + _t(wlang, "esc.worker_status_text", text=text)
        rows: tuple[tuple[Choice, ...], ...] = ()
        if not_remedied(state.escalation, status):
            offer, button = pack_offer(wlang, number)
            body += "\n\n" + offer
            rows = (button,)
        effects.append(Send(reporter.say(body, *rows)))
    return Step(new, tuple(effects))


def awaited(
    state: Notice, person: int, place: Place, reply_to: str | None, now: datetime, rules: Rules
) -> Window | None:
    """The leader's window a text in a channel answers, if it is still open.

    With ``reply_to`` only the window whose prompt is that message, whoever the prompt
    was for; without it, the newest window of this person in this chat whose prompt
    could not be tracked."""
    candidates = [
        w
        for w in state.windows
        if w.kind in ("status", "question")
        and w.at(place.transport, place.chat_id)
        and (
            w.prompt_ref == reply_to
            if reply_to is not None
            else w.person == person and w.prompt_ref is None
        )
    ]
    newest = max(candidates, key=lambda w: (w.opened, w.id), default=None)
    return None if newest is None or expired(newest, now, rules) else newest


def _too_long(text: str) -> bool:
    return len(text) > MAX_REPLY


def _leader_text(state: Notice | None, event: Typed, now: datetime, rules: Rules) -> Step:
    actor, place = event.actor, event.place
    if state is None or actor.person is None:
        return Step(state, handled=False)
    window = awaited(state, actor.person, place, event.reply_to, now, rules)
    if window is None:
        return Step(state, handled=False)  # ordinary talk in the channel: not ours
    refused = _refused(state, actor, place)
    if refused is not None:
        return refused
    text = event.text.strip()
    if not text:
        return Step(state)
    if _too_long(text):
        too_long = _t(actor.language, "esc.too_long", limit=MAX_REPLY, length=len(text))
        return Step(state, (_say(place, too_long),))
    if window.kind == "status":
        return _record_status(state, window, actor.person, place, text, now)
    return _relay_question(state, window, actor.person, place, text)


def _relay_question(
    state: Notice, window: Window, person: int, place: Place, question: str
) -> Step:
    number, lang = state.number, place.language
    new = replace(
        state,
        windows=tuple(w for w in state.windows if w.id != window.id),
        questions=(*state.questions, Question(window.id, place.transport, place.chat_id, lang)),
    )
    reporter = state.reporter
    if reporter is None:
        unreachable = _say(place, _t(lang, "esc.reporter_unreachable", number=number))
        return Step(new, (CloseWindow(window.id), unreachable))
    wlang = reporter.language
    to_reporter = reporter.say(
        _t(wlang, f"esc.question_to_worker.{state.kind_key}", number=number, question=question),
        (Choice(_t(wlang, "button.answer"), f"{PREFIX}:ans:{window.id}"),),
    )
    return Step(
        new,
        (
            CloseWindow(window.id),
            Send(to_reporter),
            _note("escalation_question", id=number, relay=window.id, person=person),
            _close_prompt(window, place, _t(lang, "esc.question_sent", number=number)),
        ),
    )


# --- the reporter's private chat ---------------------------------------------------------


def _answer_press(state: Notice | None, event: Pressed, now: datetime, rules: Rules) -> Step:
    press, actor, place = event.press, event.actor, event.place
    question = (
        state.question(press.number)
        if state is not None and press is not None and press.action == "ans"
        else None
    )
    if state is None or question is None or actor.person is None:
        return _stale(state, actor, place)
    if actor.person != state.reporter_person:
        note = _note("escalation_refused", "warning", id=state.number, reason="not_reporter")
        return _stale(state, actor, place, note)
    window = Window(
        NEW, "answer", actor.person, place.transport, place.chat_id, now, question=question.id
    )
    prompt = _t(actor.language, "esc.answer_prompt", number=state.number, minutes=rules.minutes)
    return Step(
        replace(state, windows=(*state.windows, window)),
        (OpenWindow(window), _say(place, prompt)),
    )


def pending_answer(state: Notice, person: int, now: datetime, rules: Rules) -> Window | None:
    """The reporter's open answer window: their next text goes to the channel."""
    mine = [w for w in state.windows if w.kind == "answer" and w.person == person]
    newest = max(mine, key=lambda w: (w.opened, w.id), default=None)
    return None if newest is None or expired(newest, now, rules) else newest


def _reporter_text(state: Notice | None, event: Typed, now: datetime, rules: Rules) -> Step:
    actor, place = event.actor, event.place
    if state is None or actor.person is None:
        return Step(state, handled=False)
    window = pending_answer(state, actor.person, now, rules)
    if window is None:
        return Step(state, handled=False)  # an ordinary text: the capture flow takes it
    lang = actor.language
    text = event.text.strip()
    if not text:
        return Step(state, (_say(place, _t(lang, "esc.answer_empty")),))
    if _too_long(text):
        too_long = _t(lang, "esc.too_long", limit=MAX_REPLY, length=len(text))
        return Step(state, (_say(place, too_long),))
    question = state.question(window.question)
    if question is None:
        return Step(state)
    new = replace(state, windows=tuple(w for w in state.windows if w.id != window.id))
    relayed = _t(
        question.language,
        f"esc.answer_to_channel.{state.kind_key}",
        number=state.number,
        answer=text,
    )
    return Step(
        new,
        (
            CloseWindow(window.id),
            Send(Outbound(question.transport, question.chat_id, Message(relayed))),
            _note("escalation_answer", id=state.number, relay=window.id),
            _say(place, _t(lang, "esc.answer_sent", number=state.number)),
        ),
    )


# --- the notice's own life -------------------------------------------------------------


def working_days_after(moment: datetime, days: int, zone: str) -> datetime:
    """``moment`` moved on by ``days`` working days (Monday to Friday, not a Finnish public
    holiday), same local time."""
    local = moment.astimezone(ZoneInfo(zone))
    counted = 0
    while counted < days:
        local += timedelta(days=1)
        if is_working_day(local.date()):
            counted += 1
    return local


def first_reminder(sent_at: datetime, rules: Rules) -> datetime:
    """When an unacknowledged notice is first reminded: ``acknowledge_days`` working days
    after it was posted, and never before ``reminder_hours`` (0 working days: as before)."""
    every = timedelta(hours=rules.reminder_hours)
    return max(working_days_after(sent_at, rules.acknowledge_days, rules.zone), sent_at + every)


def _tick(state: Notice | None, event: Tick, now: datetime, rules: Rules) -> Step:
    """The deadlines of a § 29 notice. Unacknowledged: reminded once ``acknowledge_days``
    working days have passed since it was posted (``first_reminder``), then every
    ``reminder_hours``. With no
    measure (status) recorded ``measures_days`` after posting: the leaders are reminded and
    the notifier told where it stands, once."""
    if state is None or state.withdrawn:
        return Step(state)
    every = timedelta(hours=rules.reminder_hours)
    posts: list[Post] = []
    effects: list[Effect] = []
    for post in state.posts:
        due = (
            state.acknowledged is None
            and post.kind in REMINDED
            and post.sent_at is not None
            and (
                now - post.last_reminded >= every
                if post.last_reminded is not None
                else now >= first_reminder(post.sent_at, rules)
            )
            and (event.transports is None or post.transport in event.transports)
        )
        if due:
            effects.append(Remind(post, rules.reminder_hours))
            post = replace(post, last_reminded=now, reminders=post.reminders + 1)
        posts.append(post)
    new = replace(state, posts=tuple(posts))
    if measures_due(state, now, rules):
        new = replace(new, measures_reminded=True)
        effects += _measures_reminder(state, event, now, rules)
    return Step(new, tuple(effects))


def measures_due(state: Notice, now: datetime, rules: Rules) -> bool:
    """Whether the notice waited ``measures_days`` for a measure and nobody was told yet."""
    sent = [p.sent_at for p in state.posts if p.sent_at is not None and p.kind in REMINDED]
    return (
        not state.measures_reminded
        and state.escalation in REMINDED
        and state.status in (OPEN, ACKNOWLEDGED)
        and bool(sent)
        and now - min(sent) >= timedelta(days=rules.measures_days)
    )


def _measures_reminder(state: Notice, event: Tick, now: datetime, rules: Rules) -> list[Effect]:
    number, days = state.number, rules.measures_days
    effects: list[Effect] = [RemindMeasures()]
    for post in state.posts:
        if event.transports is None or post.transport in event.transports:
            text = _t(post.language, "esc.measures_due", number=number, days=days)
            effects.append(Send(Outbound(post.transport, post.chat_id, Message(text))))
    if (reporter := state.reporter) is not None:
        wlang = reporter.language
        if state.acknowledged is not None:
            where = _t(
                wlang,
                "esc.measures_state.acknowledged",
                when=when(state.acknowledged.at, rules.zone, wlang),
            )
        else:
            where = _t(wlang, "esc.measures_state.open")
        body = _t(wlang, "esc.measures_worker", number=number, state=where, days=days)
        offer, button = pack_offer(wlang, number)
        effects.append(Send(reporter.say(f"{body}\n\n{offer}", button)))
    effects.append(_note("escalation_measures_due", id=number, days=days))
    return effects


def _escalate(state: Notice | None, event: Escalate) -> Step:
    """Post a newly escalated entry to every chat of the responsible channel."""
    if state is None or not escalated(state.escalation):
        return Step(state)
    worker = event.worker
    if state.posts:
        # A correction of an entry posted already: no new notice; the posted ones are
        # edited to show the corrected entry, and the worker is told so, once.
        effects: list[Effect] = [_note("escalation_updated", id=state.number)]
        if shown := state.editable_posts():
            effects.append(Refresh(shown))
        effects.append(_say(worker, _t(worker.language, "esc.worker_updated", number=state.number)))
        return Step(state, tuple(effects))
    channel = state.responsible
    if channel is None or not channel.chats:
        note = _note("escalation_undeliverable", "error", id=state.number, reason="no_channel")
        return Step(state, (note, _say(worker, _t(worker.language, "esc.worker_no_channel"))))
    effects = []
    posts: list[Post] = []
    for transport, chat_id in channel.chats:
        post = Post(NEW, transport, chat_id, state.escalation, channel.id, channel.language)
        posts.append(post)
        # A transport this process does not run is left unclaimed: the escalation check
        # of an instance that runs it posts the notice within a minute.
        here = transport in event.here
        effects.append(AddPost(post, send=here))
        if not here:
            effects.append(_note("escalation_left", id=state.number, transport=transport))
    kind = state.escalation
    effects.append(_note("escalation_posted", id=state.number, kind=kind, channel=channel.id))
    if not any(transport in event.here for transport, _ in channel.chats):
        # Only another instance can post it: the worker hears when it got through.
        effects.append(_say(worker, pending_text(state, worker.language)))
    return Step(replace(state, posts=tuple(posts)), tuple(effects))


def pending_text(state: Notice, lang: str) -> str:
    return _t(lang, f"esc.worker_pending.{state.kind_key}", number=state.number)


def _delivery(state: Notice | None, event: Delivered | Undelivered) -> Step:
    """Tell the reporter: "it reached leadership" once a post got through, "it is on its
    way" when the first try after the save did not."""
    if state is None or not event.first or state.reporter is None:
        return Step(state)
    reporter = state.reporter
    if isinstance(event, Undelivered):
        return Step(state, (Send(reporter.say(pending_text(state, reporter.language))),))
    if state.responsible is None:
        return Step(state)
    text = _t(
        reporter.language,
        f"esc.worker_sent.{state.kind_key}",
        number=state.number,
        channel=state.responsible.name,
    )
    return Step(state, (Send(reporter.say(text)),))


# --- the notice ------------------------------------------------------------------------


def acknowledged_line(
    lang: str, at: datetime, zone: str, role: str | None = None, pseudonym: str | None = None
) -> str:
    """ "Acknowledged: leader w-1a2b, 3.12.2026 14:02" (``role.leader`` when unknown)."""
    who = f"{_t(lang, f'role.{role}')} {pseudonym}" if role and pseudonym else None
    return _t(
        lang, "esc.acknowledged_by", who=who or _t(lang, "role.leader"), when=when(at, zone, lang)
    )


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
    status: str = OPEN
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
    if facts.status not in (OPEN, ACKNOWLEDGED):
        shown = f"{_t(lang, 'esc.field.status')}: {_t(lang, f'status.{facts.status}')}"
        if facts.status_text:
            shown += f" – {facts.status_text}"
        lines.append((shown, html.escape(shown)))
    buttons: list[tuple[Choice, ...]] = []
    if facts.acknowledged is None:
        buttons.append((Choice(_t(lang, "button.acknowledge"), f"{PREFIX}:ack:{number}"),))
    buttons.append(
        tuple(
            Choice(status_label(lang, code), f"{PREFIX}:st:{code}:{number}")
            for code in ANSWER_STATUSES
        )
    )
    for code in answer_statuses(facts.escalation)[len(ANSWER_STATUSES) :]:  # "not remedied"
        buttons.append((Choice(status_label(lang, code), f"{PREFIX}:st:{code}:{number}"),))
    buttons.append((Choice(_t(lang, "button.ask_reporter"), f"{PREFIX}:ask:{number}"),))
    buttons.append(notice_buttons(lang, number))
    return Message(
        "\n".join(plain for plain, _ in lines),
        tuple(buttons),
        html="\n".join(markup for _, markup in lines),
        ref=f"notice:{number}",
    )
