"""The knowledge path on Matrix, against a real Synapse with the real matrix-nio client.

A worker's entry -> the team lead makes it a phenomenon (``!ilmio``) -> the team room's
weekly digest says what happened to the team's observations, and another worker reacts to
its "Minäkin" choice; a third types the same matter and answers "the same thing?" with ``1``
-> a leader proposes in the leadership room and moves the proposal with reactions, a typed
day, a skipped note and one typed decision -> the three workers hear of it once (a second
news run sends nothing); ``!missa`` shows the path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import nio

from bot.config import Config
from bot.runtime import Runtime
from bot.transports.matrix import KEYCAPS
from digests.periods import HELSINKI, week_of
from storage.models import AuditEvent, Confirmation, Phenomenon, Proposal
from tests.conftest import TEST_TEAMS
from tests.support.db import rows
from tests.support.synapse_harness import Synapse
from tests.test_matrix_e2e import (
    TEAM,
    Bot,
    Peer,
    enrol,
    leadership_room,
    matrix_section,
    observations,
    peer,
    save_by_numbers,
    start,
)
from tests.test_matrix_e2e import bot_account as bot_account
from tests.test_matrix_e2e import runtimes as runtimes

BODIES = [{"id": "sote", "name": {"fi": "Sosiaali- ja terveyslautakunta"}, "level": "regional"}]


async def enrolled(runtime: Runtime, someone: Peer, role: str) -> str:
    room = await someone.open_dm()
    code = await runtime.service.create_invite(TEAM, role, timedelta(days=1))
    await someone.send(room, f"!start {code}")
    await someone.reply(room)
    return room


async def react_to_option(leader: Peer, room: str, label_part: str) -> None:
    """React with the keycap of the newest bot message's option containing ``label_part``."""
    notice = leader.notices[room][-1]
    options = notice.options()
    index = next(i for i, option in enumerate(options) if label_part in option)
    await leader.until(lambda: len(leader.bot_reactions[notice.event_id]) == len(options))
    await leader.react(room, notice.event_id, KEYCAPS[index])


async def test_the_knowledge_path_over_matrix(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    leader, channel, leadership = await leadership_room(synapse, bot_account)
    # The team's room, where its weekly digest goes: the lead made it, the bot and a
    # worker (``other``) are in it.
    lead = await peer(synapse, bot_account.user_id)
    other = await peer(synapse, bot_account.user_id)
    created = await lead.client.room_create(
        name="Helsingin etsivät", invite=[bot_account.user_id, other.user_id]
    )
    assert isinstance(created, nio.RoomCreateResponse)
    team_room = created.room_id
    assert isinstance(await other.client.join(team_room), nio.JoinResponse)
    teams = [dict(TEST_TEAMS[0], matrix_room_id=team_room), *TEST_TEAMS[1:]]
    config = make_config(
        matrix=matrix_section(synapse, bot_account),
        leadership=leadership,
        bodies=BODIES,
        teams=teams,
    )
    runtime, _ = await start(config, runtimes)
    await leader.until(lambda: (channel, bot_account.user_id, "join") in leader.memberships)
    await lead.until(lambda: (team_room, bot_account.user_id, "join") in lead.memberships)
    await enrolled(runtime, leader, "leader")
    lead_dm = await enrolled(runtime, lead, "lead")

    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)
    await save_by_numbers(worker, room, "Nuori aikuinen ilman hätämajoitusta pakkasyönä")
    [entry] = await observations(runtime)

    await lead.send(lead_dm, f"!ilmio {entry.id} Nuoret aikuiset ilman hätämajoitusta")
    assert "Ilmiö #" in (await lead.reply(lead_dm)).body
    [phenomenon] = await rows(runtime.db, Phenomenon)

    other_room = await other.open_dm()
    await enrol(runtime, other, other_room)
    # The team's weekly digest: what happened to our observations, and the open phenomenon
    # with its "Minäkin" choice, which the other worker answers with a reaction.
    assert runtime.digests is not None
    await runtime.digests.send_weekly(week_of(runtime.service.clock().astimezone(HELSINKI)))
    await other.until(
        lambda: any(f"Minäkin #{phenomenon.id}" in n.options() for n in other.notices[team_room])
    )
    digest = "\n".join(n.body for n in other.notices[team_room])
    assert "Mitä havainnoillemme tapahtui" in digest
    assert f"ilmiöön #{phenomenon.id}" in digest and "Nuoret aikuiset" in digest
    choice = next(n for n in other.notices[team_room] if n.options())
    index = choice.options().index(f"Minäkin #{phenomenon.id}")
    await other.until(lambda: len(other.bot_reactions[choice.event_id]) == len(choice.options()))
    await other.react(team_room, choice.event_id, KEYCAPS[index])
    # Answered to the worker alone, in their private chat; the team room stays quiet.
    assert "minäkin" in (await other.reply(other_room)).body.lower()
    [confirmation] = await rows(runtime.db, Confirmation)
    assert confirmation.phenomenon_id == phenomenon.id

    # "Me too" at capture time: a third worker types the same matter, is asked "the same
    # thing?" and answers with one number: a confirmation, not a new entry.
    third = await peer(synapse, bot_account.user_id)
    third_room = await third.open_dm()
    await enrol(runtime, third, third_room)
    await third.send(third_room, "Taas nuori aikuinen ilman hätämajoitusta pakkasyönä")
    assert "Kuulostaa samalta" in (await third.reply(third_room)).body
    await third.send(third_room, "1")
    assert "Kirjattu: minäkin" in (await third.reply(third_room)).body
    assert len(await observations(runtime)) == 1

    # In the leadership room: propose, present (body, day), decide (typed).
    await leader.send(channel, f"!ehdotus {phenomenon.id} Lisää hätämajoituspaikkoja")
    await leader.replies(channel, 2)  # "recorded" and the card
    await react_to_option(leader, channel, "Esitetty")
    assert "toimielimelle" in (await leader.reply(channel)).body
    await react_to_option(leader, channel, "Sosiaali- ja terveyslautakunta")
    assert "päivänä" in (await leader.reply(channel)).body
    await leader.send(channel, "1.11.2026")
    assert "muistiinpano" in (await leader.reply(channel)).body  # optional: one reaction
    await react_to_option(leader, channel, "Ei muistiinpanoa")
    await leader.replies(channel, 2)  # done and the new card
    await react_to_option(leader, channel, "Päätetty")
    assert "päätettiin" in (await leader.reply(channel)).body
    await leader.send(channel, "20 lisäpaikkaa tammikuusta")
    await leader.reply(channel)
    [proposal] = await rows(runtime.db, Proposal)
    assert (proposal.status, proposal.body, proposal.decision) == (
        "decided",
        "sote",
        "20 lisäpaikkaa tammikuusta",
    )

    assert runtime.knowledge is not None
    assert await runtime.knowledge.send_news() == 3
    for someone, dm in ((worker, room), (other, other_room), (third, third_room)):
        news = await someone.reply(dm)
        assert "20 lisäpaikkaa tammikuusta" in news.body
    # Once: a second run the same day sends nothing, and nothing arrives.
    assert await runtime.knowledge.send_news() == 0
    await worker.quiet(room, 1.0)
    await worker.send(room, f"!missa {entry.id}")
    path = (await worker.reply(room)).body
    assert "Päätös tehty" in path and "Sosiaali- ja terveyslautakunta" in path
    for person in (leader, lead, worker, other, third):
        await person.client.close()


async def test_the_buttons_under_a_notice_over_matrix(
    synapse: Synapse,
    bot_account: Bot,
    make_config: Callable[..., Config],
    runtimes: list[Runtime],
) -> None:
    """A notice of a grievance in a Matrix leadership room: a leader reacts "Make this a
    phenomenon" and names it in the room, then marks the notice "Not remedied" without a
    note; the notifier hears it and gets the escalation pack by reacting to the offer."""
    leader, channel, leadership = await leadership_room(synapse, bot_account)
    config = make_config(matrix=matrix_section(synapse, bot_account), leadership=leadership)
    runtime, _ = await start(config, runtimes)
    await leader.until(lambda: (channel, bot_account.user_id, "join") in leader.memberships)
    await enrolled(runtime, leader, "leader")

    worker = await peer(synapse, bot_account.user_id)
    room = await worker.open_dm()
    await enrol(runtime, worker, room)
    await save_by_numbers(worker, room, "Asiakkaan kotihoito laiminlyöty viikon ajan", "3")
    [entry] = await observations(runtime)

    notice = await leader.reply(channel)
    options = notice.options()
    assert f"#{entry.id}" in notice.body
    assert {"Tee ilmiö", "Liitä ilmiöön", "Ei korjattu"} <= set(options)

    # "Make this a phenomenon": the bot asks for a name; the leader types it in the room.
    await react_to_option(leader, channel, "Tee ilmiö")
    assert "Kirjoita ilmiön nimi" in (await leader.reply(channel)).body
    await leader.send(channel, "Kotihoidon laiminlyönnit")
    assert "Ilmiö #" in (await leader.reply(channel)).body
    [phenomenon] = await rows(runtime.db, Phenomenon)
    assert phenomenon.title == "Kotihoidon laiminlyönnit"

    # "Not remedied" on the notice, then "without a note" on its prompt.
    await leader.react(channel, notice.event_id, KEYCAPS[options.index("Ei korjattu")])
    prompt = await leader.reply(channel)
    assert "Ei korjattu" in prompt.body
    await react_to_option(leader, channel, prompt.options()[0])
    told = f"#{entry.id}"
    await worker.until(
        lambda: any(told in n.body and "Ei korjattu" in n.body for n in worker.notices[room])
    )
    offer = next(n for n in worker.notices[room] if "Lupa- ja valvontavirasto" in n.body)
    assert len(offer.options()) == 1
    await worker.until(lambda: len(worker.bot_reactions[offer.event_id]) == 1)
    await worker.react(room, offer.event_id, KEYCAPS[0])
    await worker.until(lambda: bool(worker.files[room]))
    assert worker.files[room][-1]["body"].endswith(".pdf")
    audits = await rows(runtime.db, AuditEvent)
    assert [a.what for a in audits if a.action == "escalation.pack"] == [f"observation #{entry.id}"]
    for person in (leader, worker):
        await person.client.close()
