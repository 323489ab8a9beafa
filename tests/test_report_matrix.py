"""The social report's second stage on Matrix, against a real Synapse with the real
matrix-nio client: the scheduled report reaches a Matrix leadership room as a PDF with a
prompt; a leader's reply (``m.in_reply_to``) to the prompt is stored as the region's
conclusions, and the report comes again with them in it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bot.config import Config
from bot.runtime import Runtime
from bot.runtime.jobs import social_report_job
from storage.models import ReportNote
from tests.support.db import rows
from tests.support.synapse_harness import Synapse
from tests.test_knowledge_matrix import enrolled
from tests.test_matrix_e2e import Bot, leadership_room, matrix_section, start
from tests.test_matrix_e2e import bot_account as bot_account
from tests.test_matrix_e2e import runtimes as runtimes

DUE = datetime(2027, 1, 11, 7, 0, tzinfo=UTC)  # Monday, 09:00 in Helsinki
REPORTS = [{"region": "helsinki", "period": "half-year", "leadership": "hki-johto"}]


async def test_a_reply_to_the_report_in_a_matrix_room_is_stored_as_its_conclusions(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    leader, room, leadership = await leadership_room(synapse, bot_account)
    config = make_config(
        matrix=matrix_section(synapse, bot_account), leadership=leadership, reports=REPORTS
    )
    runtime, _ = await start(config, runtimes)
    await leader.until(lambda: (room, bot_account.user_id, "join") in leader.memberships)
    await enrolled(runtime, leader, "leader")

    # On Monday 11 January 2027 the second half of 2026 is due: a PDF and a prompt.
    assert runtime.reports is not None
    runtime.reports.clock = lambda: DUE
    await social_report_job(runtime)
    caption, prompt = await leader.replies(room, 2)  # the PDF's caption, then the prompt
    assert caption.body == "Sosiaalinen raportti: Helsinki, 2026-H2"
    assert "vastauksena tähän viestiin" in prompt.body
    await leader.until(lambda: len(leader.files[room]) == 1)
    assert leader.files[room][0]["body"].endswith(".pdf")

    text = "Asunnottomuus kasvoi. Esitämme lisää hätämajoitusta."
    await leader.send(
        room, text, **{"m.relates_to": {"m.in_reply_to": {"event_id": prompt.event_id}}}
    )
    saved = await leader.reply(room)
    assert "Johtopäätökset tallennettu" in saved.body and "Helsinki" in saved.body
    [note] = await rows(runtime.db, ReportNote)
    assert (note.scope_kind, note.scope_id, note.author_role, note.text) == (
        "region",
        "helsinki",
        "leader",
        text,
    )
    # The edited report follows in the same room, made in the rendering process.
    await runtime.reports.drain()
    await leader.until(lambda: len(leader.files[room]) == 2)
    edited = await leader.reply(room)
    assert edited.body == "Sosiaalinen raportti johtopäätöksineen: Helsinki, 2026-H2"
    # A message that is no reply is ordinary talk: nothing more is stored.
    await leader.send(room, "Hyvää huomenta")
    await leader.quiet(room)
    assert len(await rows(runtime.db, ReportNote)) == 1
    await leader.client.close()
