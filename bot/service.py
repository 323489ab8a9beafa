"""The transport-neutral bot: one incoming event in, the replies to send out.

Every transport hands ``Havainto.handle`` a neutral ``Incoming`` and delivers
the ``Outbound`` replies it gets back. In between, one database transaction
covers the whole event: who is writing (enrolment, role, revocation), a
redelivered event (processed once), the commands around the flow (/omat,
/kieli, /apua), and the capture flow itself, whose draft is stored after every
step so a restart resumes where the worker was.

``handle`` is also the boundary where typed text enters: before anything else
sees an event (the spool on disk included), text a platform can deliver but not
encode back (NUL, lone surrogates) is cleaned and every personal identity code is
removed, whoever typed it (``flows.textguard``). A text with other identifiers
(phone, e-mail, IBAN, a personal name, a street address, a date of birth, a plate)
that something would take in is held, and its writer asked to remove them (with
placeholders in their language), keep the text or drop it; the event then runs with
the chosen text.

Logs carry ids and event kinds, never what anybody typed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import weakref
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.inflight import InFlight
from bot.spool import Spool, is_unavailable, spool_path
from digests.periods import is_working_day
from flows import capture, commands, own, textguard
from flows.capture import Area, Confirm, Discard, FlowContext, Keep, Save
from flows.events import (
    Alert,
    Choice,
    ChoiceIn,
    CommandIn,
    Incoming,
    Message,
    Outbound,
    Reply,
    TextIn,
)
from flows.i18n import LANGUAGES, normalise_language, t, tn
from flows.knowledge import Candidate
from flows.taxonomy import DIMENSIONS, TAXONOMY_VERSION
from storage import enrolment_guard, held, knowledge, outbox, repo
from storage.db import Database
from storage.models import Observation

log = logging.getLogger("havainto.service")

Clock = Callable[[], datetime]
SavedHook = Callable[[AsyncSession, Observation, repo.Member], Awaitable[list[Outbound]]]
# A handler for events outside the capture flow (leaders' buttons and replies in a
# leadership channel, a reporter's answer, digest previews): it returns the replies, or
# None when the event is not its business. Runs inside the event's transaction.
EventHandler = Callable[
    [AsyncSession, Incoming, "repo.Member | None", datetime], Awaitable[list[Outbound] | None]
]
# "Me too" at capture time (the knowledge desk): what a worker might confirm instead of a
# new entry, and recording that confirmation (its reply, or None when the target is gone).
CandidatesHook = Callable[[AsyncSession, "repo.Member", datetime], Awaitable[tuple[Candidate, ...]]]
ConfirmHook = Callable[[AsyncSession, "repo.Member", str, int, datetime], Awaitable[Message | None]]

HELP_COMMANDS = commands.words("help")
LANGUAGE_COMMANDS = commands.words("language")
OWN_COMMANDS = commands.words("own")
AREA_COMMANDS = commands.words("area")
REMINDER_COMMANDS = commands.words("reminder")
NO_AREA = "none"  # a default area chosen as "none": not asked again
_CLOCK_TIME = re.compile(r"^(?:klo|kl\.?|at)?\s*(\d{1,2})(?:[.:](\d{2}))?$")
FLOW_COMMANDS = capture.NEW_COMMANDS | capture.CANCEL_COMMANDS
LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}
#: What a worker's entry holds, as the capture draft's field -> the observation's: its
#: texts, its area and every dimension of the taxonomy (the draft's "group" is the
#: observation's "population_group").
OBSERVATION_FIELDS: dict[str, str] = {
    **{name: name for name in ("description", "area", "quote", "action")},
    **{d.name: d.field for d in DIMENSIONS.values()},
}


#: How soon the kept replies of sent updates are forgotten (``Havainto._sent``).
FORGET_AFTER_S = 0.5


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Turn:
    """What one event is about: the sender, their language and where replies go."""

    incoming: Incoming
    member: repo.Member | None
    lang: str
    now: datetime

    def reply(self, *replies: Reply) -> list[Outbound]:
        return [Outbound(self.incoming.transport, self.incoming.chat_id, r) for r in replies]


Deliver = Callable[[list[Outbound]], Awaitable[None]]


class _Hold(Exception):
    """Raised inside an event's transaction to roll it back and hold its text instead."""

    def __init__(self, member: repo.Member, screened: textguard.Screened) -> None:
        super().__init__("held")
        self.member = member
        self.screened = screened


class Havainto:
    """The bot's behaviour, shared by every transport and every process."""

    def __init__(self, config: Config, db: Database, clock: Clock = utc_now) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        self.after_save: list[SavedHook] = []
        # Group chats: tried in order before the default "private chats only" answer.
        self.group_handlers: list[EventHandler] = []
        # Private chats of enrolled people: tried in order before commands and the flow.
        self.private_handlers: list[EventHandler] = []
        self.me_too_candidates: CandidatesHook | None = None
        self.me_too_confirm: ConfirmHook | None = None
        self._locks: weakref.WeakValueDictionary[tuple[str, str], _Lock] = (
            weakref.WeakValueDictionary()
        )
        # Events kept while the database is unreachable, and the events being handled now.
        self.spool = Spool(spool_path(config.database.spool_dir, config.database.url))
        self.inflight = InFlight()
        # Updates whose kept replies (storage.outbox) were sent: forgotten in batches.
        self._delivered: set[tuple[str, str]] = set()
        self._forgetting: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Migrate the schema and mirror the configured teams. Run once at start."""
        await self.db.upgrade()
        async with self.db.transaction() as session:
            await repo.sync_teams(
                session, ((t.id, t.name, t.region, t.language) for t in self.config.teams)
            )

    # --- the one entry point ----------------------------------------------------------

    async def handle(self, incoming: Incoming, deliver: Deliver | None = None) -> list[Outbound]:
        """Process one event; returns what to send. Events of one sender run one at a time.

        With ``deliver`` the replies are sent before the sender's next event is taken
        up (and an empty list is returned), so the replies to quick taps never overtake
        each other and the question on screen is always the current one.

        When the database cannot be reached the event is kept in the spool and the
        sender told so; it is replayed (with its normal replies) once the database
        answers. A sender's later events queue behind their kept ones.
        """
        incoming, screened = _sanitised(incoming)
        key = (incoming.transport, incoming.user_id)
        async with self.inflight.track(), self._lock_for(key):
            kept: list[tuple[str, str]] = []  # updates whose replies the outbox holds
            out = await self._handle_locked(incoming, key, screened, kept)
            if deliver is None:
                self._sent(kept)  # the caller sends them
                return out
            try:
                await deliver(out)
            except Exception:
                # Tried and failed after the router's retries: the outbox is not to send
                # them again (a lost "saved" is told later through on_failed).
                self._sent(kept)
                raise
            # (Cancelled mid-send, they stay kept: the outbox sends them after its grace.)
            self._sent(kept)
            return []

    async def _handle_locked(
        self,
        incoming: Incoming,
        key: tuple[str, str],
        screened: textguard.Screened | None,
        kept: list[tuple[str, str]],
    ) -> list[Outbound]:
        out: list[Outbound] = []
        if self.spool.holds(incoming):
            log.info("duplicate_event_kept transport=%s", incoming.transport)
            return []  # delivered again while kept: the sender was told already
        if self.spool.has(key):
            out, replayed_all = await self._replay_sender(key, kept)
            if not replayed_all:
                return out + await self._keep(incoming)
        try:
            return out + await self._handle(incoming, screened=screened, kept=kept)
        except Exception as error:
            if is_unavailable(error):
                return out + await self._keep(incoming, error)
            log.exception(
                "event_failed transport=%s kind=%s",
                incoming.transport,
                type(incoming.event).__name__,
            )
            return [*out, _error_reply(incoming)]

    def _lock_for(self, key: tuple[str, str]) -> _Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = _Lock()
            self._locks[key] = lock
        return lock

    # --- while the database is unreachable ---------------------------------------------

    async def _keep(self, incoming: Incoming, error: BaseException | None = None) -> list[Outbound]:
        """Spool an event the database could not take and tell the sender it is kept."""
        try:
            await self.spool.add(incoming, self.clock())
        except OSError:
            log.exception("spool_write_failed transport=%s", incoming.transport)
            return [_error_reply(incoming)]
        log.warning(
            "event_spooled transport=%s kind=%s error=%s pending=%d",
            incoming.transport,
            type(incoming.event).__name__,
            type(error).__name__ if error is not None else "queued",
            len(self.spool),
        )
        event = incoming.event
        if not incoming.is_private and not isinstance(event, CommandIn | ChoiceIn):
            return []  # plain talk in a group: nobody is waiting for an answer
        choice = capture.parse_choice(event.data) if isinstance(event, ChoiceIn) else None
        key = "svc.offline_save_kept" if choice and choice[2] == "save" else "svc.offline_kept"
        lang = normalise_language(incoming.language_hint)
        return [Outbound(incoming.transport, incoming.chat_id, Message(t(lang, key)))]

    async def _replay_sender(
        self, key: tuple[str, str], kept: list[tuple[str, str]]
    ) -> tuple[list[Outbound], bool]:
        """Replay a sender's kept events in order (caller holds their lock).

        Returns their replies and whether every kept event was applied; the first one
        the database still cannot take stops the replay and stays kept.
        """
        out: list[Outbound] = []
        while (item := self.spool.first(key)) is not None:
            try:
                replies = await self._handle(item.incoming, now=item.received_at, kept=kept)
            except Exception as error:
                if is_unavailable(error):
                    return out, False
                # Not an outage but a failure of this event: it must not block the queue.
                log.exception(
                    "spool_replay_failed transport=%s kind=%s",
                    item.incoming.transport,
                    type(item.incoming.event).__name__,
                )
                replies = [_error_reply(item.incoming)]
            await self.spool.remove(item)
            log.info(
                "event_replayed transport=%s kind=%s pending=%d",
                item.incoming.transport,
                type(item.incoming.event).__name__,
                len(self.spool),
            )
            out += replies
        return out, True

    async def replay_spool(self, deliver: Callable[[list[Outbound]], Awaitable[None]]) -> bool:
        """Replay every kept event, sender by sender, delivering the replies.

        True when the spool was emptied; False when the database is still unreachable.
        """
        for key in self.spool.keys():
            async with self.inflight.track(), self._lock_for(key):
                kept: list[tuple[str, str]] = []
                out, replayed_all = await self._replay_sender(key, kept)
                if out:
                    try:
                        await deliver(out)
                    except Exception as error:
                        log.warning(
                            "replay_delivery_failed transport=%s error=%s",
                            key[0],
                            type(error).__name__,
                        )
                self._sent(kept)
            if not replayed_all:
                return False
        return True

    async def _handle(
        self,
        incoming: Incoming,
        now: datetime | None = None,
        screened: textguard.Screened | None = None,
        *,
        kept: list[tuple[str, str]],
    ) -> list[Outbound]:
        """One event in one transaction. ``screened``: its text as the guard in ``handle``
        left it (a replayed event from the spool is screened here). Its replies are kept
        in the same transaction until sent (``storage.outbox``; their keys appended to
        ``kept``)."""
        now = now or self.clock()
        screened = screened or _screen(incoming.event)
        hetu_removed = screened is not None and screened.hetu_removed
        try:
            async with self.db.transaction() as session:
                out = await self._in_transaction(session, incoming, now, screened)
                if hetu_removed:  # to tell the writer in their language
                    member = await repo.find_member(session, incoming.transport, incoming.user_id)
                await self._keep_replies(session, incoming, out, kept)
        except _Hold as hold:
            # What the text would have done is undone; it waits for its writer's choice.
            async with self.db.transaction() as session:
                member = hold.member
                turn = _Turn(incoming, member, member.language, now)
                if incoming.event_id is not None:
                    await repo.first_time_seen(session, incoming.transport, incoming.event_id, now)
                out = await self._hold(session, turn, member, hold.screened)
                await self._keep_replies(session, incoming, out, kept)
        if hetu_removed and (out or incoming.is_private):
            # Said where the text was typed, in the writer's language.
            lang = member.language if member else normalise_language(incoming.language_hint)
            notice = Outbound(incoming.transport, incoming.chat_id, textguard.hetu_notice(lang))
            log.info("hetu_removed transport=%s", incoming.transport)
            out = [notice, *out]
        return out

    async def _keep_replies(
        self,
        session: AsyncSession,
        incoming: Incoming,
        out: list[Outbound],
        kept: list[tuple[str, str]],
    ) -> None:
        """Note that the update is owed its answer until it is sent (``storage.outbox``;
        nothing for an event no platform sends again, such as the terminal's)."""
        if await outbox.keep(session, incoming, out, self.clock()):
            kept.append((incoming.transport, incoming.event_id))

    # --- replies whose process did not send them (storage.outbox) ------------------------

    def _sent(self, kept: list[tuple[str, str]]) -> None:
        """These updates' kept replies were sent: forget them within ``FORGET_AFTER_S``
        (one transaction for all sent meanwhile, however many). A process that dies in
        between sends those again after the outbox's grace: a second or so of replies."""
        if not kept:
            return
        self._delivered.update(kept)
        if self._forgetting is None or self._forgetting.done():
            self._forgetting = asyncio.create_task(self._forget_soon())

    async def _forget_soon(self) -> None:
        await asyncio.sleep(FORGET_AFTER_S)
        try:
            await self.forget_delivered()
        except Exception as error:  # kept for the next batch (or the outbox job's)
            log.warning("outbox_forget_failed error=%s", type(error).__name__)

    async def forget_delivered(self) -> int:
        """Drop the kept replies that were sent since the last call (one transaction)."""
        keys, self._delivered = self._delivered, set()
        if keys:
            try:
                async with self.db.transaction() as session:
                    await outbox.forget(session, keys)
            except BaseException:
                self._delivered |= keys
                raise
        return len(keys)

    async def close_outbox(self) -> None:
        """At a stop: forget what was sent before the database closes. The batch due is
        let finish rather than cancelled: a unit of work cut in the middle would leave the
        connection inside its transaction."""
        if self._forgetting is not None and not self._forgetting.done():
            await asyncio.wait({self._forgetting}, timeout=5 * FORGET_AFTER_S)
        await self.forget_delivered()

    async def resend_lost(self, transports: Collection[str], deliver: Deliver) -> int:
        """Answer the updates another process committed and never answered (it died before
        its send), from what the database holds now: the confirmation of the entry the
        update saved, else the question the worker's draft is on, else a line saying the
        answer got lost. The number of updates answered."""
        await self.forget_delivered()
        async with self.db.transaction() as session:
            due = await outbox.take_due(session, transports, self.clock())
        for item in due:
            async with self.db.transaction() as session:
                out = await self._lost_answer(session, item)
            log.info("replies_resent transport=%s count=%d", item.transport, len(out))
            try:
                await deliver(out)
            except Exception as error:
                log.warning(
                    "replies_resend_failed transport=%s error=%s",
                    item.transport,
                    type(error).__name__,
                )
        if due:
            async with self.db.transaction() as session:
                await outbox.forget(session, [(item.transport, item.event_id) for item in due])
        return len(due)

    async def _lost_answer(self, session: AsyncSession, item: outbox.Due) -> list[Outbound]:
        member = await repo.find_member(session, item.transport, item.user_id)
        if member is None or member.revoked:
            return []
        incoming = Incoming(item.transport, item.user_id, item.chat_id, CommandIn("resume"))
        turn = _Turn(incoming, member, member.language, self.clock())
        if item.saved_id is not None:
            entry = await repo.get_observation(session, item.saved_id)
            if entry is not None:
                return [self._saved_late(turn, entry)]
        question = await self._open_question(session, member, turn)
        if question:
            return turn.reply(*question)
        return turn.reply(Message(t(member.language, "svc.reply_lost")))

    async def _in_transaction(
        self,
        session: AsyncSession,
        incoming: Incoming,
        now: datetime,
        screened: textguard.Screened | None,
    ) -> list[Outbound]:
        event = incoming.event
        member = await repo.find_member(session, incoming.transport, incoming.user_id)
        lang = member.language if member else normalise_language(incoming.language_hint)
        turn = _Turn(incoming, member, lang, now)
        if isinstance(event, ChoiceIn) and (guarded := textguard.parse(event.data)):
            return await self._guard_choice(session, turn, *guarded)
        if member is None or member.revoked:
            screened = None  # only what a member types is taken in
        if not incoming.is_private:
            out = await self._group_event(session, turn)
            if out is not None and screened is not None and screened.needs_choice:
                assert member is not None
                raise _Hold(member, screened)
            return out or []
        return await self._private_event(session, turn, screened)

    async def _private_event(
        self, session: AsyncSession, turn: _Turn, screened: textguard.Screened | None
    ) -> list[Outbound]:
        incoming, member, now, lang = turn.incoming, turn.member, turn.now, turn.lang
        event = incoming.event
        if isinstance(event, CommandIn) and event.name == "start":
            if member is not None and not member.revoked:
                # Tapping the invite link again greets; it does not say "code used".
                # A redelivered /start is answered once.
                if incoming.event_id is not None and not await repo.first_time_seen(
                    session, incoming.transport, incoming.event_id, now
                ):
                    return []
                if event.args.strip():
                    # A code for another team or role: the person moves there.
                    return await self._move(session, turn, member, event.args)
                return turn.reply(Message(self._welcome(member)))
            return await self._start(session, turn, event.args)
        if member is None:
            log.info("unenrolled_contact transport=%s", incoming.transport)
            return turn.reply(Message(t(lang, "svc.not_enrolled")))
        if member.revoked:
            log.info("revoked_contact person=%s", member.person_id)
            return turn.reply(Message(t(lang, "svc.revoked")))
        if incoming.event_id is not None and not await repo.first_time_seen(
            session, incoming.transport, incoming.event_id, now
        ):
            log.info("duplicate_event person=%s", member.person_id)
            return []
        # Both usually change nothing: skip their statements then (bench/RESULTS-earlier.md).
        if not repo.touched_today(member, now):
            await repo.touch_person(session, member.person_id, now)
        if member.chat_id != incoming.chat_id:
            await repo.update_chat(session, incoming.transport, incoming.user_id, incoming.chat_id)
        late = await self._late_confirmations(session, turn, member)
        if screened is not None and screened.needs_choice:
            # Whatever it is meant for, a private text is always taken in.
            return late + await self._hold(session, turn, member, screened)
        return late + await self._dispatch_private(session, turn, member)

    async def _dispatch_private(
        self, session: AsyncSession, turn: _Turn, member: repo.Member
    ) -> list[Outbound]:
        incoming, event = turn.incoming, turn.incoming.event
        for handler in self.private_handlers:
            handled = await handler(session, incoming, member, turn.now)
            if handled is not None:
                return handled
        if isinstance(event, CommandIn) and event.name in capture.CANCEL_COMMANDS:
            # Cancelling drops a text waiting for the remove / keep / rewrite answer too.
            await held.drop_held(session, member.person_id)
        if isinstance(event, CommandIn) and event.name not in FLOW_COMMANDS:
            return await self._command(session, turn, member, event)
        if isinstance(event, ChoiceIn) and not event.data.startswith(capture.CHOICE_PREFIX + ":"):
            return await self._service_choice(session, turn, member, event.data)
        return await self._run_flow(session, turn, member)

    # --- the identifier guard ------------------------------------------------------------

    async def _hold(
        self,
        session: AsyncSession,
        turn: _Turn,
        member: repo.Member,
        screened: textguard.Screened,
    ) -> list[Outbound]:
        """Keep a text with identifiers until its writer says what to do with them."""
        incoming = turn.incoming
        event = incoming.event
        row = await held.hold_text(
            session,
            person_id=member.person_id,
            transport=incoming.transport,
            user_id=incoming.user_id,
            chat_id=incoming.chat_id,
            is_private=incoming.is_private,
            reply_to=incoming.reply_to,
            command=event.name if isinstance(event, CommandIn) else None,
            text=screened.text,
            created_at=turn.now,
        )
        kinds = "+".join(screened.kinds)  # "address+name": a token the log check accepts
        log.info("text_held person=%s held=%s kinds=%s", member.person_id, row.id, kinds)
        return turn.reply(textguard.question(member.language, row.id, screened.kinds))

    async def _guard_choice(
        self, session: AsyncSession, turn: _Turn, choice: str, held_id: int
    ) -> list[Outbound]:
        """The writer's answer about a held text: run its event with the chosen text."""
        member = turn.member
        if member is None or member.revoked:
            return [self.alert(turn.incoming, member, t(turn.lang, "flow.stale_button"))]
        if turn.incoming.event_id is not None and not await repo.first_time_seen(
            session, turn.incoming.transport, turn.incoming.event_id, turn.now
        ):
            return []
        row = await held.take_held(session, held_id, member.person_id)
        if row is None or (row.transport, row.chat_id) != (
            turn.incoming.transport,
            turn.incoming.chat_id,
        ):
            return [self.alert(turn.incoming, member, t(turn.lang, "flow.stale_button"))]
        text = textguard.resolve(choice, row.text, member.language)
        log.info("text_released person=%s held=%s choice=%s", member.person_id, held_id, choice)
        if text is None:
            if not row.is_private:
                return [self.alert(turn.incoming, member, t(member.language, "privacy.dropped"))]
            question = await self._open_question(session, member, turn)
            return turn.reply(textguard.dropped(member.language), *question)
        event: TextIn | CommandIn = (
            TextIn(text) if row.command is None else CommandIn(row.command, text)
        )
        released = Incoming(
            transport=row.transport,
            user_id=row.user_id,
            chat_id=row.chat_id,
            event=event,
            is_private=row.is_private,
            reply_to=row.reply_to,
            language_hint=turn.incoming.language_hint,
        )
        again = _Turn(released, member, member.language, turn.now)
        if not released.is_private:
            return await self._group_event(session, again) or []
        return await self._dispatch_private(session, again, member)

    @staticmethod
    def alert(incoming: Incoming, member: repo.Member | None, text: str) -> Outbound:
        """A short answer for the person who pressed a button, and for nobody else: in
        their private chat on a platform without pop-up answers (nowhere when unknown)."""
        if incoming.is_private:
            chat = incoming.chat_id
        else:
            chat = member.chat_id if member is not None and not member.revoked else ""
        return Outbound(incoming.transport, chat, Alert(text))

    # --- confirmations that did not get through -------------------------------------------

    async def _late_confirmations(
        self, session: AsyncSession, turn: _Turn, member: repo.Member
    ) -> list[Outbound]:
        out: list[Outbound] = []
        if not member.confirmations_pending:
            return out
        for entry in await held.take_pending_confirmations(session, member.person_id):
            out.append(self._saved_late(turn, entry))
            log.info("confirmation_delivered_late id=%s", entry.id)
        return out

    def _saved_late(self, turn: _Turn, entry: Observation) -> Outbound:
        when = format_datetime(entry.recorded_at, "HH:mm", tzinfo=self.zone, locale=turn.lang)
        day = format_datetime(entry.recorded_at, "d.M.", tzinfo=self.zone, locale=turn.lang)
        text = t(turn.lang, "svc.saved_late", number=entry.id, time=when, day=day)
        return Outbound(
            turn.incoming.transport,
            turn.incoming.chat_id,
            Message(text),
            {"track": f"saved:{entry.id}"},
        )

    async def on_failed(self, outbound: Outbound, error: BaseException) -> None:
        """A reply the platform did not take even after retries (``Router.failed_hooks``)."""
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if kind != "saved" or not number.isdecimal():
            return
        async with self.db.transaction() as session:
            await held.add_pending_confirmation(session, int(number), self.clock())
        log.warning("confirmation_undelivered id=%s error=%s", number, type(error).__name__)

    async def language_of(self, transport: str, user_id: str) -> str:
        """The language a person on a transport is answered in (Finnish when unknown)."""
        async with self.db.transaction() as session:
            member = await repo.find_member(session, transport, user_id)
        return member.language if member is not None else normalise_language(None)

    # --- enrolment ---------------------------------------------------------------------

    async def _start(self, session: AsyncSession, turn: _Turn, code: str) -> list[Outbound]:
        incoming, member = turn.incoming, turn.member
        if member is not None and member.revoked:
            # A revoked account stays revoked, whatever code it sends (the code is not
            # looked at, so it stays unused): only an administrator restores it.
            log.info("enrolment_refused reason=revoked person=%s", member.person_id)
            return turn.reply(Message(t(turn.lang, "svc.revoked_start")))
        if not code.strip():
            if member is not None:
                return turn.reply(Message(self._welcome(member)))
            return turn.reply(Message(t(turn.lang, "svc.not_enrolled")))
        transport, user_id = incoming.transport, incoming.user_id
        until = await enrolment_guard.locked_until(session, transport, user_id, turn.now)
        if until is not None:
            # Refused without looking at the code: a valid one stays valid for later.
            log.info("enrolment_refused reason=locked transport=%s", transport)
            return turn.reply(self._locked(turn, until))
        try:
            enrolled = await repo.redeem_invite(
                session,
                code,
                transport,
                user_id,
                incoming.chat_id,
                turn.lang,
                turn.now,
            )
        except repo.EnrolmentError as error:
            if error.reason == "already" and member is not None:
                return turn.reply(Message(self._welcome(member)))
            if error.reason == "already":  # enrolled meanwhile, by another instance
                return turn.reply(Message(t(turn.lang, "svc.invite_already")))
            log.info("enrolment_refused reason=%s", error.reason)
            key = "svc.revoked_start" if error.reason == "revoked" else f"svc.invite_{error.reason}"
            refusal = Message(t(turn.lang, key))
            # Every refused code counts, a valid one for a revoked person included.
            until = await enrolment_guard.record_failure(session, transport, user_id, turn.now)
            if until is None:
                return turn.reply(refusal)
            log.warning(
                "enrolment_locked transport=%s failures=%d minutes=%d",
                transport,
                enrolment_guard.MAX_FAILURES,
                enrolment_guard.LOCKOUT // timedelta(minutes=1),
            )
            return turn.reply(refusal, self._locked(turn, until))
        await enrolment_guard.clear(session, transport, user_id)
        log.info("enrolled person=%s role=%s", enrolled.person_id, enrolled.role)
        if incoming.event_id is not None:
            # Now a member: a redelivery of this very update is recognised as one.
            await repo.first_time_seen(session, incoming.transport, incoming.event_id, turn.now)
        welcome = Message(self._welcome(enrolled))
        question = self.area_question(enrolled, enrolled.language)
        if question is not None and enrolled.default_area is None:
            # Asked once, here: the answer fills every new draft (/alue changes it).
            welcome = Message(f"{welcome.text}\n\n{question.text}", question.choices)
        return turn.reply(welcome)

    async def _move(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, code: str
    ) -> list[Outbound]:
        """``/start CODE`` from someone enrolled: a code for another team or role moves
        them there (the terminal's demo user to a real team, a worker changing teams)."""
        transport, user_id, lang = turn.incoming.transport, turn.incoming.user_id, turn.lang
        until = await enrolment_guard.locked_until(session, transport, user_id, turn.now)
        if until is not None:
            log.info("move_refused reason=locked person=%s", member.person_id)
            return turn.reply(self._locked(turn, until))
        try:
            moved = await repo.move_with_invite(session, code, member, turn.now)
        except repo.EnrolmentError as error:
            log.info("move_refused reason=%s person=%s", error.reason, member.person_id)
            if error.reason == "used":  # most likely their own invite link, tapped again
                return turn.reply(Message(self._welcome(member)))
            if error.reason == "same":
                text = t(
                    lang,
                    "svc.move_same",
                    team=self._team_name(member.team_id),
                    role=self._role_name(member.role, lang),
                )
                return turn.reply(Message(text))
            if error.reason == "link":
                return turn.reply(Message(t(lang, "svc.invite_link")))
            if error.reason == "revoked":
                return turn.reply(Message(t(lang, "svc.revoked_start")))
            stays = t(lang, "svc.move_stays", team=self._team_name(member.team_id))
            refusal = Message(f"{t(lang, f'svc.invite_{error.reason}')} {stays}")
            until = await enrolment_guard.record_failure(session, transport, user_id, turn.now)
            return turn.reply(refusal, *([self._locked(turn, until)] if until else []))
        await enrolment_guard.clear(session, transport, user_id)
        await self._fit_draft(session, moved)
        log.info("moved person=%s role=%s", moved.person_id, moved.role)
        text = t(
            lang,
            "svc.moved",
            old=self._team_name(member.team_id),
            team=self._team_name(moved.team_id),
            role=self._role_name(moved.role, lang),
        )
        return turn.reply(Message(text))

    async def _fit_draft(self, session: AsyncSession, member: repo.Member) -> None:
        """An open draft goes on in the new team; an area of the old one is let go."""
        row = await repo.load_draft(session, member.person_id)
        draft = _restore(row.state) if row is not None else None
        if row is None or draft is None or draft.area is None or draft.area.startswith("geo:"):
            return
        team = self.config.team(member.team_id)
        if team is not None and any(area.id == draft.area for area in team.areas):
            return
        await repo.store_draft(
            session,
            member.person_id,
            replace(draft, area=None).to_json(),
            row.transport,
            row.chat_id,
            row.updated_at,
        )

    async def enrol_local_user(self, transport: str, user_id: str, team_id: str) -> str | None:
        """Enrol the terminal's local user into ``team_id`` as a worker. One already
        enrolled stays where they are, unless their team has left the config (the demo
        team, once a config file names the real ones): then they move to ``team_id``.
        Returns what to tell them (None: nothing to tell)."""
        async with self.db.transaction() as session:
            member = await repo.find_member(session, transport, user_id)
            if member is not None and not member.revoked:
                if self.config.team(member.team_id) is not None or member.team_id == team_id:
                    return None
                await repo.move_person(session, member.person_id, team_id)
                moved = replace(member, team_id=team_id)
                await self._fit_draft(session, moved)
                log.info("moved person=%s reason=team_not_configured", member.person_id)
                return t(
                    member.language,
                    "svc.moved_config",
                    old=member.team_id,
                    team=self._team_name(team_id),
                )
        if member is None:
            await self.enrol_directly(transport, user_id, user_id, team_id)
        return None

    def _team_name(self, team_id: str) -> str:
        team = self.config.team(team_id)
        return team.name if team is not None else team_id

    @staticmethod
    def _role_name(role: str, lang: str) -> str:
        return t(lang, f"role.{role}", domain="escalation")

    def _locked(self, turn: _Turn, until: datetime) -> Message:
        """The lockout answer: when to try again (whole minutes, rounded up)."""
        minutes = max(1, math.ceil((until - turn.now) / timedelta(minutes=1)))
        return Message(t(turn.lang, "svc.enrolment_locked", minutes=minutes))

    async def enrol_directly(
        self, transport: str, user_id: str, chat_id: str, team_id: str, role: str = "worker"
    ) -> repo.Member:
        """Enrol an identity without a code (the local terminal user)."""
        async with self.db.transaction() as session:
            member = await repo.find_member(session, transport, user_id)
            if member is not None:
                return member
            invite = await repo.create_invite(
                session, team_id, role, self.clock(), timedelta(minutes=1)
            )
            return await repo.redeem_invite(
                session, invite.code, transport, user_id, chat_id, "fi", self.clock()
            )

    async def create_invite(
        self, team_id: str, role: str, valid_for: timedelta, person_id: int | None = None
    ) -> str:
        if self.config.team(team_id) is None:
            raise ValueError(f"unknown team {team_id!r}")
        async with self.db.transaction() as session:
            invite = await repo.create_invite(
                session, team_id, role, self.clock(), valid_for, person_id
            )
            return invite.code

    def _welcome(self, member: repo.Member) -> str:
        team = self.config.team(member.team_id)
        return t(member.language, "svc.welcome", team=team.name if team else member.team_id)

    # --- group chats ---------------------------------------------------------------------

    async def _group_event(self, session: AsyncSession, turn: _Turn) -> list[Outbound] | None:
        """The replies to an event in a group chat; None when nothing took it in."""
        for handler in self.group_handlers:
            handled = await handler(session, turn.incoming, turn.member, turn.now)
            if handled is not None:
                return handled
        # In team and leadership rooms the bot stays quiet except to say where it works.
        if isinstance(turn.incoming.event, CommandIn):
            return turn.reply(Message(t(turn.lang, "svc.private_only")))
        return None

    # --- commands around the flow ------------------------------------------------------

    async def _command(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, event: CommandIn
    ) -> list[Outbound]:
        name = event.name
        if name in HELP_COMMANDS:
            return turn.reply(
                Message(t(turn.lang, "svc.help", **commands.shown(turn.lang))),
                *await self._open_question(session, member, turn),
            )
        if name in LANGUAGE_COMMANDS:
            choices = tuple(Choice(LANGUAGE_NAMES[code], f"lang:{code}") for code in LANGUAGES)
            return turn.reply(Message(t(turn.lang, "svc.language_ask"), (choices,)))
        if name in OWN_COMMANDS:
            return turn.reply(await self._own_entries(session, member, turn))
        if name in AREA_COMMANDS:
            return turn.reply(
                *await self._area_command(session, member, turn, event.args),
                *await self._open_question(session, member, turn),
            )
        if name in REMINDER_COMMANDS:
            return turn.reply(
                await self._reminder_command(session, member, turn, event.args),
                *await self._open_question(session, member, turn),
            )
        log.info("unknown_command person=%s", member.person_id)
        return turn.reply(
            Message(t(turn.lang, "svc.unknown_command", **commands.shown(turn.lang))),
            *await self._open_question(session, member, turn),
        )

    # --- the default area and the end-of-shift reminder ----------------------------------

    def _areas(self, member: repo.Member) -> tuple[Area, ...]:
        team = self.config.team(member.team_id)
        return tuple(
            Area(a.id, a.name, a.latitude, a.longitude) for a in (team.areas if team else [])
        )

    def area_question(self, member: repo.Member, lang: str) -> Message | None:
        """ "Which area do you usually work in?" with the team's areas; None without areas."""
        areas = self._areas(member)
        if not areas:
            return None
        buttons = [Choice(a.name, f"area:{a.id}") for a in areas]
        buttons.append(Choice(t(lang, "button.no_default_area"), f"area:{NO_AREA}"))
        rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
        return Message(t(lang, "svc.area_ask"), rows)

    async def _area_command(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, args: str
    ) -> list[Reply]:
        question = self.area_question(member, turn.lang)
        if question is None:
            return [Message(t(turn.lang, "svc.area_none_configured"))]
        typed = args.strip().casefold()
        if not typed:
            return [question]
        chosen = next(
            (a for a in self._areas(member) if typed in (a.id.casefold(), a.name.casefold())),
            None,
        )
        if chosen is None and typed in commands.OFF_WORDS:
            return [await self._set_area(session, member, turn, NO_AREA)]
        if chosen is None:
            return [Message(t(turn.lang, "svc.area_unknown")), question]
        return [await self._set_area(session, member, turn, chosen.id)]

    async def _set_area(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, area: str
    ) -> Message:
        await repo.set_default_area(session, member.person_id, area)
        log.info("default_area_set person=%s", member.person_id)
        if area == NO_AREA:
            return Message(t(turn.lang, "svc.area_cleared"))
        name = next((a.name for a in self._areas(member) if a.id == area), area)
        return Message(t(turn.lang, "svc.area_set", area=name))

    async def _reminder_command(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, args: str
    ) -> Message:
        words = commands.shown(turn.lang)
        shown = {"command": words["reminder"], "off": words["off"]}
        typed = args.strip().casefold()
        if not typed:
            current = await repo.get_shift_reminder(session, member.person_id)
            if current is None:
                return Message(t(turn.lang, "svc.reminder_status_off", **shown))
            return Message(t(turn.lang, "svc.reminder_status_on", time=current, **shown))
        if typed in commands.OFF_WORDS:
            await repo.set_shift_reminder(session, member.person_id, None)
            log.info("shift_reminder_off person=%s", member.person_id)
            return Message(t(turn.lang, "svc.reminder_off"))
        at = parse_clock(typed)
        if at is None:
            return Message(t(turn.lang, "svc.reminder_bad_time", **shown))
        await repo.set_shift_reminder(session, member.person_id, at)
        log.info("shift_reminder_on person=%s", member.person_id)
        return Message(t(turn.lang, "svc.reminder_set", time=at, **shown))

    async def remind_shift_end(self) -> list[Outbound]:
        """The end-of-shift prompts due now: one on a working day, at the worker's chosen
        time, when they have logged nothing that day. Claimed in the database first, so a
        second scheduler (another instance) sends nothing more."""
        now = self.clock()
        local = now.astimezone(self.zone)
        if not is_working_day(local.date()):
            return []
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        clock = local.strftime("%H:%M")
        out: list[Outbound] = []
        async with self.db.transaction() as session:
            for person_id, at in await repo.shift_reminder_candidates(session):
                # Due from the chosen time on; a run missed by the scheduler is made up
                # later the same day, never the next.
                if at > clock or await repo.logged_since(session, person_id, day_start):
                    continue
                if not await repo.claim_shift_reminder(session, person_id, day_start, now):
                    continue
                member = await repo.find_member_by_person(session, person_id)
                chat = await repo.first_chat(session, person_id)
                if member is None or member.revoked or chat is None:
                    continue
                words = commands.shown(member.language)
                text = t(
                    member.language,
                    "svc.shift_reminder",
                    command=words["reminder"],
                    off=words["off"],
                )
                out.append(Outbound(chat[0], chat[1], Message(text)))
                log.info("shift_reminded person=%s", person_id)
        return out

    async def _open_question(
        self, session: AsyncSession, member: repo.Member, turn: _Turn
    ) -> list[Reply]:
        row = await repo.load_draft(session, member.person_id)
        if row is None:
            return []
        draft = _restore(row.state)
        return [capture.reprompt(draft, self._ctx(member, turn))] if draft else []

    async def open_question(self, transport: str, user_id: str) -> list[Reply]:
        """The question a person's open draft is on (after a restart of the terminal chat),
        or nothing."""
        async with self.db.transaction() as session:
            member = await repo.find_member(session, transport, user_id)
            if member is None or member.revoked:
                return []
            incoming = Incoming(transport, user_id, member.chat_id, CommandIn("resume"))
            turn = _Turn(incoming, member, member.language, self.clock())
            return await self._open_question(session, member, turn)

    async def _own_entries(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, offset: int = 0
    ) -> Message:
        found = await repo.recent_observations(
            session, member.person_id, limit=own.PAGE + 1, offset=offset
        )
        entries, more = found[: own.PAGE], len(found) > own.PAGE
        positions = await knowledge.positions(session, entries)
        drafts: list[own.OpenDraft] = []
        if offset == 0:
            row = await repo.load_draft(session, member.person_id)
            current = _restore(row.state) if row is not None else None
            if current is not None:
                drafts.append(own.OpenDraft(own.CURRENT, current.description or ""))
            for kept in await repo.kept_drafts(session, member.person_id):
                kept_draft = _restore(kept.state)
                if kept_draft is not None:
                    drafts.append(own.OpenDraft(kept.id, kept_draft.description or ""))
        shown = [
            own.OwnEntry(
                number=entry.id,
                when=format_datetime(
                    entry.observed_at, "d.M. HH:mm", tzinfo=self.zone, locale=turn.lang
                ),
                theme=entry.theme,
                text=entry.description or "",
                editable=self._editable(entry, turn.now),
                position=positions.get(entry.id),
            )
            for entry in entries
        ]
        return own.listing(
            shown, turn.lang, self._window_hours(), tuple(drafts), offset=offset, more=more
        )

    def _window_hours(self) -> str:
        return f"{self.config.flow.edit_window_hours:g}"

    def _editable(self, entry: Observation, now: datetime) -> bool:
        window = timedelta(hours=self.config.flow.edit_window_hours)
        return entry.withdrawn_at is None and now - entry.recorded_at <= window

    # --- buttons outside the flow ------------------------------------------------------

    async def _service_choice(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, data: str
    ) -> list[Outbound]:
        kind, _, rest = data.partition(":")
        if kind == "lang" and rest in LANGUAGES:
            await repo.set_language(session, member.person_id, rest)
            turn.lang = rest
            changed = repo.Member(**{**member.__dict__, "language": rest})
            return turn.reply(
                Message(t(rest, "svc.language_set")),
                *await self._open_question(session, changed, turn),
            )
        if kind == own.PREFIX and (press := own.parse(data)) is not None:
            if press.action in own.LIST_ACTIONS:
                return await self._own_list_action(session, turn, member, press)
            return await self._own_action(session, turn, member, press)
        if kind == "area" and (rest == NO_AREA or rest in {a.id for a in self._areas(member)}):
            return turn.reply(
                await self._set_area(session, member, turn, rest),
                *await self._open_question(session, member, turn),
            )
        # The payload came from the client: log only whether its kind is one of ours.
        known = kind if kind in ("lang", "own", "area") else "unknown"
        log.warning("choice_refused person=%s kind=%s", member.person_id, known)
        return turn.reply(Alert(t(turn.lang, "flow.stale_button")))

    async def _own_list_action(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, press: own.Press
    ) -> list[Outbound]:
        """ "Show older" and "Continue" on the /omat list."""
        if press.action == "more":
            return turn.reply(await self._own_entries(session, member, turn, press.number))
        row = await repo.load_draft(session, member.person_id)
        current = _restore(row.state) if row is not None else None
        ctx = self._ctx(member, turn)
        if press.number == own.CURRENT:
            if current is None:
                return turn.reply(Alert(t(turn.lang, "flow.stale_button")))
            resumed = capture.resume(current, ctx)
        else:
            kept = await repo.take_kept_draft(session, press.number, member.person_id)
            taken = _restore(kept.state) if kept is not None else None
            if taken is None:
                return turn.reply(Alert(t(turn.lang, "flow.stale_button")))
            if current is not None:
                # The one open now is kept aside in its place: nothing is lost, none added.
                await repo.keep_draft(
                    session,
                    member.person_id,
                    current.to_json(),
                    turn.incoming.transport,
                    turn.incoming.chat_id,
                    turn.now,
                )
            resumed = capture.resume(taken, ctx)
        assert resumed.draft is not None
        await self._store(session, turn, member, resumed.draft)
        log.info("draft_resumed person=%s", member.person_id)
        text = capture.short_text(resumed.draft.description)
        return turn.reply(Message(t(turn.lang, "svc.draft_resumed", text=text)), *resumed.replies)

    async def _store(
        self,
        session: AsyncSession,
        turn: _Turn,
        member: repo.Member,
        draft: capture.Draft,
        *,
        new: bool | None = None,
    ) -> None:
        await repo.store_draft(
            session,
            member.person_id,
            draft.to_json(),
            turn.incoming.transport,
            turn.incoming.chat_id,
            turn.now,
            new=new,
        )

    async def _own_action(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, press: own.Press
    ) -> list[Outbound]:
        entry = await repo.get_observation(session, press.number)
        mine = entry is not None and entry.person_id == member.person_id
        found = own.Found(
            mine=mine,
            editable=entry is not None and mine and self._editable(entry, turn.now),
            window_hours=self._window_hours(),
            drafting=press.action == "edit"
            and await repo.load_draft(session, member.person_id) is not None,
        )
        state_key = f"own:withdraw:{member.person_id}"
        pending = own.Pending.from_text(await repo.get_state(session, state_key))
        decision = own.advance(pending, press, turn.lang, secrets.token_hex(3), found)
        if decision.pending != pending:
            await repo.set_state(
                session, state_key, decision.pending.to_text() if decision.pending else ""
            )
        if decision.note in ("not_owner", "unconfirmed"):
            log.warning("choice_refused person=%s reason=%s", member.person_id, decision.note)
        if decision.action == "edit":
            assert entry is not None
            values = {name: getattr(entry, kept) for name, kept in OBSERVATION_FIELDS.items()}
            values["observed_at"] = entry.observed_at.isoformat()
            ctx = self._ctx(member, turn)
            result = capture.from_observation(values, entry.id, ctx)
            assert result.draft is not None
            await self._store(session, turn, member, result.draft)
            return turn.reply(*result.replies)
        if decision.action == "withdraw":
            assert entry is not None
            entry.withdrawn_at = turn.now
            entry.updated_at = turn.now
            log.info("observation_withdrawn id=%s", entry.id)
        return turn.reply(*decision.replies)

    # --- the capture flow ----------------------------------------------------------------

    def _ctx(
        self,
        member: repo.Member,
        turn: _Turn,
        last_codes: tuple[str, str, str] | None = None,
        kept_drafts: int = 0,
        candidates: tuple[Candidate, ...] = (),
    ) -> FlowContext:
        return FlowContext(
            lang=turn.lang,
            now=turn.now,
            areas=self._areas(member),
            nonce=secrets.token_hex(3),
            zone=self.config.timezone,
            default_area=member.default_area,
            last_codes=last_codes,
            kept_drafts=kept_drafts,
            candidates=candidates,
            support_needs=self.config.taxonomy.support_needs,
        )

    async def _flow_ctx(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, draft: capture.Draft | None
    ) -> FlowContext:
        """The context for one flow event. What only a new draft or a new text needs (the
        last entry's codes, the drafts kept aside) is read only then: a tap reads neither."""
        event = turn.incoming.event
        interrupts = (capture.Step.RESUME, capture.Step.NEW_TEXT)
        if draft is None or draft.step in interrupts or isinstance(event, TextIn | CommandIn):
            return self._ctx(
                member,
                turn,
                await repo.last_codes(session, member.person_id),
                await repo.count_kept_drafts(session, member.person_id),
                await self._candidates(session, member, turn, draft),
            )
        return self._ctx(member, turn)

    async def _candidates(
        self, session: AsyncSession, member: repo.Member, turn: _Turn, draft: capture.Draft | None
    ) -> tuple[Candidate, ...]:
        """What a new entry's first text might confirm; read only when that text can come
        (a new draft, or one still waiting for its text) and the worker is in a team."""
        if self.me_too_candidates is None or self.config.team(member.team_id) is None:
            return ()
        event = turn.incoming.event
        text_coming = isinstance(event, TextIn) or (
            isinstance(event, CommandIn)
            and event.name in capture.NEW_COMMANDS
            and bool(event.args.strip())
        )
        waiting = draft is None or (
            draft.step is capture.Step.DESCRIPTION
            and not draft.editing
            and draft.observation_id is None
        )
        if not (text_coming and waiting):
            return ()
        return await self.me_too_candidates(session, member, turn.now)

    async def _run_flow(
        self, session: AsyncSession, turn: _Turn, member: repo.Member
    ) -> list[Outbound]:
        # The draft as a table row, not an ORM object: nothing else in this turn loads it
        # (storage.repo.draft_state).
        state = await repo.draft_state(session, member.person_id)
        draft = _restore(state) if state is not None else None
        event = turn.incoming.event
        if isinstance(event, ChoiceIn):
            pressed = capture.parse_choice(event.data)
            if (
                pressed is not None
                and pressed[2] == "save"
                and (draft is None or draft.key != pressed[0])
            ):
                saved = await held.saved_from_draft(session, member.person_id, pressed[0])
                if saved is not None:
                    # Saved already (its confirmation may not have reached the phone).
                    when = format_datetime(
                        saved.recorded_at, "d.M. HH:mm", tzinfo=self.zone, locale=turn.lang
                    )
                    text = t(turn.lang, "svc.already_saved", number=saved.id, when=when)
                    return turn.reply(Alert(text))
        ctx = await self._flow_ctx(session, member, turn, draft)
        result = capture.advance(draft, event, ctx)
        log.info("flow person=%s note=%s", member.person_id, result.note)
        out = turn.reply(*result.replies)
        if isinstance(result.effect, Save):
            return out + await self._save(session, turn, member, result.effect.draft)
        if isinstance(result.effect, Confirm):
            return out + await self._confirm(session, turn, member, result.effect, ctx)
        if isinstance(result.effect, Keep):
            await repo.keep_draft(
                session,
                member.person_id,
                result.effect.draft.to_json(),
                turn.incoming.transport,
                turn.incoming.chat_id,
                turn.now,
            )
            log.info("draft_kept_aside person=%s", member.person_id)
        if result.draft is None:
            if state is not None:
                await repo.delete_draft(session, member.person_id)
            if isinstance(result.effect, Discard):
                out += turn.reply(*await self._drafts_waiting(session, member, turn))
        elif result.draft != draft:
            # ``new``: whether the read above found no draft (nothing in this turn writes
            # one in between), so store_draft need not find out again.
            await self._store(session, turn, member, result.draft, new=state is None)
        return out

    async def _confirm(
        self,
        session: AsyncSession,
        turn: _Turn,
        member: repo.Member,
        effect: Confirm,
        ctx: FlowContext,
    ) -> list[Outbound]:
        """ "Yes, me too" at capture time: a confirmation instead of a new entry; should its
        target be gone meanwhile, the draft goes on as a new observation."""
        reply = None
        if self.me_too_confirm is not None:
            reply = await self.me_too_confirm(session, member, effect.kind, effect.number, turn.now)
        if reply is None:
            going_on = capture.decline_suggestion(effect.draft, ctx)
            assert going_on.draft is not None
            await self._store(session, turn, member, going_on.draft)
            gone = Message(t(turn.lang, "knowledge.suggest.gone", domain="knowledge"))
            return turn.reply(gone, *going_on.replies)
        await repo.delete_draft(session, member.person_id)
        log.info("me_too_at_capture person=%s kind=%s", member.person_id, effect.kind)
        return turn.reply(reply, *await self._drafts_waiting(session, member, turn))

    async def _drafts_waiting(
        self, session: AsyncSession, member: repo.Member, turn: _Turn
    ) -> list[Reply]:
        """ "You have N drafts waiting: /omat" when the worker has drafts kept aside."""
        count = await repo.count_kept_drafts(session, member.person_id)
        if not count:
            return []
        return [Message(tn(turn.lang, "svc.drafts_waiting", count))]

    async def _save(
        self, session: AsyncSession, turn: _Turn, member: repo.Member, draft: capture.Draft
    ) -> list[Outbound]:
        observed_at = datetime.fromisoformat(draft.observed_at) if draft.observed_at else turn.now
        values = {kept: getattr(draft, name) for name, kept in OBSERVATION_FIELDS.items()}
        values["polarity"] = values["polarity"] or "polarity.problem"
        team = self.config.team(member.team_id)
        if draft.observation_id is not None:
            entry = await repo.get_observation(session, draft.observation_id)
            if entry is None or entry.person_id != member.person_id:
                log.warning("save_refused person=%s reason=not_owner", member.person_id)
                await repo.delete_draft(session, member.person_id)
                return turn.reply(Message(t(turn.lang, "svc.not_yours")))
            if not self._editable(entry, turn.now):
                # The window can close (or the entry be withdrawn) while a correction is open.
                log.info("save_refused person=%s reason=too_old", member.person_id)
                await repo.delete_draft(session, member.person_id)
                return turn.reply(
                    Message(
                        t(turn.lang, "svc.too_old", number=entry.id, hours=self._window_hours())
                    )
                )
            values["population_group"] = draft.group or entry.population_group
            for name, value in values.items():
                setattr(entry, name, value)
            # A corrected entry is coded with today's lists (a support need is 2026.2's).
            entry.taxonomy_version = TAXONOMY_VERSION
            entry.updated_at = turn.now
            await repo.delete_draft(session, member.person_id)
            log.info("observation_updated id=%s", entry.id)
            out = turn.reply(Message(t(turn.lang, "svc.updated", number=entry.id)))
            # A correction can raise the entry (e.g. to a § 48 notification): hooks see it too.
            for hook in self.after_save:
                out += await hook(session, entry, member)
            return out
        entry = await repo.add_observation(
            session,
            person_id=member.person_id,
            team_id=member.team_id,
            region=team.region if team else "",
            observed_at=observed_at,
            recorded_at=turn.now,
            updated_at=turn.now,
            withdrawn_at=None,
            transport=turn.incoming.transport,
            language=turn.lang,
            flow_version=capture.FLOW_VERSION,
            taxonomy_version=TAXONOMY_VERSION,
            draft_key=draft.key,
            **values,
        )
        await repo.delete_draft(session, member.person_id)
        log.info("observation_saved id=%s escalation=%s", entry.id, entry.escalation)
        saved = Message(t(turn.lang, "svc.saved", number=entry.id))
        # Tracked: when the platform does not take it, it is told at the next contact.
        out = [
            Outbound(
                turn.incoming.transport,
                turn.incoming.chat_id,
                saved,
                {"track": f"saved:{entry.id}"},
            )
        ]
        for hook in self.after_save:
            out += await hook(session, entry, member)
        return out + turn.reply(*await self._drafts_waiting(session, member, turn))

    # --- reminders ---------------------------------------------------------------------

    async def remind_idle_drafts(self) -> list[Outbound]:
        """Remind once about each draft left idle longer than the configured time."""
        now = self.clock()
        cutoff = now - timedelta(hours=self.config.flow.draft_reminder_hours)
        out: list[Outbound] = []
        async with self.db.transaction() as session:
            for row in await repo.idle_drafts(session, cutoff):
                if not await repo.claim_draft_reminder(session, row.person_id, now):
                    continue  # another instance reminded this worker already
                member = await repo.find_member_by_person(session, row.person_id, row.transport)
                draft = _restore(row.state)
                if member is None or member.revoked or draft is None:
                    continue
                turn = _Turn(
                    Incoming(row.transport, "", row.chat_id, CommandIn("remind")),
                    member,
                    member.language,
                    now,
                )
                question = capture.reprompt(draft, self._ctx(member, turn))
                out += turn.reply(Message(t(member.language, "svc.draft_reminder")), question)
                log.info("draft_reminded person=%s", row.person_id)
        return out


class _Lock:
    """An asyncio lock that can live in a WeakValueDictionary."""

    def __init__(self) -> None:
        import asyncio

        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def parse_clock(typed: str) -> str | None:
    """``16:00``, ``16.30``, ``klo 16``, ``16`` -> ``"16:00"``; None when it is no time."""
    match = _CLOCK_TIME.match(typed.strip().casefold())
    if match is None:
        return None
    hour, minute = int(match[1]), int(match[2] or 0)
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def clean_text(text: str) -> str:
    """Text as it can be stored and sent back: no NUL (PostgreSQL text cannot hold it; found
    by the fuzz test) and no lone surrogate (a platform can deliver one in JSON, but no
    reply containing it can be encoded again)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _sanitised(incoming: Incoming) -> tuple[Incoming, textguard.Screened | None]:
    """The event as it may enter: clean text, and no personal identity code in it.

    Returns the event and its screened text (None for an event without free text).
    Runs before anything else sees the event (the spool on disk included), for every
    sender and every chat."""
    event = incoming.event
    if isinstance(event, TextIn):
        screened = textguard.screen(clean_text(event.text))
        if screened.text != event.text:
            incoming = replace(incoming, event=TextIn(screened.text))
        return incoming, screened
    if isinstance(event, CommandIn):
        screened = textguard.screen(clean_text(event.args))
        name = clean_text(event.name)
        if screened.text != event.args or name != event.name:
            incoming = replace(incoming, event=CommandIn(name, screened.text))
        return incoming, screened
    if isinstance(event, ChoiceIn) and (data := clean_text(event.data)) != event.data:
        return replace(incoming, event=ChoiceIn(data)), None
    return incoming, None


def _screen(event: object) -> textguard.Screened | None:
    """The event's free text after the guard (hetus are gone already), or None."""
    if isinstance(event, TextIn):
        return textguard.screen(event.text)
    if isinstance(event, CommandIn) and event.args:
        return textguard.screen(event.args)
    return None


def _error_reply(incoming: Incoming) -> Outbound:
    lang = normalise_language(incoming.language_hint)
    return Outbound(incoming.transport, incoming.chat_id, Message(t(lang, "svc.error")))


def _restore(state: dict[str, object]) -> capture.Draft | None:
    try:
        return capture.Draft.from_json(dict(state))
    except (TypeError, ValueError):
        log.warning("draft_unreadable")
        return None
