"""The knowledge path's rules (flows.knowledge) and facts (storage.knowledge), on every backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import jsonschema
import pytest

from bot.config import Config
from flows import knowledge as rules
from storage import export, knowledge
from storage.models import AuditEvent, Notification, PathNotice
from tests.support.datacare_helpers import add, enrol, observation, seed
from tests.support.db import rows

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
QUEUE = "Päihdehoidon jono on pitkä, viikkoja"


# --- pure rules ----------------------------------------------------------------------


def test_proposal_moves_follow_the_path() -> None:
    bodies = ["sote"]
    assert rules.check_move(rules.PROPOSED, rules.Move(rules.DECIDED, note="x"), bodies) == (
        "knowledge.error.not_allowed"
    )
    assert rules.check_move(rules.PROPOSED, rules.Move(rules.PRESENTED), bodies) == (
        "knowledge.error.body_needed"
    )
    assert rules.check_move(rules.PROPOSED, rules.Move(rules.PRESENTED, body="x"), bodies) == (
        "knowledge.error.body_needed"
    )
    assert rules.check_move(rules.PROPOSED, rules.Move(rules.PRESENTED, body="sote"), bodies) == (
        "knowledge.error.date_needed"
    )
    assert (
        rules.check_move(
            rules.PROPOSED, rules.Move(rules.PRESENTED, body="sote", on=date(2027, 3, 12)), bodies
        )
        is None
    )
    assert rules.check_move(rules.PRESENTED, rules.Move(rules.DECIDED, note=" "), bodies) == (
        "knowledge.error.decision_needed"
    )
    assert rules.check_move(rules.PRESENTED, rules.Move(rules.DECIDED, note="ok"), bodies) is None
    for closed in rules.PROPOSAL_CLOSED:
        for target in rules.PROPOSAL_STATUSES:
            assert rules.check_move(closed, rules.Move(target, "sote", date.today(), "n"), bodies)


def test_position_is_the_furthest_fact() -> None:
    assert rules.position(rules.PathFacts()) == rules.RECORDED
    assert rules.position(rules.PathFacts(in_digest=True)) == rules.IN_DIGEST
    assert rules.position(rules.PathFacts(in_digest=True, phenomenon=True)) == rules.IN_PHENOMENON
    assert rules.position(rules.PathFacts(phenomenon=True, raised=True)) == rules.RAISED
    assert rules.position(rules.PathFacts(proposal_status=rules.PROPOSED)) == rules.RECORDED
    assert rules.position(rules.PathFacts(proposal_status=rules.PRESENTED)) == (
        rules.PATH_PRESENTED
    )
    assert rules.position(rules.PathFacts(proposal_status=rules.DECIDED)) == rules.PATH_DECIDED
    assert rules.position(rules.PathFacts(proposal_status=rules.REJECTED)) == rules.CLOSED
    assert rules.furthest_status([rules.PROPOSED, rules.DECIDED, rules.PRESENTED]) == rules.DECIDED
    assert rules.furthest_status([]) is None


SIMILAR = [
    (
        "Nuori aikuinen ilman hätämajoitusta pakkasyönä",
        "Ei hätämajoitusta nuorille aikuisille pakkasella",
    ),
    ("Päihdehoitoon pääsy kestää viikkoja", "Päihdehoidon jono on pitkä, viikkoja"),
    (
        "Mielenterveyspalveluihin ei pääse ilman lähetettä",
        "Lähete vaaditaan mielenterveyspalveluihin, moni jää ulos",
    ),
    ("Ingen nödinkvartering för unga vuxna", "Unga vuxna utan nödinkvartering i kylan"),
]
UNRELATED = [
    "Asumisneuvontaa ei ole saatavilla iltaisin",
    "Kön till missbruksvården är lång",
    "Kela-asiointi vaatii pankkitunnukset",
]


def test_me_too_suggests_the_same_matter_and_not_another() -> None:
    for text, same in SIMILAR:
        pool = [rules.Candidate("observation", i + 1, t) for i, t in enumerate(UNRELATED)]
        pool.append(rules.Candidate("observation", 99, same))
        found = rules.suggest(text, pool)
        assert [c.id for c in found] == [99], (text, found)
    pool = [
        rules.Candidate("observation", 1, SIMILAR[0][1]),
        rules.Candidate("phenomenon", 2, SIMILAR[0][1]),
    ]
    assert [c.kind for c in rules.suggest(SIMILAR[0][0], pool)] == ["phenomenon", "observation"]
    many = [rules.Candidate("observation", i, SIMILAR[1][1]) for i in range(10)]
    assert len(rules.suggest(SIMILAR[1][0], many)) == rules.SUGGESTION_LIMIT
    assert rules.suggest("", many) == []


# --- storage ---------------------------------------------------------------------------


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(
        bodies=[
            {
                "id": "sote",
                "name": {"fi": "Sote-lautakunta", "sv": "Social- och hälsovårdsnämnden"},
                "level": "regional",
            }
        ]
    )


async def test_the_raised_step_is_dated_when_the_notice_was_made(config: Config) -> None:
    """/missa's "raised to leadership": when the entry's first notice was made (an entry
    escalated by a later correction), else when it was recorded."""
    world = await seed(config, NOW)
    anna = world.people["anna"]
    recorded = NOW - timedelta(days=3)
    late = await add(
        world,
        "late",
        observation(anna, recorded, "helsinki", escalation="escalation.leadership"),
    )
    at_once = await add(
        world,
        "at_once",
        observation(anna, recorded, "helsinki", escalation="escalation.leadership"),
    )
    try:
        async with world.db.transaction() as session:
            for chat, made in (("-1", NOW - timedelta(days=1)), ("-2", NOW)):
                session.add(
                    Notification(
                        observation_id=late,
                        channel="hki-johto",
                        kind="escalation.leadership",
                        transport="telegram",
                        chat_id=chat,
                        created_at=made,
                    )
                )
        async with world.db.snapshot() as session:
            dates = {}
            for key, number in (("late", late), ("at_once", at_once)):
                row = await session.get(knowledge.Observation, number)
                assert row is not None
                path = await knowledge.path_of(session, row)
                [raised] = [s for s in path.steps if s.step == rules.RAISED]
                dates[key] = raised.at
    finally:
        await world.db.close()
    assert dates == {"late": NOW - timedelta(days=1), "at_once": recorded}


async def test_a_phenomenon_gathers_links_confirmations_and_a_proposal_to_a_decision(
    config: Config,
) -> None:
    world = await seed(config, NOW)
    db = world.db
    anna, ben = world.people["anna"], world.people["ben"]
    dora = await enrol(world, "dora", "hki-etsiva", NOW - timedelta(days=30))
    lead = await enrol(world, "lead", "hki-etsiva", NOW - timedelta(days=30), role="lead")
    entry = await add(
        world,
        "frost",
        observation(
            anna, NOW - timedelta(days=2), "helsinki", description="Ei hätämajoitusta pakkasyönä"
        ),
    )
    try:
        async with db.transaction() as session:
            phenomenon = await knowledge.create_phenomenon(
                session,
                region="helsinki",
                team_id="hki-etsiva",
                theme="theme.housing",
                title="Nuoret aikuiset ilman hätämajoitusta pakkasöinä",
                language="fi",
                actor_person_id=lead.person_id,
                actor=f"person:{lead.pseudonym}",
                now=NOW,
            )
            assert await knowledge.link(
                session, phenomenon.id, entry, actor_person_id=lead.person_id, actor="lead", now=NOW
            )
            assert not await knowledge.link(
                session, phenomenon.id, entry, actor_person_id=lead.person_id, actor="lead", now=NOW
            )
            for member in (ben, dora):
                assert await knowledge.confirm(
                    session,
                    person_id=member.person_id,
                    team_id=member.team_id,
                    kind=rules.ME_TOO,
                    phenomenon_id=phenomenon.id,
                    now=NOW,
                )
            # once per person; never one's own entry
            assert not await knowledge.confirm(
                session,
                person_id=ben.person_id,
                team_id=ben.team_id,
                kind=rules.ME_TOO,
                phenomenon_id=phenomenon.id,
                now=NOW,
            )
            assert not await knowledge.confirm(
                session,
                person_id=anna.person_id,
                team_id=anna.team_id,
                kind=rules.PAIR,
                observation_id=entry,
                now=NOW,
            )
            proposal = await knowledge.create_proposal(
                session,
                text="Lisää hätämajoituspaikkoja pakkasöiksi",
                phenomenon_id=phenomenon.id,
                proposer_person_id=lead.person_id,
                owner_person_id=lead.person_id,
                actor="lead",
                now=NOW,
            )
            assert proposal is not None
        async with db.transaction() as session:
            refused = await knowledge.move_proposal(
                session,
                proposal.id,
                rules.Move(rules.DECIDED, note="x"),
                bodies=["sote"],
                actor_person_id=None,
                actor="leader",
                now=NOW,
            )
            assert refused == "knowledge.error.not_allowed"
            for move in (
                rules.Move(rules.PRESENTED, body="sote", on=date(2026, 12, 10)),
                rules.Move(rules.DECIDED, note="20 lisäpaikkaa tammikuusta"),
            ):
                assert (
                    await knowledge.move_proposal(
                        session,
                        proposal.id,
                        move,
                        bodies=["sote"],
                        actor_person_id=None,
                        actor="leader",
                        now=NOW + timedelta(days=1),
                    )
                    is None
                )
        async with db.snapshot() as session:
            view = await knowledge.phenomenon_view(session, phenomenon.id)
            assert view is not None and (view.observations, view.confirmations) == (1, 2)
            row = await session.get(knowledge.Observation, entry)
            assert row is not None
            path = await knowledge.path_of(session, row)
            assert path.position == rules.PATH_DECIDED
            assert [step.step for step in path.steps] == [
                rules.RECORDED,
                rules.IN_PHENOMENON,
                rules.PATH_PRESENTED,
                rules.PATH_DECIDED,
            ]
            assert path.confirmations == 2 and path.decision == "20 lisäpaikkaa tammikuusta"
            due = await knowledge.due_path_notices(session, now=NOW, every=timedelta(days=1))
        # anna recorded it, ben and dora confirmed it: each hears of every step, once
        assert set(due) == {anna.person_id, ben.person_id, dora.person_id}
        assert [n.step for n in due[anna.person_id]] == [
            "linked",
            "proposed",
            "presented",
            "decided",
        ]
        assert [n.step for n in due[ben.person_id]] == ["proposed", "presented", "decided"]
        async with db.transaction() as session:
            assert (
                await knowledge.mark_path_notices_sent(
                    session, anna.person_id, NOW + timedelta(days=1), NOW + timedelta(days=1)
                )
                == 4
            )
            quiet = await knowledge.due_path_notices(
                session, now=NOW + timedelta(hours=30), every=timedelta(days=1)
            )
            assert anna.person_id not in quiet
        # The export carries the path: phenomenon, the furthest proposal status, position.
        async with db.snapshot() as session:
            records = {r.id: r async for r in export.iter_records(session)}
        assert (
            records[entry].phenomenon_id,
            records[entry].proposal_status,
            records[entry].path_position,
        ) == (phenomenon.id, "decided", "decided")
        other = next(r for r in records.values() if r.id != entry)
        assert other.phenomenon_id is None and other.path_position in ("recorded", "raised")
        validator = jsonschema.Draft202012Validator(export.export_schema())
        validator.validate(json.loads(records[entry].model_dump_json()))
        actions = {row.action for row in await rows(db, AuditEvent)}
        assert {
            knowledge.PHENOMENON_CREATE,
            knowledge.PHENOMENON_LINK,
            knowledge.CONFIRM,
            knowledge.PROPOSAL_CREATE,
            knowledge.PROPOSAL_MOVE,
        } <= actions
        assert len(await rows(db, PathNotice)) == 4 + 3 + 3
    finally:
        await db.close()


async def test_suggestion_candidates_are_the_teams_recent_entries_of_others(config: Config) -> None:
    world = await seed(config, NOW)
    anna, ben = world.people["anna"], world.people["ben"]
    recent = await add(
        world,
        "recent",
        observation(
            ben,
            NOW - timedelta(days=3),
            "helsinki",
            description="Päihdehoidon jono on pitkä, viikkoja",
        ),
    )
    await add(
        world,
        "stale",
        observation(
            ben,
            NOW - timedelta(days=45),
            "helsinki",
            description="Päihdehoidon jono on pitkä, viikkoja",
        ),
    )
    try:
        async with world.db.snapshot() as session:
            pool = await knowledge.candidates(
                session, team_id="hki-etsiva", region="helsinki", person_id=anna.person_id, now=NOW
            )
        found = rules.suggest("Päihdehoitoon pääsy kestää viikkoja", pool)
        assert recent in [c.id for c in found]
        assert world.observations["stale"] not in [c.id for c in pool]
        assert all(c.id not in {world.observations["housing"]} for c in pool)  # anna's own
    finally:
        await world.db.close()


async def test_a_proposed_action_becomes_a_proposal_once_when_escalated_or_linked(
    config: Config,
) -> None:
    world = await seed(config, NOW)
    anna = world.people["anna"]
    raised = await add(
        world,
        "raised",
        observation(
            anna,
            NOW,
            "helsinki",
            escalation="escalation.leadership",
            action="Iltapäivystys nuorille",
        ),
    )
    plain = await add(
        world, "plain", observation(anna, NOW, "helsinki", action="Lisää tukiasuntoja")
    )
    try:
        async with world.db.transaction() as session:
            entry = await session.get(knowledge.Observation, raised)
            assert entry is not None
            first = await knowledge.proposal_from_action(session, entry, now=NOW)
            assert first is not None and first.observation_id == raised
            assert await knowledge.proposal_from_action(session, entry, now=NOW) is None
            not_raised = await session.get(knowledge.Observation, plain)
            assert not_raised is not None
            assert await knowledge.proposal_from_action(session, not_raised, now=NOW) is None
            phenomenon = await knowledge.create_phenomenon(
                session,
                region="helsinki",
                team_id="hki-etsiva",
                theme="theme.housing",
                title="Tukiasunnot",
                language="fi",
                actor_person_id=None,
                actor="cli",
                now=NOW,
            )
            assert await knowledge.link(
                session, phenomenon.id, plain, actor_person_id=None, actor="cli", now=NOW
            )
            proposals = await knowledge.list_proposals(session, phenomenon_id=phenomenon.id)
            assert [p.text for p in proposals] == ["Lisää tukiasuntoja"]
            assert proposals[0].proposer_person_id == anna.person_id
    finally:
        await world.db.close()
