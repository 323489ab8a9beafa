"""The same weekly digest delivered to a Matrix team room on a real Synapse, exactly once.

Uses the Matrix test harness of ``tests/test_matrix_e2e.py`` (a real homeserver on
loopback, the bot's own account, a team lead on a second real nio client).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nio
import pytest

from bot.config import Config
from bot.runtime import Runtime
from tests.conftest import TEST_TEAMS
from tests.support.synapse_harness import Synapse
from tests.test_matrix_e2e import (  # noqa: F401 - the fixtures are used by name
    Bot,
    bot_account,
    matrix_section,
    peer,
    runtimes,
    start,
)
from tests.test_scheduler import seed_week_47

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@dataclass
class _Seeder:
    rt: Runtime


@sqlite_only
async def test_weekly_digest_reaches_a_matrix_team_room_once(
    synapse: Synapse,
    bot_account: Bot,  # noqa: F811 - the fixture
    make_config: Callable[..., Config],
    runtimes: list[Runtime],  # noqa: F811 - the fixture
) -> None:
    lead = await peer(synapse, bot_account.user_id)
    created = await lead.client.room_create(name="Helsingin etsivät", invite=[bot_account.user_id])
    assert isinstance(created, nio.RoomCreateResponse)
    room = created.room_id
    teams = [
        dict(TEST_TEAMS[0], telegram_chat_id="", matrix_room_id=room),
        *TEST_TEAMS[1:],
    ]
    config = make_config(matrix=matrix_section(synapse, bot_account), teams=teams)
    runtime, _ = await start(config, runtimes)
    await lead.until(lambda: (room, bot_account.user_id, "join") in lead.memberships)
    await seed_week_47(_Seeder(runtime))  # type: ignore[arg-type]
    assert runtime.digests is not None

    [outcome] = await runtime.digests.send_weekly("2026-W47", ["hki-etsiva"])
    assert (outcome.key, outcome.result, outcome.parts) == (
        f"weekly:hki-etsiva:2026-W47:matrix:{room}",
        "sent",
        2,
    )
    digest = await lead.reply(room)
    assert digest.body.startswith("Viikkokooste · Helsingin etsivät · viikko 47/2026")
    assert "<b>" in digest.formatted  # the HTML rendering, as on Telegram
    await lead.until(lambda: len(lead.files[room]) == 1)
    [chart] = lead.files[room]
    assert chart["msgtype"] == "m.image" and chart["url"].startswith("mxc://")
    assert chart["info"]["mimetype"] == "image/png"
    caption = await lead.reply(room)  # the Matrix transport posts an image's caption as text
    assert caption.body == digest.body.splitlines()[0]

    [again] = await runtime.digests.send_weekly("2026-W47", ["hki-etsiva"])
    assert again.result == "skipped"
    await lead.quiet(room)
    assert len(lead.files[room]) == 1
    await lead.client.close()
