"""``havainto phenomenon`` and ``havainto proposal`` as an operator types them (CliRunner, SQLite).

The storage functions behind them run on both backends in tests/test_knowledge.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_config
from storage.models import AuditEvent, Proposal, ProposalEvent
from tests.support.datacare_helpers import seed
from tests.support.db import rows

CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"
[terminal]
enabled = "no"
[[teams]]
id = "hki-etsiva"
name = "Helsingin etsivät"
region = "helsinki"
[[teams]]
id = "vaasa-uppsok"
name = "Vasa uppsökande"
region = "pohjanmaa"
language = "sv"
[[bodies]]
id = "sote"
name = {{ fi = "Sosiaali- ja terveyslautakunta", sv = "Social- och hälsovårdsnämnden" }}
level = "regional"
"""


def test_an_operator_walks_a_phenomenon_and_its_proposal_to_a_decision(tmp_path: Path) -> None:
    path = tmp_path / "havainto.toml"
    path.write_text(CONFIG.format(db=tmp_path / "h.db"), encoding="utf-8")
    config = load_config(path)
    world = asyncio.run(seed(config, datetime.now(UTC)))
    asyncio.run(world.db.close())
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(
            app,
            [
                *args,
                "-c",
                str(path),
                *(() if args[1] in ("list", "show") else ("--actor", "ohjaaja")),
            ],
        )
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    out = run(
        "phenomenon",
        "create",
        "--team",
        "hki-etsiva",
        "--theme",
        "theme.housing",
        "--title",
        "Nuoret ilman hätämajoitusta",
    )
    assert out.strip() == "phenomenon #1"
    housing = world.observations["housing"]
    assert f"linked to #1: {housing}" in run("phenomenon", "link", "1", str(housing), "99999")
    listed = run("phenomenon", "list")
    assert "Nuoret ilman hätämajoitusta" in listed and "theme.housing" in listed
    # A phone number in a proposal is refused with what to do; a hetu is removed.
    refused = run("proposal", "create", "--phenomenon", "1", "--text", "Soita 040 1234567", code=2)
    assert "--allow-identifiers" in refused
    assert (
        run("proposal", "create", "--phenomenon", "1", "--text", "Lisää paikkoja 131052-308T")
        .strip()
        .endswith("proposal #1")
    )
    bad = run("proposal", "move", "1", "presented", "--body", "sote", code=2)
    assert "--on" in bad
    bad = run(
        "proposal", "move", "1", "presented", "--body", "nobody", "--on", "2026-11-30", code=2
    )
    assert "sote" in bad
    run("proposal", "move", "1", "presented", "--body", "sote", "--on", "2026-11-30")
    assert "--note" in run("proposal", "move", "1", "decided", code=2)
    run("proposal", "move", "1", "decided", "--note", "20 lisäpaikkaa")
    shown = run("proposal", "show", "1")
    assert "Sosiaali- ja terveyslautakunta 2026-11-30" in shown and "20 lisäpaikkaa" in shown
    assert "131052-308T" not in shown
    assert f"#{housing}" in run("phenomenon", "show", "1")

    async def check() -> None:
        from storage.db import Database

        db = Database(config.database.url)
        try:
            [proposal] = await rows(db, Proposal)
            assert proposal.status == "decided" and "131052-308T" not in proposal.text
            assert [e.status for e in await rows(db, ProposalEvent)] == [
                "proposed",
                "presented",
                "decided",
            ]
            audit_rows = await rows(db, AuditEvent)
            assert {a.actor for a in audit_rows if a.action.startswith("proposal.")} == {"ohjaaja"}
        finally:
            await db.close()

    asyncio.run(check())
