"""The guided capture flow: a pure state machine, no I/O.

``advance(draft, event, ctx)`` takes the worker's open draft (or ``None``), one
neutral event and the context the host knows (language, the team's areas, the
clock), and returns the new draft, the replies to send and at most one effect
for the host to carry out (save, discard). Like matrix-nio's base client it
never touches a network, a database or an event loop, so every transport runs
the same flow and the tests can drive it with plain function calls.

The shortest path is one text and six taps: text -> theme -> group -> signal ->
how common -> escalation -> Save. When the text sounds like an open phenomenon or a
recent team entry the host passed in (``FlowContext.candidates``), the flow first asks
"the same thing?": one tap on "Yes, me too" ends the draft with a ``Confirm`` effect
(a confirmation, not a new observation); "No, a new observation" goes on to the theme.

Every prompt carries a sequence number inside its buttons' payloads
(``d:<draft key>:<seq>:<value>``); a press whose key is not the worker's open
draft, or whose number is not the current step's, is refused, so stale and
forged buttons change nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from flows import commands, taxonomy, when
from flows import knowledge as kp
from flows.events import (
    Alert,
    Choice,
    ChoiceIn,
    CommandIn,
    EditedIn,
    Event,
    LocationIn,
    MediaIn,
    Message,
    Reprompt,
    TextIn,
    match_choice,
)
from flows.i18n import label, t
from flows.privacy import redact

FLOW_VERSION = "1"
MAX_TEXT = 4000
CHOICE_PREFIX = "d"
# Open drafts a worker may have at once: the one being answered and those kept aside.
MAX_OPEN_DRAFTS = 3
SHORT_TEXT = 60  # characters of a text quoted back in a question


class Step(StrEnum):
    DESCRIPTION = "description"
    THEME = "theme"
    GROUP = "group"
    SIGNAL = "signal"
    FREQUENCY = "frequency"
    ESCALATION = "escalation"
    SUMMARY = "summary"
    EDIT_MENU = "edit_menu"
    DETAILS_MENU = "details_menu"
    AREA = "area"
    QUOTE = "quote"
    ACTION = "action"
    POLARITY = "polarity"
    TASK = "task"
    SOURCE = "source"
    SCALE = "scale"
    SUPPORT_NEED = "support_need"  # § 11 support needs, where the deployment asks them
    WHEN = "when"
    RESUME = "resume"
    NEW_TEXT = "new_text"
    SAME = "same"  # "sounds like #4 - the same thing?", between the text and the theme


# The main path, in order. Each coded step stores its value in the draft field of the same name.
MAIN_STEPS: tuple[Step, ...] = (
    Step.DESCRIPTION,
    Step.THEME,
    Step.GROUP,
    Step.SIGNAL,
    Step.FREQUENCY,
    Step.ESCALATION,
)
DETAIL_STEPS: tuple[Step, ...] = (
    Step.WHEN,
    Step.AREA,
    Step.QUOTE,
    Step.ACTION,
    Step.POLARITY,
    Step.TASK,
    Step.SUPPORT_NEED,
    Step.SOURCE,
    Step.SCALE,
)
TEXT_STEPS: dict[Step, str] = {
    Step.DESCRIPTION: "description",
    Step.QUOTE: "quote",
    Step.ACTION: "action",
}
CODED_STEPS: dict[Step, taxonomy.Dimension] = {
    Step.THEME: taxonomy.THEME,
    Step.GROUP: taxonomy.GROUP,
    Step.SIGNAL: taxonomy.SIGNAL,
    Step.FREQUENCY: taxonomy.FREQUENCY,
    Step.ESCALATION: taxonomy.ESCALATION,
    Step.POLARITY: taxonomy.POLARITY,
    Step.TASK: taxonomy.SERVICE_TASK,
    Step.SOURCE: taxonomy.SOURCE,
    Step.SCALE: taxonomy.SCALE,
    Step.SUPPORT_NEED: taxonomy.SUPPORT_NEED,
}
REQUIRED_FIELDS = ("description", "theme", "group", "signal", "frequency", "escalation")
# Buttons per row for each coded step: long labels get one per row on a phone.
ROW_WIDTH: dict[Step, int] = {
    Step.THEME: 1,
    Step.SIGNAL: 1,
    Step.TASK: 2,
    Step.GROUP: 2,
    Step.SUPPORT_NEED: 1,
}
AREA_MATCH_KM = 10.0


@dataclass(frozen=True)
class Area:
    """An area a team works in (district or municipality), optionally with a centre point."""

    id: str
    name: str
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class FlowContext:
    """What the host tells the flow for one event."""

    lang: str
    now: datetime
    areas: tuple[Area, ...] = ()
    nonce: str = "x"  # fresh random token from the host; keys a new draft
    zone: str = "Europe/Helsinki"
    default_area: str | None = None  # the worker's usual area (/alue), filled into new drafts
    last_codes: tuple[str, str, str] | None = None  # theme, group, signal of the last entry
    kept_drafts: int = 0  # the worker's other open drafts, kept aside
    # What the worker could confirm instead of a new entry (open phenomena, recent team
    # entries); the host reads them only for a new text, and only for a worker in a team.
    candidates: tuple[kp.Candidate, ...] = ()
    # The deployment classifies by the Social Welfare Act § 11 support needs
    # (``taxonomy.support_needs``): "Add details" offers them.
    support_needs: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def can_keep_another(self) -> bool:
        return self.kept_drafts + 1 < MAX_OPEN_DRAFTS

    def detail_steps(self) -> tuple[Step, ...]:
        """The steps "Add details" offers here: the § 11 support need only where asked."""
        if self.support_needs:
            return DETAIL_STEPS
        return tuple(step for step in DETAIL_STEPS if step is not Step.SUPPORT_NEED)


_LEGACY_PRIVACY_STEP = "privacy"


@dataclass(frozen=True)
class Draft:
    """An unfinished observation. Serialised to JSON and stored after every step."""

    key: str
    step: Step = Step.DESCRIPTION
    seq: int = 0
    description: str | None = None
    theme: str | None = None
    group: str | None = None
    signal: str | None = None
    frequency: str | None = None
    escalation: str | None = None
    area: str | None = None
    quote: str | None = None
    action: str | None = None
    polarity: str | None = None
    task: str | None = None
    source: str | None = None
    scale: str | None = None
    support_need: str | None = None  # taxonomy 2026.2, where the deployment asks it
    observed_at: str | None = None  # ISO 8601, UTC
    observed_day_only: bool = False  # the worker gave a day ("eilen"), not a time
    pending_text: str | None = None  # a text typed while a question was open (NEW_TEXT)
    same_codes: str | None = None  # "theme|group|signal" of the worker's last entry
    editing: bool = False  # answering a step chosen from the Edit menu: back to the summary
    back_step: Step | None = None  # where an interrupting question returns to once answered
    resume_step: Step | None = None  # the step a RESUME question ("continue?") returns to
    observation_id: int | None = None  # correcting an entry that is already saved
    suggestions: str | None = None  # JSON: the "me too" candidates the SAME step offers

    def to_json(self) -> dict[str, Any]:
        # Every field holds an immutable value (text, number, flag, Step): a shallow copy
        # is what ``dataclasses.asdict`` gives, without deep-copying each one (stored at
        # every step: about 2 % of the service's CPU per update).
        return {name: getattr(self, name) for name in _DRAFT_ORDER}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Draft:
        """Rebuild a stored draft; unknown keys (from a newer flow) are ignored."""
        values = {k: v for k, v in data.items() if k in _DRAFT_FIELDS}
        if values.get("step") == _LEGACY_PRIVACY_STEP:
            # Stored by an older version while its flow asked about identifiers (now asked
            # where text enters): they are removed, the safe answer, and the draft goes on
            # where it was going.
            flagged = str(data.get("privacy_field") or "")
            if flagged in TEXT_STEPS.values() and values.get(flagged):
                values[flagged] = redact(str(values[flagged]))
            values["step"] = values.get("back_step") or Step.SUMMARY
            values["back_step"] = None
        values["step"] = Step(values.get("step", Step.DESCRIPTION))
        for name in ("back_step", "resume_step"):
            if values.get(name) is not None:
                values[name] = Step(values[name])
        return cls(**values)

    def is_complete(self) -> bool:
        return all(getattr(self, name) for name in REQUIRED_FIELDS)


_DRAFT_ORDER = tuple(f.name for f in dataclasses.fields(Draft))
_DRAFT_FIELDS = frozenset(_DRAFT_ORDER)


@dataclass(frozen=True)
class Save:
    """Effect: store the draft as an observation (or update ``draft.observation_id``)."""

    draft: Draft


@dataclass(frozen=True)
class Discard:
    """Effect: delete the open draft."""


@dataclass(frozen=True)
class Keep:
    """Effect: keep ``draft`` open aside (the result's draft is a new one)."""

    draft: Draft


@dataclass(frozen=True)
class Confirm:
    """Effect: the worker said "me too": record a confirmation of ``kind`` (``phenomenon``
    or ``observation``) ``number`` instead of saving ``draft``, which ends. Should the
    target be gone meanwhile, ``decline_suggestion(draft, ctx)`` goes on to the theme."""

    draft: Draft
    kind: str
    number: int


Effect = Save | Discard | Keep | Confirm


@dataclass(frozen=True)
class Result:
    draft: Draft | None
    replies: list[Message | Alert | Reprompt] = field(default_factory=list)
    effect: Effect | None = None
    note: str | None = None  # event kind for the host's log (never user text)


# --- entry points --------------------------------------------------------------


def start_draft(ctx: FlowContext, description: str | None = None) -> Result:
    """A new draft; with ``description`` (quick capture) it goes straight to the theme.

    It starts in the worker's default area, observed now, or at the moment the text
    names at its start ("Eilen klo 14: ..."); both can be changed in Add details."""
    area = ctx.default_area if ctx.default_area in {a.id for a in ctx.areas} else None
    same = "|".join(ctx.last_codes) if ctx.last_codes else None
    draft = Draft(
        key=ctx.nonce,
        observed_at=ctx.now.astimezone(UTC).isoformat(),
        area=area,
        same_codes=same,
    )
    if description is None:
        return _prompt(draft, Step.DESCRIPTION, ctx)
    named = when.leading(description, ctx.now, ctx.tz)
    if named is not None:
        draft = replace(draft, observed_at=named.at.isoformat(), observed_day_only=named.day_only)
    return _accept_text(draft, Step.DESCRIPTION, description, ctx)


def advance(draft: Draft | None, event: Event, ctx: FlowContext) -> Result:
    """Apply one event to the worker's open draft (``None`` when there is none)."""
    if isinstance(event, CommandIn):
        return _command(draft, event, ctx)
    if isinstance(event, MediaIn):
        return _with_reprompt(draft, ctx, t(ctx.lang, "flow.media_refused"), "media_refused")
    if isinstance(event, EditedIn):
        return _with_reprompt(draft, ctx, t(ctx.lang, "flow.edit_ignored"), "edit_ignored")
    if draft is None:
        if isinstance(event, TextIn):
            problem = _text_problem(event.text, ctx)
            if problem is not None:
                return Result(None, [Message(problem)], note="text_rejected")
            return start_draft(ctx, event.text)
        if isinstance(event, ChoiceIn):
            return _stale(None, ctx)
        return Result(
            None, [Message(t(ctx.lang, "flow.location_without_draft"))], note="location_ignored"
        )
    if isinstance(event, ChoiceIn):
        parsed = parse_choice(event.data)
        if parsed is None or parsed[0] != draft.key or parsed[1] != draft.seq:
            return _stale(draft, ctx)
        return _choose(draft, parsed[2], ctx)
    if isinstance(event, LocationIn):
        return _location(draft, event, ctx)
    return _text(draft, event.text, ctx)


def reprompt(draft: Draft, ctx: FlowContext) -> Message:
    """The current step's question again (after help, a restart or a reminder)."""
    return _question(draft, draft.step, ctx)


def parse_choice(data: str) -> tuple[str, int, str] | None:
    parts = data.split(":", 3)
    if len(parts) != 4 or parts[0] != CHOICE_PREFIX or not parts[2].isdecimal():
        return None
    return parts[1], int(parts[2]), parts[3]


def from_observation(values: dict[str, Any], observation_id: int, ctx: FlowContext) -> Result:
    """Open a saved entry for correction: a draft holding its values, at the summary."""
    names = {f.name for f in dataclasses.fields(Draft)}
    kept = {k: v for k, v in values.items() if k in names and k not in {"key", "step", "seq"}}
    draft = Draft(key=ctx.nonce, observation_id=observation_id, **kept)
    return _prompt(draft, Step.SUMMARY, ctx)


# --- commands ------------------------------------------------------------------


NEW_COMMANDS = commands.words("new")
CANCEL_COMMANDS = commands.words("cancel")


def _command(draft: Draft | None, event: CommandIn, ctx: FlowContext) -> Result:
    if event.name in NEW_COMMANDS:
        if draft is None:
            return start_draft(ctx, event.args.strip() or None)
        if event.args.strip():
            # "/uusi text" while a draft is open: the text is not dropped.
            return _text(draft, event.args, ctx)
        interrupted = draft.resume_step if draft.step is Step.RESUME else draft.step
        return _prompt(replace(draft, resume_step=interrupted), Step.RESUME, ctx)
    if event.name in CANCEL_COMMANDS:
        if draft is None:
            return Result(
                None, [Message(t(ctx.lang, "flow.nothing_to_cancel"))], note="cancel_noop"
            )
        return Result(None, [Message(t(ctx.lang, "flow.cancelled"))], Discard(), note="cancelled")
    return Result(draft, [], note="not_a_flow_command")


# --- text, choices, locations --------------------------------------------------


def _text_problem(text: str, ctx: FlowContext) -> str | None:
    if not text.strip():
        return t(ctx.lang, "flow.empty_text")
    if len(text) > MAX_TEXT:
        return t(ctx.lang, "flow.too_long", length=len(text), limit=MAX_TEXT)
    return None


def _text(draft: Draft, text: str, ctx: FlowContext) -> Result:
    step = draft.step
    if step in TEXT_STEPS:
        return _accept_text(draft, step, text, ctx)
    # At a choice step a typed number or label counts as a press (Matrix, terminal).
    chosen = match_typed_choice(reprompt(draft, ctx), text)
    if chosen is not None:
        parsed = parse_choice(chosen.data)
        if parsed is not None:
            return _choose(draft, parsed[2], ctx)
    if step is Step.WHEN:
        named = when.parse(text, ctx.now, ctx.tz)
        if isinstance(named, when.When):
            return _set_when(draft, named, ctx)
        if isinstance(named, when.Refused):
            key = f"flow.when_{named.reason}"
            return _with_reprompt(
                draft, ctx, t(ctx.lang, key, days=when.MAX_DAYS_BACK), "when_refused"
            )
        if len(text.split()) <= 3:
            return _with_reprompt(draft, ctx, t(ctx.lang, "flow.when_unknown"), "when_unknown")
    problem = _text_problem(text, ctx)
    if problem is not None:
        return _with_reprompt(draft, ctx, problem, "text_rejected")
    if step is Step.NEW_TEXT:
        # A second text before the first was placed: they belong together, none is lost.
        joined = f"{draft.pending_text or ''}\n{text.strip()}".strip()
        if len(joined) > MAX_TEXT:
            return _with_reprompt(draft, ctx, _text_problem(joined, ctx) or "", "text_rejected")
        result = _prompt(replace(draft, pending_text=joined), Step.NEW_TEXT, ctx)
        return Result(result.draft, result.replies, note="new_text_joined")
    # A new text while a question is open: never dropped, the worker says where it goes.
    asked = _prompt(replace(draft, pending_text=text.strip()), Step.NEW_TEXT, ctx, back=step)
    return Result(asked.draft, asked.replies, note="new_text_asked")


def _set_when(draft: Draft, named: when.When, ctx: FlowContext) -> Result:
    updated = replace(draft, observed_at=named.at.isoformat(), observed_day_only=named.day_only)
    return _prompt(_after_answer(updated), _next_step(updated, Step.WHEN), ctx)


def match_typed_choice(question: Message, typed: str) -> Choice | None:
    """The choice a typed answer names on ``question`` (see ``flows.events.match_choice``)."""
    return match_choice(question.flat_choices(), typed)


def _accept_text(draft: Draft, step: Step, text: str, ctx: FlowContext) -> Result:
    problem = _text_problem(text, ctx)
    if problem is not None:
        return _with_reprompt(draft, ctx, problem, "text_rejected", at=step)
    # The text was screened for identifiers where it entered (flows.textguard).
    updated = _set(draft, TEXT_STEPS[step], text.strip())
    found = _suggestions_for(updated, step, ctx)
    if found:
        stored = json.dumps([[c.kind, c.id, c.text, c.count] for c in found])
        result = _prompt(_after_answer(replace(updated, suggestions=stored)), Step.SAME, ctx)
        return Result(result.draft, result.replies, note="me_too_suggested")
    result = _prompt(_after_answer(updated), _next_step(updated, step), ctx)
    return Result(result.draft, result.replies, note="text_accepted")


def _suggestions_for(draft: Draft, step: Step, ctx: FlowContext) -> list[kp.Candidate]:
    """The "me too" candidates to offer for a new entry's first text (none for a correction,
    an edit or a text given later)."""
    if (
        step is not Step.DESCRIPTION
        or not ctx.candidates
        or draft.editing
        or draft.observation_id is not None
        or draft.theme is not None
    ):
        return []
    return kp.suggest(draft.description or "", ctx.candidates)


def _stored_suggestions(draft: Draft) -> list[kp.Candidate]:
    try:
        items = json.loads(draft.suggestions or "[]")
        return [kp.Candidate(str(k), int(n), str(text), int(c)) for k, n, text, c in items]
    except (TypeError, ValueError):
        return []


def _same_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    """ "Yes, me too" for one of the suggestions, or "No, a new observation"."""
    if value == kp.NEW_VALUE:
        return decline_suggestion(draft, ctx)
    chosen = next((c for c in _stored_suggestions(draft) if kp.suggestion_value(c) == value), None)
    if chosen is None:
        return _stale(draft, ctx)
    return Result(None, [], Confirm(draft, chosen.kind, chosen.id), note="me_too")


def decline_suggestion(draft: Draft, ctx: FlowContext) -> Result:
    """Go on with ``draft`` as a new observation, at the theme question."""
    updated = replace(draft, suggestions=None)
    result = _prompt(updated, _next_step(updated, Step.DESCRIPTION), ctx)
    return Result(result.draft, result.replies, note="me_too_declined")


def _choose(draft: Draft, value: str, ctx: FlowContext) -> Result:
    step = draft.step
    if step in CODED_STEPS:
        if value == "back":
            return _prompt(draft, _return_step(draft, step), ctx)
        if step is Step.THEME and value == "same":
            return _same_as_last(draft, ctx)
        if value not in CODED_STEPS[step]:
            return _stale(draft, ctx)
        updated = _set(draft, step.value, value)
        return _prompt(_after_answer(updated), _next_step(updated, step), ctx)
    if step in (Step.QUOTE, Step.ACTION) and value == "back":
        return _prompt(draft, Step.DETAILS_MENU, ctx)
    if step is Step.DESCRIPTION and value == "back":
        return _prompt(draft, Step.SUMMARY if draft.editing else Step.DESCRIPTION, ctx)
    handler = _MENU_HANDLERS.get(step)
    if handler is None:
        return _stale(draft, ctx)
    return handler(draft, value, ctx)


def _summary_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "save":
        return _save(draft, ctx)
    if value == "edit":
        return _prompt(draft, Step.EDIT_MENU, ctx)
    if value == "details":
        return _prompt(draft, Step.DETAILS_MENU, ctx)
    if value == "cancel":
        return Result(None, [Message(t(ctx.lang, "flow.cancelled"))], Discard(), note="cancelled")
    return _stale(draft, ctx)


def _edit_menu_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "back":
        return _prompt(draft, Step.SUMMARY, ctx)
    target = _step_named(value, MAIN_STEPS)
    if target is None:
        return _stale(draft, ctx)
    return _prompt(replace(draft, editing=True), target, ctx)


def _details_menu_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "done":
        return _prompt(draft, Step.SUMMARY, ctx)
    target = _step_named(value, ctx.detail_steps())
    if target is None:
        return _stale(draft, ctx)
    return _prompt(draft, target, ctx)


def _area_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "back":
        return _prompt(draft, Step.DETAILS_MENU, ctx)
    if value == "none":
        return _prompt(replace(draft, area=None), Step.DETAILS_MENU, ctx)
    if value not in {a.id for a in ctx.areas}:
        return _stale(draft, ctx)
    return _prompt(replace(draft, area=value), Step.DETAILS_MENU, ctx)


def _same_as_last(draft: Draft, ctx: FlowContext) -> Result:
    """Theme, group and signal of the worker's previous entry, in one tap (editable)."""
    last = _same_codes(draft)
    if draft.editing or last is None:
        return _stale(draft, ctx)
    theme, group, signal = last
    updated = replace(draft, theme=theme, group=group, signal=signal)
    result = _prompt(_after_answer(updated), _next_step(updated, Step.SIGNAL), ctx)
    return Result(result.draft, result.replies, note="same_as_last")


def _same_codes(draft: Draft) -> tuple[str, str, str] | None:
    codes = (draft.same_codes or "").split("|")
    dimensions = (taxonomy.THEME, taxonomy.GROUP, taxonomy.SIGNAL)
    if len(codes) != 3 or not all(c in d for c, d in zip(codes, dimensions, strict=True)):
        return None
    return codes[0], codes[1], codes[2]


def resume(draft: Draft, ctx: FlowContext) -> Result:
    """Take a kept draft up again: its question, with fresh buttons (older ones go stale)."""
    return _prompt(draft, draft.step, ctx)


def _when_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "back":
        return _prompt(draft, _return_step(draft, Step.WHEN), ctx)
    answers = {"now": "nyt", "today": "tänään", "yesterday": "eilen"}
    named = when.parse(answers[value], ctx.now, ctx.tz) if value in answers else None
    if not isinstance(named, when.When):
        return _stale(draft, ctx)
    if value == "now":
        named = when.When(ctx.now.astimezone(UTC), False)
    return _set_when(draft, named, ctx)


def _keep_and_start(draft: Draft, back: Step, ctx: FlowContext, text: str | None) -> Result:
    """Keep ``draft`` aside (at the question it was on) and start a new one."""
    if not ctx.can_keep_another():
        return _stale(draft, ctx)
    kept = replace(draft, step=back, back_step=None, resume_step=None, pending_text=None)
    fresh = start_draft(ctx, text)
    shown = short_text(draft.description)
    replies = [Message(t(ctx.lang, "flow.kept_aside", text=shown)), *fresh.replies]
    return Result(fresh.draft, replies, Keep(kept), note="kept_aside_and_started")


def _resume_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    if value == "continue":
        return _prompt(replace(draft, resume_step=None), draft.resume_step or Step.SUMMARY, ctx)
    if value == "discard":
        fresh = start_draft(ctx)
        replies = [Message(t(ctx.lang, "flow.discarded")), *fresh.replies]
        return Result(fresh.draft, replies, Discard(), note="discarded_and_restarted")
    if value == "keep":
        return _keep_and_start(draft, draft.resume_step or Step.SUMMARY, ctx, None)
    return _stale(draft, ctx)


def _new_text_choice(draft: Draft, value: str, ctx: FlowContext) -> Result:
    back = draft.back_step or Step.SUMMARY
    text = draft.pending_text or ""
    if value == "new" and text:
        return _keep_and_start(draft, back, ctx, text)
    if value == "describe" and text:
        updated = replace(draft, description=text, pending_text=None)
        result = _prompt(updated, back, ctx)
        return Result(result.draft, result.replies, note="new_text_described")
    if value == "forget":
        result = _prompt(replace(draft, pending_text=None), back, ctx)
        replies = [Message(t(ctx.lang, "flow.text_forgotten")), *result.replies]
        return Result(result.draft, replies, note="new_text_forgotten")
    return _stale(draft, ctx)


_MENU_HANDLERS = {
    Step.SUMMARY: _summary_choice,
    Step.EDIT_MENU: _edit_menu_choice,
    Step.DETAILS_MENU: _details_menu_choice,
    Step.AREA: _area_choice,
    Step.WHEN: _when_choice,
    Step.RESUME: _resume_choice,
    Step.NEW_TEXT: _new_text_choice,
    Step.SAME: _same_choice,
}


def _location(draft: Draft, event: LocationIn, ctx: FlowContext) -> Result:
    area = area_for_location(event.latitude, event.longitude, ctx.areas)
    updated = replace(draft, area=area)
    notice = Message(t(ctx.lang, "flow.location_coarsened", area=area_label(area, ctx)))
    if draft.step is Step.AREA:
        result = _prompt(updated, Step.DETAILS_MENU, ctx)
        return Result(result.draft, [notice, *result.replies], note="location_set")
    # Elsewhere the area is set on the side and the open question stays valid.
    return Result(updated, [notice, _question(updated, updated.step, ctx)], note="location_set")


def area_for_location(lat: float, lon: float, areas: Sequence[Area]) -> str:
    """The nearest configured area within 10 km, else a grid cell of about 1 km.

    An exact position is never kept: 0.01 degrees of latitude is 1.1 km and at
    Finnish latitudes 0.02 degrees of longitude is about the same.
    """
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return "geo:unknown"
    best: tuple[float, str] | None = None
    for area in areas:
        if area.latitude is None or area.longitude is None:
            continue
        distance = _haversine_km(lat, lon, area.latitude, area.longitude)
        if distance <= AREA_MATCH_KM and (best is None or distance < best[0]):
            best = (distance, area.id)
    if best is not None:
        return best[1]
    lat_cell = round(lat / 0.01) * 0.01
    lon_cell = round(lon / 0.02) * 0.02
    return f"geo:{lat_cell:.2f},{lon_cell:.2f}"


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


def area_label(area: str | None, ctx: FlowContext) -> str:
    if not area:
        return "-"
    for known in ctx.areas:
        if known.id == area:
            return known.name
    if area.startswith("geo:"):
        return t(ctx.lang, "flow.area_grid", cell=area[4:])
    return area


# --- saving --------------------------------------------------------------------


def _save(draft: Draft, ctx: FlowContext) -> Result:
    missing = next((s for s in MAIN_STEPS if not getattr(draft, s.value)), None)
    if missing is not None:
        return _prompt(draft, missing, ctx)
    return Result(None, [], Save(replace(draft, editing=False)), note="save")


# --- prompting -----------------------------------------------------------------


def _next_step(draft: Draft, answered: Step) -> Step:
    """Where to go after answering ``answered``."""
    if draft.editing:
        return Step.SUMMARY
    if answered in DETAIL_STEPS:
        return Step.DETAILS_MENU
    if answered in MAIN_STEPS:
        for step in MAIN_STEPS[MAIN_STEPS.index(answered) + 1 :]:
            if not getattr(draft, step.value):
                return step
    return Step.SUMMARY


def _set(draft: Draft, name: str, value: str | None) -> Draft:
    """The draft with one named field changed (the field name comes from the step)."""
    changes: dict[str, Any] = {name: value}
    return replace(draft, **changes)


def _after_answer(draft: Draft) -> Draft:
    return replace(draft, editing=False)


def _return_step(draft: Draft, step: Step) -> Step:
    if step in DETAIL_STEPS:
        return Step.DETAILS_MENU
    return Step.SUMMARY if draft.editing or draft.is_complete() else step


def _step_named(value: str, allowed: Sequence[Step]) -> Step | None:
    return next((s for s in allowed if s.value == value), None)


def _prompt(draft: Draft, step: Step, ctx: FlowContext, back: Step | None = None) -> Result:
    """Move to ``step`` (a new sequence number, so older buttons go stale) and ask it."""
    moved = replace(
        draft,
        step=step,
        seq=draft.seq + 1,
        back_step=back if back is not None else (draft.back_step if step in _INTERRUPTS else None),
    )
    return Result(moved, [_question(moved, step, ctx)], note=f"step_{step.value}")


_INTERRUPTS = frozenset({Step.RESUME, Step.NEW_TEXT})


def _stale(draft: Draft | None, ctx: FlowContext) -> Result:
    """A press on a button that is no longer valid: a short answer to the presser only,
    and the current question for the transport to show where it is not shown already
    (twenty taps on one option must not give twenty messages)."""
    replies: list[Message | Alert | Reprompt] = [Alert(t(ctx.lang, "flow.stale_button"))]
    if draft is not None:
        replies.append(Reprompt(_question(draft, draft.step, ctx)))
    return Result(draft, replies, note="choice_refused")


def _with_reprompt(
    draft: Draft | None, ctx: FlowContext, text: str, note: str, at: Step | None = None
) -> Result:
    """A short explanation and, if a draft is open, its current question again. No change."""
    replies: list[Message | Alert | Reprompt] = [Message(text)]
    if draft is not None:
        replies.append(_question(draft, at or draft.step, ctx))
    return Result(draft, replies, note=note)


def _button(draft: Draft, text: str, value: str) -> Choice:
    return Choice(text, f"{CHOICE_PREFIX}:{draft.key}:{draft.seq}:{value}")


def _rows(buttons: list[Choice], width: int) -> tuple[tuple[Choice, ...], ...]:
    return tuple(tuple(buttons[i : i + width]) for i in range(0, len(buttons), width))


def _question(draft: Draft, step: Step, ctx: FlowContext) -> Message:
    lang = ctx.lang
    back = _button(draft, t(lang, "button.back"), "back")
    if step in TEXT_STEPS:
        text = t(lang, f"ask.{step.value}")
        if step is Step.DESCRIPTION:
            return Message(text, ((back,),) if draft.editing else ())
        return Message(text, ((back,),))
    if step in CODED_STEPS:
        dimension = CODED_STEPS[step]
        buttons = [_button(draft, label(code, lang), code) for code in dimension.codes]
        rows = _rows(buttons, ROW_WIDTH.get(step, 2))
        is_optional = step in DETAIL_STEPS or draft.editing
        text = t(lang, f"ask.{step.value}")
        last = _same_codes(draft) if step is Step.THEME and not draft.editing else None
        if last is not None:
            same = _button(draft, t(lang, "button.same_as_last"), "same")
            shown = " · ".join(label(code, lang) for code in last)
            text = f"{text}\n{t(lang, 'flow.same_as_last', codes=shown)}"
            rows = (*rows, (same,))
        return Message(text, rows + (((back,),) if is_optional else ()))
    if step is Step.SUMMARY:
        buttons = [
            _button(draft, t(lang, "button.save"), "save"),
            _button(draft, t(lang, "button.edit"), "edit"),
            _button(draft, t(lang, "button.details"), "details"),
            _button(draft, t(lang, "button.cancel"), "cancel"),
        ]
        return Message(summary_text(draft, ctx), _rows(buttons, 2))
    if step is Step.EDIT_MENU:
        buttons = [_button(draft, t(lang, f"field.{s.value}"), s.value) for s in MAIN_STEPS]
        return Message(t(lang, "ask.edit_menu"), (*_rows(buttons, 2), (back,)))
    if step is Step.DETAILS_MENU:
        buttons = [_button(draft, t(lang, f"field.{s.value}"), s.value) for s in ctx.detail_steps()]
        done = _button(draft, t(lang, "button.done"), "done")
        return Message(t(lang, "ask.details_menu"), (*_rows(buttons, 2), (done,)))
    if step is Step.AREA:
        buttons = [_button(draft, a.name, a.id) for a in ctx.areas]
        extra = (_button(draft, t(lang, "button.no_area"), "none"), back)
        key = "ask.area" if ctx.areas else "ask.area_location_only"
        return Message(t(lang, key), (*_rows(buttons, 2), extra))
    if step is Step.WHEN:
        buttons = [
            _button(draft, t(lang, f"button.when_{value}"), value)
            for value in ("now", "today", "yesterday")
        ]
        shown = t(lang, "flow.when_now_is", when=when_label(draft, ctx))
        return Message(f"{t(lang, 'ask.when')}\n{shown}", (tuple(buttons), (back,)))
    if step is Step.RESUME:
        rows = ((_button(draft, t(lang, "button.continue"), "continue"),),)
        if ctx.can_keep_another():
            rows += ((_button(draft, t(lang, "button.keep_and_new"), "keep"),),)
        rows += ((_button(draft, t(lang, "button.discard"), "discard"),),)
        return Message(t(lang, "ask.resume"), rows)
    if step is Step.SAME:
        found = _stored_suggestions(draft)
        return kp.suggestion_message(lang, found, lambda value: _button(draft, "", value).data)
    if step is Step.NEW_TEXT:
        open_text = short_text(draft.description)
        new_text = short_text(draft.pending_text)
        question = t(lang, "ask.new_text", open=open_text, text=new_text)
        rows = ()
        if ctx.can_keep_another():
            rows += ((_button(draft, t(lang, "button.new_with_text"), "new"),),)
        else:
            question += "\n" + t(lang, "flow.drafts_full", count=MAX_OPEN_DRAFTS)
        rows += (
            (_button(draft, t(lang, "button.text_as_description"), "describe"),),
            (_button(draft, t(lang, "button.forget_text"), "forget"),),
        )
        return Message(question, rows)
    raise ValueError(f"no question for step {step}")  # pragma: no cover - every Step is handled


def short_text(text: str | None) -> str:
    flat = (text or "-").replace("\n", " ")
    return flat if len(flat) <= SHORT_TEXT else flat[: SHORT_TEXT - 1] + "…"


def when_label(draft: Draft, ctx: FlowContext) -> str:
    """When the draft was observed, as the worker reads it: "eilen", "tänään klo 14.00"."""
    lang = ctx.lang
    if not draft.observed_at:
        return t(lang, "when.now")
    at = datetime.fromisoformat(draft.observed_at).astimezone(ctx.tz)
    days = (ctx.now.astimezone(ctx.tz).date() - at.date()).days
    day = {0: t(lang, "when.today"), 1: t(lang, "when.yesterday")}.get(days)
    if day is None:
        day = format_datetime(at, t(lang, "when.day_format"), locale=lang)
    if draft.observed_day_only:
        return day
    clock = format_datetime(at, t(lang, "when.time_format"), locale=lang)
    return t(lang, "when.day_time", day=day, time=clock)


def summary_text(draft: Draft, ctx: FlowContext) -> str:
    """The draft as the worker sees it before saving."""
    lang = ctx.lang
    lines = [t(lang, "summary.title")]
    lines.append(f"{t(lang, 'field.description')}: {draft.description or '-'}")
    for step in MAIN_STEPS[1:]:
        value = getattr(draft, step.value)
        lines.append(f"{t(lang, f'field.{step.value}')}: {label(value, lang) if value else '-'}")
    lines.append(f"{t(lang, 'field.when')}: {when_label(draft, ctx)}")
    if draft.area:
        lines.append(f"{t(lang, 'field.area')}: {area_label(draft.area, ctx)}")
    elif ctx.areas and ctx.default_area is None:
        lines.append(f"{t(lang, 'field.area')}: - ({t(lang, 'flow.area_hint')})")
    for step in (Step.QUOTE, Step.ACTION):
        value = getattr(draft, step.value)
        if value:
            lines.append(f"{t(lang, f'field.{step.value}')}: {value}")
    for step in (Step.POLARITY, Step.TASK, Step.SUPPORT_NEED, Step.SOURCE, Step.SCALE):
        value = getattr(draft, step.value)
        if value:
            lines.append(f"{t(lang, f'field.{step.value}')}: {label(value, lang)}")
    return "\n".join(lines)
