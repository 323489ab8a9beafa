"""Observations out, in comparable codes: the exported record, a streaming query, writers.

The record is a pydantic model so its JSON Schema can be published
(``havainto export --schema``); the CSV header and the XLSX columns are its
fields in order. Every coded field comes with its label in the language the
export asks for (``theme`` and ``theme_label``), so a file from Vaasa in
Swedish and one from Helsinki in Finnish still compare on the codes.

The reporting worker appears only as a pseudonym salted per export: stable
inside one export, unlinkable between two. Chat identities never leave the
database: the query does not even join the table that holds them.

Memory stays flat whatever the row count: rows are read with ``yield_per``
from a server-side cursor and written one by one (the CSV and JSONL writers
straight to the output, the XLSX writer through openpyxl's write-only mode).
Free text in the CSV file is escaped like every CSV file Havainto writes
(``digests.spreadsheet.safe_cell``); the XLSX writer marks it as text instead.

openpyxl is imported by the XLSX writer only: it loads numpy and Pillow, which
nothing else of ``storage`` needs (importing any ``storage`` module loads no
drawing library).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from digests.periods import HELSINKI, week_of
from digests.spreadsheet import DEFAULT_CSV_DIALECT, csv_writer, safe_cell
from flows import privacy, statuses
from flows.i18n import label
from flows.knowledge import PATH, PROPOSAL_STATUSES, RECORDED, PathFacts
from flows.knowledge import position as path_position
from flows.official_codes import NO_CODES, OfficialCodes
from flows.statuses import ESCALATION_STATUSES, OPEN
from flows.taxonomy import DIMENSIONS, NOT_ESCALATED, Dimension
from storage.models import (
    Delivery,
    Observation,
    PhenomenonLink,
    Proposal,
    Team,
)

SCHEMA_ID = "https://havainto.invalid/schema/export-record.json"

# Coded fields and the taxonomy dimension their codes come from: every dimension.
CODED: dict[str, Dimension] = {d.field: d for d in DIMENSIONS.values()}
FREE_TEXT = ("description", "quote", "action")


def _code(description: str) -> Any:
    return Field(description=description)


_LABEL_TEXT = "Label of the code on the left, in labels_language"


def _label() -> Any:
    return Field(description=_LABEL_TEXT)


class ExportRecord(BaseModel):
    """One observation, as exported: codes, their labels in one language, and metadata."""

    model_config = ConfigDict(
        title="Havainto observation",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    id: int = Field(description="Observation number, stable within one database")
    observed_at: datetime = Field(description="When it was observed (UTC, ISO 8601)")
    recorded_at: datetime = Field(description="When it was recorded (UTC, ISO 8601)")
    team: str = Field(description="Team id")
    team_name: str
    region: str = Field(description="Region (wellbeing services county) id")
    region_code: str | None = Field(
        default=None,
        description="Statistics Finland's code of the wellbeing services county (01-21; 90 "
        "the City of Helsinki), as the configuration gives it; null when it gives none",
    )
    area: str | None = Field(description="Coarse area id (district or municipality)")
    area_name: str | None = Field(description="The area's name in the team's configuration")
    municipality: str | None = Field(
        default=None,
        description="Statistics Finland's three-digit municipality number of the area "
        "(e.g. 091 Helsinki), as the configuration gives it; null when it gives none",
    )
    theme: str = _code("Taxonomy code, e.g. theme.housing")
    theme_label: str = _label()
    population_group: str = _code("Taxonomy code, e.g. group.youth")
    population_group_label: str = _label()
    signal: str = _code("Service-system signal code, e.g. signal.queues")
    signal_label: str = _label()
    frequency: str = _code("Novelty code, e.g. frequency.growing")
    frequency_label: str = _label()
    escalation: str = _code("escalation.none, escalation.leadership or escalation.shl48")
    escalation_label: str = _label()
    escalation_status: Literal[ESCALATION_STATUSES] | None = Field(  # type: ignore[valid-type]
        description="Latest status of an escalated observation; null when not escalated"
    )
    escalation_status_label: str | None = _label()
    polarity: str = _code("polarity.problem or polarity.good_practice")
    polarity_label: str = _label()
    task: str | None = _code("Service task code, e.g. task.child_protection")
    task_label: str | None = _label()
    source: str | None = _code("Source code, e.g. source.client")
    source_label: str | None = _label()
    scale: str | None = _code("How many people it concerns, e.g. scale.few")
    scale_label: str | None = _label()
    support_need: str | None = Field(
        default=None,
        description="Support need of the Social Welfare Act 1301/2014 section 11, e.g. "
        "support_need.housing (taxonomy 2026.2, where the deployment asks it); null otherwise",
    )
    support_need_label: str | None = Field(default=None, description=_LABEL_TEXT)
    description: str | None = Field(description="What was seen (free text)")
    quote: str | None = Field(description="The client's own words, if recorded")
    action: str | None = Field(description="Proposed action, if any")
    text_erased: bool = Field(
        description="True when the free text was erased after the retention period"
    )
    worker: str = Field(description="Reporting worker's pseudonym, stable within this export only")
    transport: str = Field(description="Channel the entry came from: telegram, matrix, terminal")
    language: str = Field(description="Language the worker used (fi, sv, en)")
    labels_language: Literal["fi", "sv", "en"] = Field(description="Language of the *_label fields")
    flow_version: str
    taxonomy_version: str = Field(description="Version of the code lists used")
    phenomenon_id: int | None = Field(
        default=None, description="The phenomenon the observation is linked to, if any"
    )
    proposal_status: Literal[PROPOSAL_STATUSES] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="The furthest status of the proposals made of the observation or of "
        "its phenomenon; null when there is none",
    )
    path_position: Literal[PATH] = Field(  # type: ignore[valid-type]
        default=RECORDED,
        description="Where the observation stands on the knowledge path: recorded, "
        "in_digest, phenomenon, raised, presented, decided or closed",
    )


FIELDS: tuple[str, ...] = tuple(ExportRecord.model_fields)


def export_schema() -> dict[str, Any]:
    """The published JSON Schema of one exported record."""
    schema = ExportRecord.model_json_schema()
    schema["$id"] = SCHEMA_ID
    return schema


class Pseudonymiser:
    """Maps person ids to pseudonyms with a fresh random salt per export."""

    def __init__(self, salt: bytes | None = None) -> None:
        self._salt = salt or secrets.token_bytes(16)

    def __call__(self, person_id: int) -> str:
        digest = hmac.new(self._salt, str(person_id).encode(), hashlib.sha256).hexdigest()
        return "p-" + digest[:10]


def status_label(status: str, lang: str) -> str:
    return statuses.status_label(lang, status)


def _proposal_rank(key: Any) -> Any:
    """The furthest proposal status per ``key`` (a Proposal column) as a rank (1 = proposed
    ... in ``PROPOSAL_STATUSES`` order): one grouped pass over the (few) proposals."""
    rank = case(
        {status: index + 1 for index, status in enumerate(PROPOSAL_STATUSES)},
        value=Proposal.status,
    )
    return (
        select(key.label("key"), func.max(rank).label("rank"))
        .where(key.is_not(None))
        .group_by(key)
        .subquery()
    )


async def digested_weeks(session: AsyncSession) -> set[tuple[str, str]]:
    """(team, ISO week) of every weekly digest that went out: the path's "in_digest" step."""
    rows = await session.execute(
        select(Delivery.scope, Delivery.period)
        .where(Delivery.kind == "weekly", Delivery.status == "sent")
        .distinct()
    )
    return {(row.scope, row.period) for row in rows}


def observations_query(
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
    region: str | None = None,
) -> Select[Any]:
    """Matching, not withdrawn observations in id order, with team name and latest status."""
    # Plain rows, not ORM objects: a large export pays for no identity map or instrumentation.
    # The escalation status is the column the triggers keep (migration 0005); the phenomenon
    # and the furthest proposal (of the entry or of its phenomenon) are outer joins, not a
    # subquery per row.
    own = _proposal_rank(Proposal.observation_id)
    shared = _proposal_rank(Proposal.phenomenon_id)
    own_rank, shared_rank = func.coalesce(own.c.rank, 0), func.coalesce(shared.c.rank, 0)
    query = (
        select(
            *Observation.__table__.columns,
            Team.name.label("team_name"),
            PhenomenonLink.phenomenon_id.label("phenomenon_id"),
            case((own_rank >= shared_rank, own_rank), else_=shared_rank).label("proposal_rank"),
        )
        .join(Team, Team.id == Observation.team_id)
        .outerjoin(PhenomenonLink, PhenomenonLink.observation_id == Observation.id)
        .outerjoin(own, own.c.key == Observation.id)
        .outerjoin(shared, shared.c.key == PhenomenonLink.phenomenon_id)
        .where(Observation.withdrawn_at.is_(None))
        .order_by(Observation.id)
    )
    if since is not None:
        query = query.where(Observation.observed_at >= since)
    if until is not None:
        query = query.where(Observation.observed_at < until)
    if team is not None:
        query = query.where(Observation.team_id == team)
    if region is not None:
        query = query.where(Observation.region == region)
    return query


def local_bounds(start: date, end: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in local time, as aware datetimes."""
    after = end + timedelta(days=1)
    return (
        datetime(start.year, start.month, start.day, tzinfo=zone),
        datetime(after.year, after.month, after.day, tzinfo=zone),
    )


async def iter_records(
    session: AsyncSession,
    since: datetime | None = None,
    until: datetime | None = None,
    team: str | None = None,
    region: str | None = None,
    pseudonymise: Pseudonymiser | None = None,
    lang: str = "fi",
    area_names: Mapping[tuple[str, str], str] | None = None,
    codes: OfficialCodes = NO_CODES,
) -> AsyncIterator[ExportRecord]:
    """Stream the matching observations as records with labels in ``lang``; ``codes``
    gives the official region and municipality codes of the configuration."""
    pseudonymise = pseudonymise or Pseudonymiser()
    area_names = area_names or {}
    labels: dict[str, str] = {}

    def lab(code: str | None) -> Any:
        if code is None:
            return None
        found = labels.get(code)
        if found is None:
            found = labels[code] = label(code, lang)
        return found

    digested = await digested_weeks(session)
    query = observations_query(since, until, team, region).execution_options(yield_per=1000)
    result = await session.stream(query)
    # A partition at a time: one hop into the driver per 1,000 rows, not one per row.
    async for partition in result.partitions():
        for row in partition:
            escalated = row.escalation != NOT_ESCALATED
            status = (row.escalation_status or OPEN) if escalated else None
            proposal = PROPOSAL_STATUSES[row.proposal_rank - 1] if row.proposal_rank else None
            in_digest = (
                bool(digested)
                and (
                    row.team_id,
                    week_of(row.observed_at.astimezone(HELSINKI).date()),
                )
                in digested
            )
            position = path_position(
                PathFacts(
                    in_digest=in_digest,
                    phenomenon=row.phenomenon_id is not None,
                    raised=escalated,
                    proposal_status=proposal,
                )
            )
            yield ExportRecord(
                id=row.id,
                observed_at=row.observed_at,
                recorded_at=row.recorded_at,
                team=row.team_id,
                team_name=row.team_name,
                region=row.region,
                region_code=codes.region(row.region),
                area=row.area,
                area_name=area_names.get((row.team_id, row.area)) if row.area else None,
                municipality=codes.municipality(row.team_id, row.area),
                # Each coded field with its label in ``lang``.
                **{
                    field: value
                    for name in CODED
                    for field, value in (
                        (name, getattr(row, name)),
                        (f"{name}_label", lab(getattr(row, name))),
                    )
                },
                escalation_status=status,
                escalation_status_label=status_label(status, lang) if status else None,
                # Last line of defence: no hetu leaves, even one stored before the guard.
                description=privacy.scrub(row.description),
                quote=privacy.scrub(row.quote),
                action=privacy.scrub(row.action),
                text_erased=row.text_erased_at is not None,
                worker=pseudonymise(row.person_id),
                transport=row.transport,
                language=row.language,
                labels_language=lang,  # type: ignore[arg-type]  # validated by pydantic
                flow_version=row.flow_version,
                taxonomy_version=row.taxonomy_version,
                phenomenon_id=row.phenomenon_id,
                proposal_status=proposal,
                path_position=position,
            )


# --- writers ----------------------------------------------------------------------------


def _csv_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Free text a spreadsheet would run as a formula (CSV injection) gets a leading '.
    return safe_cell(text) if name in FREE_TEXT else text


async def write_jsonl(records: AsyncIterator[ExportRecord], out: IO[str]) -> int:
    """One JSON object per line; returns the number of records."""
    count = 0
    async for record in records:
        out.write(record.model_dump_json() + "\n")
        count += 1
    return count


async def write_csv(
    records: AsyncIterator[ExportRecord], out: IO[str], dialect: str = DEFAULT_CSV_DIALECT
) -> int:
    """CSV with a header row of the schema's field names; returns the record count.

    ``dialect`` (``digests.spreadsheet``, one for every CSV file): ``semicolon`` (the
    default: ``;`` and a UTF-8 byte order mark, for Excel with Finnish or Swedish regional
    settings) or ``comma`` (RFC 4180)."""
    writer = csv_writer(out, dialect)
    writer.writerow(FIELDS)
    # ``_csv_value`` per cell, with the work done once per column: csv writes None as ""
    # and numbers and the JSON-mode strings as they are; only flags and free text need care.
    flags = [
        i for i, name in enumerate(FIELDS) if ExportRecord.model_fields[name].annotation is bool
    ]
    texts = [FIELDS.index(name) for name in FREE_TEXT]
    count = 0
    async for record in records:
        row = list(record.model_dump(mode="json").values())
        for i in flags:
            row[i] = _csv_value(FIELDS[i], row[i])
        for i in texts:
            if row[i] is not None:
                row[i] = _csv_value(FIELDS[i], row[i])
        writer.writerow(row)
        count += 1
    return count


def column_widths(lang: str, names: Mapping[str, int] | None = None) -> dict[str, float]:
    """Column widths (in characters) that fit every value a column can hold.

    Coded columns can hold only the published codes, so their widths are known
    before the first row: the longest code or label in ``lang``. Names from the
    configuration come in ``names`` (field -> longest value); free text is capped
    so that a row stays readable.
    """
    longest: dict[str, int] = {
        "id": 8,
        "observed_at": 25,
        "recorded_at": 25,
        "description": 60,
        "quote": 50,
        "action": 50,
        "worker": 12,
        "text_erased": 5,
        "escalation_status": max(len(s) for s in ESCALATION_STATUSES),
        "escalation_status_label": max(len(status_label(s, lang)) for s in ESCALATION_STATUSES),
    }
    for name, dimension in CODED.items():
        longest[name] = max(len(code) for code in dimension.codes)
        longest[f"{name}_label"] = max(len(label(code, lang)) for code in dimension.codes)
    longest.update(names or {})
    return {name: min(max(len(name), longest.get(name, 10)) + 2, 80) for name in FIELDS}


async def write_xlsx(
    records: AsyncIterator[ExportRecord],
    out: str | IO[bytes],
    widths: Mapping[str, float],
    sheet_title: str = "havainnot",
) -> int:
    """An XLSX workbook: a bold, frozen header row, fitted widths, one row per record."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title)
    # In write-only mode these must be set before the first row is written.
    sheet.freeze_panes = "A2"
    for index, name in enumerate(FIELDS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = widths.get(name, 12)
    bold = Font(bold=True)
    header = []
    for name in FIELDS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    count = 0
    async for record in records:
        sheet.append([_xlsx_cell(sheet, v) for v in record.model_dump(mode="json").values()])
        count += 1
    workbook.save(out)
    return count


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("="):
        from openpyxl.cell import WriteOnlyCell

        # Text is text: never let a worker's "=..." become a formula.
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value


def dump_schema() -> str:
    return json.dumps(export_schema(), ensure_ascii=False, indent=2)
