"""The knowledge path: phenomena, "me too", proposals and where an observation stands.

Pure rules, no I/O. Storage keeps the facts (``storage.knowledge``); the bot and
the CLI ask these functions what a fact means and which move is allowed.

* A **phenomenon** (ilmiö) is a named, recurring pattern that several observations
  show. It is ``open`` until a lead or leader closes it.
* A **confirmation** ("me too", or "we were two" for a pair working together) says
  that another worker saw the same thing. It is counted as a confirmation, never as
  a new observation.
* A **proposal** (toimenpide-ehdotus) belongs to a phenomenon or to one escalated
  observation and moves along ``PROPOSAL_MOVES``; every step has who, when and a note.
* The **position** of an observation on the path is derived from those facts
  (``position``), never typed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from rapidfuzz import fuzz, process, utils

from flows.events import Choice, Message
from flows.i18n import t

# --- phenomena ------------------------------------------------------------------------
PHENOMENON_OPEN = "open"
PHENOMENON_CLOSED = "closed"
PHENOMENON_STATUSES: tuple[str, ...] = (PHENOMENON_OPEN, PHENOMENON_CLOSED)

TITLE_MAX = 120
CONFIRMATION_TEXT_MAX = 280

# Kinds of confirmation.
ME_TOO = "me_too"  # "I saw it too", separately
PAIR = "pair"  # "we were two": the same event, seen together, counted once

# --- proposals ------------------------------------------------------------------------
PROPOSED = "proposed"
PRESENTED = "presented"
DECIDED = "decided"
IMPLEMENTED = "implemented"
REJECTED = "rejected"
NO_ACTION = "no_action"

PROPOSAL_STATUSES: tuple[str, ...] = (
    PROPOSED,
    PRESENTED,
    DECIDED,
    IMPLEMENTED,
    REJECTED,
    NO_ACTION,
)
PROPOSAL_CLOSED: frozenset[str] = frozenset({IMPLEMENTED, REJECTED, NO_ACTION})

# Which status may follow which. A proposal can be dropped (no action) or rejected
# before it is presented; a decision can still end in implementation or not.
PROPOSAL_MOVES: dict[str, tuple[str, ...]] = {
    PROPOSED: (PRESENTED, REJECTED, NO_ACTION),
    PRESENTED: (DECIDED, REJECTED, NO_ACTION),
    DECIDED: (IMPLEMENTED, REJECTED, NO_ACTION),
    IMPLEMENTED: (),
    REJECTED: (),
    NO_ACTION: (),
}

# Decision-body levels (``[[bodies]]`` in the config).
BODY_LEVELS: tuple[str, ...] = ("team", "management", "regional", "national")


@dataclass(frozen=True, slots=True)
class Move:
    """A requested proposal step, before it is checked."""

    target: str
    body: str | None = None
    on: date | None = None
    note: str | None = None


def check_move(current: str, move: Move, bodies: Iterable[str]) -> str | None:
    """Why ``move`` is not allowed from ``current``, as a message key, or None when it is.

    Presenting needs a configured body and a date; deciding needs a note that says
    what was decided. Keys are catalog keys under ``knowledge.error.*``.
    """
    if move.target not in PROPOSAL_STATUSES:
        return "knowledge.error.unknown_status"
    if move.target not in PROPOSAL_MOVES.get(current, ()):
        return "knowledge.error.not_allowed"
    if move.target == PRESENTED:
        if not move.body or move.body not in set(bodies):
            return "knowledge.error.body_needed"
        if move.on is None:
            return "knowledge.error.date_needed"
    if move.target == DECIDED and not (move.note or "").strip():
        return "knowledge.error.decision_needed"
    return None


# --- where an observation stands -------------------------------------------------------
RECORDED = "recorded"
IN_DIGEST = "in_digest"
IN_PHENOMENON = "phenomenon"
RAISED = "raised"
PATH_PRESENTED = "presented"
PATH_DECIDED = "decided"
CLOSED = "closed"

PATH: tuple[str, ...] = (
    RECORDED,
    IN_DIGEST,
    IN_PHENOMENON,
    RAISED,
    PATH_PRESENTED,
    PATH_DECIDED,
    CLOSED,
)


@dataclass(frozen=True, slots=True)
class PathFacts:
    """What is known about one observation; every field comes from stored facts."""

    in_digest: bool = False
    phenomenon: bool = False
    raised: bool = False
    # The furthest status among the proposals of the observation or its phenomenon.
    proposal_status: str | None = None


def position(facts: PathFacts) -> str:
    """The observation's furthest step on the knowledge path."""
    status = facts.proposal_status
    if status in PROPOSAL_CLOSED:
        return CLOSED
    if status == DECIDED:
        return PATH_DECIDED
    if status == PRESENTED:
        return PATH_PRESENTED
    if facts.raised:
        return RAISED
    if facts.phenomenon:
        return IN_PHENOMENON
    if facts.in_digest:
        return IN_DIGEST
    return RECORDED


def furthest_status(statuses: Iterable[str]) -> str | None:
    """The proposal status furthest along the path among ``statuses`` (closed ones last)."""
    order = {status: index for index, status in enumerate(PROPOSAL_STATUSES)}
    known = [status for status in statuses if status in order]
    return max(known, key=order.__getitem__) if known else None


# --- "me too" suggestions ---------------------------------------------------------------
SUGGESTION_LIMIT = 3
# rapidfuzz's WRatio scores 0..100; below this a suggestion is more noise than help.
# Chosen on the sentence pairs of tests/test_knowledge.py (same matter said in other
# words scores 60-85, unrelated matters 30-45).
SUGGESTION_CUTOFF = 55.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """Something a worker could confirm: an open phenomenon or a recent team observation."""

    kind: str  # "phenomenon" or "observation"
    id: int
    text: str
    count: int = 0  # a phenomenon's observations + confirmations (an entry: 1)


def suggest(
    text: str,
    candidates: Sequence[Candidate],
    limit: int = SUGGESTION_LIMIT,
    cutoff: float = SUGGESTION_CUTOFF,
) -> list[Candidate]:
    """At most ``limit`` candidates that sound like ``text``, best first.

    Phenomena win ties over single observations (confirming the pattern is what
    counts). The similarity is rapidfuzz's ``WRatio`` on lower-cased words, which
    tolerates Finnish inflection through partial matching.
    """
    if not text.strip() or not candidates:
        return []
    choices = {index: candidate.text for index, candidate in enumerate(candidates)}
    found = process.extract(
        text,
        choices,
        scorer=fuzz.WRatio,
        processor=utils.default_process,
        score_cutoff=cutoff,
        limit=None,
    )
    ranked = sorted(
        found,
        key=lambda hit: (-round(hit[1]), candidates[hit[2]].kind != "phenomenon", hit[2]),
    )
    return [candidates[hit[2]] for hit in ranked[:limit]]


def count_label(count: int, few: int = 3) -> str | None:
    """How a count of confirmers is shown: None means "a few" (below ``few``, never exact)."""
    return None if 0 < count < few else str(count)


# --- in chat ------------------------------------------------------------------------------
DOMAIN = "knowledge"
# button payloads: kp:me:P, kp:mv:PROPOSAL:STATUS, kp:body:PROPOSAL:BODY, kp:today:N,
# kp:nonote:N (a step without a note), kp:own:N (take ownership)
PREFIX = "kp"


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


def may_shape(role: str, own_team: str, own_region: str, team: str | None, region: str) -> bool:
    """Whether someone may create or link phenomena and propose for ``team``/``region``.

    A lead acts for their own team, a leader for their region, an admin for all.
    """
    if role == "admin":
        return True
    if role == "leader":
        return own_region == region
    if role == "lead":
        return team is not None and team == own_team
    return False


def may_decide(role: str, own_region: str, region: str) -> bool:
    """Whether someone may move proposals of ``region``: leaders of it and admins."""
    return role == "admin" or (role == "leader" and own_region == region)


def parse_numbers(args: str, count: int) -> tuple[list[int], str] | None:
    """``count`` leading numbers (``#`` allowed) of a command's arguments, and the rest."""
    parts = args.strip().split(maxsplit=count)
    numbers: list[int] = []
    for part in parts[:count]:
        digits = part.lstrip("#")
        if not digits.isdigit() or not 0 < int(digits) < 2**31:
            return None
        numbers.append(int(digits))
    if len(numbers) < count:
        return None
    return numbers, (parts[count] if len(parts) > count else "").strip()


def parse_day(text: str, today: date) -> date | None:
    """A day as people type it: ``12.3.``, ``12.3.2027``, ``2027-03-12``; never after today.

    A day and month without a year is the latest such day not after today.
    """
    cleaned = text.strip().rstrip(".")
    try:
        if cleaned[:4].isdigit():
            found = date.fromisoformat(cleaned)
            return found if found <= today else None
    except ValueError:
        return None
    parts = [part for part in cleaned.split(".") if part]
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        return None
    day, month = int(parts[0]), int(parts[1])
    try:
        if len(parts) == 3:
            year = int(parts[2])
            found = date(year + 2000 if year < 100 else year, month, day)
            return found if found <= today else None
        found = date(today.year, month, day)
        return found if found <= today else date(today.year - 1, month, day)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MoveDraft:
    """A leader moving a proposal in chat, between the button and the last answer."""

    proposal: int
    target: str
    body: str | None = None
    on: date | None = None

    def need(self) -> str | None:
        """What is still asked: ``body`` and ``date`` (presenting), then ``note``: what was
        decided (required) or, for every other step, a short note that one tap skips."""
        if self.target == PRESENTED:
            if self.body is None:
                return "body"
            if self.on is None:
                return "date"
        return "note"

    @property
    def note_required(self) -> bool:
        return self.target == DECIDED

    def to_text(self) -> str:
        on = self.on.isoformat() if self.on else ""
        return f"{self.proposal}|{self.target}|{self.body or ''}|{on}"

    @classmethod
    def from_text(cls, text: str | None) -> MoveDraft | None:
        if not text:
            return None
        try:
            proposal, target, body, on = text.split("|")
            return cls(int(proposal), target, body or None, date.fromisoformat(on) if on else None)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class BodyChoice:
    id: str
    label: str


def status_label(lang: str, status: str) -> str:
    return _t(lang, f"knowledge.status.{status}")


def proposal_card(
    lang: str,
    number: int,
    status: str,
    text: str,
    subject: str,
    body: str | None = None,
    on: str | None = None,
    decision: str | None = None,
    owner: str | None = None,
    note: str | None = None,
) -> Message:
    """A proposal as leaders see it in chat, with a button for every allowed next step and,
    while it is open, "Take ownership" (``kp:own:N``). ``owner`` is the owner's pseudonym,
    ``note`` the latest step's note."""
    lines = [_t(lang, "knowledge.proposal.card", number=number, status=status_label(lang, status))]
    lines.append(text)
    lines.append(subject)
    if body:
        lines.append(_t(lang, "knowledge.proposal.presented_to", body=body, on=on or ""))
    if decision:
        lines.append(_t(lang, "knowledge.proposal.decision", decision=decision))
    if note and note != decision:
        lines.append(_t(lang, "knowledge.proposal.note", note=note))
    lines.append(
        _t(lang, "knowledge.proposal.owner", owner=owner)
        if owner
        else _t(lang, "knowledge.proposal.no_owner")
    )
    buttons = tuple(
        Choice(status_label(lang, target), f"{PREFIX}:mv:{number}:{target}")
        for target in PROPOSAL_MOVES.get(status, ())
    )
    rows = tuple(buttons[i : i + 2] for i in range(0, len(buttons), 2))
    if status not in PROPOSAL_CLOSED:
        rows = (*rows, (Choice(_t(lang, "knowledge.proposal.take"), f"{PREFIX}:own:{number}"),))
    return Message("\n".join(lines), rows)


def move_question(lang: str, draft: MoveDraft, bodies: Sequence[BodyChoice]) -> Message | None:
    """The question for what ``draft`` still needs, or None when it is complete."""
    need = draft.need()
    if need == "body":
        rows = tuple(
            (Choice(body.label, f"{PREFIX}:body:{draft.proposal}:{body.id}"),) for body in bodies
        )
        return Message(_t(lang, "knowledge.move.ask_body", number=draft.proposal), rows)
    if need == "date":
        today = (Choice(_t(lang, "knowledge.move.today"), f"{PREFIX}:today:{draft.proposal}"),)
        return Message(_t(lang, "knowledge.move.ask_date", number=draft.proposal), (today,))
    if need == "note" and draft.note_required:
        return Message(_t(lang, "knowledge.move.ask_decision", number=draft.proposal))
    if need == "note":
        skip = (Choice(_t(lang, "knowledge.move.no_note"), f"{PREFIX}:nonote:{draft.proposal}"),)
        status = status_label(lang, draft.target)
        return Message(
            _t(lang, "knowledge.move.ask_note", number=draft.proposal, status=status), (skip,)
        )
    return None


@dataclass(frozen=True, slots=True)
class PathLine:
    """One step of ``/missa``: its position name, a local date and an optional detail."""

    step: str
    when: str
    detail: str | None = None


def path_text(
    lang: str,
    number: int,
    position_now: str,
    lines: Sequence[PathLine],
    phenomenon: tuple[int, str] | None,
    confirmations: int,
    decision: str | None,
) -> Message:
    """Where observation #``number`` stands, step by step; counts only, never who."""
    out = [
        _t(
            lang,
            "knowledge.where.title",
            number=number,
            position=_t(lang, f"knowledge.step.{position_now}"),
        )
    ]
    for line in lines:
        detail = f" ({line.detail})" if line.detail else ""
        out.append(f"• {line.when} {_t(lang, f'knowledge.step.{line.step}')}{detail}")
    if phenomenon is not None:
        out.append(
            _t(lang, "knowledge.where.phenomenon", number=phenomenon[0], title=phenomenon[1])
        )
    if confirmations:
        shown = count_label(confirmations)
        out.append(
            _t(lang, "knowledge.where.confirmed_few")
            if shown is None
            else _t(lang, "knowledge.where.confirmed", count=shown)
        )
    if decision:
        out.append(_t(lang, "knowledge.where.decision", decision=decision))
    return Message("\n".join(out))


def position_marker(lang: str, step: str) -> str:
    """The short marker ``/omat`` shows next to an entry."""
    return _t(lang, f"knowledge.marker.{step}")


@dataclass(frozen=True, slots=True)
class PathNews:
    """One step a worker hears about: a subject (phenomenon or proposal) and what happened."""

    subject: str  # "phenomenon" or "proposal"
    number: int
    title: str
    step: str
    detail: str | None = None


def news_told_since(now: datetime, every: timedelta, zone: tzinfo) -> datetime:
    """Since when a send counts as "told recently" for the path news run at ``now``.

    The news job runs once a day at a fixed local time. Comparing timestamps
    (``sent_at > now - every``) skips a busy worker every other day: yesterday's send
    finished a moment after yesterday's run began, so it is a few seconds *less* than
    24 hours before today's run. A fixed slack does not cure it either: across a
    daylight-saving change the same local time is 23 or 25 hours apart, and a run late
    by the scheduler's grace time moves it further. So ``every`` is counted in local
    calendar days (rounded down): with 24 hours a worker told on an earlier local day
    is due today, one told today is not. Below a day the timestamps are compared, with a
    quarter of ``every`` (at most an hour) of slack for the same reason.
    """
    days = every // timedelta(days=1)
    if days < 1:
        return now - every + min(every / 4, timedelta(hours=1))
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time(0), tzinfo=zone)


def news_text(lang: str, news: Sequence[PathNews]) -> Message:
    """The day's batch of knowledge-path news for one worker, in their language."""
    out = [_t(lang, "knowledge.news.title")]
    for item in news:
        what = _t(lang, f"knowledge.news.{item.subject}.{item.step}", number=item.number)
        detail = f": {item.detail}" if item.detail else ""
        out.append(f"• {what} – {item.title}{detail}")
    out.append(_t(lang, "knowledge.news.footer"))
    return Message("\n".join(out))


def notice_buttons(lang: str, entry: int) -> tuple[Choice, ...]:
    """Under an escalated entry's notice in the leadership channel: "Make this a
    phenomenon" (``kp:mk:N``) and "Link to a phenomenon" (``kp:ln:N``)."""
    return (
        Choice(_t(lang, "knowledge.notice.make"), f"{PREFIX}:mk:{entry}"),
        Choice(_t(lang, "knowledge.notice.link"), f"{PREFIX}:ln:{entry}"),
    )


def digest_entry_buttons(lang: str, entry: int) -> tuple[Choice, Choice]:
    """Under the team's weekly digest, for an entry it quotes: "Make #N a phenomenon" and
    "Link #N to a phenomenon", the notice buttons' payloads (leads and leaders only)."""
    return (
        Choice(_t(lang, "knowledge.digest.make", number=entry), f"{PREFIX}:mk:{entry}"),
        Choice(_t(lang, "knowledge.digest.link", number=entry), f"{PREFIX}:ln:{entry}"),
    )


LINK_CHOICES = 6  # open phenomena offered under "Link to a phenomenon", likeliest first


def link_question(lang: str, entry: int, found: Sequence[Candidate]) -> Message:
    """Which open phenomenon observation #``entry`` joins: one button each (``kp:lk:N:P``)."""
    if not found:
        return Message(_t(lang, "knowledge.notice.none_open"))
    rows = tuple(
        (Choice(f"#{c.id} {_short(c.text)}", f"{PREFIX}:lk:{entry}:{c.id}"),) for c in found
    )
    return Message(_t(lang, "knowledge.notice.choose", number=entry), rows)


def rank_for_link(text: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Open phenomena for "Link to a phenomenon": the ones that sound like ``text`` first,
    then the rest as given (most recently moved first), at most ``LINK_CHOICES``."""
    alike = suggest(text, candidates, limit=LINK_CHOICES)
    rest = [c for c in candidates if c not in alike]
    return [*alike, *rest][:LINK_CHOICES]


def pack_offer(lang: str, entry: int) -> tuple[str, tuple[Choice, ...]]:
    """For the notifier of a § 29 notice that was not remedied: a line saying they may take
    it to the supervisory authority, and the button that makes the escalation pack
    (``kp:pack:N``, the same as ``/paketti N``)."""
    return (
        _t(lang, "pack.offer", number=entry),
        (Choice(_t(lang, "pack.button", number=entry), f"{PREFIX}:pack:{entry}"),),
    )


def me_too_button(lang: str, phenomenon: int) -> Choice:
    return Choice(
        _t(lang, "knowledge.metoo.button", number=phenomenon), f"{PREFIX}:me:{phenomenon}"
    )


def suggestion_label(lang: str, candidate: Candidate) -> str:
    """How a suggestion is named: kind, number, a short title and, for a phenomenon, how
    many observations and confirmations it has (fewer than three: "a few")."""
    title = _short(candidate.text)
    if candidate.kind != "phenomenon":
        return _t(lang, "knowledge.suggest.observation", number=candidate.id, title=title)
    shown = count_label(candidate.count)
    if shown is None:
        return _t(lang, "knowledge.suggest.phenomenon_few", number=candidate.id, title=title)
    return _t(lang, "knowledge.suggest.phenomenon", number=candidate.id, title=title, count=shown)


def suggestion_value(candidate: Candidate) -> str:
    """The value a "yes, me too" answer carries: ``p4`` (phenomenon) or ``o12`` (entry)."""
    return f"{candidate.kind[0]}{candidate.id}"


NEW_VALUE = "new"


def suggestion_message(
    lang: str, found: Sequence[Candidate], payload: Callable[[str], str]
) -> Message:
    """ "Sounds like #4 '...' (7) – the same thing?" with "Yes, me too" for each match and
    "No, a new observation". ``payload`` turns an answer's value (``suggestion_value`` or
    ``NEW_VALUE``) into the button's data, so the asking conversation owns its buttons."""
    if len(found) == 1:
        [only] = found
        text = _t(lang, "knowledge.suggest.one", what=suggestion_label(lang, only))
        yes = [Choice(_t(lang, "knowledge.suggest.yes"), payload(suggestion_value(only)))]
    else:
        lines = [_t(lang, "knowledge.suggest.many")]
        lines += [f"{index}. {suggestion_label(lang, c)}" for index, c in enumerate(found, 1)]
        text = "\n".join(lines)
        yes = [
            Choice(
                _t(lang, f"knowledge.suggest.yes_{c.kind}", number=c.id),
                payload(suggestion_value(c)),
            )
            for c in found
        ]
    rows = tuple((choice,) for choice in yes)
    new = Choice(_t(lang, "knowledge.suggest.new"), payload(NEW_VALUE))
    return Message(text, (*rows, (new,)))


def _short(text: str, limit: int = 48) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
