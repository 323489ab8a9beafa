"""The conclusions of a social report, written in chat: who may write them, and what is said.

A social report is made in two stages (collecting, then editing): the figures come
from the observations, and the team's lead or the region's leaders write what they
conclude from them. The scheduled report is posted to a leadership channel as a PDF
with a short prompt under it; a lead or leader **replies** to either message with the
conclusions, and they are stored for that report's scope and period and printed in the
report as a section of their own, with the writer's role and the date.

This module is pure, like ``flows.knowledge``: ``NoteTarget`` is what the bot remembers
about a posted report (a draft in text form, ``to_text``/``from_text``, as
``flows.knowledge.MoveDraft``), ``may_conclude`` says who may write for it,
``take_reply`` decides what a reply does, and the ``*_message`` functions say it in the
writer's language. The bot (``bot.report_notes``) loads, stores and replies; the text
has passed the identifier guard (``flows.textguard``) before it gets here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.events import Message
from flows.i18n import t

DOMAIN = "socialreport"
NOTE_MAX = 4000  # characters: a page of the report at most

TEAM = "team"
REGION = "region"
ORGANISATION = "organisation"
SCOPE_KINDS: tuple[str, ...] = (TEAM, REGION, ORGANISATION)
AUTHOR_ROLES: tuple[str, ...] = ("lead", "leader", "admin")


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


@dataclass(frozen=True, slots=True)
class NoteTarget:
    """The report a reply is about: its scope (a team, a region or the organisation),
    the region it lies in (a team's region; empty for the organisation), its period
    label (``2026-H2``) and the report's language."""

    scope_kind: str
    scope_id: str
    region: str
    period: str
    language: str

    def to_text(self) -> str:
        return "|".join((self.scope_kind, self.scope_id, self.region, self.period, self.language))

    @classmethod
    def from_text(cls, text: str | None) -> NoteTarget | None:
        if not text:
            return None
        parts = text.split("|")
        if len(parts) != 5 or parts[0] not in SCOPE_KINDS or not parts[3]:
            return None
        return cls(*parts)

    @property
    def scope_key(self) -> str:
        """``team:hki-etsiva``, ``region:helsinki`` or ``organisation``: the ledger's scope."""
        return (
            ORGANISATION
            if self.scope_kind == ORGANISATION
            else f"{self.scope_kind}:{self.scope_id}"
        )


def may_conclude(
    role: str,
    own_team: str,
    own_region: str,
    target: NoteTarget,
    organisation_channel: bool = False,
) -> bool:
    """Whether someone may write the conclusions of ``target``'s report.

    A team's: its lead, a leader of its region, an admin. A region's: its leaders and
    admins. The whole organisation's: admins, and leaders in the organisation-wide
    leadership channel the report was posted to (``organisation_channel``).
    """
    if role == "admin":
        return True
    if target.scope_kind == TEAM:
        if role == "lead":
            return own_team == target.scope_id
        return role == "leader" and own_region == target.region
    if target.scope_kind == REGION:
        return role == "leader" and own_region == target.scope_id
    return role == "leader" and organisation_channel


@dataclass(frozen=True, slots=True)
class Save:
    """Store ``text`` as conclusions of ``target``, written by someone in ``role``."""

    target: NoteTarget
    text: str
    role: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Say ``key`` (a catalog key of ``DOMAIN``) to the writer alone; store nothing."""

    key: str
    limit: int = 0


def take_reply(
    target: NoteTarget,
    role: str,
    own_team: str,
    own_region: str,
    text: str,
    organisation_channel: bool = False,
) -> Save | Refuse:
    """What a reply to a posted report does: stores conclusions, or is refused."""
    if not may_conclude(role, own_team, own_region, target, organisation_channel):
        return Refuse("conclusions.not_allowed")
    cleaned = text.strip()
    if not cleaned:
        return Refuse("conclusions.empty")
    if len(cleaned) > NOTE_MAX:
        return Refuse("conclusions.too_long", NOTE_MAX)
    return Save(target, cleaned, role)


def prompt_message(lang: str, scope_name: str, period: str) -> Message:
    """Under a posted report: reply to this (or to the PDF) with the conclusions."""
    return Message(_t(lang, "conclusions.prompt", scope=scope_name, period=period))


def saved_message(lang: str, scope_name: str, period: str, number: int) -> Message:
    return Message(_t(lang, "conclusions.saved", scope=scope_name, period=period, number=number))


def refused_message(lang: str, refusal: Refuse) -> str:
    return _t(lang, refusal.key, limit=refusal.limit)


def role_label(lang: str, role: str) -> str:
    """How the writer is named in the report: by role, never by name."""
    return _t(lang, f"conclusions.role.{role}")
