"""The audit trail: escalation status changes are on it, and it shares the action's fate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Config
from storage import audit
from storage import escalations as esc
from tests.support.datacare_helpers import World, seed

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    w = await seed(make_config(), NOW)
    yield w
    await w.db.close()


async def test_escalation_status_changes_are_audited(world: World) -> None:
    leadership = world.observations["leadership"]
    leader = world.people["anna"].person_id  # any person id will do for the trail
    async with world.db.transaction() as session:
        await esc.add_event(session, leadership, "acknowledged", NOW, leader)
        await esc.add_event(session, leadership, "decided", NOW + timedelta(hours=1), leader, "Ok")
        await esc.add_event(session, leadership, "handled", NOW + timedelta(hours=2))
    async with world.db.transaction() as session:
        events = [
            e for e in await audit.list_events(session) if e.action == audit.ESCALATION_STATUS
        ]
    assert [(e.actor, e.what, e.rows) for e in events] == [
        (f"person:{leader}", f"observation={leadership} status=acknowledged", 1),
        (f"person:{leader}", f"observation={leadership} status=decided", 1),
        ("system", f"observation={leadership} status=handled", 1),
    ]
    assert "Ok" not in " ".join(e.what for e in events)  # the leader's text stays out
    async with world.db.transaction() as session:
        later = await audit.list_events(session, since=NOW + timedelta(minutes=30))
    assert [e.what.rsplit("=", 1)[1] for e in later] == ["decided", "handled"]


async def test_an_action_that_rolls_back_leaves_no_audit_row(world: World) -> None:
    with pytest.raises(RuntimeError):
        async with world.db.transaction() as session:
            await audit.record(session, "someone", audit.EXPORT, "format=csv", 3, NOW)
            raise RuntimeError("the export failed half way")
    async with world.db.transaction() as session:
        assert await audit.list_events(session) == []
