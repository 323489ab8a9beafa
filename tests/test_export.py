"""Exports in comparable codes: CSV, XLSX and JSONL round trips on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import openpyxl
import pytest
from sqlalchemy import func, select, update

from bot.config import Config
from flows.events import Incoming, TextIn
from flows.i18n import label
from flows.privacy import IdentifierKind, kinds_found
from storage import knowledge
from storage.export import (
    FIELDS,
    ExportRecord,
    Pseudonymiser,
    column_widths,
    export_schema,
    iter_records,
    write_csv,
    write_jsonl,
    write_xlsx,
)
from storage.export_formats import FORMATS, WriteOptions
from storage.models import Observation, Proposal
from tests.support.datacare_helpers import HETU, World, add, observation, seed

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    w = await seed(make_config(), NOW)
    yield w
    await w.db.close()


async def export_text(world: World, fmt: str, **filters: Any) -> str:
    out = io.StringIO()
    async with world.db.transaction() as session:
        records = iter_records(session, **filters)
        if fmt == "csv":
            await write_csv(records, out)
        else:
            await write_jsonl(records, out)
    return out.getvalue()


def read_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV file in the default dialect (';' after a UTF-8 byte order mark)."""
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))


async def test_one_csv_dialect_for_every_csv_file_and_the_other_by_option(world: World) -> None:
    """The export and the monthly escalations file share the dialect (``[csv] dialect``)."""
    from digests.render import escalations_csv

    comma = io.StringIO()
    async with world.db.transaction() as session:
        await write_csv(iter_records(session), comma, "comma")
    assert comma.getvalue().startswith("id,") and "\ufeff" not in comma.getvalue()
    semicolon = await export_text(world, "csv")
    assert len(read_csv(semicolon)) == len(list(csv.DictReader(io.StringIO(comma.getvalue()))))
    monthly = escalations_csv([], "fi").decode("utf-8")
    assert monthly.startswith("\ufefflisted_as;observation_id;")
    assert escalations_csv([], "fi", dialect="comma").decode("utf-8").startswith("listed_as,")


async def records(world: World, **filters: Any) -> list[ExportRecord]:
    async with world.db.transaction() as session:
        return [r async for r in iter_records(session, **filters)]


def validator() -> jsonschema.protocols.Validator:
    schema = export_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


async def test_jsonl_validates_against_the_published_schema(world: World) -> None:
    lines = (await export_text(world, "jsonl")).splitlines()
    assert len(lines) == 8  # nine stored, one withdrawn
    check = validator()
    for line in lines:
        check.validate(json.loads(line))
    # The schema is strict enough to catch a wrong record.
    bad = json.loads(lines[0]) | {"escalation_status": "lost"}
    with pytest.raises(jsonschema.ValidationError):
        check.validate(bad)
    assert list(export_schema()["properties"]) == list(FIELDS)


async def test_csv_round_trip_matches_jsonl(world: World) -> None:
    salt = Pseudonymiser(b"same salt for both")
    text = io.StringIO()
    async with world.db.transaction() as session:
        await write_csv(iter_records(session, pseudonymise=salt), text)
    assert text.getvalue().startswith("\ufeffid;")  # the default dialect
    rows = read_csv(text.getvalue())
    assert list(rows[0].keys()) == list(export_schema()["properties"])
    expected = [r.model_dump(mode="json") for r in await records(world, pseudonymise=salt)]
    assert len(rows) == len(expected) == 8
    for row, record in zip(rows, expected, strict=True):
        for name in FIELDS:
            value = record[name]
            want = "" if value is None else value
            if isinstance(value, bool):
                want = "true" if value else "false"
            got = row[name]
            if name == "description" and str(want).startswith("="):
                assert got == "'" + want  # a formula is defused for spreadsheets
                continue
            assert got == str(want), name


async def test_xlsx_round_trip_with_frozen_header_and_fitted_widths(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "export.xlsx"
    salt = Pseudonymiser(b"salt")
    async with world.db.transaction() as session:
        count = await write_xlsx(
            iter_records(session, pseudonymise=salt, lang="sv"), str(path), column_widths("sv")
        )
    assert count == 8
    book = openpyxl.load_workbook(path)
    sheet = book.active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(FIELDS)
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.bold
    expected = [
        r.model_dump(mode="json") for r in await records(world, pseudonymise=salt, lang="sv")
    ]
    for row, record in zip(rows[1:], expected, strict=True):
        assert list(row) == [record[name] for name in FIELDS]
    # Every label fits its column; a header never overflows.
    letters = {name: openpyxl.utils.get_column_letter(i) for i, name in enumerate(FIELDS, 1)}
    for name in FIELDS:
        width = sheet.column_dimensions[letters[name]].width
        assert width >= len(name)
        if name.endswith("_label"):
            longest = max((len(str(r[name] or "")) for r in expected), default=0)
            assert width >= longest, name
    # A worker's "=..." stays text, never a formula.
    formula_row = next(r for r in rows[1:] if str(r[FIELDS.index("description")]).startswith("="))
    cell_types = [c.data_type for c in sheet[rows.index(formula_row) + 1]]
    assert "f" not in cell_types


async def test_codes_come_with_labels_in_the_chosen_language(world: World) -> None:
    for lang in ("fi", "sv", "en"):
        for record in await records(world, lang=lang):
            assert record.labels_language == lang
            assert record.theme_label == label(record.theme, lang)
            assert record.signal_label == label(record.signal, lang)
            assert record.population_group_label == label(record.population_group, lang)
            assert record.taxonomy_version == "2026.1"
    by_id = {
        r.id: r
        for r in await records(world, lang="sv", area_names={("hki-etsiva", "kallio"): "Kallio"})
    }
    housing = by_id[world.observations["housing"]]
    assert housing.area == "kallio" and housing.area_name == "Kallio"
    assert housing.team == "hki-etsiva" and housing.team_name == "Helsingin etsivät"
    assert housing.task_label == label("task.working_age", "sv")
    assert housing.source == "source.client"


async def test_latest_escalation_status(world: World) -> None:
    by_id = {r.id: r for r in await records(world, lang="en")}
    shl48 = by_id[world.observations["shl48"]]
    assert (shl48.escalation, shl48.escalation_status) == ("escalation.shl48", "handled")
    assert shl48.escalation_status_label == "Handled"
    leadership = by_id[world.observations["leadership"]]
    assert leadership.escalation_status == "open"  # escalated, no event yet
    assert by_id[world.observations["housing"]].escalation_status is None


async def test_filters(world: World) -> None:
    ids = {r.id for r in await records(world, region="pohjanmaa")}
    assert ids == {world.observations["vaasa1"], world.observations["vaasa2"]}
    ids = {r.id for r in await records(world, team="hki-etsiva")}
    assert world.observations["vaasa1"] not in ids and len(ids) == 6
    recent = await records(world, since=NOW - timedelta(days=5), until=NOW)
    assert {r.id for r in recent} == {
        world.observations[k] for k in ("leadership", "good", "ben1", "vaasa2")
    }
    assert world.observations["withdrawn"] not in {r.id for r in await records(world)}


async def test_pseudonyms_stable_within_and_different_between_exports(world: World) -> None:
    first, second = await records(world), await records(world)
    anna_ids = {world.observations[k] for k in ("old", "housing", "shl48", "leadership", "good")}

    def anna(rs: list[ExportRecord]) -> set[str]:
        return {r.worker for r in rs if r.id in anna_ids}

    assert len(anna(first)) == 1 and len(anna(second)) == 1
    assert anna(first) != anna(second)
    assert len({r.worker for r in first}) == 3  # three workers, three pseudonyms
    # The pseudonym kept in the database is not the exported one either.
    stored = {m.pseudonym for m in world.people.values()}
    assert not stored & {r.worker for r in first + second}


async def test_no_chat_id_or_hetu_in_any_export(world: World, tmp_path: Path) -> None:
    texts = [await export_text(world, "csv"), await export_text(world, "jsonl")]
    path = tmp_path / "e.xlsx"
    async with world.db.transaction() as session:
        await write_xlsx(iter_records(session), str(path), column_widths("fi"))
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    texts.append("\n".join(str(v) for row in sheet.iter_rows(values_only=True) for v in row))
    for text in texts:
        for identifier in world.external_ids + world.chat_ids:
            assert identifier not in text
        assert HETU not in text
        assert IdentifierKind.HETU not in kinds_found(text)
        assert not re.search(r"\d{6}[-+A]\d{3}[0-9A-Z]", text)
    # The rest of the sentence around the hetu survives.
    assert "kohtelu palvelussa huolestuttaa" in texts[1]


async def test_an_obfuscated_hetu_in_an_old_row_is_scrubbed_from_the_csv(world: World) -> None:
    # Stored before the guard knew the trick: zero-width characters and a soft
    # hyphen inside the code, a line break after the sign.
    hidden = "13\u200b10\u200b52\u00ad-\n308\u2060T"
    await add(
        world,
        "obfuscated",
        observation(
            world.people["anna"],
            NOW - 900 * timedelta(days=1),
            "helsinki",
            description=f"Asiakas {hidden} ohjattiin pois.",
            quote=f"Mun hetu on {hidden}",
        ),
    )
    rows = read_csv(await export_text(world, "csv"))
    row = next(r for r in rows if r["id"] == str(world.observations["obfuscated"]))
    assert row["description"] == "Asiakas [HETU] ohjattiin pois."
    assert row["quote"] == "Mun hetu on [HETU]"
    for text in (row["description"], row["quote"]):
        assert not any(c.isdigit() for c in text)
        assert not any(c in text for c in "\u200b\u00ad\u2060")


async def test_an_export_in_progress_does_not_hold_back_a_workers_entry(world: World) -> None:
    """The export reads a snapshot: writers go on beside it, and it keeps its view.

    Before snapshots an export ran in a write transaction: on SQLite a worker's entry
    waited for the whole export (minutes at a million rows) and was then spooled.
    """
    async with world.db.snapshot() as reading:
        stream = iter_records(reading)
        exported = [await anext(stream)]  # the export has begun and holds its snapshot
        seen = await count_observations(reading)
        person = world.external_ids[0]
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(5):
            replies = await world.service.handle(
                Incoming("telegram", person, person, TextIn("Jono päivystykseen kasvoi."))
            )
            async with world.db.transaction() as writing:
                writing.add(Observation(**observation(world.people["anna"], NOW, "helsinki")))
        assert loop.time() - started < 2, "the writes waited for the export"
        assert replies, "the worker got no answer"
        exported += [r async for r in stream]
        # The export still sees the table as it was when it began.
        assert await count_observations(reading) == seen
    assert len(exported) == len(await records(world)) - 1
    async with world.db.transaction() as session:
        assert await count_observations(session) == seen + 1


async def count_observations(session: Any) -> int:
    return int((await session.execute(select(func.count(Observation.id)))).scalar_one())


async def test_the_knowledge_path_columns_are_in_the_schema_and_the_records(world: World) -> None:
    properties = export_schema()["properties"]
    for name in ("phenomenon_id", "proposal_status", "path_position"):
        assert name in properties, name
    assert set(properties["path_position"]["enum"]) == {
        "recorded",
        "in_digest",
        "phenomenon",
        "raised",
        "presented",
        "decided",
        "closed",
    }
    check = validator()
    for line in (await export_text(world, "jsonl")).splitlines():
        record = json.loads(line)
        check.validate(record)
        assert record["path_position"] in properties["path_position"]["enum"]
        bad = record | {"path_position": "somewhere"}
        with pytest.raises(jsonschema.ValidationError):
            check.validate(bad)


async def test_phenomenon_and_the_furthest_proposal_of_the_entry_or_its_phenomenon(
    world: World,
) -> None:
    """The phenomenon and proposal columns come from outer joins: an entry shows its
    phenomenon and the furthest proposal of its own or of its phenomenon; others none."""
    housing, shl48 = world.observations["housing"], world.observations["shl48"]
    lead = world.people["anna"]
    async with world.db.transaction() as session:
        phenomenon = await knowledge.create_phenomenon(
            session,
            region="helsinki",
            team_id="hki-etsiva",
            theme="theme.housing",
            title="Ei hätämajoitusta",
            language="fi",
            actor_person_id=lead.person_id,
            actor="test",
            now=NOW,
        )
        for entry in (housing, shl48):
            assert await knowledge.link(
                session, phenomenon.id, entry, actor_person_id=None, actor="test", now=NOW
            )
        shared = await knowledge.create_proposal(
            session,
            text="Lisää paikkoja",
            phenomenon_id=phenomenon.id,
            proposer_person_id=None,
            owner_person_id=None,
            actor="test",
            now=NOW,
        )
        own = await knowledge.create_proposal(
            session,
            text="Selvitä kotihoito",
            observation_id=shl48,
            proposer_person_id=None,
            owner_person_id=None,
            actor="test",
            now=NOW,
        )
        assert shared is not None and own is not None
        await session.execute(
            update(Proposal).where(Proposal.id == shared.id).values(status="presented")
        )
        await session.execute(
            update(Proposal).where(Proposal.id == own.id).values(status="decided")
        )
    by_id = {r.id: r for r in await records(world)}
    assert (by_id[housing].phenomenon_id, by_id[housing].proposal_status) == (
        phenomenon.id,
        "presented",
    )
    assert by_id[housing].path_position == "presented"
    assert (by_id[shl48].phenomenon_id, by_id[shl48].proposal_status) == (phenomenon.id, "decided")
    assert by_id[shl48].path_position == "decided"
    others = [r for key, r in by_id.items() if key not in (housing, shl48)]
    assert others and all(r.phenomenon_id is None and r.proposal_status is None for r in others)
    # Each entry once, however many proposals it reaches.
    assert sorted(by_id) == sorted(r.id for r in await records(world))
    assert len(await records(world)) == len(by_id)


async def test_every_registered_format_is_offered_and_writes_every_record(world: World) -> None:
    """``storage.export_formats.FORMATS`` is the one list: the command line offers its formats and
    dispatches through their writers."""
    from bot.cli.datacare import FORMAT_HELP, ExportFormat

    assert [f.value for f in ExportFormat] == list(FORMATS) == ["csv", "xlsx", "jsonl"]
    assert FORMAT_HELP == "csv, xlsx or jsonl."
    expected = len((await export_text(world, "jsonl")).splitlines())
    assert expected > 0
    for fmt in FORMATS.values():
        out: io.BytesIO | io.StringIO = io.BytesIO() if fmt.binary else io.StringIO()
        async with world.db.transaction() as session:
            records = iter_records(session, lang="sv")
            count = await fmt.write(records, out, WriteOptions(lang="sv"))
        assert count == expected, fmt.name
        if isinstance(out, io.BytesIO):
            sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
            assert sheet is not None and sheet.max_row == expected + 1  # and the header
            column = FIELDS.index("labels_language") + 1
            assert {sheet.cell(row, column).value for row in range(2, expected + 2)} == {"sv"}
        elif fmt.name == "csv":
            assert {row["labels_language"] for row in read_csv(out.getvalue())} == {"sv"}
        else:
            lines = out.getvalue().splitlines()
            assert len(lines) == expected
            assert {json.loads(line)["labels_language"] for line in lines} == {"sv"}


def test_every_taxonomy_dimension_is_stored_and_exported() -> None:
    """A dimension listed in ``flows.taxonomy.DIMENSIONS`` is saved from the draft's field
    of its name and exported with its label: neither list is edited for it."""
    import dataclasses

    from bot.service import OBSERVATION_FIELDS
    from flows.capture import Draft
    from flows.taxonomy import DIMENSIONS
    from storage.export import CODED
    from storage.models import Observation

    drafted = {f.name for f in dataclasses.fields(Draft)}
    for dimension in DIMENSIONS.values():
        assert dimension.name in drafted
        assert OBSERVATION_FIELDS[dimension.name] == dimension.field
        assert dimension.field in Observation.__table__.columns
        assert CODED[dimension.field] is dimension
        assert {dimension.field, f"{dimension.field}_label"} <= set(FIELDS)
    assert set(OBSERVATION_FIELDS) <= drafted
    assert set(OBSERVATION_FIELDS.values()) <= set(Observation.__table__.columns.keys())
    assert list(CODED) == [
        *("theme", "population_group", "signal", "frequency", "escalation", "polarity"),
        *("task", "source", "scale", "support_need"),
    ]
