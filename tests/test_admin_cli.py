"""The operator's commands through Typer's CliRunner, on a temporary SQLite config file.

Each command is run the way an operator types it; the effects are read back
from the database and the audit trail. (The functions behind them run on both
backends in test_export, test_retention and test_report.)
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_config
from storage import audit
from storage.db import Database
from storage.export import FIELDS
from storage.models import AuditEvent, Invite, Person
from tests.support.datacare_helpers import World, seed

NOW = datetime.now(UTC).replace(microsecond=0)
CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[terminal]
enabled = "no"

[[leadership]]
id = "hki-johto"
name = "Helsingin johto"
region = "helsinki"

[[teams]]
id = "hki-etsiva"
name = "Helsingin etsivät"
region = "helsinki"
leadership = "hki-johto"
areas = [{{ id = "kallio", name = "Kallio" }}, {{ id = "itakeskus", name = "Itäkeskus" }}]

[[teams]]
id = "vaasa-uppsok"
name = "Vasa uppsökande"
region = "pohjanmaa"
language = "sv"
"""


class Operator:
    """Runs ``havainto`` commands against one config file and reads the database back."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> str:
        result = self.runner.invoke(app, [*args, "-c", str(self.config)], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
        return result.output

    def query(self, statement: object) -> list[object]:
        async def run() -> list[object]:
            db = Database(load_config(self.config).database.url)
            try:
                async with db.transaction() as session:
                    return list((await session.execute(statement)).scalars().all())  # type: ignore[call-overload]
            finally:
                await db.close()

        return asyncio.run(run())

    def audit(self, action: str) -> list[AuditEvent]:
        rows = self.query(select(AuditEvent).where(AuditEvent.action == action))
        return [r for r in rows if isinstance(r, AuditEvent)]


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    path = tmp_path / "havainto.toml"
    path.write_text(CONFIG.format(db=tmp_path / "h.db"), encoding="utf-8")
    config = load_config(path)

    async def prepare() -> World:
        world = await seed(config, NOW)
        await world.db.close()
        return world

    op = Operator(path)
    op.world = asyncio.run(prepare())  # type: ignore[attr-defined]
    yield op


def world_of(op: Operator) -> World:
    return op.world  # type: ignore[attr-defined,no-any-return]


def test_export_formats_and_their_audit_rows(operator: Operator, tmp_path: Path) -> None:
    # The default dialect: ';' and a byte order mark, what Excel in Finland opens as columns.
    out = operator("export", "--format", "csv", "--lang", "sv", "--actor", "planner")
    assert out.startswith("\ufeffid;")
    rows = list(csv.DictReader(io.StringIO(out.removeprefix("\ufeff")), delimiter=";"))
    assert list(rows[0]) == list(FIELDS) and len(rows) == 8
    assert rows[0]["labels_language"] == "sv"
    kallio = next(r for r in rows if r["area"] == "kallio")
    assert kallio["area_name"] == "Kallio"

    path = tmp_path / "export.xlsx"
    message = operator("export", "--format", "xlsx", "--region", "helsinki", "--output", str(path))
    assert "6 observations" in message
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None and sheet.max_row == 7 and sheet.freeze_panes == "A2"

    out = operator("export", "--from", (NOW - timedelta(days=5)).date().isoformat())
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(
        line["observed_at"] >= (NOW - timedelta(days=6)).isoformat()[:10] for line in lines
    )

    schema = json.loads(operator("export", "--schema"))
    assert list(schema["properties"]) == list(FIELDS)

    events = operator.audit(audit.EXPORT)
    assert [(e.actor, e.rows) for e in events][:2] == [("planner", 8), (events[1].actor, 6)]
    assert events[1].actor  # the login name by default
    assert "format=csv" in events[0].what and "lang=sv" in events[0].what
    assert "region=helsinki" in events[1].what and "export.xlsx" in events[1].what
    assert len(events) == 3  # --schema reads no data and is not recorded

    operator("export", "--team", "nope", ok=False)
    operator("export", "--from", "31.12.2026", ok=False)


def test_report_command_writes_html_and_pdf(operator: Operator, tmp_path: Path) -> None:
    start = (NOW - timedelta(days=30)).date().isoformat()
    end = NOW.date().isoformat()
    html = tmp_path / "r.html"
    operator(
        "report", "--region", "helsinki", "--from", start, "--to", end,
        "--format", "html", "--output", str(html), "--lang", "en", "--actor", "lead",
    )  # fmt: skip
    text = html.read_text(encoding="utf-8")
    assert "Social report" in text and "Helsinki" in text
    pdf = tmp_path / "r.pdf"
    operator("report", "--region", "pohjanmaa", "--from", start, "--to", end, "--output", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF")
    events = operator.audit(audit.REPORT)
    assert (events[0].actor, events[0].rows) == ("lead", 5)
    assert "region=pohjanmaa" in events[1].what and "lang=sv" in events[1].what
    assert events[1].rows == 2
    unknown = ("--region", "lappi", "--from", start, "--to", end, "--output", str(pdf))
    operator("report", *unknown, ok=False)


def test_people_list_hides_identities_unless_asked(operator: Operator) -> None:
    world = world_of(operator)
    out = operator("people", "list")
    for member in world.people.values():
        assert member.pseudonym in out
    for identifier in world.chat_ids + world.external_ids:
        assert identifier not in out
    assert "worker" in out and "hki-etsiva" in out
    assert operator.audit(audit.IDENTITIES_SHOWN) == []

    out = operator("people", "list", "--team", "vaasa-uppsok")
    assert world.people["cecilia"].pseudonym in out
    assert world.people["anna"].pseudonym not in out

    out = operator("people", "list", "--show-identities", "--actor", "admin-anna")
    for identifier in world.chat_ids:
        assert identifier in out
    [event] = operator.audit(audit.IDENTITIES_SHOWN)
    assert (event.actor, event.rows) == ("admin-anna", 3)


def test_revoke_a_person_keeps_their_entries(operator: Operator) -> None:
    world = world_of(operator)
    ben = world.people["ben"]
    out = operator("people", "revoke", ben.pseudonym, "--actor", "hr")
    assert "revoked" in out
    [person] = operator.query(select(Person).where(Person.id == ben.person_id))
    assert isinstance(person, Person) and person.revoked_at is not None
    operator("people", "revoke", ben.pseudonym, ok=False)  # already revoked
    operator("people", "revoke", "w-nobody", ok=False)
    # Revoking by number works too.
    operator("people", "revoke", str(world.people["cecilia"].person_id))
    # Their entries remain, under an export pseudonym.
    # The other dialect by option: RFC 4180, no byte order mark.
    out = operator("export", "--format", "csv", "--csv-dialect", "comma")
    assert out.startswith("id,")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 8
    ben_line = next(
        line for line in operator("people", "list").splitlines() if ben.pseudonym in line
    )
    assert ben_line.split()[-1] != "-"  # the revoked column has a date
    events = operator.audit(audit.PERSON_REVOKE)
    assert [(e.actor, e.rows) for e in events] == [("hr", 1), (events[1].actor, 1)]
    assert f"person={ben.person_id}" in events[0].what


def test_restore_a_revoked_person(operator: Operator) -> None:
    world = world_of(operator)
    ben = world.people["ben"]
    operator("people", "revoke", ben.pseudonym, "--actor", "hr")
    # No invite is made for a revoked person: they come back by restoring only.
    out = operator("invite", "--team", "hki-etsiva", "--person", str(ben.person_id), ok=False)
    assert "revoked" in out and "people restore" in out
    out = operator("people", "restore", ben.pseudonym, "--actor", "admin-anna")
    assert ben.pseudonym in out and "restored" in out
    [person] = operator.query(select(Person).where(Person.id == ben.person_id))
    assert isinstance(person, Person) and person.revoked_at is None
    assert person.pseudonym == ben.pseudonym
    operator("people", "restore", ben.pseudonym, ok=False)  # not revoked (any more)
    operator("people", "restore", "w-nobody", ok=False)
    # By number, like revoke.
    cecilia = world.people["cecilia"]
    operator("people", "revoke", str(cecilia.person_id))
    operator("people", "restore", str(cecilia.person_id), "--actor", "admin-anna")
    events = operator.audit(audit.PERSON_RESTORE)
    assert [(e.actor, e.rows) for e in events] == [("admin-anna", 1), ("admin-anna", 1)]
    assert f"person={ben.person_id}" in events[0].what
    assert f"person={cecilia.person_id}" in events[1].what
    assert all(e.at is not None for e in events)
    assert "person.restore" in operator("audit")
    # Now an invite for another identity of his can be made again.
    operator("invite", "--team", "hki-etsiva", "--person", str(ben.person_id))


def test_invite_create_list_and_revoke(operator: Operator) -> None:
    out = operator("invite", "--team", "hki-etsiva", "--role", "lead", "--expires", "2d")
    code = out.strip().splitlines()[-1]
    assert len(code) == 10 and code.isalnum()
    listed = operator("invite", "list")
    assert code in listed and "lead" in listed and "open" in listed
    operator("invite", "revoke", code, "--actor", "boss")
    assert code not in operator("invite", "list")
    assert f"{code}" in operator("invite", "list", "--all")
    assert "revoked" in operator("invite", "list", "--all")
    operator("invite", "revoke", code, ok=False)
    operator("invite", ok=False)  # a new invite needs --team
    [invite] = operator.query(select(Invite).where(Invite.code == code))
    assert isinstance(invite, Invite)
    assert invite.revoked_at is not None
    [event] = operator.audit(audit.INVITE_REVOKE)
    assert event.actor == "boss" and code in event.what


def test_teams_list_and_audit_listing(operator: Operator) -> None:
    out = operator("teams", "list")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["team", "region", "language", "people", "observations"]
    hki = next(line for line in lines if line.startswith("hki-etsiva"))
    assert hki.split()[1:5] == ["helsinki", "fi", "2", "6"]
    vaasa = next(line for line in lines if line.startswith("vaasa-uppsok"))
    assert vaasa.split()[1:5] == ["pohjanmaa", "sv", "1", "2"]

    operator("retention", "run", "--actor", "dpo")
    operator("export", "--actor", "researcher")
    out = operator("audit")
    assert "retention.run" in out and "dpo" in out
    assert "export" in out and "researcher" in out
    tomorrow = (datetime.now().date() + timedelta(days=2)).isoformat()
    assert "researcher" not in operator("audit", "--since", tomorrow)
