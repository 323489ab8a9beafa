"""The database schema: typed SQLAlchemy 2 models.

Times are stored in UTC (``UTCDateTime`` refuses naive values and returns aware
ones on every backend); they are shown in Europe/Helsinki. Codes are the
language-independent taxonomy codes of ``flows.taxonomy``. People are known by
a random pseudonym; their chat identities live in a table of their own so that
exports and digests never need to touch them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        value = value.astimezone(UTC)
        # SQLite keeps no zone; store naive UTC there so string order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Team(Base):
    """A team, mirrored from the config file so that rows can refer to it."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8))


class Person(Base):
    """Someone enrolled: a worker, team lead, leader or admin. Known by pseudonym only."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_active_on: Mapped[datetime | None]
    # When the person was last nudged for being quiet (migration 0003).
    nudged_at: Mapped[datetime | None]
    # The worker's usual area, filled into new drafts (migration 0009); "none" when they
    # chose to have none (so they are not asked again).
    default_area: Mapped[str | None] = mapped_column(String(64))
    # The end-of-shift reminder (migration 0009): local "HH:MM" on working days, or None;
    # and when the last one was sent (one a day at most, claimed by a conditional update).
    shift_reminder: Mapped[str | None] = mapped_column(String(5))
    shift_reminded_at: Mapped[datetime | None]

    identities: Mapped[list[Identity]] = relationship(back_populates="person", lazy="raise")


class Identity(Base):
    """A person's account on one transport (Telegram user id, Matrix user id, terminal)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("transport", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    transport: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    chat_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]

    person: Mapped[Person] = relationship(back_populates="identities", lazy="raise")


class Invite(Base):
    """A single-use, expiring enrolment code tied to a team and a role."""

    __tablename__ = "invites"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    role: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Draft(Base):
    """A worker's open, unfinished observation: the flow state, stored after every step."""

    __tablename__ = "drafts"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    state: Mapped[dict[str, Any]]
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    reminded_at: Mapped[datetime | None]


class KeptDraft(Base):
    """A draft a worker put aside to start another (migration 0009): at most two per
    worker besides the open one (``flows.capture.MAX_OPEN_DRAFTS``). ``/omat`` lists them
    and takes one up again."""

    __tablename__ = "kept_drafts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    state: Mapped[dict[str, Any]]
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)


class Observation(Base):
    """A saved observation with its coded metadata."""

    __tablename__ = "observations"
    __table_args__ = (
        Index("ix_observations_team_observed", "team_id", "observed_at"),
        Index("ix_observations_region_observed", "region", "observed_at"),
        Index("ix_observations_escalation_observed", "escalation", "observed_at"),
        # A region's escalations over all time (the monthly summary's "still open" list).
        Index("ix_observations_region_escalation_observed", "region", "escalation", "observed_at"),
        # The escalations still open, of a region or of all (migration 0005).
        Index(
            "ix_observations_escalation_status",
            "escalation",
            "escalation_status",
            "region",
            "observed_at",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    region: Mapped[str] = mapped_column(String(64))
    area: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    quote: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    theme: Mapped[str] = mapped_column(String(64))
    population_group: Mapped[str] = mapped_column(String(64))
    signal: Mapped[str] = mapped_column(String(64))
    frequency: Mapped[str] = mapped_column(String(64))
    escalation: Mapped[str] = mapped_column(String(64))
    # The newest escalation_events status ("open" without any), derived from the events
    # by database triggers (migration 0005): read it, never write it.
    escalation_status: Mapped[str] = mapped_column(String(16), server_default="open")
    polarity: Mapped[str] = mapped_column(String(64))
    task: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(64))
    scale: Mapped[str | None] = mapped_column(String(64))
    # The Social Welfare Act § 11 support need (taxonomy 2026.2, migration 0017), where
    # the deployment asks it (``taxonomy.support_needs``); None on older rows.
    support_need: Mapped[str | None] = mapped_column(String(64))
    observed_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    # Set when retention erased the free text; the codes stay (migration 0003).
    text_erased_at: Mapped[datetime | None]
    transport: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    flow_version: Mapped[str] = mapped_column(String(16))
    taxonomy_version: Mapped[str] = mapped_column(String(16))
    # The key of the draft it was saved from (migration 0006): a press on that draft's
    # stale Save button is answered with this entry's number.
    draft_key: Mapped[str | None] = mapped_column(String(32))


class HeldText(Base):
    """A typed text held at the identifier guard until its writer chooses remove / keep /
    drop (migration 0006). It never holds a hetu: those are removed before it is held.
    The event is replayed with the chosen text, so ``reply_to`` and the chat are kept."""

    __tablename__ = "held_texts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    transport: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(255))
    chat_id: Mapped[str] = mapped_column(String(255))
    is_private: Mapped[bool]
    reply_to: Mapped[str | None] = mapped_column(String(255))
    # "text" for a plain message; otherwise the name of the command whose argument it is:
    # whatever was typed after the slash, any length (migration 0022).
    command: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class PendingConfirmation(Base):
    """A "Saved #N" confirmation the platform did not take (migration 0006): told to the
    worker at their next contact."""

    __tablename__ = "pending_confirmations"

    observation_id: Mapped[int] = mapped_column(
        ForeignKey("observations.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    created_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Platform event ids already handled, so a redelivered update has one effect only."""

    __tablename__ = "processed_events"

    transport: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(index=True)


class OutboxEntry(Base):
    """An update of a private chat whose answer is committed and not yet known to be sent
    (``storage.outbox``): who is owed it and the entry it saved, never its text. Forgotten
    once sent; answered by any instance when still here at ``due_at`` (migration 0020)."""

    __tablename__ = "outbox"

    transport: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    chat_id: Mapped[str] = mapped_column(String(255))
    saved_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(index=True)


class BotState(Base):
    """Small key-value state a transport must keep across restarts (e.g. a Matrix sync token)."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --- escalations and deliveries (migration 0002) ------------------------------------------


class EscalationEvent(Base):
    """One status change of an escalated observation: the audit trail (who, when, what).

    The newest row per observation is its status (one of
    ``flows.statuses.ESCALATION_STATUSES``); an escalated observation without any
    row is ``open``. ``text`` is the leader's short answer, relayed to the reporter.
    """

    __tablename__ = "escalation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    # Indexed for the weekly digest: the answers that arrived in one week.
    created_at: Mapped[datetime] = mapped_column(index=True)


class Notification(Base):
    """An escalation notice posted to a leadership channel on one transport.

    ``message_ref`` is the platform's id of the posted message (Telegram message id,
    Matrix event id) so it can be edited when acknowledged. ``claimed_at`` guards the
    send against a second process; ``sent_at`` is set once the platform accepted it.
    """

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("observation_id", "transport", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    message_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None] = mapped_column(index=True)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    last_reminded_at: Mapped[datetime | None]
    # When the leaders were reminded that no measure was recorded (``measures_days``); the
    # same on every post of the entry: that reminder is made once per notice.
    measures_reminded_at: Mapped[datetime | None]
    reminders: Mapped[int] = mapped_column(Integer, default=0)


class Relay(Base):
    """A text the bot is waiting for around an escalation, and where it goes.

    ``kind``: ``status`` (a leader's short text for ``status``), ``question`` (a leader's
    question to the anonymous reporter) or ``answer`` (the reporter's answer to
    ``parent_id``). ``person_id`` is who is expected to write, in ``transport``/``chat_id``;
    ``prompt_ref`` is the bot's prompt message a reply must point to (None when the
    transport cannot tell). The relayed texts themselves are not stored here.
    """

    __tablename__ = "relays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    prompt_ref: Mapped[str | None] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("relays.id"))
    created_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


DELIVERY_STATUSES: tuple[str, ...] = ("claimed", "sent", "failed")


class Delivery(Base):
    """The delivery ledger: one row per (kind, scope, period, transport, chat).

    The unique ``key`` makes a second post impossible: whoever inserts it first
    (status ``claimed``) posts; ``parts_sent`` counts the messages of a multi-part
    digest already accepted, so a retry continues instead of starting over.
    ``last_error`` holds an error kind only, never a message text.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]


# --- the audit trail (migration 0003) -----------------------------------------------------


class AuditEvent(Base):
    """Who did what to the data, when, and to how many rows (see ``storage.audit``)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    what: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)


# --- the enrolment guard (migration 0007) ---------------------------------------------------


class EnrolmentFailure(Base):
    """One wrong invite code sent by an account that is not enrolled: what the lockout of
    ``storage.enrolment_guard`` counts. The code itself is never stored; the account is
    kept as the identities table keeps it (transport and platform user id), for a day at
    most, and a successful enrolment deletes its rows."""

    __tablename__ = "enrolment_failures"
    __table_args__ = (
        Index("ix_enrolment_failures_account", "transport", "external_id", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    # Indexed for pruning: rows older than a day are deleted whenever one is written.
    failed_at: Mapped[datetime] = mapped_column(index=True)


# --- the scheduler's next runs (migration 0008) ---------------------------------------------


class ScheduledRun(Base):
    """When a scheduled job runs next, kept across restarts (``bot.runtime.scheduler``).

    ``trigger`` is the job's trigger as text (``cron[day_of_week='mon', hour='8',
    minute='0'] Europe/Helsinki``). A start with the same trigger keeps ``next_run_time``,
    so a run missed while the bot was down is still due; a changed trigger replaces it.
    NULL: carried over from APScheduler's own job store by migration 0008, trigger unknown.
    """

    __tablename__ = "scheduled_runs"

    job_id: Mapped[str] = mapped_column(String(191), primary_key=True)
    trigger: Mapped[str | None] = mapped_column(Text)
    next_run_time: Mapped[datetime | None]


# --- the knowledge path (migration 0014) ------------------------------------------------------


class Phenomenon(Base):
    """A named, recurring pattern that several observations show (``flows.knowledge``).

    ``team_id`` is set for a team's phenomenon and NULL for a region-wide one; ``title``
    is in ``language`` (the team's or the leadership channel's). ``theme`` is a taxonomy
    code. Leads and leaders create them; observations are linked and workers confirm them.
    """

    __tablename__ = "phenomena"
    __table_args__ = (Index("ix_phenomena_region_status", "region", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), index=True)
    theme: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]
    # The last step on the knowledge path (link, confirmation, proposal move): what
    # "moved this week" and the workers' path notifications look at.
    moved_at: Mapped[datetime] = mapped_column(index=True)


class PhenomenonLink(Base):
    """An observation shown by a phenomenon. An observation belongs to one phenomenon at most."""

    __tablename__ = "phenomenon_links"

    observation_id: Mapped[int] = mapped_column(ForeignKey("observations.id"), primary_key=True)
    phenomenon_id: Mapped[int] = mapped_column(ForeignKey("phenomena.id"), index=True)
    linked_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    linked_at: Mapped[datetime]


class Confirmation(Base):
    """A worker's "me too" on a phenomenon or an observation, or "we were two" on an entry.

    Exactly one of ``phenomenon_id``/``observation_id`` is set. A confirmation is never
    an observation: it is counted as a confirmation. ``text`` is one optional line,
    screened by the identifier guard like every text a person types.
    """

    __tablename__ = "confirmations"
    __table_args__ = (
        UniqueConstraint("person_id", "phenomenon_id", name="uq_confirmations_person_phenomenon"),
        UniqueConstraint("person_id", "observation_id", name="uq_confirmations_person_observation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    kind: Mapped[str] = mapped_column(String(16))
    phenomenon_id: Mapped[int | None] = mapped_column(ForeignKey("phenomena.id"), index=True)
    observation_id: Mapped[int | None] = mapped_column(ForeignKey("observations.id"), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class Proposal(Base):
    """A proposal for action (toimenpide-ehdotus) and where it stands.

    It belongs to a phenomenon or to one escalated observation. ``status`` is the newest
    of its ``proposal_events``; ``body`` and ``presented_on`` come from the presenting
    step, ``decision`` from the deciding one.
    """

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phenomenon_id: Mapped[int | None] = mapped_column(ForeignKey("phenomena.id"), index=True)
    observation_id: Mapped[int | None] = mapped_column(ForeignKey("observations.id"), index=True)
    region: Mapped[str] = mapped_column(String(64), index=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"))
    text: Mapped[str] = mapped_column(Text)
    proposer_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(String(64))
    presented_on: Mapped[date | None] = mapped_column(Date)
    decision: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    # When its card with the move buttons went to the responsible leadership channel
    # (None: not yet; ``bot.knowledge`` posts it at the next chance).
    card_posted_at: Mapped[datetime | None]


class ProposalEvent(Base):
    """One step of a proposal: who moved it, when, to what, with a short note."""

    __tablename__ = "proposal_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(String(64))
    on_date: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(index=True)


class PathNotice(Base):
    """A step on the knowledge path that a worker should hear about (batched, once).

    One row per (person, subject, step): a person who recorded or confirmed something
    that moved. ``sent_at`` is set when the day's batch to the person went out.
    """

    __tablename__ = "path_notices"
    __table_args__ = (
        UniqueConstraint("person_id", "subject", "step", name="uq_path_notices_once"),
        Index("ix_path_notices_unsent", "sent_at", "person_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    # "phenomenon:12" or "proposal:7"
    subject: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


# --- the shared send budget (migration 0015) ------------------------------------------------


class SendBudget(Base):
    """One scope of a chat platform's flood limit, shared by every instance that uses the
    same bot token (``storage.send_budget``).

    ``scope`` is ``"token"`` for the whole token or ``"chat:<id>"`` for one group chat;
    ``tat`` the scope's leaky bucket: its theoretical arrival time, the moment (seconds
    since the epoch, the database's clock) the bucket will be empty (migration 0019; until
    then ``times``, the recent send times).
    """

    __tablename__ = "send_budget"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    tat: Mapped[float] = mapped_column(Float(precision=53))


# --- the conclusions of the social report (migration 0018) -----------------------------------


class ReportNote(Base):
    """Conclusions a lead or leader wrote for the social report of one scope and period
    (``storage.report_notes``): the editing stage of social reporting.

    ``scope_kind`` is ``team``, ``region`` or ``organisation`` and ``scope_id`` the team
    or region id (empty for the organisation); ``period`` a label such as ``2026-H2``
    with its first and last local day. The writer is kept as an actor (``person:ID`` in
    chat, the operator's name on the command line) and a role; the report prints the
    role and the date, never the actor. ``text`` passed the identifier guard.
    """

    __tablename__ = "report_notes"
    __table_args__ = (Index("ix_report_notes_scope", "scope_kind", "scope_id", "period_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_kind: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(8))
    author_role: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
