"""The social report in the running bot and on the command line: its scope, its figures,
the scheduled reports (``[[reports]]``) and the conclusions leaders write in chat.

* ``report_scope`` turns ``--team``/``--region`` (or neither: the whole organisation)
  into a ``ReportScope``: which observations, the printed name, the default language.
* ``gather_figures`` counts the report (``storage.report_queries``) and its
  knowledge-path, editing and area sections (``storage.report_sections``).
* ``ReportDesk`` makes the scheduled reports: the job ``social_reports`` (working days at
  ``schedule.monthly_time``) delivers each ``[[reports]]`` entry's last ended half-year or
  year once it is due (``digests.report_periods.due_on``), as a PDF with the appendix of
  escalations (CSV) and a prompt, to its leadership channel, once, through the delivery
  ledger (``DigestDesk.deliver``: a second instance or a retry never posts it twice).
  The PDF is drawn and printed in the rendering process, never on the event loop.
* A lead or leader who **replies** to the posted report (the PDF or the prompt) writes
  its conclusions: ``flows.conclusions`` decides, this desk stores them
  (``storage.report_notes``, audited), answers, and posts the report again with the
  conclusions in it (made in the rendering process once the note is committed; not
  through the ledger: each reply makes its own edited report). The posts are remembered by their
  platform message ids (``Router.sent_hooks``, ``track = report:...``) in the bot's
  state table, so the reply names the report it is about.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config, ReportScheduleConfig
from bot.delivery import DigestDesk, Outcome, render_off_loop
from bot.router import Router
from digests.report_periods import ReportPeriod, due_on, last_ended, parse_report_period
from flows import conclusions as rules
from flows.events import Document, Incoming, Outbound, Reply, TextIn
from flows.i18n import t
from flows.official_codes import with_code
from storage import audit, repo
from storage.db import Database

if TYPE_CHECKING:
    from bot.service import Clock, Havainto
    from digests.report import ReportFigures

log = logging.getLogger("havainto.reports")

KIND = "report"  # the delivery ledger's kind
TRACK = "report:"
POST_STATE = "report:post"


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=rules.DOMAIN, **params)


@dataclass(frozen=True)
class ReportScope:
    """What a report covers: a team, a region or the whole organisation."""

    kind: str  # flows.conclusions.TEAM, REGION or ORGANISATION
    id: str  # the team or region id; "" for the organisation
    region: str | None  # the observations' region (None: every region)
    team: str | None  # the observations' team (None: every team of the region)
    name: str  # printed on the report
    language: str  # the default language
    region_teams: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return rules.ORGANISATION if self.kind == rules.ORGANISATION else f"{self.kind}:{self.id}"

    def target(self, period: str, lang: str) -> rules.NoteTarget:
        region = self.region or ""
        return rules.NoteTarget(self.kind, self.id, region, period, lang)


def report_scope(
    cfg: Config,
    *,
    team: str | None = None,
    region: str | None = None,
    lang: str | None = None,
    name: str | None = None,
) -> ReportScope:
    """The scope of ``--team`` or ``--region``; neither: the whole organisation.
    ValueError (a short message saying what is known) for an unknown team or region."""
    if team is not None and region is not None:
        raise ValueError("give --team or --region, not both")
    if team is not None:
        found = cfg.team(team)
        if found is None:
            known = ", ".join(t.id for t in cfg.teams)
            raise ValueError(f"unknown team {team!r} (known: {known})")
        return ReportScope(
            rules.TEAM,
            found.id,
            found.region,
            found.id,
            name or found.name,
            lang or found.language,
            (found.id,),
        )
    if region is not None:
        teams = [t for t in cfg.teams if t.region == region]
        if not teams:
            known = ", ".join(sorted({t.region for t in cfg.teams}))
            raise ValueError(f"unknown region {region!r} (known: {known})")
        printed = name or region_printed(cfg, region)
        # The county's official code beside its name ("Helsinki (90)"), where the config has it.
        printed = with_code(printed, cfg.region_code(region))
        return ReportScope(
            rules.REGION,
            region,
            region,
            None,
            printed,
            lang or teams[0].language,
            tuple(t.id for t in teams),
        )
    language = lang or cfg.teams[0].language
    return ReportScope(
        rules.ORGANISATION,
        "",
        None,
        None,
        name or _t(language, "scope.organisation"),
        language,
        tuple(t.id for t in cfg.teams),
    )


def scope_from_key(cfg: Config, key: str) -> ReportScope | None:
    """The scope of a ledger key (``team:x``, ``region:x``, ``organisation``)."""
    kind, _, scope_id = key.partition(":")
    try:
        if kind == rules.TEAM:
            return report_scope(cfg, team=scope_id)
        if kind == rules.REGION:
            return report_scope(cfg, region=scope_id)
        if kind == rules.ORGANISATION:
            return report_scope(cfg)
    except ValueError:
        return None
    return None


def scope_name(cfg: Config, kind: str, scope_id: str, lang: str) -> str:
    """A note's scope as printed: the team's or region's name, or the organisation."""
    if kind == rules.TEAM:
        team = cfg.team(scope_id)
        return team.name if team else scope_id
    if kind == rules.REGION:
        return region_printed(cfg, scope_id)
    return _t(lang, "scope.organisation")


def region_printed(cfg: Config, region: str) -> str:
    """A region's name in a report and its messages: from ``[regions]``, else its id
    written as a name ("varsinais_suomi" -> "Varsinais Suomi")."""
    if region in cfg.regions:
        return cfg.region_name(region)
    return region.replace("_", " ").title()


def file_names(lang: str, scope: ReportScope, period: str) -> tuple[str, str]:
    """The report's PDF and its appendix file: ``sosiaalinen-raportti-helsinki-2026-H2.pdf``."""
    slug = (scope.id or rules.ORGANISATION).replace("/", "-").replace(" ", "-")
    stem = f"{slug}-{period}".replace("..", "_")
    return (
        f"{_t(lang, 'delivery.pdf_name')}-{stem}.pdf",
        f"{_t(lang, 'delivery.pdf_name')}-{stem}-{_t(lang, 'delivery.appendix_name')}.csv",
    )


async def gather_figures(
    session: AsyncSession,
    cfg: Config,
    scope: ReportScope,
    start: date,
    end: date,
    lang: str,
    appendix_name: str = "",
) -> ReportFigures:
    """Everything the report of ``scope`` for ``start``..``end`` shows, in ``lang``."""
    from storage.report_queries import report_figures
    from storage.report_sections import section_figures

    zone = ZoneInfo(cfg.timezone)
    figures = await report_figures(
        session, scope.region, scope.name, start, end, zone, team=scope.team
    )
    if scope.team is not None and scope.region is not None and figures.comparison is not None:
        # A team's report compares the team with its region: the region's column is named.
        region_name = with_code(region_printed(cfg, scope.region), cfg.region_code(scope.region))
        figures = replace(figures, comparison=replace(figures.comparison, region_name=region_name))
    teams = [t for t in cfg.teams if t.id in scope.region_teams]
    # An area's municipality number beside its name ("Kallio (091)"), where configured.
    areas = {
        area.id: with_code(area.name, area.municipality) for team in teams for area in team.areas
    }

    def body_name(body_id: str) -> str:
        body = cfg.body(body_id)
        return body.label(lang) if body else body_id

    sections = await section_figures(
        session,
        region=scope.region,
        team=scope.team,
        start=start,
        end=end,
        zone=zone,
        region_teams=scope.region_teams,
        area_names=areas,
        team_names={t.id: t.name for t in cfg.teams},
        scope_names=lambda kind, scope_id: scope_name(cfg, kind, scope_id, lang),
        body_name=body_name,
        appendix_name=appendix_name,
    )
    return replace(figures, sections=sections, codes=cfg.official_codes())


def post_key(transport: str, chat_id: str, ref: str) -> str:
    """The state key under which a posted report's message is remembered."""
    return f"{POST_STATE}:{transport}:{chat_id}:{ref}"


class ReportDesk:
    """Scheduled social reports, and the conclusions written as replies to them."""

    def __init__(
        self, config: Config, db: Database, router: Router, clock: Clock, digests: DigestDesk
    ) -> None:
        self.config = config
        self.db = db
        self.router = router
        self.clock = clock
        self.digests = digests
        self.zone = ZoneInfo(config.timezone)
        self._alert: Callable[[Incoming, repo.Member | None, str], Outbound] | None = None
        self._updates: set[asyncio.Task[None]] = set()

    def install(self, service: Havainto) -> None:
        service.group_handlers.append(self.on_group_event)
        self.router.sent_hooks.append(self.on_sent)
        self.digests.rebuilders[KIND] = self._rebuild
        self.digests.retry_meta[KIND] = self._retry_meta
        self._alert = service.alert

    # --- the scheduled reports ------------------------------------------------------------

    def _entry(self, scope_key: str, transport: str, chat_id: str) -> ReportScheduleConfig | None:
        channel = self.config.leadership_at(transport, chat_id)
        for entry in self.config.reports:
            scope = self._scope(entry)
            if scope is not None and scope.key == scope_key:
                if channel is None or channel.id == entry.leadership:
                    return entry
        return None

    def _scope(self, entry: ReportScheduleConfig) -> ReportScope | None:
        try:
            return report_scope(self.config, team=entry.team or None, region=entry.region or None)
        except ValueError:
            return None

    def _language(self, entry: ReportScheduleConfig) -> str:
        channel = self.config.leadership_channel(entry.leadership)
        return entry.language or (channel.language if channel else "fi")

    async def send_due(self) -> list[Outcome]:
        """Every ``[[reports]]`` entry whose last ended period is due: delivered once."""
        today = self.clock().astimezone(self.zone).date()
        outcomes: list[Outcome] = []
        for entry in self.config.reports:
            period = last_ended(entry.period, today)
            if today < due_on(period, entry.after_days):
                continue
            scope = self._scope(entry)
            channel = self.config.leadership_channel(entry.leadership)
            if scope is None or channel is None:
                continue
            lang = self._language(entry)
            targets = channel.chat_targets()
            served = await self.digests._served(KIND, scope.key, period.label, targets, outcomes)
            for transport, chat_id in served:
                outcomes.append(
                    await self.digests.deliver(
                        KIND,
                        scope.key,
                        period.label,
                        transport,
                        chat_id,
                        self._build(scope, period, lang),
                        self._meta(scope, period.label, lang),
                    )
                )
        return outcomes

    def _meta(self, scope: ReportScope, period: str, lang: str) -> dict[str, str]:
        return {"track": TRACK + scope.target(period, lang).to_text()}

    def _retry_meta(self, scope_key: str, period: str) -> dict[str, str]:
        scope = scope_from_key(self.config, scope_key)
        if scope is None:
            return {}
        entry = next((e for e in self.config.reports if self._scope(e) == scope), None)
        lang = self._language(entry) if entry else scope.language
        return self._meta(scope, period, lang)

    def _rebuild(
        self, scope_key: str, period: str, transport: str, chat_id: str
    ) -> Callable[[], Awaitable[list[Reply]]] | None:
        entry = self._entry(scope_key, transport, chat_id)
        scope = scope_from_key(self.config, scope_key)
        if scope is None:
            return None
        try:
            named = parse_report_period(period)
        except ValueError:
            return None
        lang = self._language(entry) if entry else scope.language
        return self._build(scope, named, lang)

    def _build(
        self, scope: ReportScope, period: ReportPeriod, lang: str, updated: bool = False
    ) -> Callable[[], Awaitable[list[Reply]]]:
        """The parts of a posted report: the PDF, the appendix, the prompt; ``updated``: the
        PDF alone, made again after conclusions were written."""

        async def build() -> list[Reply]:
            from digests.numbers import Privacy
            from digests.report import printed_report

            pdf_name, csv_name = file_names(lang, scope, period.label)
            async with self.db.snapshot() as session:
                figures = await gather_figures(
                    session, self.config, scope, period.start, period.end, lang, csv_name
                )
            today = self.clock().astimezone(self.zone).date()
            privacy = Privacy(min_cell=self.config.privacy.min_cell)
            render: Any = functools.partial(printed_report, csv_dialect=self.config.csv.dialect)
            printed = await render_off_loop(render, figures, lang, today, privacy)
            async with self.db.transaction() as session:
                what = (
                    f"scope={scope.key} period={period.label} lang={lang} "
                    f"pages={printed.pages} {'updated' if updated else 'scheduled'}"
                )
                await audit.record(
                    session, "scheduler", audit.REPORT, what, figures.total, self.clock()
                )
            log.info(
                "report_built scope=%s period=%s pages=%s", scope.key, period.label, printed.pages
            )
            key = "delivery.updated_caption" if updated else "delivery.caption"
            caption = _t(lang, key, scope=scope.name, period=period.label)
            parts: list[Reply] = [Document(printed.pdf, pdf_name, caption, "application/pdf")]
            if updated:
                return parts
            if printed.appendix is not None:
                appendix_caption = _t(
                    lang, "delivery.appendix_caption", scope=scope.name, period=period.label
                )
                parts.append(Document(printed.appendix, csv_name, appendix_caption, "text/csv"))
            parts.append(rules.prompt_message(lang, scope.name, period.label))
            return parts

        return build

    # --- conclusions as replies to a posted report ------------------------------------------

    async def on_sent(self, outbound: Outbound, ref: str | None) -> None:
        """Remember a posted report's messages, so a reply to one names the report."""
        track = outbound.meta.get("track", "")
        if not track.startswith(TRACK) or ref is None:
            return
        target = rules.NoteTarget.from_text(track.removeprefix(TRACK))
        if target is None:
            return
        async with self.db.transaction() as session:
            key = post_key(outbound.transport, outbound.chat_id, ref)
            await repo.set_state(session, key, target.to_text())

    async def on_group_event(
        self,
        session: AsyncSession,
        incoming: Incoming,
        member: repo.Member | None,
        now: datetime,
    ) -> list[Outbound] | None:
        event = incoming.event
        if not isinstance(event, TextIn) or incoming.reply_to is None or member is None:
            return None
        stored = await repo.get_state(
            session, post_key(incoming.transport, incoming.chat_id, incoming.reply_to)
        )
        target = rules.NoteTarget.from_text(stored)
        if target is None or member.revoked:
            return None  # a reply to something else: not the report's business
        if incoming.event_id is not None and not await repo.first_time_seen(
            session, incoming.transport, incoming.event_id, now
        ):
            return []
        team = self.config.team(member.team_id)
        channel = self.config.leadership_at(incoming.transport, incoming.chat_id)
        decided = rules.take_reply(
            target,
            member.role,
            member.team_id,
            team.region if team else "",
            event.text,
            organisation_channel=channel is not None and not channel.region,
        )
        lang = member.language
        if isinstance(decided, rules.Refuse):
            log.info("conclusions_refused person=%s reason=%s", member.person_id, decided.key)
            return [self._say_alone(incoming, member, rules.refused_message(lang, decided))]
        period = parse_report_period(target.period)
        row = await self.add(
            session,
            target,
            period,
            decided.text,
            decided.role,
            f"person:{member.pseudonym}",
            lang,
            now,
        )
        log.info("conclusions_saved id=%s scope=%s period=%s", row, target.scope_key, period.label)
        name = scope_name(self.config, target.scope_kind, target.scope_id, lang)
        message = rules.saved_message(lang, name, period.label, row)
        self._start_update(target, incoming.transport, incoming.chat_id, row)
        return [Outbound(incoming.transport, incoming.chat_id, message)]

    # --- the edited report: made again with the conclusions just written ----------------------

    def _start_update(
        self, target: rules.NoteTarget, transport: str, chat_id: str, note: int
    ) -> None:
        task = asyncio.create_task(self._post_updated(target, transport, chat_id, note))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def _post_updated(
        self, target: rules.NoteTarget, transport: str, chat_id: str, note: int
    ) -> None:
        """Post the report again, with the conclusions of note ``note``, once the event's
        transaction that stores it has committed (waited for, up to 10 s)."""
        from storage.models import ReportNote

        try:
            for _ in range(100):
                async with self.db.snapshot() as session:
                    if await session.get(ReportNote, note) is not None:
                        break
                await asyncio.sleep(0.1)
            else:
                log.warning("report_update_skipped note=%s reason=not_stored", note)
                return
            scope = scope_from_key(self.config, target.scope_key)
            if scope is None:
                return
            period = parse_report_period(target.period)
            parts = await self._build(scope, period, target.language, updated=True)()
            meta = self._meta(scope, period.label, target.language)
            for part in parts:
                await self.router.send_retrying(Outbound(transport, chat_id, part, dict(meta)))
            log.info("report_updated note=%s scope=%s period=%s", note, scope.key, period.label)
        except Exception as error:
            log.warning("report_update_failed note=%s error=%s", note, type(error).__name__)

    async def drain(self) -> None:
        """Wait for the edited reports being made (tests; a graceful stop)."""
        while self._updates:
            await asyncio.gather(*list(self._updates), return_exceptions=True)

    async def close(self) -> None:
        """Stop making edited reports (a stop: the conclusions are stored already)."""
        for task in list(self._updates):
            task.cancel()
        if self._updates:
            await asyncio.gather(*self._updates, return_exceptions=True)

    @staticmethod
    async def add(
        session: AsyncSession,
        target: rules.NoteTarget,
        period: ReportPeriod,
        text: str,
        role: str,
        author: str,
        lang: str,
        now: datetime,
    ) -> int:
        from storage.report_notes import add_note

        row = await add_note(
            session,
            scope_kind=target.scope_kind,
            scope_id=target.scope_id,
            period=period.label,
            period_start=period.start,
            period_end=period.end,
            language=lang,
            author_role=role,
            author=author,
            text=text,
            now=now,
        )
        return row.id

    def _say_alone(self, incoming: Incoming, member: repo.Member | None, text: str) -> Outbound:
        from flows.events import Alert

        if self._alert is not None:
            return self._alert(incoming, member, text)
        return Outbound(incoming.transport, incoming.chat_id, Alert(text))
