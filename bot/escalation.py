"""SHL § 48 notices and leaders' answers: from a worker's entry to the leaders and back.

When a worker saves an entry marked ``escalation.shl48`` (or ``escalation.leadership``)
the ``after_save`` hook posts a notice to the leadership channel responsible for the
team (``teams[].leadership`` -> ``leadership[]``) at once, on every transport the
channel has. The notice shows the team, the entry number, the coded labels, the
description and the proposed action; not the reporter (``escalation.show_reporter``
shows their pseudonym, never a name or an account). Buttons: Acknowledge, the
statuses (in progress, decided, no action) and "Ask the reporter".

Leaders answer in the channel. Only an enrolled person with the role ``leader`` or
``admin`` may press, and only in the channel the notice was posted to; anyone else
is refused with one short sentence (and a log line with ids only). Every change is
an ``EscalationEvent`` row (who, when, what): the audit trail, read by the digests.

Texts typed by leaders arrive as *replies*: after a status button or "Ask the
reporter" the bot posts a prompt, and the leader's reply to that prompt (Telegram
``reply_to_message``; ``Incoming.reply_to``) is the text. Replies are what a bot
in a group with Telegram's privacy mode receives anyway, and a reply names its
prompt, so two leaders answering two notices at once never mix up. On a transport
that cannot tell what a message replies to, the leader's next message in that
channel within ``escalation.reply_window_minutes`` is taken instead. A status
prompt also has a "Without text" button.

The reporter is told at once, in their language, in their private chat: when the
notice is acknowledged, and every status with its text. "Ask the reporter" relays
a leader's question to the reporter with an Answer button; the reporter's next
message is relayed back to the channel as "the reporter of #N", without their
pseudonym or account (the anonymous channels of whistleblowing systems work the
same way).

Until a § 48 notice is acknowledged, ``check`` (a scheduled job) posts a reminder
every ``escalation.reminder_hours``; it also re-posts a notice whose first post did
not get through. Both are claimed with conditional updates, so several bot
processes on one database never post the same reminder twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config, LeadershipChannelConfig
from bot.router import Router
from bot.service import Clock, Havainto
from flows import escalation as desk
from flows.capture import Area, FlowContext, area_label
from flows.events import Choice, ChoiceIn, Incoming, Message, Outbound, TextIn
from flows.i18n import t
from flows.privacy import scrub
from flows.taxonomy import ESCALATED_CODES as ESCALATED
from flows.taxonomy import SHL48
from storage import escalations as esc
from storage import repo
from storage.db import Database
from storage.models import Identity, Notification, Observation, Person

log = logging.getLogger("havainto.escalation")

DOMAIN = desk.DOMAIN
PREFIX = desk.PREFIX
MAX_REPLY = 1000
NOTICE_LEASE = timedelta(minutes=2)  # a claimed notice whose poster died goes again after this
# A first post that failed (after the router's own retries) is tried again after these
# pauses, by whichever instance claims it first; then the periodic check takes over.
NOTICE_RETRY_PAUSES = (2.0, 5.0, 10.0, 20.0)


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


@dataclass(frozen=True)
class _Contact:
    """Where a reporter is reached privately, and in which language."""

    transport: str
    chat_id: str
    language: str

    def say(self, text: str, *rows: tuple[Choice, ...]) -> Outbound:
        return Outbound(self.transport, self.chat_id, Message(text, tuple(rows)))


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

    # --- configuration ---------------------------------------------------------------

    def channel_for_team(self, team_id: str) -> LeadershipChannelConfig | None:
        team = self.config.team(team_id)
        if team is None or not team.leadership:
            return None
        return self.config.leadership_channel(team.leadership)

    def _channel_at(self, transport: str, chat_id: str) -> LeadershipChannelConfig | None:
        return self.config.leadership_at(transport, chat_id)

    @property
    def _window(self) -> timedelta:
        return timedelta(minutes=self.config.escalation.reply_window_minutes)

    # --- the notice --------------------------------------------------------------------

    def _when(self, moment: datetime, lang: str) -> str:
        return format_datetime(moment, "d.M.yyyy HH:mm", tzinfo=self.zone, locale=lang)

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
            observed=self._when(entry.observed_at, lang),
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

    async def _notice_state(
        self, session: AsyncSession, entry: Observation, lang: str
    ) -> dict[str, str | None]:
        """The parts of a notice that change: reporter, acknowledgement and status."""
        reporter: str | None = None
        if self.config.escalation.show_reporter:
            member = await repo.find_member_by_person(session, entry.person_id)
            reporter = member.pseudonym if member else None
        acknowledged: str | None = None
        rows = await esc.notifications_for(session, entry.id)
        first = next((r for r in rows if r.acknowledged_at is not None), None)
        if first is not None and first.acknowledged_at is not None:
            by = None
            if first.acknowledged_by is not None:
                by = await repo.find_member_by_person(session, first.acknowledged_by)
            who = f"{_t(lang, f'role.{by.role}')} {by.pseudonym}" if by else _t(lang, "role.leader")
            acknowledged = _t(
                lang, "esc.acknowledged_by", who=who, when=self._when(first.acknowledged_at, lang)
            )
        events = await esc.events_for(session, entry.id)
        latest = events[-1] if events else None
        return {
            "reporter": reporter,
            "acknowledged": acknowledged,
            "status": latest.status if latest else "open",
            "status_text": latest.text if latest else None,
        }

    async def _render_notice(
        self, session: AsyncSession, entry: Observation, lang: str, reminder: float | None = None
    ) -> Message:
        state = await self._notice_state(session, entry, lang)
        return self.notice(
            entry,
            lang,
            reporter=state["reporter"],
            status=state["status"] or "open",
            status_text=state["status_text"],
            acknowledged=state["acknowledged"],
            reminder_hours=reminder,
        )

    async def _refresh_notices(self, session: AsyncSession, entry: Observation) -> list[Outbound]:
        """Edits that bring every posted notice of the entry up to date."""
        out: list[Outbound] = []
        for row in await esc.notifications_for(session, entry.id):
            if row.message_ref is None:
                continue
            channel = self.config.leadership_channel(row.channel)
            lang = channel.language if channel else "fi"
            message = await self._render_notice(session, entry, lang)
            out.append(Outbound(row.transport, row.chat_id, message, {"edit": row.message_ref}))
        return out

    # --- saving an escalated entry -----------------------------------------------------

    async def on_saved(
        self, session: AsyncSession, entry: Observation, member: repo.Member
    ) -> list[Outbound]:
        if entry.escalation not in ESCALATED:
            return []
        if await esc.notifications_for(session, entry.id):
            # A correction of an entry posted already: no new notice, the posted one is
            # edited to show the corrected entry, and the worker is told so, once.
            text = _t(member.language, "esc.worker_updated", number=entry.id)
            log.info("escalation_updated id=%s", entry.id)
            worker = Outbound(entry.transport, member.chat_id, Message(text))
            return [*await self._refresh_notices(session, entry), worker]
        lang = member.language
        channel = self.channel_for_team(entry.team_id)
        targets = channel.chat_targets() if channel is not None else []
        if channel is None or not targets:
            log.error("escalation_undeliverable id=%s reason=no_channel", entry.id)
            return [
                Outbound(
                    entry.transport, member.chat_id, Message(_t(lang, "esc.worker_no_channel"))
                )
            ]
        now = self.clock()
        out: list[Outbound] = []
        for transport, chat_id in targets:
            # A transport this process does not run is left unclaimed: the escalation
            # check of an instance that runs it posts the notice within a minute.
            here = transport in self.router.transports
            row = await esc.add_notification(
                session, entry.id, channel.id, entry.escalation, transport, chat_id, now, here
            )
            if not here:
                log.info("escalation_left id=%s transport=%s", entry.id, transport)
                continue
            notice = await self._render_notice(session, entry, channel.language)
            meta = {"track": f"notice:{row.id}", "first": "1"}
            out.append(Outbound(transport, chat_id, notice, meta))
        log.info(
            "escalation_posted id=%s kind=%s channel=%s", entry.id, entry.escalation, channel.id
        )
        if not out:
            # Only another instance can post it: the worker hears when it got through.
            text = self._worker_pending(entry, lang)
            out.append(Outbound(entry.transport, member.chat_id, Message(text)))
        return out

    @staticmethod
    def _worker_pending(entry: Observation, lang: str) -> str:
        kind = "shl48" if entry.escalation == SHL48 else "leadership"
        return _t(lang, f"esc.worker_pending.{kind}", number=entry.id)

    async def _worker_sent(self, session: AsyncSession, entry: Observation) -> Outbound | None:
        """The reporter's "it reached leadership", said once the platform took the notice."""
        reporter = await self._reporter(session, entry)
        channel = self.channel_for_team(entry.team_id)
        if reporter is None or channel is None:
            return None
        kind = "shl48" if entry.escalation == SHL48 else "leadership"
        text = _t(
            reporter.language, f"esc.worker_sent.{kind}", number=entry.id, channel=channel.name
        )
        return reporter.say(text)

    async def _reporter(self, session: AsyncSession, entry: Observation) -> _Contact | None:
        """The reporter's private chat: on the transport of the entry when they still use it."""
        person = await session.get(Person, entry.person_id)
        if person is None or person.revoked_at is not None:
            log.info("reporter_unreachable id=%s", entry.id)
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
            log.info("reporter_unreachable id=%s", entry.id)
            return None
        return _Contact(identity.transport, identity.chat_id, person.language)

    # --- the sent hook -------------------------------------------------------------------

    async def on_sent(self, outbound: Outbound, ref: str | None) -> None:
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if not number.isdigit():
            return
        told: Outbound | None = None
        async with self.db.transaction() as session:
            if kind == "notice":
                first = await esc.mark_notification_sent(session, int(number), ref, self.clock())
                entry = await repo.get_observation(session, first) if first else None
                if entry is not None:
                    told = await self._worker_sent(session, entry)
            elif kind == "relay":
                await esc.set_prompt_ref(session, int(number), ref)
        if told is not None:
            try:
                await self.router.send_retrying(told)
            except Exception as error:
                log.warning("escalation_worker_untold error=%s", type(error).__name__)

    async def on_failed(self, outbound: Outbound, error: BaseException) -> None:
        """A notice the platform did not take: free its claim, tell the worker it is on its
        way (on the first post), and try again within seconds."""
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if kind != "notice" or not number.isdigit():
            return
        pending: Outbound | None = None
        async with self.db.transaction() as session:
            await esc.release_notification(session, int(number))
            notice = await session.get(Notification, int(number))
            if outbound.meta.get("first") and notice is not None:
                entry = await repo.get_observation(session, notice.observation_id)
                reporter = await self._reporter(session, entry) if entry else None
                if entry is not None and reporter is not None:
                    pending = reporter.say(self._worker_pending(entry, reporter.language))
        log.warning("escalation_post_failed notice=%s error=%s", number, type(error).__name__)
        if pending is not None:
            try:
                await self.router.send_retrying(pending)
            except Exception as told_error:
                log.warning("escalation_worker_untold error=%s", type(told_error).__name__)
        if outbound.meta.get("first"):
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

    # --- leadership channels -----------------------------------------------------------

    async def on_group_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        event = incoming.event
        if isinstance(event, ChoiceIn) and event.data.startswith(PREFIX + ":"):
            if incoming.event_id is not None and not await repo.first_time_seen(
                session, incoming.transport, incoming.event_id, now
            ):
                return []
            return await self._channel_choice(session, incoming, member, now, event.data)
        if isinstance(event, TextIn) and member is not None:
            return await self._channel_text(session, incoming, member, now, event.text)
        return None

    def _lang(self, incoming: Incoming, member: repo.Member | None) -> str:
        if member is not None:
            return member.language
        channel = self._channel_at(incoming.transport, incoming.chat_id)
        return channel.language if channel else "fi"

    def _say(self, incoming: Incoming, text: str) -> list[Outbound]:
        return [Outbound(incoming.transport, incoming.chat_id, Message(text))]

    async def _authorise(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        observation_id: int,
    ) -> str | None:
        """None when ``member`` may answer about the entry here; else the refusal reason."""
        rows = await esc.notifications_for(session, observation_id)
        posted_here = any(
            r.transport == incoming.transport and r.chat_id == incoming.chat_id for r in rows
        )
        entry = await repo.get_observation(session, observation_id)
        leads = member is not None and entry is not None and self.leads(member, entry.team_id)
        return desk.refusal(
            member.role if member else None,
            member.revoked if member else False,
            posted_here,
            leads,
        )

    def leads(self, member: repo.Member, team_id: str) -> bool:
        """Whether ``member`` may act on the notices of ``team_id``.

        An administrator may act on every notice. A leader acts on the notices of the
        teams whose leadership channel is their own team's, or whose region they lead:
        their own team's leadership channel covers that region (an organisation-wide
        channel, with no region, covers every region).
        """
        if member.role == "admin":
            return True
        own = self.channel_for_team(member.team_id)
        if own is None:
            return False
        theirs = self.channel_for_team(team_id)
        if theirs is not None and theirs.id == own.id:
            return True
        team = self.config.team(team_id)
        return not own.region or (team is not None and team.region == own.region)

    def _refuse(
        self, incoming: Incoming, member: repo.Member | None, reason: str, observation_id: int
    ) -> list[Outbound]:
        log.warning(
            "escalation_refused id=%s reason=%s person=%s",
            observation_id,
            reason,
            member.person_id if member else "-",
        )
        text = _t(self._lang(incoming, member), f"esc.refused.{reason}")
        return self._alert(incoming, member, text)

    @staticmethod
    def _alert(incoming: Incoming, member: repo.Member | None, text: str) -> list[Outbound]:
        """Said to the presser alone: one member's presses never flood the channel."""
        return [Havainto.alert(incoming, member, text)]

    async def _channel_choice(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
        data: str,
    ) -> list[Outbound]:
        press = desk.parse(data)
        lang = self._lang(incoming, member)
        if press is not None and press.action == "nt":
            return await self._status_without_text(session, incoming, member, now, press.number)
        valid = press is not None and press.action in ("ack", "ask", "st")
        entry = await repo.get_observation(session, press.number) if press and valid else None
        if press is None or entry is None or entry.escalation not in ESCALATED:
            log.warning("escalation_choice_refused reason=stale")
            return self._alert(incoming, member, _t(lang, "esc.stale"))
        reason = await self._authorise(session, incoming, member, entry.id)
        if reason is not None:
            return self._refuse(incoming, member, reason, entry.id)
        assert member is not None
        if press.action == "ack":
            return await self._acknowledge(session, incoming, member, now, entry)
        kind = "status" if press.action == "st" else "question"
        relay = await esc.open_relay(
            session,
            observation_id=entry.id,
            kind=kind,
            status=press.status,
            person_id=member.person_id,
            transport=incoming.transport,
            chat_id=incoming.chat_id,
            now=now,
        )
        minutes = self.config.escalation.reply_window_minutes
        if kind == "status":
            text = _t(
                lang,
                "esc.status_prompt",
                number=entry.id,
                status=_t(lang, f"status.{press.status}"),
                minutes=minutes,
            )
            choices: tuple[tuple[Choice, ...], ...] = (
                (Choice(_t(lang, "button.without_text"), f"{PREFIX}:nt:{relay.id}"),),
            )
        else:
            text = _t(lang, "esc.question_prompt", number=entry.id, minutes=minutes)
            choices = ()
        log.info("escalation_prompt id=%s kind=%s relay=%s", entry.id, kind, relay.id)
        prompt = Message(text, choices, ref=f"relay:{relay.id}")
        return [
            Outbound(incoming.transport, incoming.chat_id, prompt, {"track": f"relay:{relay.id}"})
        ]

    async def _acknowledge(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        now: datetime,
        entry: Observation,
    ) -> list[Outbound]:
        if not await esc.acknowledge(session, entry.id, member.person_id, now):
            text = _t(member.language, "esc.already_acknowledged", number=entry.id)
            return self._alert(incoming, member, text)
        await esc.add_event(session, entry.id, "acknowledged", now, member.person_id)
        log.info("escalation_acknowledged id=%s person=%s", entry.id, member.person_id)
        out = await self._refresh_notices(session, entry)
        if not out:  # the notice could not be edited (no message id): say it in the channel
            lang = self._lang(incoming, None)
            out = self._say(incoming, _t(lang, "esc.acknowledged_here", number=entry.id))
        reporter = await self._reporter(session, entry)
        if reporter is not None:
            when = self._when(now, reporter.language)
            text = _t(reporter.language, "esc.worker_acknowledged", number=entry.id, when=when)
            out.append(reporter.say(text))
        return out

    async def _record_status(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        now: datetime,
        entry: Observation,
        status: str,
        text: str | None,
        prompt_ref: str | None,
    ) -> list[Outbound]:
        """Store a status with its text, count it as acknowledgement, tell everyone."""
        await esc.add_event(session, entry.id, status, now, member.person_id, text)
        await esc.acknowledge(session, entry.id, member.person_id, now)
        log.info("escalation_status id=%s status=%s person=%s", entry.id, status, member.person_id)
        lang = self._lang(incoming, None)
        out = await self._refresh_notices(session, entry)
        saved = _t(lang, "esc.status_saved", number=entry.id, status=_t(lang, f"status.{status}"))
        out += self._close_prompt(incoming, prompt_ref, saved)
        reporter = await self._reporter(session, entry)
        if reporter is not None:
            wlang = reporter.language
            body = _t(
                wlang, "esc.worker_status", number=entry.id, status=_t(wlang, f"status.{status}")
            )
            if text:
                body += "\n" + _t(wlang, "esc.worker_status_text", text=text)
            out.append(reporter.say(body))
        return out

    async def _status_without_text(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
        relay_id: int,
    ) -> list[Outbound]:
        relay = await esc.get_relay(session, relay_id)
        lang = self._lang(incoming, member)
        if (
            relay is None
            or relay.kind != "status"
            or relay.status is None
            or (relay.transport, relay.chat_id) != (incoming.transport, incoming.chat_id)
        ):
            return self._alert(incoming, member, _t(lang, "esc.stale"))
        reason = await self._authorise(session, incoming, member, relay.observation_id)
        if reason is not None:
            return self._refuse(incoming, member, reason, relay.observation_id)
        assert member is not None
        if not await esc.close_relay(session, relay.id, now):
            return self._alert(incoming, member, _t(lang, "esc.stale"))
        entry = await repo.get_observation(session, relay.observation_id)
        assert entry is not None
        return await self._record_status(
            session, incoming, member, now, entry, relay.status, None, relay.prompt_ref
        )

    async def _channel_text(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        now: datetime,
        text: str,
    ) -> list[Outbound] | None:
        relay = await esc.find_awaited_reply(
            session,
            incoming.transport,
            incoming.chat_id,
            member.person_id,
            incoming.reply_to,
            now - self._window,
            ("status", "question"),
        )
        if relay is None:
            return None  # ordinary talk in the channel: not the bot's business
        reason = await self._authorise(session, incoming, member, relay.observation_id)
        if reason is not None:
            return self._refuse(incoming, member, reason, relay.observation_id)
        lang = member.language
        text = text.strip()
        if not text:
            return []
        if len(text) > MAX_REPLY:
            return self._say(incoming, _t(lang, "esc.too_long", limit=MAX_REPLY, length=len(text)))
        if not await esc.close_relay(session, relay.id, now):
            return []
        entry = await repo.get_observation(session, relay.observation_id)
        assert entry is not None
        if relay.kind == "status":
            assert relay.status is not None
            return await self._record_status(
                session, incoming, member, now, entry, relay.status, text, relay.prompt_ref
            )
        return await self._relay_question(
            session, incoming, member, entry, relay.id, text, relay.prompt_ref
        )

    async def _relay_question(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        entry: Observation,
        relay_id: int,
        question: str,
        prompt_ref: str | None,
    ) -> list[Outbound]:
        channel_lang = self._lang(incoming, None)
        reporter = await self._reporter(session, entry)
        if reporter is None:
            return self._say(
                incoming, _t(channel_lang, "esc.reporter_unreachable", number=entry.id)
            )
        wlang = reporter.language
        kind = "shl48" if entry.escalation == SHL48 else "leadership"
        to_worker = reporter.say(
            _t(wlang, f"esc.question_to_worker.{kind}", number=entry.id, question=question),
            (Choice(_t(wlang, "button.answer"), f"{PREFIX}:ans:{relay_id}"),),
        )
        log.info(
            "escalation_question id=%s relay=%s person=%s", entry.id, relay_id, member.person_id
        )
        return [
            to_worker,
            *self._close_prompt(
                incoming, prompt_ref, _t(channel_lang, "esc.question_sent", number=entry.id)
            ),
        ]

    @staticmethod
    def _close_prompt(incoming: Incoming, prompt_ref: str | None, text: str) -> list[Outbound]:
        """The prompt's answer is in: replace the prompt (and its button) with ``text``."""
        meta = {"edit": prompt_ref} if prompt_ref else {}
        return [Outbound(incoming.transport, incoming.chat_id, Message(text), meta)]

    # --- the reporter's private chat -------------------------------------------------------

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
        if isinstance(event, ChoiceIn) and event.data.startswith(PREFIX + ":"):
            return await self._answer_button(session, incoming, member, now, event.data)
        if isinstance(event, TextIn):
            pending = await esc.pending_answer(session, member.person_id, now - self._window)
            if pending is not None:
                return await self._relay_answer(
                    session, incoming, member, now, pending.id, event.text
                )
        return None

    async def _answer_button(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        now: datetime,
        data: str,
    ) -> list[Outbound]:
        press = desk.parse(data)
        lang = member.language
        question = (
            await esc.get_relay(session, press.number)
            if press is not None and press.action == "ans" and repo.is_row_id(press.number)
            else None
        )
        entry = (
            await repo.get_observation(session, question.observation_id)
            if question is not None and question.kind == "question"
            else None
        )
        if question is None or entry is None:
            return self._alert(incoming, member, _t(lang, "esc.stale"))
        if entry.person_id != member.person_id:
            log.warning("escalation_refused id=%s reason=not_reporter", entry.id)
            return self._alert(incoming, member, _t(lang, "esc.stale"))
        await esc.open_relay(
            session,
            observation_id=entry.id,
            kind="answer",
            person_id=member.person_id,
            transport=incoming.transport,
            chat_id=incoming.chat_id,
            now=now,
            parent_id=question.id,
        )
        minutes = self.config.escalation.reply_window_minutes
        return self._say(incoming, _t(lang, "esc.answer_prompt", number=entry.id, minutes=minutes))

    async def _relay_answer(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        now: datetime,
        relay_id: int,
        text: str,
    ) -> list[Outbound]:
        lang = member.language
        text = text.strip()
        if not text:
            return self._say(incoming, _t(lang, "esc.answer_empty"))
        if len(text) > MAX_REPLY:
            return self._say(incoming, _t(lang, "esc.too_long", limit=MAX_REPLY, length=len(text)))
        relay = await esc.get_relay(session, relay_id)
        question = (
            await esc.get_relay(session, relay.parent_id) if relay and relay.parent_id else None
        )
        if relay is None or question is None or not await esc.close_relay(session, relay_id, now):
            return []
        channel = self._channel_at(question.transport, question.chat_id)
        clang = channel.language if channel else "fi"
        entry = await repo.get_observation(session, relay.observation_id)
        assert entry is not None
        kind = "shl48" if entry.escalation == SHL48 else "leadership"
        to_channel = Message(
            _t(clang, f"esc.answer_to_channel.{kind}", number=entry.id, answer=text)
        )
        log.info("escalation_answer id=%s relay=%s", entry.id, relay_id)
        return [
            Outbound(question.transport, question.chat_id, to_channel),
            *self._say(incoming, _t(lang, "esc.answer_sent", number=entry.id)),
        ]

    # --- the scheduled check -------------------------------------------------------------

    async def check(self) -> int:
        """Re-post notices that never got through and remind about unacknowledged § 48 notices.

        Returns how many messages were attempted.
        """
        now = self.clock()
        every = timedelta(hours=self.config.escalation.reminder_hours)
        out: list[Outbound] = []
        here = list(self.router.transports)  # several instances: each posts on its own
        async with self.db.transaction() as session:
            for row in await esc.claim_unsent_notifications(session, now, NOTICE_LEASE, here):
                out += await self._repost(session, row, reminder=None)
            for row in await esc.claim_due_reminders(session, now, every, transports=here):
                out += await self._repost(
                    session, row, reminder=self.config.escalation.reminder_hours
                )
        return await self._send_all(out)

    async def repost_unsent(self) -> int:
        """Post the notices that never got through; returns how many were tried."""
        here = list(self.router.transports)
        async with self.db.transaction() as session:
            rows = await esc.claim_unsent_notifications(session, self.clock(), NOTICE_LEASE, here)
            out = [o for row in rows for o in await self._repost(session, row, reminder=None)]
        return await self._send_all(out)

    async def _send_all(self, out: list[Outbound]) -> int:
        for outbound in out:
            try:
                await self.router.send_retrying(outbound)
            except Exception as error:
                log.warning(
                    "escalation_send_failed transport=%s error=%s",
                    outbound.transport,
                    type(error).__name__,
                )
        return len(out)

    async def _repost(
        self, session: AsyncSession, row: Notification, reminder: float | None
    ) -> list[Outbound]:
        entry = await repo.get_observation(session, row.observation_id)
        if entry is None:
            return []
        channel = self.config.leadership_channel(row.channel)
        lang = channel.language if channel else "fi"
        message = await self._render_notice(session, entry, lang, reminder)
        if reminder is None:
            log.info("escalation_reposted id=%s notice=%s", entry.id, row.id)
            return [Outbound(row.transport, row.chat_id, message, {"track": f"notice:{row.id}"})]
        log.info("escalation_reminded id=%s notice=%s count=%s", entry.id, row.id, row.reminders)
        return [Outbound(row.transport, row.chat_id, message)]
