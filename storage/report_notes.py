"""The conclusions of the social report (``report_notes``): written once, printed in every
report of their scope whose period covers theirs, on the audit trail.

A note belongs to a team, a region or the whole organisation and to a named period
(``digests.report_periods``: ``2026-H2``, ``2026``, ``2026-11``). A region's report
prints the region's notes and those of its teams; the organisation's report the
organisation's and the regions'; a team's report the team's. Only notes whose period
lies within the report's are printed, so a year's report carries its half-years' and
a month's report only that month's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.conclusions import ORGANISATION, REGION, TEAM
from storage import audit
from storage.models import ReportNote

REPORT_NOTE = "report.notes"  # the audit action


async def add_note(
    session: AsyncSession,
    *,
    scope_kind: str,
    scope_id: str,
    period: str,
    period_start: date,
    period_end: date,
    language: str,
    author_role: str,
    author: str,
    text: str,
    now: datetime,
) -> ReportNote:
    """Store conclusions (already through the identifier guard) and audit them."""
    row = ReportNote(
        scope_kind=scope_kind,
        scope_id=scope_id if scope_kind != ORGANISATION else "",
        period=period,
        period_start=period_start,
        period_end=period_end,
        language=language,
        author_role=author_role,
        author=author[:128],
        text=text,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    scope = scope_kind if scope_kind == ORGANISATION else f"{scope_kind}:{scope_id}"
    what = f"note #{row.id} scope={scope} period={period} role={author_role} lang={language}"
    await audit.record(session, author, REPORT_NOTE, what, 1, now)
    return row


async def notes_for(
    session: AsyncSession,
    *,
    team: str | None,
    region: str | None,
    region_teams: Iterable[str] = (),
    start: date,
    end: date,
) -> Sequence[ReportNote]:
    """The notes a report of a team (``team``), a region (``region`` and its teams) or the
    organisation (neither) prints for ``start``..``end``, oldest first."""
    if team is not None:
        whose = and_(ReportNote.scope_kind == TEAM, ReportNote.scope_id == team)
    elif region is not None:
        whose = or_(
            and_(ReportNote.scope_kind == REGION, ReportNote.scope_id == region),
            and_(ReportNote.scope_kind == TEAM, ReportNote.scope_id.in_(list(region_teams))),
        )
    else:
        whose = ReportNote.scope_kind.in_((ORGANISATION, REGION))
    rows = await session.execute(
        select(ReportNote)
        .where(whose, ReportNote.period_start >= start, ReportNote.period_end <= end)
        .order_by(ReportNote.created_at, ReportNote.id)
    )
    return rows.scalars().all()
