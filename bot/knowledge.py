"""The knowledge path in chat: "me too", pairs, phenomena, proposals and "where is my entry".

``KnowledgeDesk.install`` hooks it into the service like the escalation desk: it takes
the commands and buttons of ``flows.knowledge`` (payloads ``kp:...``) in private chats
and groups, and the text a leader types after a proposal button asked for it. The rules
(who may do what, which step follows which, the texts) are in ``flows.knowledge``; the
facts in ``storage.knowledge``; this module loads, decides with those, stores, replies.

Workers hear what became of their observations through ``send_news`` (a daily job):
one message per worker per ``knowledge.news_every_hours``, counts only, never who.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config, LeadershipChannelConfig
from bot.router import Router
from flows import commands
from flows import knowledge as rules
from flows.events import (
    Alert,
    ChoiceIn,
    CommandIn,
    Document,
    Incoming,
    Message,
    Outbound,
    TextIn,
)
from flows.i18n import t
from storage import knowledge, repo
from storage.db import Database
from storage.models import Observation

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.service import Havainto

log = logging.getLogger("havainto.knowledge")

PENDING = "knowledge:move"
PENDING_TITLE = "knowledge:title"  # a lead or leader pressed "Make a phenomenon": its name
PAIR_DAYS = 7


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=rules.DOMAIN, **params)


class KnowledgeDesk:
    """Phenomena, confirmations and proposals in chat; ``install`` hooks it into the service."""

    def __init__(
        self, config: Config, db: Database, router: Router, clock: Callable[[], datetime]
    ) -> None:
        self.config = config
        self.db = db
        self.router = router
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        self._alert: Callable[[Incoming, repo.Member | None, str], Outbound] | None = None

    def install(self, service: Havainto) -> None:
        service.after_save.append(self.on_saved)
        service.private_handlers.append(self.on_event)
        service.group_handlers.append(self.on_event)
        service.me_too_candidates = self.candidates
        service.me_too_confirm = self.confirm_at_capture
        self._alert = service.alert
        self.router.failed_hooks.append(self.on_card_failed)

    # --- "me too" at capture time ---------------------------------------------------------

    async def candidates(
        self, session: AsyncSession, member: repo.Member, now: datetime
    ) -> tuple[rules.Candidate, ...]:
        """Open phenomena of the worker's team and region, and the team's entries of the
        last 30 days by others: what a new text is compared with (in ``flows.capture``)."""
        team = self.config.team(member.team_id)
        if team is None:
            return ()
        found = await knowledge.candidates(
            session, team_id=team.id, region=team.region, person_id=member.person_id, now=now
        )
        return tuple(found)

    async def confirm_at_capture(
        self, session: AsyncSession, member: repo.Member, kind: str, number: int, now: datetime
    ) -> Message | None:
        """Record "me too" for the phenomenon or entry a worker chose instead of a new
        entry; the short reply, or None when it can no longer be confirmed."""
        lang = member.language
        if kind == "phenomenon":
            phenomenon = await knowledge.get_phenomenon(session, number)
            if (
                phenomenon is None
                or phenomenon.status != rules.PHENOMENON_OPEN
                or not self._sees(member, phenomenon.team_id, phenomenon.region)
            ):
                return None
            target, thanks = {"phenomenon_id": number}, "knowledge.metoo.thanks"
        else:
            entry = await repo.get_observation(session, number)
            if (
                entry is None
                or entry.team_id != member.team_id
                or entry.withdrawn_at is not None
                or entry.person_id == member.person_id
            ):
                return None
            target, thanks = {"observation_id": number}, "knowledge.metoo.thanks_entry"
        added = await knowledge.confirm(
            session,
            person_id=member.person_id,
            team_id=member.team_id,
            kind=rules.ME_TOO,
            now=now,
            **target,
        )
        key = thanks if added else "knowledge.metoo.already"
        log.info("me_too_at_capture %s=%s added=%s", kind, number, added)
        return Message(_t(lang, key, number=number))

    # --- events ----------------------------------------------------------------------

    async def on_saved(
        self, session: AsyncSession, entry: Observation, member: repo.Member
    ) -> list[Outbound]:
        """An escalated entry's "proposed action" becomes a proposal leaders can move: its
        card goes to the responsible leadership channel."""
        now = self.clock()
        proposal = await knowledge.proposal_from_action(session, entry, now=now)
        if proposal is None:
            return []
        log.info("proposal_from_action id=%s observation=%s", proposal.id, entry.id)
        return await self.card_posts(session, now)

    async def on_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        out = await self._on_event(session, incoming, member, now)
        if out is None:
            return None
        # A proposal made by what was just done (``/ehdotus``, or a linked entry's
        # "proposed action"): its card goes to the leaders, with this reply.
        return out + await self.card_posts(session, now)

    async def _on_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        event = incoming.event
        if member is None or member.revoked:
            if isinstance(event, ChoiceIn) and event.data.startswith(rules.PREFIX + ":"):
                return [self._say_alone(incoming, member, t("fi", "flow.stale_button"))]
            return None
        if isinstance(event, CommandIn):
            name = commands.command_of(event.name)
            handler = {
                "where": self._where,
                "metoo": self._me_too_command,
                "pair": self._pair,
                "phenomenon": self._phenomenon,
                "link": self._link,
                "proposal": self._proposal,
                "pack": self._pack,
            }.get(name or "")
            if handler is None:
                return None
            if name in ("where", "pair", "pack") and not incoming.is_private:
                return None  # the service says these work in a private chat
            return await handler(session, incoming, member, event.args, now)
        if isinstance(event, ChoiceIn) and event.data.startswith(rules.PREFIX + ":"):
            return await self._choice(session, incoming, member, event.data, now)
        if isinstance(event, TextIn):
            return await self._pending_text(session, incoming, member, event.text, now)
        return None

    # --- where is my observation ---------------------------------------------------------

    async def _where(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parsed = rules.parse_numbers(args, 1)
        if parsed is None:
            return self._say(incoming, _t(lang, "knowledge.where.usage"))
        number = parsed[0][0]
        entry = await repo.get_observation(session, number)
        if (
            entry is None
            or entry.withdrawn_at is not None
            or not await self._is_theirs(session, entry, member)
        ):
            return self._say(incoming, _t(lang, "knowledge.where.not_found", number=number))
        path = await knowledge.path_of(session, entry)
        lines = [
            rules.PathLine(step.step, self._day(step.at, lang), self._detail(step, lang))
            for step in path.steps
        ]
        phenomenon = (path.phenomenon.id, path.phenomenon.title) if path.phenomenon else None
        message = rules.path_text(
            lang, number, path.position, lines, phenomenon, path.confirmations, path.decision
        )
        return [Outbound(incoming.transport, incoming.chat_id, message)]

    async def _is_theirs(
        self, session: AsyncSession, entry: Observation, member: repo.Member
    ) -> bool:
        if entry.person_id == member.person_id:
            return True
        return await knowledge.confirmed_by(session, member.person_id, entry.id)

    def _day(self, moment: object, lang: str) -> str:
        if moment is None:
            return ""
        day = moment.astimezone(self.zone).date() if isinstance(moment, datetime) else moment
        return format_date(day, "d.M.yyyy", locale=lang)  # type: ignore[arg-type]

    def _detail(self, step: knowledge.PathStep, lang: str) -> str | None:
        if step.step in (rules.RAISED, rules.RECORDED):
            return None
        detail = step.detail
        if step.step == rules.PATH_PRESENTED and step.detail:
            body = self.config.body(step.detail)
            detail = body.label(lang) if body else step.detail
        elif step.step == rules.CLOSED and step.detail:
            detail = rules.status_label(lang, step.detail)
        parts = [part for part in (detail, step.note) if part]
        return ": ".join(parts) or None

    # --- the escalation pack ----------------------------------------------------------------

    async def _pack(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        """The notifier's own § 29 notice as a PDF for the supervisory authority, audited."""
        from digests.pack import build_pack, render_pack_html
        from digests.report import render_pdf
        from storage.pack import pack_facts, record_pack

        lang = member.language
        parsed = rules.parse_numbers(args, 1)
        if parsed is None:
            return self._say(incoming, _t(lang, "pack.usage"))
        number = parsed[0][0]
        entry = await repo.get_observation(session, number)
        facts = (
            await pack_facts(session, number, self.config.region_names)
            if entry is not None and entry.person_id == member.person_id
            else None
        )
        if facts is None:
            return self._say(incoming, _t(lang, "pack.not_found", number=number))
        today = now.astimezone(self.zone).date()
        html = render_pack_html(build_pack(facts, lang, today, self.zone))
        pdf = await asyncio.to_thread(render_pdf, html)
        await record_pack(session, f"person:{member.pseudonym}", number, now)
        log.info("escalation_pack id=%s", number)
        document = Document(
            pdf,
            f"epakohtailmoitus-{number}.pdf" if lang == "fi" else f"notice-{number}.pdf",
            caption=_t(lang, "pack.caption", number=number),
            mime_type="application/pdf",
        )
        return [Outbound(incoming.transport, incoming.chat_id, document)]

    # --- confirmations ---------------------------------------------------------------------

    async def _me_too_command(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        parsed = rules.parse_numbers(args, 1)
        if parsed is None:
            return self._say(incoming, _t(member.language, "knowledge.metoo.usage"))
        (number,), line = parsed
        return await self._me_too(session, incoming, member, number, line or None, now)

    async def _me_too(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        number: int,
        line: str | None,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        phenomenon = await knowledge.get_phenomenon(session, number)
        if (
            phenomenon is None
            or phenomenon.status != rules.PHENOMENON_OPEN
            or not self._sees(member, phenomenon.team_id, phenomenon.region)
        ):
            return [
                self._say_alone(incoming, member, _t(lang, "knowledge.metoo.gone", number=number))
            ]
        added = await knowledge.confirm(
            session,
            person_id=member.person_id,
            team_id=member.team_id,
            kind=rules.ME_TOO,
            phenomenon_id=number,
            text=line,
            now=now,
        )
        key = "knowledge.metoo.thanks" if added else "knowledge.metoo.already"
        log.info("me_too phenomenon=%s added=%s", number, added)
        return [self._say_alone(incoming, member, _t(lang, key, number=number))]

    async def _pair(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parsed = rules.parse_numbers(args, 1)
        if parsed is None:
            return self._say(incoming, _t(lang, "knowledge.pair.usage"))
        number = parsed[0][0]
        entry = await repo.get_observation(session, number)
        if (
            entry is None
            or entry.team_id != member.team_id
            or entry.withdrawn_at is not None
            or entry.person_id == member.person_id
            or now - entry.recorded_at > timedelta(days=PAIR_DAYS)
        ):
            return self._say(incoming, _t(lang, "knowledge.pair.gone", number=number))
        added = await knowledge.confirm(
            session,
            person_id=member.person_id,
            team_id=member.team_id,
            kind=rules.PAIR,
            observation_id=number,
            now=now,
        )
        key = "knowledge.pair.thanks" if added else "knowledge.metoo.already"
        return self._say(incoming, _t(lang, key, number=number))

    def _sees(self, member: repo.Member, team_id: str | None, region: str) -> bool:
        """A worker confirms phenomena of their own team and region-wide ones of their
        region; a leader those of their region; an admin all."""
        if member.role == "admin":
            return True
        if team_id is not None and team_id == member.team_id:
            return True
        own_region = self._region(member) == region
        return own_region and (team_id is None or member.role == "leader")

    def _region(self, member: repo.Member) -> str:
        team = self.config.team(member.team_id)
        return team.region if team else ""

    # --- phenomena -----------------------------------------------------------------------

    async def _phenomenon(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parsed = rules.parse_numbers(args, 1)
        if parsed is None or not parsed[1]:
            return self._say(incoming, _t(lang, "knowledge.phenomenon.usage"))
        (number,), title = parsed
        entry = await repo.get_observation(session, number)
        if entry is None or entry.withdrawn_at is not None:
            return self._say(incoming, _t(lang, "knowledge.phenomenon.gone", entry=number))
        if not self._may_shape(member, entry.team_id, entry.region):
            return self._say(incoming, _t(lang, "knowledge.phenomenon.not_allowed"))
        return await self._make(session, incoming, member, entry, title, now)

    async def _make(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        entry: Observation,
        title: str,
        now: datetime,
    ) -> list[Outbound]:
        """A phenomenon of ``entry`` named ``title``, with the entry linked (both audited)."""
        lang = member.language
        number = entry.id
        team = self.config.team(entry.team_id)
        row = await knowledge.create_phenomenon(
            session,
            region=entry.region,
            team_id=entry.team_id if member.role == "lead" else None,
            theme=entry.theme,
            title=title,
            language=team.language if team else lang,
            actor_person_id=member.person_id,
            actor=f"person:{member.pseudonym}",
            now=now,
        )
        await knowledge.link(
            session,
            row.id,
            entry.id,
            actor_person_id=member.person_id,
            actor=f"person:{member.pseudonym}",
            now=now,
        )
        log.info("phenomenon_created id=%s", row.id)
        return self._say(
            incoming,
            _t(lang, "knowledge.phenomenon.created", number=row.id, title=row.title, entry=number),
        )

    async def _link(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parsed = rules.parse_numbers(args, 2)
        if parsed is None:
            return self._say(incoming, _t(lang, "knowledge.phenomenon.link_usage"))
        entry_number, phenomenon_number = parsed[0]
        entry = await repo.get_observation(session, entry_number)
        if entry is None or entry.withdrawn_at is not None:
            return self._say(incoming, _t(lang, "knowledge.phenomenon.gone", entry=entry_number))
        return await self._link_entry(session, incoming, member, entry, phenomenon_number, now)

    async def _link_entry(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        entry: Observation,
        phenomenon_number: int,
        now: datetime,
    ) -> list[Outbound]:
        """Link ``entry`` to phenomenon ``phenomenon_number`` if the member may shape both."""
        lang = member.language
        entry_number = entry.id
        phenomenon = await knowledge.get_phenomenon(session, phenomenon_number)
        if phenomenon is None:
            return self._say(
                incoming, _t(lang, "knowledge.proposal.gone", number=phenomenon_number)
            )
        if not self._may_shape(member, entry.team_id, entry.region) or not self._may_shape(
            member, phenomenon.team_id or entry.team_id, phenomenon.region
        ):
            return self._say(incoming, _t(lang, "knowledge.phenomenon.not_allowed"))
        linked = await knowledge.link(
            session,
            phenomenon_number,
            entry_number,
            actor_person_id=member.person_id,
            actor=f"person:{member.pseudonym}",
            now=now,
        )
        key = "knowledge.phenomenon.linked" if linked else "knowledge.phenomenon.already"
        return self._say(incoming, _t(lang, key, entry=entry_number, number=phenomenon_number))

    def _may_shape(self, member: repo.Member, team_id: str | None, region: str) -> bool:
        return rules.may_shape(member.role, member.team_id, self._region(member), team_id, region)

    # --- proposals -----------------------------------------------------------------------

    async def _proposal(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        args: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parsed = rules.parse_numbers(args, 1)
        if parsed is None:
            return self._say(incoming, _t(lang, "knowledge.proposal.usage"))
        (number,), text = parsed
        if not text:  # /ehdotus 7: proposal #7's card, for those who move it
            return await self._show_card(session, incoming, member, number)
        phenomenon = await knowledge.get_phenomenon(session, number)
        if phenomenon is None:
            return self._say(incoming, _t(lang, "knowledge.proposal.gone", number=number))
        if not self._may_shape(member, phenomenon.team_id or member.team_id, phenomenon.region):
            return self._say(incoming, _t(lang, "knowledge.phenomenon.not_allowed"))
        row = await knowledge.create_proposal(
            session,
            text=text,
            phenomenon_id=number,
            proposer_person_id=member.person_id,
            owner_person_id=member.person_id if member.role in ("leader", "admin") else None,
            actor=f"person:{member.pseudonym}",
            now=now,
        )
        assert row is not None
        log.info("proposal_created id=%s", row.id)
        out = self._say(incoming, _t(lang, "knowledge.proposal.created", number=row.id))
        # Where it was asked, the card is shown to those who can move it (a leadership
        # chat, a leader's private chat); the responsible channel gets it in any case.
        here = self.config.leadership_at(incoming.transport, incoming.chat_id)
        if here is not None or (
            incoming.is_private and rules.may_decide(member.role, self._region(member), row.region)
        ):
            card_lang = here.language if here is not None else lang
            card = await self._card(session, row, card_lang)
            out.append(Outbound(incoming.transport, incoming.chat_id, card))
            if here is not None:
                out += await self.card_posts(
                    session, now, shown=(incoming.transport, incoming.chat_id)
                )
        return out

    async def _show_card(
        self, session: AsyncSession, incoming: Incoming, member: repo.Member, number: int
    ) -> list[Outbound]:
        lang = member.language
        row = await knowledge.get_proposal(session, number)
        if row is None:
            return self._say(incoming, _t(lang, "knowledge.proposal.not_found", number=number))
        if not rules.may_decide(member.role, self._region(member), row.region):
            log.warning("proposal_card_refused id=%s person=%s", number, member.person_id)
            return self._say(incoming, _t(lang, "knowledge.move.not_allowed"))
        here = self.config.leadership_at(incoming.transport, incoming.chat_id)
        card = await self._card(session, row, here.language if here is not None else lang)
        return [Outbound(incoming.transport, incoming.chat_id, card)]

    # --- proposal cards in the leadership channel ------------------------------------------

    def _channels_for(self, row: knowledge.Proposal) -> list[LeadershipChannelConfig]:
        """The leadership channels that move ``row``: its team's, or for a region-wide
        proposal those of the region's teams (else a channel of the region or of all)."""
        teams = (
            [self.config.team(row.team_id)]
            if row.team_id
            else [team for team in self.config.teams if team.region == row.region]
        )
        ids = list(dict.fromkeys(team.leadership for team in teams if team and team.leadership))
        channels = [c for i in ids if (c := self.config.leadership_channel(i)) is not None]
        if not channels:
            channels = [c for c in self.config.leadership if c.region in (row.region, "")][:1]
        return channels

    async def card_posts(
        self, session: AsyncSession, now: datetime, shown: tuple[str, str] | None = None
    ) -> list[Outbound]:
        """The cards of proposals not yet posted, one to each chat of their responsible
        leadership channel on the transports this process runs (another process posts on
        its own), except ``shown``, where the card was just shown. Each is claimed, so it
        goes once; one the platform refuses is released (``on_card_failed``)."""
        out: list[Outbound] = []
        for row in await knowledge.unposted_cards(session):
            targets = [
                (channel, transport, chat)
                for channel in self._channels_for(row)
                for transport, chat in channel.chat_targets()
            ]
            mine = [
                target
                for target in targets
                if target[1] in self.router.transports and target[1:] != shown
            ]
            if targets and not mine and not any(target[1:] == shown for target in targets):
                continue  # for the process that runs the channel's transport
            if not await knowledge.claim_card(session, row.id, now):
                continue
            cards: dict[str, Message] = {}  # one card per language, however many chats
            for channel, transport, chat in mine:
                if channel.language not in cards:
                    cards[channel.language] = await self._card(session, row, channel.language)
                card = cards[channel.language]
                out.append(Outbound(transport, chat, card, {"track": f"proposal_card:{row.id}"}))
            log.info("proposal_card id=%s chats=%s", row.id, len(mine))
        return out

    async def post_cards(self) -> int:
        """Post the cards no chat event took along (proposals made on the command line):
        the ``proposal_cards`` job."""
        async with self.db.transaction() as session:
            out = await self.card_posts(session, self.clock())
        sent = 0
        for outbound in out:
            try:
                await self.router.send_retrying(outbound)
                sent += 1
            except Exception as error:  # released by on_card_failed, posted next time
                log.warning("proposal_card_failed error=%s", type(error).__name__)
        return sent

    async def on_card_failed(self, outbound: Outbound, error: BaseException) -> None:
        kind, _, number = outbound.meta.get("track", "").partition(":")
        if kind != "proposal_card" or not number.isdigit():
            return
        async with self.db.transaction() as session:
            await knowledge.release_card(session, int(number))

    async def _card(self, session: AsyncSession, row: knowledge.Proposal, lang: str) -> Message:
        if row.phenomenon_id is not None:
            phenomenon = await knowledge.get_phenomenon(session, row.phenomenon_id)
            subject = _t(
                lang,
                "knowledge.proposal.for_phenomenon",
                number=row.phenomenon_id,
                title=phenomenon.title if phenomenon else "",
            )
        else:
            subject = _t(lang, "knowledge.proposal.for_observation", number=row.observation_id)
        body = self.config.body(row.body) if row.body else None
        owner = (
            await repo.find_member_by_person(session, row.owner_person_id)
            if row.owner_person_id is not None
            else None
        )
        events = await knowledge.proposal_events(session, row.id)
        return rules.proposal_card(
            lang,
            row.id,
            row.status,
            row.text,
            subject,
            body=body.label(lang) if body else row.body,
            on=format_date(row.presented_on, "d.M.yyyy", locale=lang) if row.presented_on else None,
            decision=row.decision,
            owner=owner.pseudonym if owner is not None else None,
            note=events[-1].note if events else None,
        )

    async def _choice(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        data: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        parts = data.split(":")
        kind = parts[1] if len(parts) > 1 else ""
        numbers = [int(p) for p in parts[2:3] if p.isdigit() and 0 < int(p) < 2**31]
        if kind == "me" and numbers:
            return await self._me_too(session, incoming, member, numbers[0], None, now)
        if kind == "pack" and numbers and incoming.is_private:
            return await self._pack(session, incoming, member, str(numbers[0]), now)
        if kind in ("mk", "ln", "lk") and numbers:
            return await self._notice_choice(session, incoming, member, kind, parts, now)
        if kind == "own" and numbers:
            return await self._take_ownership(session, incoming, member, numbers[0], now)
        if kind in ("mv", "body", "today", "nonote") and numbers and len(parts) >= 3:
            return await self._move_choice(
                session, incoming, member, kind, numbers[0], parts[3] if len(parts) > 3 else "", now
            )
        log.warning("choice_refused person=%s kind=knowledge", member.person_id)
        return [self._say_alone(incoming, member, t(lang, "flow.stale_button"))]

    def _pending_key(self, member: repo.Member, incoming: Incoming, what: str = PENDING) -> str:
        return f"{what}:{member.person_id}:{incoming.transport}:{incoming.chat_id}"

    # --- "Make a phenomenon" / "Link to a phenomenon" under an escalated entry's notice ---

    async def _notice_choice(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        kind: str,
        parts: list[str],
        now: datetime,
    ) -> list[Outbound]:
        """The buttons ``kp:mk:N`` (ask for a name), ``kp:ln:N`` (offer the open phenomena)
        and ``kp:lk:N:P`` (link), authorised like /ilmio and /liita."""
        lang = member.language
        number = int(parts[2])
        entry = await repo.get_observation(session, number)
        if entry is None or entry.withdrawn_at is not None:
            return [
                self._say_alone(
                    incoming, member, _t(lang, "knowledge.phenomenon.gone", entry=number)
                )
            ]
        if not self._may_shape(member, entry.team_id, entry.region):
            log.warning("notice_shape_refused id=%s person=%s", number, member.person_id)
            return [self._say_alone(incoming, member, _t(lang, "knowledge.phenomenon.not_allowed"))]
        title_key = self._pending_key(member, incoming, PENDING_TITLE)
        if kind == "mk":
            await repo.set_state(session, self._pending_key(member, incoming), "")
            await repo.set_state(session, title_key, f"{now.isoformat()}|{number}")
            return self._say(incoming, _t(lang, "knowledge.notice.ask_title", number=number))
        if kind == "ln":
            team_id = entry.team_id if member.role == "lead" else None
            views = await knowledge.list_phenomena(
                session,
                region=entry.region,
                team_id=team_id,
                status=rules.PHENOMENON_OPEN,
                limit=100,
            )
            if member.role == "lead":
                views = [v for v in views if v.team_id == entry.team_id]
            pool = [rules.Candidate("phenomenon", v.id, v.title) for v in views]
            found = rules.rank_for_link(entry.description or "", pool)
            question = rules.link_question(lang, number, found)
            return [Outbound(incoming.transport, incoming.chat_id, question)]
        target = parts[3] if len(parts) > 3 else ""
        if not target.isdigit() or not 0 < int(target) < 2**31:
            return [self._say_alone(incoming, member, t(lang, "flow.stale_button"))]
        return await self._link_entry(session, incoming, member, entry, int(target), now)

    async def _move_choice(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        kind: str,
        number: int,
        value: str,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        row, refused = await self._decidable(session, incoming, member, number, "proposal_refused")
        if row is None:
            return refused
        key = self._pending_key(member, incoming)
        if kind == "mv":
            if value not in rules.PROPOSAL_MOVES.get(row.status, ()):
                return [self._say_alone(incoming, member, _t(lang, "knowledge.error.not_allowed"))]
            draft = rules.MoveDraft(number, value)
            if draft.target == rules.PRESENTED and not self.config.bodies:
                return self._say(incoming, _t(lang, "knowledge.move.no_bodies"))
        else:
            draft = rules.MoveDraft.from_text(await self._pending(session, key, now))
            if draft is None or draft.proposal != number:
                return [self._say_alone(incoming, member, t(lang, "flow.stale_button"))]
            if kind == "body" and draft.need() == "body" and self.config.body(value):
                draft = rules.MoveDraft(number, draft.target, value)
            elif kind == "today" and draft.need() == "date":
                draft = rules.MoveDraft(
                    number, draft.target, draft.body, now.astimezone(self.zone).date()
                )
            elif kind == "nonote" and draft.need() == "note" and not draft.note_required:
                return await self._advance(session, incoming, member, row, draft, "", now)
            else:
                return [self._say_alone(incoming, member, t(lang, "flow.stale_button"))]
        return await self._advance(session, incoming, member, row, draft, None, now)

    async def _decidable(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        number: int,
        refusal: str,
    ) -> tuple[knowledge.Proposal | None, list[Outbound]]:
        """Proposal ``number`` when ``member`` may decide on it; else None and the answer
        (no such proposal; not theirs to move, logged as ``refusal``)."""
        lang = member.language
        row = await knowledge.get_proposal(session, number)
        if row is None:
            missing = _t(lang, "knowledge.error.no_proposal")
            return None, [self._say_alone(incoming, member, missing)]
        if not rules.may_decide(member.role, self._region(member), row.region):
            log.warning("%s id=%s person=%s", refusal, number, member.person_id)
            refused = _t(lang, "knowledge.move.not_allowed")
            return None, [self._say_alone(incoming, member, refused)]
        return row, []

    async def _take_ownership(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        number: int,
        now: datetime,
    ) -> list[Outbound]:
        """ "Take ownership" on a card: the presser owns the proposal (audited)."""
        lang = member.language
        row, refused = await self._decidable(
            session, incoming, member, number, "proposal_owner_refused"
        )
        if row is None:
            return refused
        if row.status in rules.PROPOSAL_CLOSED:
            return [self._say_alone(incoming, member, t(lang, "flow.stale_button"))]
        taken = await knowledge.set_owner(
            session, number, member.person_id, actor=f"person:{member.pseudonym}", now=now
        )
        if not taken:
            return [
                self._say_alone(
                    incoming, member, _t(lang, "knowledge.proposal.already_owner", number=number)
                )
            ]
        log.info("proposal_owner id=%s", number)
        here = self.config.leadership_at(incoming.transport, incoming.chat_id)
        card = await self._card(session, row, here.language if here is not None else lang)
        return [
            self._say_alone(incoming, member, _t(lang, "knowledge.proposal.taken", number=number)),
            Outbound(incoming.transport, incoming.chat_id, card),
        ]

    async def _advance(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        row: knowledge.Proposal,
        draft: rules.MoveDraft,
        note: str | None,
        now: datetime,
    ) -> list[Outbound]:
        lang = member.language
        key = self._pending_key(member, incoming)
        bodies = [
            rules.BodyChoice(b.id, b.label(lang))
            for b in self.config.bodies
            if not b.region or b.region == row.region
        ]
        question = rules.move_question(lang, draft, bodies) if note is None else None
        if question is not None:
            await repo.set_state(session, self._pending_key(member, incoming, PENDING_TITLE), "")
            await repo.set_state(session, key, f"{now.isoformat()}|{draft.to_text()}")
            return [Outbound(incoming.transport, incoming.chat_id, question)]
        await repo.set_state(session, key, "")
        refused = await knowledge.move_proposal(
            session,
            row.id,
            rules.Move(draft.target, draft.body, draft.on, note),
            bodies=[b.id for b in self.config.bodies],
            actor_person_id=member.person_id,
            actor=f"person:{member.pseudonym}",
            now=now,
        )
        if refused is not None:
            return self._say(incoming, _t(lang, refused))
        log.info("proposal_moved id=%s status=%s", row.id, draft.target)
        out = self._say(
            incoming,
            _t(
                lang,
                "knowledge.move.done",
                number=row.id,
                status=rules.status_label(lang, draft.target),
            ),
        )
        if rules.PROPOSAL_MOVES.get(row.status):
            out.append(
                Outbound(incoming.transport, incoming.chat_id, await self._card(session, row, lang))
            )
        return out

    async def _pending(self, session: AsyncSession, key: str, now: datetime) -> str | None:
        value = await repo.get_state(session, key)
        if not value:
            return None
        stamp, _, draft = value.partition("|")
        try:
            started = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        window = timedelta(minutes=self.config.escalation.reply_window_minutes)
        return draft if now - started <= window else None

    async def _pending_text(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        text: str,
        now: datetime,
    ) -> list[Outbound] | None:
        title_key = self._pending_key(member, incoming, PENDING_TITLE)
        waiting = await self._pending(session, title_key, now)
        if waiting is not None and waiting.isdigit():
            return await self._title_text(session, incoming, member, int(waiting), text, now)
        key = self._pending_key(member, incoming)
        draft = rules.MoveDraft.from_text(await self._pending(session, key, now))
        if draft is None:
            return None
        lang = member.language
        row = await knowledge.get_proposal(session, draft.proposal)
        if row is None or not rules.may_decide(member.role, self._region(member), row.region):
            await repo.set_state(session, key, "")
            return None
        need = draft.need()
        if need == "date":
            day = rules.parse_day(text, now.astimezone(self.zone).date())
            if day is None:
                return self._say(incoming, _t(lang, "knowledge.move.bad_date"))
            return await self._advance(
                session,
                incoming,
                member,
                row,
                rules.MoveDraft(row.id, draft.target, draft.body, day),
                None,
                now,
            )
        if need == "note":
            return await self._advance(session, incoming, member, row, draft, text.strip(), now)
        return None

    async def _title_text(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member,
        number: int,
        text: str,
        now: datetime,
    ) -> list[Outbound]:
        """The name typed after "Make a phenomenon": the phenomenon is made, the entry linked."""
        lang = member.language
        title = " ".join(text.split())
        if len(title) > rules.TITLE_MAX:
            return self._say(
                incoming, _t(lang, "knowledge.notice.title_too_long", limit=rules.TITLE_MAX)
            )
        await repo.set_state(session, self._pending_key(member, incoming, PENDING_TITLE), "")
        entry = await repo.get_observation(session, number)
        if entry is None or entry.withdrawn_at is not None:
            return self._say(incoming, _t(lang, "knowledge.phenomenon.gone", entry=number))
        if not self._may_shape(member, entry.team_id, entry.region):  # e.g. the role changed
            return self._say(incoming, _t(lang, "knowledge.phenomenon.not_allowed"))
        return await self._make(session, incoming, member, entry, title, now)

    # --- the workers' news -------------------------------------------------------------------

    async def send_news(self) -> int:
        """Tell each worker, once, what happened to what they recorded or confirmed."""
        now = self.clock()
        every = timedelta(hours=self.config.knowledge.news_every_hours)
        sent = 0
        async with self.db.snapshot() as session:
            due = await knowledge.due_path_notices(session, now=now, every=every, zone=self.zone)
        for person_id, items in due.items():
            async with self.db.transaction() as session:
                contact = await knowledge.contact_of(session, person_id)
                if contact is None:  # revoked or gone: nobody to tell, now or later
                    await knowledge.mark_path_notices_sent(session, person_id, now, now)
                    continue
                news = await self._news(session, items, contact.language)
            if not news:
                continue
            message = rules.news_text(contact.language, news)
            try:
                await self.router.send_retrying(
                    Outbound(contact.transport, contact.chat_id, message)
                )
            except Exception as error:
                log.warning("path_news_failed person=%s error=%s", person_id, type(error).__name__)
                continue
            async with self.db.transaction() as session:
                await knowledge.mark_path_notices_sent(session, person_id, now, self.clock())
            sent += 1
        return sent

    async def _news(
        self, session: AsyncSession, items: list[knowledge.PendingPath], lang: str
    ) -> list[rules.PathNews]:
        out: list[rules.PathNews] = []
        for item in items:
            kind, _, number_text = item.subject.partition(":")
            number = int(number_text)
            if kind == "phenomenon":
                phenomenon = await knowledge.get_phenomenon(session, number)
                if phenomenon is not None:
                    out.append(rules.PathNews(kind, number, phenomenon.title, item.step))
            elif kind == "proposal":
                row = await knowledge.get_proposal(session, number)
                if row is not None:
                    detail = None
                    if item.step == rules.PRESENTED and row.body:
                        body = self.config.body(row.body)
                        detail = body.label(lang) if body else row.body
                    elif item.step == rules.DECIDED:
                        detail = row.decision
                    if item.step != rules.DECIDED:  # a decision's note is the decision
                        note = await knowledge.step_note(session, number, item.step)
                        detail = "; ".join(part for part in (detail, note) if part) or None
                    out.append(rules.PathNews(kind, number, row.text, item.step, detail))
        return out

    # --- replies -----------------------------------------------------------------------------

    @staticmethod
    def _say(incoming: Incoming, text: str) -> list[Outbound]:
        return [Outbound(incoming.transport, incoming.chat_id, Message(text))]

    def _say_alone(self, incoming: Incoming, member: repo.Member | None, text: str) -> Outbound:
        """To the presser alone (a pop-up on Telegram): a group does not fill with thanks."""
        if self._alert is not None:
            return self._alert(incoming, member, text)
        return Outbound(incoming.transport, incoming.chat_id, Alert(text))
