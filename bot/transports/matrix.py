"""The Matrix transport, on matrix-nio's ``AsyncClient`` (with end-to-end encryption).

The same conversation as on Telegram, rendered for Matrix:

* Commands start with ``!`` (Element keeps ``/`` for itself); ``/`` is accepted
  too where a client lets it through, and outgoing text says ``!uusi`` rather
  than ``/uusi``.
* Choices become a numbered list in the message and the bot's own reactions
  1️⃣..🔟 under it: the worker taps a reaction, or types the number or the
  label. The flow maps typed answers at its own steps; the transport maps them
  (and every reaction) for the choices the service offers outside the flow
  (``/kieli``, ``/omat``). The choices of the last questions in each room are
  kept in ``bot_state`` so a tap still works after a restart.
* Replies are ``m.notice`` events with a plain ``body`` and an HTML
  ``formatted_body``; every piece of text is escaped.
* Edits, redactions, media, non-DM rooms, unknown users and redelivered events
  are handled as on Telegram; the service decides what to answer.

Sync: one loop; every batch is processed in order and its ``next_batch`` is
stored in the database afterwards (with the device id and access token), so a
restart resumes where the last processed batch ended: nothing is replayed
(the service also ignores an event id it has processed) and nothing sent while
the bot was down is missed (a limited timeline is paged back to the stored
token). On the very first start the history is not answered.

Rooms: the bot joins direct rooms anyone opens (someone who is neither
enrolled nor enrolling only gets the "you are not enrolled" answer), the team
and leadership rooms of the config, and leaves every other room it is invited
into (more than two members). Encrypted rooms work when ``matrix-nio[e2e]`` is
installed: the Olm/Megolm keys live in ``matrix.store_path``; keys are shared
with all devices in the room (a bot cannot verify people interactively).

Rate limits: nio retries ``M_LIMIT_EXCEEDED`` after the ``retry_after_ms`` the
server asks for, at most ``RATE_LIMIT_RETRIES`` times per request; after that
``send`` raises ``MatrixSendError`` and the failure is logged: nothing is
dropped silently. Logs carry room/event ids and kinds, never text or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nio
from nio.crypto import ENCRYPTION_ENABLED

from bot.config import MatrixConfig
from bot.transports.base import Health, StateStore, answer_by_number, receive, split_text
from flows import capture, commands
from flows.events import (
    Choice,
    ChoiceIn,
    CommandIn,
    Document,
    EditedIn,
    Event,
    Image,
    Incoming,
    LocationIn,
    MediaIn,
    Message,
    Outbound,
    TextIn,
)
from flows.i18n import t

if TYPE_CHECKING:
    from bot.service import Havainto
    from bot.transports.base import Router

log = logging.getLogger("havainto.matrix")
# matrix-nio logs an event it cannot validate with its whole content (what people
# wrote) at WARNING: keep only its errors.
logging.getLogger("nio.events").setLevel(logging.ERROR)
logging.getLogger("nio.responses").setLevel(logging.ERROR)
# Its crypto store logs the user and device ids of the people in a room at INFO.
logging.getLogger("nio.crypto").setLevel(logging.WARNING)

NAME = "matrix"
HTML_FORMAT = "org.matrix.custom.html"
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟")
# Characters per message piece. An event may hold 64 KiB of canonical JSON and a
# notice carries its text twice (body and formatted_body): pieces that would
# still be too big (many multi-byte characters) are split further.
MAX_CHARS = 16_000
MAX_EVENT_BYTES = 60_000
SYNC_TIMEOUT_MS = 30_000
# Each sync returns up to this many timeline events per room; more is paged back.
TIMELINE_LIMIT = 100
BACKFILL_MAX_EVENTS = 1000
RATE_LIMIT_RETRIES = 10
REQUEST_TIMEOUT_RETRIES = 5
# How many questions per room keep answering to reactions.
QUESTIONS_KEPT = 5
SEEN_EVENTS_KEPT = 5000
# An encrypted message whose key has not arrived yet waits this long before the
# worker is told it could not be read.
UNDECRYPTABLE_GRACE_S = 8.0
# How long stop() lets the batch in hand and the reaction shortcuts finish.
STOP_WAIT_S = 30.0
MEDIA_KINDS = {
    "m.image": "photo",
    "m.file": "document",
    "m.audio": "audio",
    "m.video": "video",
}
POLL_TYPES = frozenset({"m.poll.start", "org.matrix.msc3381.poll.start"})
# Commands users see in our texts: written with "!" on Matrix.
KNOWN_COMMANDS = commands.ALL_WORDS
_COMMAND_IN = re.compile(r"^[!/](\w+)(?:\s+(.*))?$", re.DOTALL)
_COMMAND_OUT = re.compile(
    r"(?<![\w/<:.])/("
    + "|".join(sorted(map(re.escape, KNOWN_COMMANDS), key=len, reverse=True))
    + r")\b"
)
_GEO_URI = re.compile(r"^geo:(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")


class MatrixError(RuntimeError):
    """The homeserver refused something the transport cannot do without."""


class MatrixSendError(MatrixError):
    """A message could not be delivered (after the rate-limit retries, if any)."""


@dataclass
class _Question:
    """A message of ours that offered choices, in the order they were numbered."""

    event_id: str
    choices: list[Choice]


@dataclass
class _RoomChoices:
    """The last questions in a room; ``typed_open``: a typed number answers the newest one."""

    questions: list[_Question] = field(default_factory=list)
    typed_open: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "q": [[q.event_id, [[c.label, c.data] for c in q.choices]] for q in self.questions],
                "open": self.typed_open,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _RoomChoices:
        data = json.loads(text)
        questions = [
            _Question(event_id, [Choice(label, payload) for label, payload in choices])
            for event_id, choices in data.get("q", [])
        ]
        return cls(questions, bool(data.get("open")))


@dataclass
class _Pending:
    """An encrypted event we could not decrypt yet."""

    room: nio.MatrixRoom
    event: nio.MegolmEvent
    since: float


class MatrixTransport:
    """Havainto on Matrix: see the module docstring."""

    name = NAME
    text_limit = MAX_CHARS
    finished = None

    def __init__(
        self,
        config: MatrixConfig,
        service: Havainto,
        router: Router,
        state: StateStore,
        *,
        encryption: bool | None = None,
        sync_timeout_ms: int = SYNC_TIMEOUT_MS,
    ) -> None:
        self.config = config
        self.service = service
        self.router = router
        self.state = state
        self.last_contact: datetime | None = None  # the last sync the server answered
        self.encryption = ENCRYPTION_ENABLED if encryption is None else encryption
        self.sync_timeout_ms = sync_timeout_ms
        self.configured_rooms = service.config.configured_chats(NAME)
        self.client = self._new_client()
        # Counters a test or an operator can read.
        self.rate_limited = 0
        self.events_handled = 0
        self._rooms: dict[str, _RoomChoices] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._reacting: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._processing = False
        self._soft_logout = False

    # --- lifecycle ---------------------------------------------------------------------

    def _new_client(self) -> nio.AsyncClient:
        client_config = nio.AsyncClientConfig(
            max_limit_exceeded=RATE_LIMIT_RETRIES,
            max_timeouts=REQUEST_TIMEOUT_RETRIES,
            encryption_enabled=self.encryption,
            store_sync_tokens=False,  # kept in our database instead
        )
        store_path = ""
        if self.encryption:
            path = Path(self.config.store_path)
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            store_path = str(path)
        client = nio.AsyncClient(
            self.config.homeserver, self.config.user_id, store_path=store_path, config=client_config
        )
        client.add_response_callback(self._on_error_response, nio.ErrorResponse)
        return client

    @property
    def user_id(self) -> str:
        return str(self.client.user_id or self.config.user_id)

    async def start(self) -> None:
        """Log in, catch up with what arrived since the last run, then keep syncing."""
        self._stopping = False
        await self._login()
        if self.client.olm is not None and self.client.should_upload_keys:
            await self.client.keys_upload()
        since = await self._get_state("next_batch")
        # First ever start: the rooms' history is not answered, only pending invites.
        await self._sync_once(since=since, full_state=True, answer=since is not None)
        await self._join_configured_rooms()
        self._task = asyncio.create_task(self._sync_loop(), name="matrix-sync")
        log.info(
            "matrix_started device=%s encryption=%s resumed=%s",
            self.client.device_id,
            self.client.olm is not None,
            since is not None,
        )

    async def start_sending(self) -> bool:
        """False: a second process cannot send on the running bot's device. Without a sync
        it does not know the rooms (nor their encryption), and a sync would take the
        running bot's to-device messages (its room keys). The running bot delivers."""
        return False

    async def stop_receiving(self) -> None:
        """Stop syncing; the batch in hand is finished first and its token stored."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if not self._processing:
                task.cancel()  # waiting for the server: nothing in hand
            await _finish(task, STOP_WAIT_S)

    async def stop(self) -> None:
        """Stop syncing, let the reaction shortcuts go out, close the connection."""
        try:
            await self.stop_receiving()
            await self.flush()
        finally:
            await self.client.close()
            log.info("matrix_stopped")

    async def flush(self, within: float = STOP_WAIT_S) -> None:
        """Wait until the reaction shortcuts of every question sent so far are out."""
        pending = list(self._reacting.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=within)
            for task in late:
                task.cancel()

    async def _login(self) -> None:
        client, config = self.client, self.config
        stored_token = await self._get_state("access_token")
        stored_device = await self._get_state("device_id")
        if config.access_token:
            client.access_token = config.access_token
            client.user_id = config.user_id
            who = await client.whoami()
            if not isinstance(who, nio.WhoamiResponse):
                raise MatrixError(f"matrix.access_token was refused: {_describe(who)}")
            if who.user_id != config.user_id:
                raise MatrixError(
                    f"matrix.access_token belongs to {who.user_id}, not {config.user_id}"
                )
            device_id = who.device_id or stored_device or ""
            if not device_id:
                raise MatrixError("the homeserver did not say which device the token is for")
            client.restore_login(config.user_id, device_id, config.access_token)
        elif stored_token and stored_device and await self._token_works(stored_token):
            client.restore_login(config.user_id, stored_device, stored_token)
        else:
            # After a soft logout the device (and its encryption keys) still exists: log in
            # to it again. A device that was logged out for good is gone: start a new one.
            client.device_id = stored_device if stored_device and self._soft_logout else None
            response = await client.login(config.password, device_name=config.device_name)
            if not isinstance(response, nio.LoginResponse):
                raise MatrixError(f"Matrix login failed: {_describe(response)}")
            log.info("matrix_logged_in device=%s", response.device_id)
        await self._set_states(
            {"device_id": str(client.device_id), "access_token": str(client.access_token)}
        )

    async def _relogin(self, since: str | None, soft_logout: bool) -> None:
        """The access token was revoked while running: log in again with the password."""
        log.warning("matrix_token_expired soft_logout=%s", soft_logout)
        self._soft_logout = soft_logout
        await self._set_states({"access_token": ""})
        # A new device needs a new client: nio keeps one encryption store per client.
        old, self.client = self.client, self._new_client()
        await old.close()
        await self._login()
        self.client.next_batch = since
        if self.client.olm is not None and self.client.should_upload_keys:
            await self.client.keys_upload()

    async def _token_works(self, token: str) -> bool:
        """Whether the stored token is still good; raises when the server cannot tell."""
        self.client.access_token = token
        self.client.user_id = self.config.user_id
        who = await self.client.whoami()
        if isinstance(who, nio.WhoamiResponse) and who.user_id == self.config.user_id:
            return True
        self.client.access_token = ""
        if getattr(who, "status_code", None) != "M_UNKNOWN_TOKEN":
            # A passing server error must not make the bot a new device.
            raise MatrixError(f"the homeserver did not confirm the login: {_describe(who)}")
        self._soft_logout = bool(getattr(who, "soft_logout", False))
        log.info("matrix_stored_token_refused soft_logout=%s", self._soft_logout)
        return False

    async def _join_configured_rooms(self) -> None:
        for room_id in sorted(self.configured_rooms - set(self.client.rooms)):
            response = await self.client.join(room_id)
            if isinstance(response, nio.JoinResponse):
                log.info("matrix_joined_configured room=%s", room_id)
            else:
                log.warning(
                    "matrix_configured_room_not_joined room=%s status=%s",
                    room_id,
                    getattr(response, "status_code", None),
                )

    # --- the sync loop -----------------------------------------------------------------

    async def _sync_loop(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                timeout = 1000 if self._pending else self.sync_timeout_ms
                await self._sync_once(since=self.client.next_batch, wait_ms=timeout)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matrix_sync_failed retry_in=%.0fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _sync_once(
        self,
        since: str | None,
        wait_ms: int = 0,
        full_state: bool = False,
        answer: bool = True,
    ) -> None:
        joined_before = set(self.client.rooms)
        response = await self.client.sync(
            timeout=wait_ms, since=since, full_state=full_state, sync_filter=self._sync_filter()
        )
        if not isinstance(response, nio.SyncResponse):
            if getattr(response, "status_code", None) == "M_UNKNOWN_TOKEN" and self.config.password:
                await self._relogin(since, bool(getattr(response, "soft_logout", False)))
                return
            raise MatrixError(f"sync failed: {_describe(response)}")
        self.last_contact = datetime.now(UTC)
        self._processing = True
        try:
            await self._process(response, since, joined_before, answer)
            await self._after_sync()
            await self._set_states({"next_batch": response.next_batch})
        except BaseException:
            # Fetch the batch again next time: what was done already is skipped (event
            # ids), what was not is not lost.
            self.client.next_batch = since
            raise
        finally:
            self._processing = False

    def _sync_filter(self) -> dict[str, Any]:
        # The bot's own messages and reactions would wake every sync for nothing.
        timeline = {"limit": TIMELINE_LIMIT, "not_senders": [self.user_id]}
        return {"room": {"timeline": timeline}}

    async def _process(
        self,
        response: nio.SyncResponse,
        since: str | None,
        joined_before: set[str],
        answer: bool,
    ) -> None:
        for room_id, info in response.rooms.invite.items():
            await self._on_invite(room_id, info.invite_state)
        for room_id, joined in response.rooms.join.items():
            room = self.client.rooms.get(room_id)
            if room is None or not answer:
                continue
            events = list(joined.timeline.events)
            if joined.timeline.limited and since and room_id in joined_before:
                events = await self._backfill(room_id, joined.timeline.prev_batch, since) + events
            for event in _after_own_invite(events, self.user_id):
                await self.on_event(room, event)
        await self._retry_pending()

    async def _backfill(self, room_id: str, start: str | None, until: str) -> list[Any]:
        """Events between the stored token and a limited timeline, oldest first."""
        found: list[Any] = []
        token = start
        while token and len(found) < BACKFILL_MAX_EVENTS:
            page = await self.client.room_messages(room_id, start=token, end=until, limit=100)
            if not isinstance(page, nio.RoomMessagesResponse) or not page.chunk:
                break
            found.extend(page.chunk)
            if page.end == token:
                break
            token = page.end
        log.info("matrix_backfilled room=%s events=%d", room_id, len(found))
        return list(reversed(found))

    async def _after_sync(self) -> None:
        """What ``sync_forever`` would do between syncs: keys and to-device messages."""
        client = self.client
        if client.olm is None:
            return
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    # --- rooms -------------------------------------------------------------------------

    async def _on_invite(self, room_id: str, invite_state: Iterable[Any]) -> None:
        invite = next(
            (
                e
                for e in invite_state
                if isinstance(e, nio.InviteMemberEvent)
                and e.state_key == self.user_id
                and e.membership == "invite"
            ),
            None,
        )
        if invite is None:
            return
        joined = await self.client.join(room_id)
        if not isinstance(joined, nio.JoinResponse):
            log.warning("matrix_join_failed room=%s status=%s", room_id, _status(joined))
            return
        if room_id in self.configured_rooms:
            log.info("matrix_joined room=%s kind=configured", room_id)
            return
        members = await self._member_count(room_id)
        if members > 2:
            # Not a direct chat and not a room of the config: observations are never
            # logged where others read along.
            log.info("matrix_left room=%s reason=not_direct members=%d", room_id, members)
            await self.client.room_leave(room_id)
            await self.client.room_forget(room_id)
            return
        direct = bool(invite.content.get("is_direct"))
        log.info("matrix_joined room=%s kind=direct flagged=%s", room_id, direct)

    async def _member_count(self, room_id: str) -> int:
        state = await self.client.room_get_state(room_id)
        if not isinstance(state, nio.RoomGetStateResponse):
            return 0
        return sum(
            1
            for e in state.events
            if e.get("type") == "m.room.member"
            and e.get("content", {}).get("membership") in ("join", "invite")
        )

    def is_private(self, room: nio.MatrixRoom) -> bool:
        return room.room_id not in self.configured_rooms and self._members(room) <= 2

    def _members(self, room: nio.MatrixRoom) -> int:
        """Joined and invited members: the server's count, or ours when it is higher."""
        return max(int(room.member_count), len(set(room.users) | {self.user_id}))

    async def _on_membership(self, room: nio.MatrixRoom, event: nio.RoomMemberEvent) -> None:
        # The other person left a direct chat: nobody is left to talk to.
        if (
            event.membership in ("leave", "ban")
            and event.state_key != self.user_id
            and room.room_id not in self.configured_rooms
            and self._members(room) <= 1
        ):
            log.info("matrix_left room=%s reason=alone", room.room_id)
            await self.client.room_leave(room.room_id)
            await self.client.room_forget(room.room_id)

    # --- incoming ----------------------------------------------------------------------

    async def on_event(self, room: nio.MatrixRoom, event: Any) -> None:
        """Handle one timeline event (the sync loop calls this; tests may too)."""
        event_id = getattr(event, "event_id", None)
        if event_id is None or getattr(event, "sender", None) == self.user_id:
            return
        if isinstance(event, nio.RoomMemberEvent):
            await self._on_membership(room, event)
            return
        if event_id in self._seen:
            log.info("matrix_duplicate_event room=%s", room.room_id)
            return
        sender = getattr(event, "sender", None)
        members_known = self.user_id in room.users  # not so right after a new login
        if not isinstance(sender, str) or (members_known and sender not in room.users):
            # Only a member writes in a room: anything else is history of someone who
            # has left, or forged. In a two-person room it would count as that person's
            # direct chat and move where their replies go (found by the fuzz test).
            log.info("matrix_event_ignored room=%s reason=not_a_member", room.room_id)
            self._remember(event_id)
            return
        if isinstance(event, nio.MegolmEvent):
            await self._undecryptable(room, event)
            return
        neutral = await self._translate(room, event)
        if neutral is None:
            self._remember(event_id)
            return
        self.events_handled += 1
        relation = (event.source.get("content") or {}).get("m.relates_to") or {}
        replied = relation.get("m.in_reply_to") if isinstance(relation, dict) else None
        incoming = Incoming(
            transport=NAME,
            user_id=event.sender,
            chat_id=room.room_id,
            event=neutral,
            is_private=self.is_private(room),
            event_id=event_id,
            reply_to=str(replied["event_id"])
            if isinstance(replied, dict) and replied.get("event_id")
            else None,
        )
        log.info(
            "matrix_event room=%s event=%s kind=%s",
            room.room_id,
            _log_id(event_id),
            type(neutral).__name__,
        )
        await receive(self.service, self.router, incoming)
        # Remembered once handled: an event that failed before (say, the database was
        # away while reading the room's choices) is tried again with the batch.
        self._remember(event_id)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        while len(self._seen) > SEEN_EVENTS_KEPT:
            self._seen.popitem(last=False)

    async def _translate(self, room: nio.MatrixRoom, event: Any) -> Event | None:
        source: dict[str, Any] = event.source
        event_type = source.get("type")
        content = source.get("content") or {}
        if not isinstance(content, dict):
            return None
        if event_type == "m.reaction" or isinstance(event, nio.ReactionEvent):
            return await self._reaction(room, content)
        if event_type == "m.sticker":
            return MediaIn("sticker")
        if event_type in POLL_TYPES:
            return MediaIn("poll")
        if event_type != "m.room.message":
            # Redactions, state and anything unknown: nothing to store, nothing to say.
            return None
        relation = content.get("m.relates_to") or {}
        if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
            return EditedIn()
        msgtype = content.get("msgtype")
        if msgtype in ("m.text", "m.emote"):
            body = content.get("body")
            if not isinstance(body, str):
                return None
            if isinstance(relation, dict) and "m.in_reply_to" in relation:
                body = _strip_reply_fallback(body)
            return await self._text(room, body)
        if msgtype == "m.notice":
            return None  # other bots talk in notices; never answer them
        if msgtype == "m.location":
            match = _GEO_URI.match(str(content.get("geo_uri", "")))
            if match:
                return LocationIn(float(match.group(1)), float(match.group(2)))
            return MediaIn("location")
        if msgtype == "m.audio" and ("org.matrix.msc3245.voice" in content or "m.voice" in content):
            return MediaIn("voice")
        return MediaIn(MEDIA_KINDS.get(str(msgtype), "other"))

    async def _text(self, room: nio.MatrixRoom, body: str) -> Event:
        stripped = body.strip()
        command = _COMMAND_IN.match(stripped)
        if command:
            return CommandIn(command.group(1).lower(), (command.group(2) or "").strip())
        # Outside the flow (language, own entries) the transport maps a typed answer. In
        # shared rooms only a reaction answers: a "1" there is usually just chat.
        if not self.is_private(room):
            return TextIn(body)
        state = await self._choices(room.room_id)
        if state.typed_open and state.questions:
            newest = state.questions[-1]
            chosen = answer_by_number(newest.choices, stripped)
            if chosen is not None and not _is_flow_choice(chosen):
                await self._consume(room.room_id, state)
                return ChoiceIn(chosen.data)
        return TextIn(body)

    async def _reaction(self, room: nio.MatrixRoom, content: dict[str, Any]) -> Event | None:
        relation = content.get("m.relates_to") or {}
        if not isinstance(relation, dict) or relation.get("rel_type") != "m.annotation":
            return None
        key = str(relation.get("key", "")).replace("\ufe0f", "")
        index = next((i for i, k in enumerate(KEYCAPS) if k.replace("\ufe0f", "") == key), None)
        if index is None:
            return None  # a 👍 on a message is not an answer
        state = await self._choices(room.room_id)
        question = next(
            (q for q in state.questions if q.event_id == relation.get("event_id")), None
        )
        if question is None or index >= len(question.choices):
            return None
        chosen = question.choices[index]
        if question is state.questions[-1] and state.typed_open:
            await self._consume(room.room_id, state)
        return ChoiceIn(chosen.data)

    async def _undecryptable(self, room: nio.MatrixRoom, event: nio.MegolmEvent) -> None:
        if self.client.olm is None:
            self._remember(event.event_id)
            await self._tell(room, event.sender, "matrix.encryption_unsupported")
            return
        if event.event_id not in self._pending:
            # The room key may still be on its way (it travels separately): ask for it
            # and try again after the next syncs.
            self._pending[event.event_id] = _Pending(room, event, time.monotonic())
            with contextlib.suppress(Exception):
                await self.client.request_room_key(event)

    async def _retry_pending(self) -> None:
        for event_id, pending in list(self._pending.items()):
            try:
                decrypted = self.client.decrypt_event(pending.event)
            except Exception:
                decrypted = None
            if decrypted is not None and not isinstance(decrypted, nio.MegolmEvent):
                del self._pending[event_id]
                await self.on_event(pending.room, decrypted)
            elif time.monotonic() - pending.since > UNDECRYPTABLE_GRACE_S:
                del self._pending[event_id]
                self._remember(event_id)
                log.warning(
                    "matrix_undecryptable room=%s event=%s",
                    pending.room.room_id,
                    _log_id(event_id),
                )
                await self._tell(pending.room, pending.event.sender, "matrix.undecryptable")

    async def _tell(self, room: nio.MatrixRoom, sender: str, key: str) -> None:
        lang = await self.service.language_of(NAME, sender)
        try:
            await self.send_tracked(
                Outbound(NAME, room.room_id, Message(t(lang, key, domain="matrix")))
            )
        except Exception:
            log.exception("matrix_delivery_failed room=%s kind=notice", room.room_id)

    # --- choices kept per room ---------------------------------------------------------

    async def _choices(self, room_id: str) -> _RoomChoices:
        state = self._rooms.get(room_id)
        if state is None:
            stored = await self._get_state_raw(f"matrix:choices:{room_id}")
            try:
                state = _RoomChoices.from_json(stored) if stored else _RoomChoices()
            except (ValueError, TypeError):
                state = _RoomChoices()
            self._rooms[room_id] = state
        return state

    async def _save_choices(self, room_id: str, state: _RoomChoices) -> None:
        self._rooms[room_id] = state
        try:
            await self.state.set_many({f"matrix:choices:{room_id}": state.to_json()})
        except Exception as error:
            # The choices still work from memory; only a restart would forget them.
            log.warning("matrix_choices_not_stored room=%s error=%s", room_id, type(error).__name__)

    async def _record_question(self, room_id: str, event_id: str, choices: list[Choice]) -> None:
        state = self._rooms.get(room_id) or _RoomChoices()
        with contextlib.suppress(Exception):
            state = await self._choices(room_id)
        # An edited question keeps its event id: its new choices replace the old ones.
        kept = [q for q in state.questions if q.event_id != event_id]
        questions = [*kept, _Question(event_id, choices)][-QUESTIONS_KEPT:]
        await self._save_choices(room_id, _RoomChoices(questions, typed_open=True))

    async def _consume(self, room_id: str, state: _RoomChoices) -> None:
        await self._save_choices(room_id, _RoomChoices(state.questions, typed_open=False))

    # --- outgoing ----------------------------------------------------------------------

    @staticmethod
    def is_permanent(error: BaseException) -> bool:
        """A message too long for one edit, or a request refused: nio already waited out
        rate limits and time-outs (``RATE_LIMIT_RETRIES``, ``REQUEST_TIMEOUT_RETRIES``)."""
        return isinstance(error, ValueError | LookupError)

    def health(self) -> Health:
        running = self._task is not None and not self._task.done() and not self._stopping
        return Health(running=running, last_contact=self.last_contact)

    async def send_tracked(self, outbound: Outbound) -> str | None:
        """Send, and return the event id of the (last) message posted."""
        room_id, reply = outbound.chat_id, outbound.reply
        if isinstance(reply, Message):
            return await self._send_message(room_id, reply)
        if isinstance(reply, Image):
            event_id = await self._send_file(
                room_id, reply.png, reply.filename, "image/png", "m.image"
            )
        else:
            assert isinstance(reply, Document), "the router sends the others as messages"
            event_id = await self._send_file(
                room_id, reply.data, reply.filename, reply.mime_type, "m.file"
            )
        if reply.caption:
            await self._send_message(room_id, Message(reply.caption))
        return event_id

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        """Replace an earlier message of ours (``m.replace``), e.g. an acknowledged notice."""
        contents = render_message(message)
        if len(contents) != 1:
            raise ValueError("edited text too long for one message")
        new_content = contents[0]
        await self._room_send(
            chat_id,
            "m.room.message",
            {
                **new_content,
                "body": "* " + new_content["body"],
                "formatted_body": "* " + new_content["formatted_body"],
                "m.new_content": new_content,
                "m.relates_to": {"rel_type": "m.replace", "event_id": ref},
            },
        )
        options = message.flat_choices()
        state = await self._choices(chat_id)
        old = next((q for q in state.questions if q.event_id == ref), None)
        if options:
            await self._record_question(chat_id, ref, options)
        elif old is not None:
            kept = [q for q in state.questions if q.event_id != ref]
            await self._save_choices(chat_id, _RoomChoices(kept, state.typed_open))
        # The original's reactions stay; add the keys the new choices need beyond them.
        already = len(old.choices) if old is not None else 0
        self._queue_reactions(chat_id, ref, range(already, min(len(options), len(KEYCAPS))))

    async def _send_message(self, room_id: str, message: Message) -> str:
        options = message.flat_choices()
        event_id = ""
        for content in render_message(message):
            event_id = await self._room_send(room_id, "m.room.message", content)
        if not options:
            return event_id
        # Remember the question before the reactions go out, so an early tap counts.
        await self._record_question(room_id, event_id, options)
        self._queue_reactions(room_id, event_id, range(min(len(options), len(KEYCAPS))))
        return event_id

    def _queue_reactions(self, room_id: str, event_id: str, indexes: range) -> None:
        """Put the reaction shortcuts under a question without holding up the next reply.

        Per room one after the other (so they line up 1️⃣ 2️⃣ 3️⃣); ``stop`` waits for them.
        """
        if not indexes:
            return
        previous = self._reacting.get(room_id)

        async def react() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await self._add_reactions(room_id, event_id, indexes)

        task = asyncio.create_task(react(), name=f"matrix-reactions-{room_id}")
        self._reacting[room_id] = task
        task.add_done_callback(lambda done: self._reactions_done(room_id, done))

    def _reactions_done(self, room_id: str, task: asyncio.Task[None]) -> None:
        if self._reacting.get(room_id) is task:
            del self._reacting[room_id]
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "matrix_reactions_failed room=%s error=%s",
                room_id,
                type(task.exception()).__name__,
            )

    async def _add_reactions(self, room_id: str, event_id: str, indexes: Iterable[int]) -> None:
        for index in indexes:
            await self._room_send(
                room_id,
                "m.reaction",
                {
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": event_id,
                        "key": KEYCAPS[index],
                    }
                },
            )

    async def _send_file(
        self, room_id: str, data: bytes, filename: str, mime_type: str, msgtype: str
    ) -> str:
        room = self.client.rooms.get(room_id)
        encrypt = bool(room is not None and room.encrypted and self.client.olm is not None)
        uploaded, keys = await self.client.upload(
            lambda _limited, _timeouts: data,
            content_type=mime_type,
            filename=filename,
            encrypt=encrypt,
            filesize=len(data),
        )
        if not isinstance(uploaded, nio.UploadResponse):
            log.error("matrix_upload_failed room=%s status=%s", room_id, _status(uploaded))
            raise MatrixSendError(f"upload to {room_id} failed: {_describe(uploaded)}")
        info: dict[str, Any] = {"mimetype": mime_type, "size": len(data)}
        info.update(_png_size(data) if msgtype == "m.image" else {})
        content: dict[str, Any] = {"msgtype": msgtype, "body": filename, "info": info}
        if encrypt and keys is not None:
            content["file"] = {**keys, "url": uploaded.content_uri}
        else:
            content["url"] = uploaded.content_uri
        return await self._room_send(room_id, "m.room.message", content)

    async def _room_send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        # One transaction id for all of nio's retries: the server stores the event once.
        response = await self.client.room_send(
            room_id,
            event_type,
            content,
            tx_id=uuid.uuid4().hex,
            ignore_unverified_devices=True,
        )
        if isinstance(response, nio.RoomSendResponse):
            return str(response.event_id)
        log.error(
            "matrix_send_failed room=%s type=%s status=%s", room_id, event_type, _status(response)
        )
        raise MatrixSendError(f"sending to {room_id} failed: {_describe(response)}")

    async def _on_error_response(self, response: nio.ErrorResponse) -> None:
        if response.status_code == "M_LIMIT_EXCEEDED":
            self.rate_limited += 1
            log.warning(
                "matrix_rate_limited retry_after_ms=%s type=%s",
                response.retry_after_ms,
                type(response).__name__,
            )

    # --- small state in the database ---------------------------------------------------

    def _key(self, name: str) -> str:
        return f"matrix:{self.config.user_id}:{name}"

    async def _get_state(self, name: str) -> str | None:
        return await self._get_state_raw(self._key(name)) or None

    async def _get_state_raw(self, key: str) -> str | None:
        return await self.state.get(key)

    async def _set_states(self, values: dict[str, str]) -> None:
        await self.state.set_many({self._key(name): value for name, value in values.items()})


# --- rendering ---------------------------------------------------------------------------


def matrix_commands(text: str) -> str:
    """``/uusi`` in our texts becomes ``!uusi``: what a Matrix user can type."""
    return _COMMAND_OUT.sub(r"!\1", text)


def render_message(message: Message, limit: int = MAX_CHARS) -> list[dict[str, Any]]:
    """The ``m.notice`` contents for a message: long text split, choices numbered at the end."""
    options = message.flat_choices()
    text = matrix_commands(message.text)
    base_html = matrix_commands(message.html) if message.html is not None else None
    while True:
        pieces = split_text(text, limit) or [""]
        contents = []
        for index, piece in enumerate(pieces):
            formatted = (
                base_html if base_html is not None and len(pieces) == 1 else html.escape(piece)
            )
            body = piece
            if index == len(pieces) - 1 and options:
                numbered = "\n".join(f"{n}. {c.label}" for n, c in enumerate(options, start=1))
                body = f"{body}\n\n{numbered}" if body else numbered
                items = "".join(f"<li>{html.escape(c.label)}</li>" for c in options)
                formatted = f"{formatted}<ol>{items}</ol>"
            contents.append(
                {
                    "msgtype": "m.notice",
                    "body": body,
                    "format": HTML_FORMAT,
                    "formatted_body": formatted.replace("\n", "<br>"),
                }
            )
        too_big = any(_event_bytes(c) > MAX_EVENT_BYTES for c in contents)
        if not too_big or limit <= 500:
            return contents
        limit //= 2


def _event_bytes(content: dict[str, Any]) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


def _png_size(data: bytes) -> dict[str, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return {"w": width, "h": height}
    return {}


def _is_flow_choice(choice: Choice) -> bool:
    return choice.data.startswith(capture.CHOICE_PREFIX + ":")


def _strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@someone> quoted`` lines clients put before a reply's own text."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).lstrip("\n")


def _after_own_invite(events: list[Any], user_id: str) -> list[Any]:
    """A room we were just invited into: what came before our invite is not for us."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if (
            isinstance(event, nio.RoomMemberEvent)
            and event.state_key == user_id
            and event.membership == "invite"
        ):
            return events[index + 1 :]
    return events


async def _finish(task: asyncio.Task[None], within: float) -> None:
    """Let ``task`` end ``within`` seconds (cancelled after that); never raises its error."""
    try:
        await asyncio.wait({task}, timeout=within)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=5)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("matrix_sync_ended error=%s", type(task.exception()).__name__)


def _log_id(event_id: str) -> str:
    """An event id for the logs, without its ``$`` sigil."""
    return event_id.lstrip("$")


def _status(response: object) -> str:
    return str(getattr(response, "status_code", None) or type(response).__name__)


def _describe(response: object) -> str:
    message = getattr(response, "message", "") or ""
    return f"{_status(response)} {message}".strip()
