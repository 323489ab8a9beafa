"""End-to-end checks of tests/support/synapse_harness.py against a real Synapse with nio clients."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import aiohttp
import nio
import pytest

from tests.support.synapse_harness import Synapse

T = TypeVar("T")


# The session-wide ``synapse`` fixture lives in tests/conftest.py.


def unique(prefix: str) -> str:
    """A fresh localpart, so tests sharing the session server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def sync_until(
    client: nio.AsyncClient,
    found: Callable[[nio.SyncResponse], T | None],
    within: float = 20.0,
) -> T:
    """Sync ``client`` until ``found(response)`` returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        resp = await client.sync(timeout=500)
        assert isinstance(resp, nio.SyncResponse), f"sync failed: {resp}"
        result = found(resp)
        if result:
            return result
    raise AssertionError(f"{client.user_id}: condition not met within {within}s")


async def test_direct_room_notice_and_reaction(synapse: Synapse) -> None:
    alice = await synapse.nio_client(unique("alice"))
    bob = await synapse.nio_client(unique("bob"))
    try:
        assert alice.user_id.endswith(":" + synapse.server_name)
        await alice.sync(timeout=0)
        await bob.sync(timeout=0)

        created = await alice.room_create(
            is_direct=True,
            invite=[bob.user_id],
            preset=nio.RoomPreset.trusted_private_chat,
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id

        # Bob sees the invite (flagged as a DM) and joins.
        invite = await sync_until(bob, lambda r: r.rooms.invite.get(room_id))
        member_events = [e for e in invite.invite_state if isinstance(e, nio.InviteMemberEvent)]
        assert any(
            e.state_key == bob.user_id and e.content.get("is_direct") for e in member_events
        ), member_events
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined

        # Alice sends an HTML notice; Bob receives it through sync.
        content = {
            "msgtype": "m.notice",
            "body": "Uusi havainto: *asumisneuvonta*",
            "format": "org.matrix.custom.html",
            "formatted_body": "Uusi havainto: <b>asumisneuvonta</b>",
        }
        sent = await alice.room_send(room_id, "m.room.message", content)
        assert isinstance(sent, nio.RoomSendResponse), sent

        def notice_for_bob(resp: nio.SyncResponse) -> nio.RoomMessageNotice | None:
            room = resp.rooms.join.get(room_id)
            for event in room.timeline.events if room else []:
                if isinstance(event, nio.RoomMessageNotice) and event.event_id == sent.event_id:
                    return event
            return None

        notice = await sync_until(bob, notice_for_bob)
        assert notice.sender == alice.user_id
        assert notice.format == "org.matrix.custom.html"
        assert notice.formatted_body == "Uusi havainto: <b>asumisneuvonta</b>"
        assert notice.source["content"]["msgtype"] == "m.notice"

        # Bob reacts with 1️⃣; Alice receives the annotation.
        reaction = {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": sent.event_id, "key": "1️⃣"}
        }
        reacted = await bob.room_send(room_id, "m.reaction", reaction)
        assert isinstance(reacted, nio.RoomSendResponse), reacted

        def reaction_for_alice(resp: nio.SyncResponse) -> nio.ReactionEvent | None:
            room = resp.rooms.join.get(room_id)
            for event in room.timeline.events if room else []:
                if isinstance(event, nio.ReactionEvent) and event.event_id == reacted.event_id:
                    return event
            return None

        got = await sync_until(alice, reaction_for_alice)
        assert got.sender == bob.user_id
        assert got.reacts_to == sent.event_id
        assert got.key == "1️⃣"
    finally:
        await alice.close()
        await bob.close()


async def test_per_user_ratelimit_override(synapse: Synapse) -> None:
    """Admin-API override makes one user's sends fail with M_LIMIT_EXCEEDED."""
    # max_limit_exceeded=0: nio would otherwise sleep and retry 429s by itself.
    no_retry = nio.AsyncClientConfig(max_limit_exceeded=0)
    strict = await synapse.nio_client(unique("strict"), config=no_retry)
    relaxed = await synapse.nio_client(unique("relaxed"), config=no_retry)
    try:
        await synapse.set_user_ratelimit(strict.user_id, messages_per_second=1, burst_count=1)
        room = await strict.room_create(invite=[relaxed.user_id])
        # Creating the room already counts against the (1/s, burst 1) limit.
        assert isinstance(room, nio.RoomCreateResponse), room

        errors = []
        for i in range(5):
            resp = await strict.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": f"#{i}"}
            )
            if isinstance(resp, nio.RoomSendError):
                errors.append(resp)
                break  # Synapse delays each 429 answer by 0.5 s: one is enough
        assert errors, "expected at least one M_LIMIT_EXCEEDED"
        assert errors[0].status_code == "M_LIMIT_EXCEEDED", errors[0]
        assert errors[0].retry_after_ms is not None and 0 < errors[0].retry_after_ms <= 1000

        # Other users on the same server are not affected.
        join = await relaxed.join(room.room_id)
        assert isinstance(join, nio.JoinResponse), join
        for i in range(10):
            resp = await relaxed.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": f"ok {i}"}
            )
            assert isinstance(resp, nio.RoomSendResponse), resp

        # Removing the override restores the (relaxed) server-wide limit.
        await synapse.clear_user_ratelimit(strict.user_id)
        for i in range(5):
            resp = await strict.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": f"again {i}"}
            )
            assert isinstance(resp, nio.RoomSendResponse), resp
    finally:
        await strict.close()
        await relaxed.close()


async def test_strict_ratelimit_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    """start(strict_ratelimit=True): a second, parallel server where everyone is limited."""
    server = Synapse(tmp_path_factory.mktemp("synapse-strict"))
    await asyncio.to_thread(server.start, strict_ratelimit=True)
    try:
        user_id, token, _ = await server.register("eager")
        headers = {"Authorization": f"Bearer {token}"}
        base = f"{server.base_url}/_matrix/client/v3"
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{base}/createRoom", json={"preset": "private_chat"}) as r:
                assert r.status == 200, await r.text()
                room_id = (await r.json())["room_id"]
            limited = None
            for i in range(6):
                url = f"{base}/rooms/{room_id}/send/m.room.message/txn{i}"
                async with http.put(url, json={"msgtype": "m.text", "body": str(i)}) as r:
                    if r.status == 429:
                        limited = await r.json()
                        break
                    assert r.status == 200, await r.text()
        assert limited is not None, "no 429 from strict server"
        assert limited["errcode"] == "M_LIMIT_EXCEEDED"
        assert limited["retry_after_ms"] > 0
        assert user_id == f"@eager:{server.server_name}"
    finally:
        server.stop()
    assert not server.running


def test_start_failure_raises_with_log(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that cannot start raises RuntimeError with the reason, never skips."""
    server = Synapse(tmp_path / "broken")
    original = Synapse.config

    def broken_config(self: Synapse) -> dict[str, object]:
        cfg = original(self)
        cfg["database"] = {"name": "no-such-engine", "args": {}}
        return cfg

    monkeypatch.setattr(Synapse, "config", broken_config)
    with pytest.raises(RuntimeError, match="no-such-engine"):
        server.start(timeout=30)
    assert not server.running
    server.stop()  # idempotent
