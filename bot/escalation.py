"""Notices of a grievance (valvontalaki § 29, formerly SHL § 48) and leaders' answers:
the I/O around ``flows.escalation``.

What the desk does, and every decision it takes, is in ``flows.escalation``: the
notice, who may press what where, the reply windows, the relays between the
leadership channel and the reporter, the reminders. This module is its host: for
each event it loads the notice's conversation (``storage.escalations``), calls
``advance``, carries out the effects in the event's one transaction and hands back
the replies to send. When a claim finds that somebody was first (two leaders pressing
at once, two bot processes), it loads the state again and asks once more.

The notice is posted at once when a worker saves an escalated entry (the
``after_save`` hook), on every transport of the leadership channel responsible for
the team. A notice whose post failed is tried again within seconds, and by the
periodic ``check`` after that; ``check`` also posts the reminders. Both are claimed
with conditional updates, so several bot processes on one database never post the
same notice or reminder twice.

Leaders' texts arrive as *replies* to the bot's prompts (Telegram
``reply_to_message``; ``Incoming.reply_to``): what a bot in a group with Telegram's
privacy mode receives anyway, and a reply names its prompt, so two leaders answering
two notices at once never mix up. On a transport that cannot tell what a message
replies to, the leader's next message in that channel within
``escalation.reply_window_minutes`` counts instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config, LeadershipChannelConfig
from bot.router import Router
from bot.service import Clock, Havainto
from flows import escalation as desk
from flows.capture import Area, FlowContext, area_label
from flows.events import ChoiceIn, Incoming, Message, Outbound, TextIn
from flows.privacy import scrub
from flows.statuses import ACKNOWLEDGED
from storage import escalations as esc
from storage import repo
from storage.db import Database
from storage.models import Identity, Notification, Observation, Person, Relay

log = logging.getLogger("havainto.escalation")

PREFIX = desk.PREFIX
NOTICE_LEASE = timedelta(minutes=2)  # a claimed notice whose poster died goes again after this
# A first post that failed (after the router's own retries) is tried again after these
# pauses, by whichever instance claims it first; then the periodic check takes over.
NOTICE_RETRY_PAUSES = (2.0, 5.0, 10.0, 20.0)
# How often one event is tried on a freshly loaded state after losing a race.
ATTEMPTS = 3
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class EscalationDesk:
    """Everything around escalated entries; ``install`` hooks it into the service and router."""

    def __init__(self, config: Config, db: Database, router: Router, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.router = router
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        self.retry_pauses = NOTICE_RETRY_PAUSES
        self._retries: set[asyncio.Task[None]] = set()

    def install(self, service: Havainto) -> None:
        service.after_save.append(self.on_saved)
        service.group_handlers.append(self.on_group_event)
        service.private_handlers.append(self.on_private_event)
        self.router.sent_hooks.append(self.on_sent)
        self.router.failed_hooks.append(self.on_failed)

    async def close(self) -> None:
        """Stop the quick retries of failed notices (the periodic check still covers them)."""
        for task in list(self._retries):
            task.cancel()
        if self._retries:
            await asyncio.gather(*self._retries, return_exceptions=True)

    # --- configuration, as the desk sees it ----------------------------------------------

    @property
    def rules(self) -> desk.Rules:
        settings = self.config.escalation
        return desk.Rules(
            reply_window=timedelta(minutes=settings.reply_window_minutes),
            reminder_hours=settings.reminder_hours,
            zone=self.config.timezone,
            acknowledge_days=settings.acknowledge_days,
            measures_days=settings.measures_days,
        )

    def channel_for_team(self, team_id: str) -> LeadershipChannelConfig | None:
        team = self.config.team(team_id)
        if team is None or not team.leadership:
            return None
        return self.config.leadership_channel(team.leadership)

    @staticmethod
    def _leadership(channel: LeadershipChannelConfig | None) -> desk.Leadership | None:
        if channel is None:
            return None
        chats = tuple(channel.chat_targets())
        return desk.Leadership(channel.id, channel.name, channel.region, channel.language, chats)

    def _language_at(self, transport: str, chat_id: str) -> str:
        channel = self.config.leadership_at(transport, chat_id)
        return channel.language if channel else "fi"

    def _channel_language(self, channel_id: str) -> str:
        channel = self.config.leadership_channel(channel_id)
        return channel.language if channel else "fi"

    def _place(self, incoming: Incoming, member: repo.Member | None) -> desk.Place:
        if incoming.is_private:
            language = member.language if member else "fi"
        else:
            language = self._language_at(incoming.transport, incoming.chat_id)
        return desk.Place(incoming.transport, incoming.chat_id, language, incoming.is_private)

    def _actor(self, member: repo.Member | None, place: desk.Place) -> desk.Actor:
        if member is None:
            return desk.Actor(language=place.language)
        return desk.Actor(
            person=member.person_id,
            role=member.role,
            revoked=member.revoked,
            language=member.language,
            chat=member.chat_id,
            channel=self._leadership(self.channel_for_team(member.team_id)),
        )

    # --- the notice ------------------------------------------------------------------------

    def notice(
        self,
        entry: Observation,
        lang: str,
        *,
        reporter: str | None = None,
        status: str = "open",
        status_text: str | None = None,
        acknowledged: str | None = None,
        reminder_hours: float | None = None,
    ) -> Message:
        """The channel message about an escalated entry (``flows.escalation.notice``)."""
        team = self.config.team(entry.team_id)
        area: str | None = None
        if entry.area:
            areas = tuple(Area(a.id, a.name) for a in (team.areas if team else []))
            area = area_label(entry.area, FlowContext(lang, entry.observed_at, areas))
        facts = desk.NoticeFacts(
            number=entry.id,
            escalation=entry.escalation,
            team=team.name if team else entry.team_id,
            codes=(entry.theme, entry.population_group, entry.signal),
            observed=desk.when(entry.observed_at, self.config.timezone, lang),
            # Read back out of storage: scrubbed like every read-out (rows older than
            # the guard).
            description=scrub(entry.description or "-"),
            area=area,
            action=scrub(entry.action) if entry.action else None,
            reporter=reporter,
            status=status,
            status_text=scrub(status_text) if status_text else None,
            acknowledged=acknowledged,
            reminder_hours=reminder_hours,
        )
        return desk.notice(facts, lang)

    async def _render(
        self,
        session: AsyncSession,
        entry: Observation,
        state: desk.Notice,
        lang: str,
        reminder: float | None = None,
    ) -> Message:
        """The notice as ``state`` has it, in ``lang``."""
        reporter: str | None = None
        if self.config.escalation.show_reporter:
            member = await repo.find_member_by_person(session, entry.person_id)
            reporter = member.pseudonym if member else None
        acknowledged: str | None = None
        if (ack := state.acknowledged) is not None:
            by = None
            if ack.person is not None:
                by = await repo.find_member_by_person(session, ack.person)
            acknowledged = desk.acknowledged_line(
                lang,
                ack.at,
                self.config.timezone,
                by.role if by else None,
                by.pseudonym if by else None,
            )
        return self.notice(
            entry,
            lang,
            reporter=reporter,
            status=state.status,
            status_text=state.status_text,
            acknowledged=acknowledged,
            reminder_hours=reminder,
        )

    async def _edits(
        self,
        session: AsyncSession,
        entry: Observation,
        state: desk.Notice,
        posts: Iterable[desk.Post],
    ) -> list[Outbound]:
        out: list[Outbound] = []
        for post in posts:
            message = await self._render(session, entry, state, post.language)
            out.append(Outbound(post.transport, post.chat_id, message, {"edit": post.ref or ""}))
        return out

    async def refresh_notices(self, session: AsyncSession, entry: Observation) -> list[Outbound]:
        """Edits that bring every posted notice of the entry up to date (after the entry
        itself changed, e.g. a correction)."""
        state = await self.load(session, entry)
        return await self._edits(session, entry, state, state.editable_posts())

    # --- the conversation's state ----------------------------------------------------------

    async def load(self, session: AsyncSession, entry: Observation) -> desk.Notice:
        """The conversation about ``entry`` as storage and the config have it now."""
        rows = await esc.notifications_for(session, entry.id)
        relays = await esc.relays_for(session, entry.id)
        status, status_text = await esc.latest_status(session, entry.id)
        first = next((r for r in rows if r.acknowledged_at is not None), None)
        acknowledged = None
        if first is not None and first.acknowledged_at is not None:
            acknowledged = desk.Acknowledgement(first.acknowledged_by, first.acknowledged_at)
        team = self.config.team(entry.team_id)
        return desk.Notice(
            number=entry.id,
            escalation=entry.escalation,
            reporter_person=entry.person_id,
            reporter=await self._reporter(session, entry),
            responsible=self._leadership(self.channel_for_team(entry.team_id)),
            team_region=team.region if team else None,
            posts=tuple(self._post(row) for row in rows),
            acknowledged=acknowledged,
            status=status,
            status_text=status_text,
            windows=tuple(self._window(r) for r in relays if r.answered_at is None),
            questions=tuple(
                desk.Question(
                    r.id, r.transport, r.chat_id, self._language_at(r.transport, r.chat_id)
                )
                for r in relays
                if r.kind == "question" and r.answered_at is not None
            ),
            withdrawn=entry.withdrawn_at is not None,
            measures_reminded=any(r.measures_reminded_at is not None for r in rows),
        )

    def _post(self, row: Notification) -> desk.Post:
        return desk.Post(
            id=row.id,
            transport=row.transport,
            chat_id=row.chat_id,
            kind=row.kind,
            channel=row.channel,
            language=self._channel_language(row.channel),
            ref=row.message_ref,
            sent_at=row.sent_at,
            last_reminded=row.last_reminded_at,
            reminders=row.reminders,
        )

    @staticmethod
    def _window(row: Relay) -> desk.Window:
        return desk.Window(
            id=row.id,
            kind=cast(desk.WindowKind, row.kind),
            person=row.person_id,
            transport=row.transport,
            chat_id=row.chat_id,
            opened=row.created_at,
            status=row.status,
            prompt_ref=row.prompt_ref,
            question=row.parent_id,
        )

    async def _reporter(self, session: AsyncSession, entry: Observation) -> desk.Contact | None:
        """The reporter's private chat: on the transport of the entry when they still use it."""
        person = await session.get(Person, entry.person_id)
        if person is None or person.revoked_at is not None:
            return None
        identity = (
            (
                await session.execute(
                    select(Identity)
                    .where(Identity.person_id == person.id)
                    .order_by(Identity.transport != entry.transport, Identity.id)
                )
            )
            .scalars()
            .first()
        )
        if identity is None:
            return None
        return desk.Contact(identity.transport, identity.chat_id, person.language)

    # --- one event: load, advance, store, hand back the replies ----------------------------

    async def run(
        self, session: AsyncSession, number: int | None, event: desk.Event, now: datetime
    ) -> list[Outbound] | None:
        """``event`` on the conversation about entry ``number``; the replies to send, or
        None when the event is not the desk's business."""
        out: list[Outbound] = []
        lost = False
        for _ in range(ATTEMPTS):
            entry = await repo.get_observation(session, number) if number is not None else None
            state = await self.load(session, entry) if entry is not None else None
            step = desk.advance(state, event, now, self.rules)
            if not step.handled:
                return out if lost else None
            done, sent = await self._store(session, entry, step, now)
            out += sent
            if done:
                return out
            lost = True  # somebody was first: ask again on what is stored now
            log.info("escalation_race_lost id=%s", number)
        return out

    async def _store(
        self, session: AsyncSession, entry: Observation | None, step: desk.Step, now: datetime
    ) -> tuple[bool, list[Outbound]]:
        """Carry out ``step``'s effects in order; False (and what was done) on a lost claim."""
        out: list[Outbound] = []
        for effect in step.effects:
            if isinstance(effect, desk.Send):
                out.append(effect.outbound)
            elif isinstance(effect, desk.Note):
                names = "".join(f" {name}=%s" for name, _ in effect.fields)
                log.log(LEVELS[effect.level], effect.event + names, *(v for _, v in effect.fields))
            else:
                assert entry is not None and step.state is not None
                if not await self._write(session, entry, step.state, effect, now, out):
                    return False, out
        return True, out

    async def _write(
        self,
        session: AsyncSession,
        entry: Observation,
        state: desk.Notice,
        effect: desk.Effect,
        now: datetime,
        out: list[Outbound],
    ) -> bool:
        """One effect that touches storage (and the replies it makes); False: lost claim."""
        if isinstance(effect, desk.Acknowledge):
            if not await esc.acknowledge(session, entry.id, effect.person, now):
                return False
            await esc.add_event(session, entry.id, ACKNOWLEDGED, now, effect.person)
        elif isinstance(effect, desk.SetStatus):
            await esc.add_event(session, entry.id, effect.status, now, effect.person, effect.text)
            await esc.acknowledge(session, entry.id, effect.person, now)
        elif isinstance(effect, desk.CloseWindow):
            return await esc.close_relay(session, effect.window, now)
        elif isinstance(effect, desk.OpenWindow):
            window = effect.window
            relay = await esc.open_relay(
                session,
                observation_id=entry.id,
                kind=window.kind,
                status=window.status,
                person_id=window.person,
                transport=window.transport,
                chat_id=window.chat_id,
                now=window.opened,
                parent_id=window.question,
            )
            if (prompt := effect.prompt_for(relay.id)) is not None:
                log.info(
                    "escalation_prompt id=%s kind=%s relay=%s", entry.id, window.kind, relay.id
                )
                out.append(prompt)
        elif isinstance(effect, desk.Remind):
            post = effect.post
            if not await esc.claim_reminder(session, post.id, post.reminders, now):
                return False
            message = await self._render(session, entry, state, post.language, effect.hours)
            out.append(Outbound(post.transport, post.chat_id, message))
            log.info(
                "escalation_reminded id=%s notice=%s count=%s",
                entry.id,
                post.id,
                post.reminders + 1,
            )
        elif isinstance(effect, desk.RemindMeasures):
            if not await esc.claim_measures_reminder(session, entry.id, now):
                return False
        elif isinstance(effect, desk.AddPost):
            post = effect.post
            row = await esc.add_notification(
                session,
                entry.id,
                post.channel,
                post.kind,
                post.transport,
                post.chat_id,
                now,
                effect.send,
            )
            if effect.send:
                message = await self._render(session, entry, state, post.language)
                meta = {"track": f"notice:{row.id}", "first": "1"}
                out.append(Outbound(post.transport, post.chat_id, message, meta))
        elif isinstance(effect, desk.Refresh):
            out += await self._edits(session, entry, state, effect.posts)
        return True

    # --- saving an escalated entry, and how its posts fared ---------------------------------

    async def on_saved(
        self, session: AsyncSession, entry: Observation, member: repo.Member
    ) -> list[Outbound]:
        if not desk.escalated(entry.escalation):
            return []  # most entries: nothing to load
        worker = desk.Place(entry.transport, member.chat_id, member.language, private=True)
        event = desk.Escalate(frozenset(self.router.transports), worker)
        return await self.run(session, entry.id, event, self.clock()) or []

    async def on_sent(self, outbound: Outbound, ref: str | None) -> None:
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if not number.isdigit():
            return
        told: list[Outbound] = []
        async with self.db.transaction() as session:
            if kind == "notice":
                now = self.clock()
                first = await esc.mark_notification_sent(session, int(number), ref, now)
                if first is not None:
                    told = await self.run(session, first, desk.Delivered(first=True), now) or []
            elif kind == "relay":
                await esc.set_prompt_ref(session, int(number), ref)
        await self._send_all(told, "escalation_worker_untold")

    async def on_failed(self, outbound: Outbound, error: BaseException) -> None:
        """A notice the platform did not take: free its claim, tell the worker it is on its
        way (on the first post), and try again within seconds."""
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if kind != "notice" or not number.isdigit():
            return
        first = bool(outbound.meta.get("first"))
        told: list[Outbound] = []
        async with self.db.transaction() as session:
            await esc.release_notification(session, int(number))
            notice = await session.get(Notification, int(number))
            if notice is not None and first:
                event = desk.Undelivered(first=True)
                told = await self.run(session, notice.observation_id, event, self.clock()) or []
        log.warning("escalation_post_failed notice=%s error=%s", number, type(error).__name__)
        await self._send_all(told, "escalation_worker_untold")
        if first:
            task = asyncio.create_task(self._retry_unsent())
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _retry_unsent(self) -> None:
        for pause in self.retry_pauses:
            await asyncio.sleep(pause)
            try:
                if await self.repost_unsent() == 0:
                    return
            except Exception:
                log.exception("escalation_retry_failed")

    # --- leadership channels and the reporter's private chat --------------------------------

    async def on_group_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        event = incoming.event
        place = self._place(incoming, member)
        if isinstance(event, ChoiceIn) and event.data.startswith(PREFIX + ":"):
            if incoming.event_id is not None and not await repo.first_time_seen(
                session, incoming.transport, incoming.event_id, now
            ):
                return []
            press = desk.parse(event.data)
            number = await self._entry_of(session, press)
            pressed = desk.Pressed(press, self._actor(member, place), place)
            return await self.run(session, number, pressed, now) or []
        if isinstance(event, TextIn) and member is not None:
            relay = await esc.find_awaited_reply(
                session,
                incoming.transport,
                incoming.chat_id,
                member.person_id,
                incoming.reply_to,
                self.rules.open_since(now),
                ("status", "question"),
            )
            if relay is None:
                return None  # ordinary talk in the channel: not the bot's business
            typed = desk.Typed(event.text, self._actor(member, place), place, incoming.reply_to)
            return await self.run(session, relay.observation_id, typed, now)
        return None

    async def on_private_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        if member is None:
            return None
        event = incoming.event
        place = self._place(incoming, member)
        if isinstance(event, ChoiceIn) and event.data.startswith(PREFIX + ":"):
            press = desk.parse(event.data)
            number = (
                await self._entry_of(session, press) if press and press.action == "ans" else None
            )
            pressed = desk.Pressed(press, self._actor(member, place), place)
            return await self.run(session, number, pressed, now) or []
        if isinstance(event, TextIn):
            pending = await esc.pending_answer(
                session, member.person_id, self.rules.open_since(now)
            )
            if pending is None:
                return None
            typed = desk.Typed(event.text, self._actor(member, place), place)
            return await self.run(session, pending.observation_id, typed, now)
        return None

    @staticmethod
    async def _entry_of(session: AsyncSession, press: desk.Press | None) -> int | None:
        """The entry a press is about: named by the button, or by the relay it names."""
        if press is None:
            return None
        if press.action in ("nt", "ans"):
            relay = await esc.get_relay(session, press.number)
            return relay.observation_id if relay is not None else None
        return press.number if repo.is_row_id(press.number) else None

    # --- the scheduled check -----------------------------------------------------------------

    async def check(self) -> int:
        """Re-post notices that never got through and remind about unacknowledged § 29 notices.

        Returns how many messages were attempted.
        """
        now = self.clock()
        here = list(self.router.transports)  # several instances: each posts on its own
        tick = desk.Tick(frozenset(here))
        out: list[Outbound] = []
        async with self.db.transaction() as session:
            for row in await esc.claim_unsent_notifications(session, now, NOTICE_LEASE, here):
                out += await self._repost(session, row)
            numbers = set(await esc.reminder_candidates(session, desk.REMINDED, here))
            posted_before = now - timedelta(days=self.rules.measures_days)
            numbers |= set(
                await esc.measures_candidates(session, desk.REMINDED, posted_before, here)
            )
            for number in sorted(numbers):
                out += await self.run(session, number, tick, now) or []
        return await self._send_all(out)

    async def repost_unsent(self) -> int:
        """Post the notices that never got through; returns how many were tried."""
        here = list(self.router.transports)
        async with self.db.transaction() as session:
            rows = await esc.claim_unsent_notifications(session, self.clock(), NOTICE_LEASE, here)
            out = [o for row in rows for o in await self._repost(session, row)]
        return await self._send_all(out)

    async def _send_all(self, out: list[Outbound], failure: str = "escalation_send_failed") -> int:
        for outbound in out:
            try:
                await self.router.send_retrying(outbound)
            except Exception as error:
                kind = type(error).__name__
                log.warning(failure + " transport=%s error=%s", outbound.transport, kind)
        return len(out)

    async def _repost(self, session: AsyncSession, row: Notification) -> list[Outbound]:
        entry = await repo.get_observation(session, row.observation_id)
        if entry is None:
            return []
        state = await self.load(session, entry)
        message = await self._render(session, entry, state, self._channel_language(row.channel))
        log.info("escalation_reposted id=%s notice=%s", entry.id, row.id)
        return [Outbound(row.transport, row.chat_id, message, {"track": f"notice:{row.id}"})]
