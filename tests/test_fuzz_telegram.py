"""Fuzzing the Telegram transport: random Bot API updates into the real bot.

A generator (``UpdateMaker``, on ``tests.support.fuzz.OddValues``) builds raw Bot API
update dicts of every kind (messages in
private chats, groups, supergroups and channels with text, commands, entities
pointing anywhere, locations with odd floats, media, replies, service fields;
edits, channel posts, business and guest messages, callback queries with random
data, member updates, inline queries, polls, reactions, payments, boosts, and
kinds PTB does not know), from enrolled people, a revoked one, strangers and
bots, with fields left out at random. Texts run up to 5,000 characters of odd
Unicode (no lone surrogates: Telegram sends UTF-8). Each update is parsed by
PTB (``Update.de_json``; what PTB itself refuses is counted and skipped, and
must stay a minority) and handed to ``Application.process_update`` of the real
``TelegramTransport`` that ``bot.runtime.build_runtime`` builds, whose Bot API is
``tests.support.fake_telegram.FakeTelegram``: every reply really goes out over HTTP. A
few hundred more take the long way, through the fake's ``getUpdates``.

After every update:

* nothing went unhandled: the application's error handlers were never called
  and nothing logged an error;
* nothing was stored for input that must not be stored: for updates from
  strangers, revoked people and bots, in group chats and channels, and for an
  enrolled person's media, edits, garbage buttons, business and guest messages
  and chats that are not their own, the observations, drafts, people,
  identities and invites are exactly as before (so the worker's open draft is
  unchanged too).

Enrolled people in their own private chats also type random text, commands and
locations and press the real buttons of their current question: those may
change a draft or save an entry, and must only not fail.

Batches of 100 updates: hypothesis draws each batch's seed from the run's seed
(``HAVAINTO_TEST_SEED`` replays a run, see tests/support/fuzz.py), and every batch
runs on a fresh database and a fresh fake Bot API with the same people enrolled,
so no batch depends on what an earlier one stored. The bot runs in an event loop
of its own (``asyncio.Runner``) because hypothesis drives the examples
synchronously; that lets the number of examples depend on the backend: 10,000
updates on SQLite, 1,000 on PostgreSQL.

PTB's ``AIORateLimiter`` would hold the replies to Telegram's flood limits (30
messages a second, 20 a minute per group): 10,000 replies would take minutes.
The fuzz bot's limiter has those limits switched off (its documented
``overall_max_rate=0, group_max_rate=0``); its retry on 429 stays.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, ContextTypes, TypeHandler

from bot.config import Config
from bot.runtime import Runtime, build_runtime
from bot.transports.telegram import TelegramTransport
from storage import repo
from storage.admin import revoke_person
from tests.conftest import FakeClock
from tests.support.datacare_helpers import observation
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.fuzz import (
    BATCH_SEEDS,
    FUZZ_SETTINGS,
    ErrorRecords,
    OddValues,
    Snapshot,
    Tally,
    fresh_database,
    fuzz_seed,
    rerun_hint,
    show,
    snapshot,
    traceback_of,
)
from tests.support.telegram import telegram_config

# --- who is who ---------------------------------------------------------------------------

WORKER = 7001
LEAD = 7002
LEADER = 7003
ADMIN = 7004
REVOKED = 7005
ENROLLED = {WORKER: "worker", LEAD: "lead", LEADER: "leader", ADMIN: "admin"}
STRANGERS = (7100, 7101, 1, 2**31, 2**52 - 1)
BOT_USER = 123456  # the fake's own bot account
TEAM_CHAT = -1001
LEADER_CHAT = -2001
OTHER_TEAM_CHAT = -1002

UPDATES_SQLITE = 10_000
UPDATES_POSTGRESQL = 1_000
POLLED = 300
BATCH = 100
DONE_GROUP = 1_000_000
QUIET_LOGGERS = ("httpx", "httpcore")
# A callback query whose data is this prefix presses a real button of the sender's
# newest keyboard (the suffix picks which); every other callback data is garbage.
REAL_BUTTON = "\x00real:"
# The actions of the worker's own entries' buttons (own:ACTION:NUMBER), and what makes a
# random number in such a button name no entry at all.
OWN_ACTIONS = ("edit", "del", "delyes", "delno")
NO_ENTRY_PREFIX = "9" * 12

# --- the update generator ---------------------------------------------------------------------
# A seeded ``random.Random`` per batch, the seed drawn by hypothesis: building 10,000
# nested update dicts with hypothesis strategies directly costs more time than the bot
# needs to handle them. The odd scalars (texts, floats, commands) are ``OddValues``'.

ENTITY_TYPES = (
    "bot_command",
    "mention",
    "hashtag",
    "cashtag",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "date_time",
    "no_such_entity",
)
LANGUAGE_CODES = ("fi", "sv", "en", "de", "fi-FI", "sv-FI", "", "xx", "FI", "zh-hans", "ü" * 9)

CALLBACK_NEAR_MISSES = (
    "d:z{key}:{n}:save",
    "d:z{key}:{n}:theme.housing",
    "d:{key}",
    "own:edit:{own}",
    "own:del:{own}",
    "own:delyes:{own}",
    "own:delno:{own}",
    "own:{key}:{n}",
    "lang:{key}",
    "lang:fi",
    "lang:sv",
    "lang:en",
    "esc:ack:{n}",
    "esc:st:decided:{n}",
    "esc:st:{key}:{n}",
    "esc:ask:{n}",
    "esc:nt:{n}",
    "esc:ans:{n}",
    "esc:{key}",
    ":",
    "::::",
    "",
)
MEDIA_KINDS = (
    "photo",
    "voice",
    "audio",
    "document",
    "video",
    "animation",
    "video_note",
    "sticker",
    "contact",
    "dice",
    "venue",
    "poll",
)
SERVICE_KINDS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "group_chat_created",
    "delete_chat_photo",
    "migrate_to_chat_id",
    "pinned_message",
    "message_auto_delete_timer_changed",
    "web_app_data",
)
OTHER_KINDS = (
    "my_chat_member",
    "chat_member",
    "inline_query",
    "chosen_inline_result",
    "poll",
    "poll_answer",
    "chat_join_request",
    "message_reaction",
    "message_reaction_count",
    "shipping_query",
    "pre_checkout_query",
    "deleted_business_messages",
    "business_connection",
    "chat_boost",
    "removed_chat_boost",
    "no_such_update_kind",
)


class UpdateMaker(OddValues):
    """Raw Telegram update dicts from one seeded random generator."""

    def message_id(self) -> int:
        return self.rng.choice(
            (self.rng.randint(1, 10**6), self.rng.randint(-(2**31), 2**63), 1, 0)
        )

    def date(self) -> int:
        return self.rng.choice((self.rng.randint(1_600_000_000, 1_900_000_000), 0))

    def file(self) -> dict[str, Any]:
        found = {"file_id": self.text(10), "file_unique_id": self.text(10)}
        if self.chance(50):
            found["file_size"] = self.rng.randint(0, 2**40)
        return found

    def callback_data(self) -> str:
        """At most 64 bytes: random text, or a near miss of the bot's own payloads.

        ``own:...`` names entry 1, the worker's entry older than the edit window (so it
        is refused), or no entry at all: the worker's newer entries (the real presses
        save some) may rightly be withdrawn by their own buttons. Random text that is a
        number after all (``isdecimal``, as the bot checks: "7", or "٧" in Arabic-Indic
        digits) is put far above any entry's number; a random action is never one of
        the real ones."""
        if self.chance(40):
            data = self.text(64)
        else:
            key = self.text(8)
            if key in OWN_ACTIONS:
                key += "x"
            number = self.rng.choice((str(self.rng.randint(-2, 9)), self.text(4)))
            junk = self.text(4)
            if junk.isdecimal():
                junk = NO_ENTRY_PREFIX + junk
            own = self.rng.choice(("1", "0", "-1", "999999999", "1" * 30, junk))
            data = self.rng.choice(CALLBACK_NEAR_MISSES).format(key=key, n=number, own=own)
        return data.encode()[:64].decode("utf-8", "ignore")

    def entities(self, text: str) -> list[dict[str, Any]]:
        kind = self.pick(none=3, command=2, random=3)
        if kind == "none":
            return []
        if kind == "command":
            return [{"type": "bot_command", "offset": 0, "length": self.rng.randint(0, 40)}]
        found = []
        for _ in range(self.rng.randint(1, 4)):
            entity: dict[str, Any] = {
                "type": self.rng.choice(ENTITY_TYPES),
                "offset": self.rng.choice((0, self.rng.randint(0, len(text) + 2), -1, 10**4)),
                "length": self.rng.choice((1, self.rng.randint(0, len(text) + 2), -3, 10**4)),
            }
            if self.chance(20):
                entity["url"] = self.text()
            if self.chance(10):
                entity["user"] = self.user("stranger")
            found.append(entity)
        return found

    # --- users and chats ----------------------------------------------------------------------

    def user(self, kind: str | None = None) -> dict[str, Any] | None:
        """A Telegram ``User`` (None: the field is left out)."""
        kind = kind or self.pick(worker=8, enrolled=3, revoked=1, stranger=6, bot=1, missing=1)
        if kind == "missing":
            return None
        if kind == "worker":
            user_id = WORKER
        elif kind == "enrolled":
            user_id = self.rng.choice(sorted(ENROLLED))
        elif kind == "revoked":
            user_id = REVOKED
        elif kind == "bot":
            user_id = BOT_USER
        else:
            user_id = self.rng.choice((*STRANGERS, self.rng.randint(1, 2**52)))
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": kind == "bot" or self.chance(3),
            "first_name": self.rng.choice(("Testi", self.text(64))),
        }
        if self.chance(60):
            user["language_code"] = self.rng.choice(LANGUAGE_CODES)
        for name in ("last_name", "username"):
            if self.chance(20):
                user[name] = self.text(20)
        for name in ("is_premium", "added_to_attachment_menu"):
            if self.chance(10):
                user[name] = self.chance(50)
        return user

    def chat(self, sender: dict[str, Any] | None) -> dict[str, Any]:
        """The chat of a message: mostly the sender's own private chat."""
        kind = self.pick(
            own=24,
            team=2,
            leaders=2,
            other_team=1,
            group=2,
            supergroup=2,
            channel=2,
            foreign_private=2,
            sender=1,
        )
        if kind == "own" and sender is not None:
            return {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
        if kind in ("own", "foreign_private"):
            chat_id = self.rng.choice((WORKER, LEAD, *STRANGERS, self.rng.randint(1, 2**40)))
            return {"id": chat_id, "type": "private"}
        if kind == "team":
            return {"id": TEAM_CHAT, "type": "group", "title": "Helsingin etsivät"}
        if kind == "leaders":
            return {"id": LEADER_CHAT, "type": "supergroup", "title": "Johto"}
        if kind == "other_team":
            return {"id": OTHER_TEAM_CHAT, "type": "group", "title": "Vasa"}
        if kind == "sender":
            return {"id": self.rng.randint(1, 2**40), "type": "sender"}
        chat: dict[str, Any] = {
            "id": self.rng.randint(-(10**13), -1),
            "type": kind,
            "title": self.text(20),
        }
        if kind == "supergroup" and self.chance(30):
            chat["is_forum"] = True
        return chat

    # --- messages -------------------------------------------------------------------------------

    def media(self, kind: str) -> Any:
        rng = self.rng
        if kind == "photo":
            return [
                {**self.file(), "width": rng.randint(0, 10**4), "height": rng.randint(0, 10**4)}
                for _ in range(rng.randint(0, 3))
            ]
        if kind in ("voice", "audio"):
            return {**self.file(), "duration": rng.randint(0, 10**6)}
        if kind == "document":
            return {**self.file(), "file_name": self.text(20), "mime_type": self.text(10)}
        if kind in ("video", "animation"):
            return {**self.file(), "width": 640, "height": 480, "duration": rng.randint(0, 999)}
        if kind == "video_note":
            return {**self.file(), "length": 240, "duration": 3}
        if kind == "sticker":
            return {
                **self.file(),
                "type": rng.choice(("regular", "mask", "custom_emoji")),
                "width": 512,
                "height": 512,
                "is_animated": self.chance(20),
                "is_video": self.chance(20),
                "emoji": self.text(2),
            }
        if kind == "contact":
            return {"phone_number": self.text(15), "first_name": self.text(15), "user_id": WORKER}
        if kind == "dice":
            return {
                "emoji": rng.choice(("🎲", "🎯", "🏀", "⚽", "🎳", "🎰", "x")),
                "value": rng.randint(-1, 70),
            }
        if kind == "venue":
            return {
                "location": {"latitude": self.odd_float(), "longitude": self.odd_float()},
                "title": self.text(20),
                "address": self.text(20),
            }
        return self.poll()

    def poll(self) -> dict[str, Any]:
        return {
            "id": self.text(10),
            "question": self.any_text(),
            "options": [
                {
                    "text": self.text(20),
                    "voter_count": self.rng.randint(0, 9),
                    "persistent_id": self.text(5),
                }
                for _ in range(self.rng.randint(0, 4))
            ],
            "total_voter_count": self.rng.randint(0, 99),
            "is_closed": self.chance(50),
            "is_anonymous": self.chance(50),
            "type": self.rng.choice(("regular", "quiz")),
            "allows_multiple_answers": self.chance(50),
            "allows_revoting": self.chance(50),  # required since Bot API 9.6
            "members_only": self.chance(50),  # required since Bot API 10.0
        }

    def location(self) -> dict[str, Any]:
        location = {"latitude": self.odd_float(), "longitude": self.odd_float()}
        if self.chance(30):
            location["horizontal_accuracy"] = self.odd_float()
        if self.chance(20):
            location["live_period"] = self.rng.choice((60, 0x7FFFFFFF, 0))
        if self.chance(10):
            location["heading"] = self.rng.randint(-1, 400)
        return location

    def forward_origin(self) -> dict[str, Any]:
        kind = self.rng.choice(("hidden_user", "user", "chat", "channel"))
        origin: dict[str, Any] = {"type": kind, "date": self.date()}
        if kind == "hidden_user":
            origin["sender_user_name"] = self.text(10)
        elif kind == "user":
            origin["sender_user"] = self.user("stranger")
        elif kind == "chat":
            origin["sender_chat"] = self.chat(None)
        else:
            origin["chat"] = self.chat(None)
            origin["message_id"] = self.message_id()
        return origin

    def keyboard(self) -> dict[str, Any]:
        return {
            "inline_keyboard": [
                [
                    {"text": self.text(10), "callback_data": self.callback_data()}
                    for _ in range(self.rng.randint(0, 2))
                ]
                for _ in range(self.rng.randint(0, 2))
            ]
        }

    def message(self, depth: int = 0, sender: dict[str, Any] | None = None) -> dict[str, Any]:
        sender = sender if sender is not None else self.user()
        message: dict[str, Any] = {
            "message_id": self.message_id(),
            "date": self.date(),
            "chat": self.chat(sender),
        }
        if sender is not None:
            message["from"] = sender
        if self.chance(5):
            message["sender_chat"] = self.chat(None)
        content = self.pick(
            text=5,
            command=3,
            location=2,
            media=3,
            media_caption=1,
            service=1,
            nothing=1,
            text_and_media=1,
        )
        if content in ("text", "command", "text_and_media"):
            text = self.command_text() if content == "command" else self.any_text()
            message["text"] = text
            entities = self.entities(text)
            if content == "command" and self.chance(75):
                entities = [{"type": "bot_command", "offset": 0, "length": len(text.split(" ")[0])}]
            if entities:
                message["entities"] = entities
        if content == "location":
            message["location"] = self.location()
        if content in ("media", "media_caption", "text_and_media"):
            kind = self.rng.choice(MEDIA_KINDS)
            message[kind] = self.media(kind)
            if content == "media_caption":
                message["caption"] = self.any_text()
                entities = self.entities(message["caption"])
                if entities:
                    message["caption_entities"] = entities
        if content == "service":
            self.service(message, depth)
        self.extras(message)
        if depth == 0 and self.chance(15):
            message["reply_to_message"] = self.message(depth=1)
        return message

    def service(self, message: dict[str, Any], depth: int) -> None:
        kind = self.rng.choice(SERVICE_KINDS)
        if kind == "new_chat_members":
            message[kind] = [self.user("stranger") for _ in range(self.rng.randint(1, 3))]
        elif kind == "left_chat_member":
            message[kind] = self.user("stranger")
        elif kind == "new_chat_title":
            message[kind] = self.text()
        elif kind in ("group_chat_created", "delete_chat_photo"):
            message[kind] = True
        elif kind == "migrate_to_chat_id":
            message[kind] = self.rng.randint(-(10**13), -1)
        elif kind == "pinned_message" and depth == 0:
            message[kind] = self.message(depth=1)
        elif kind == "message_auto_delete_timer_changed":
            message[kind] = {"message_auto_delete_time": self.rng.randint(0, 10**6)}
        elif kind == "web_app_data":
            message[kind] = {"data": self.any_text(), "button_text": self.text(10)}

    def extras(self, message: dict[str, Any]) -> None:
        if not self.chance(30):
            return
        rng = self.rng
        for name, value in (
            ("edit_date", self.date),
            ("message_thread_id", lambda: rng.randint(0, 10**6)),
            ("is_topic_message", lambda: self.chance(50)),
            ("is_automatic_forward", lambda: self.chance(50)),
            ("has_protected_content", lambda: self.chance(50)),
            ("media_group_id", lambda: self.text(10)),
            ("author_signature", lambda: self.text(10)),
            ("has_media_spoiler", lambda: self.chance(50)),
            ("sender_boost_count", lambda: rng.randint(0, 99)),
            ("link_preview_options", lambda: {"is_disabled": self.chance(50)}),
            ("forward_origin", self.forward_origin),
            ("reply_markup", self.keyboard),
            ("via_bot", lambda: self.user("bot")),
        ):
            if self.chance(15):
                message[name] = value()

    # --- other kinds --------------------------------------------------------------------------

    def callback_query(self) -> dict[str, Any]:
        sender = self.user()
        query: dict[str, Any] = {
            "id": str(self.rng.randint(0, 2**63)),
            "chat_instance": self.text(10),
        }
        if sender is not None:
            query["from"] = sender
        place = self.pick(message=6, own_chat=6, inaccessible=1, inline=1, nowhere=1)
        if place in ("message", "own_chat"):
            message = self.message(depth=1)
            if place == "own_chat" and sender is not None:
                # The button sits in the presser's own chat with the bot.
                message["chat"] = {"id": sender["id"], "type": "private", "first_name": "Testi"}
            query["message"] = message
        elif place == "inaccessible":
            query["message"] = {
                "chat": self.chat(sender),
                "message_id": self.message_id(),
                "date": 0,
            }
        elif place == "inline":
            query["inline_message_id"] = self.text(10)
        kind = self.pick(garbage=14, real=5, none=1, game=1)
        if kind == "garbage":
            query["data"] = self.callback_data()
        elif kind == "real":
            query["data"] = REAL_BUTTON + str(self.rng.randint(0, 30))
        elif kind == "game":
            query["game_short_name"] = self.text(10)
        return query

    def real_press(self) -> dict[str, Any]:
        worker = self.user("worker")
        assert worker is not None
        worker["is_bot"] = False
        # Mostly the first button, which walks the flow forward to Save.
        index = self.rng.choice((0, 0, 0, self.rng.randint(0, 30)))
        return {
            "id": str(self.rng.randint(0, 2**63)),
            "chat_instance": self.text(10),
            "from": worker,
            "message": {
                "message_id": 1,
                "date": self.date() or 1,
                "chat": {"id": WORKER, "type": "private", "first_name": "Testi"},
            },
            "data": REAL_BUTTON + str(index),
        }

    def member(self) -> dict[str, Any]:
        status = self.rng.choice(("member", "left", "kicked", "creator", self.text(8)))
        member: dict[str, Any] = {"status": status, "user": self.user()}
        if status == "kicked":
            member["until_date"] = self.date()
        if status == "creator":
            member["is_anonymous"] = self.chance(50)
        return member

    def other(self, kind: str) -> Any:
        """Update kinds the bot has no handler for (and one PTB does not know)."""
        rng = self.rng
        if kind in ("my_chat_member", "chat_member"):
            return {
                "chat": self.chat(None),
                "from": self.user(),
                "date": self.date(),
                "old_chat_member": self.member(),
                "new_chat_member": self.member(),
            }
        if kind == "inline_query":
            return {
                "id": self.text(10),
                "from": self.user(),
                "query": self.any_text(),
                "offset": self.text(5),
                "chat_type": rng.choice(("sender", "private", "group", "x")),
            }
        if kind == "chosen_inline_result":
            return {"result_id": self.text(10), "from": self.user(), "query": self.any_text()}
        if kind == "poll":
            return self.poll()
        if kind == "poll_answer":
            options = [rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
            return {
                "poll_id": self.text(10),
                "user": self.user(),
                "option_ids": options,
                "option_persistent_ids": [str(o) for o in options],  # Bot API 9.6
            }
        if kind == "chat_join_request":
            user = self.user()
            return {
                "chat": self.chat(None),
                "from": user,
                "user_chat_id": (user or {}).get("id", 1),
                "date": self.date(),
            }
        if kind == "message_reaction":
            reaction = [{"type": "emoji", "emoji": rng.choice(("👍", "🔥"))}]
            found = {
                "chat": self.chat(None),
                "message_id": self.message_id(),
                "date": self.date(),
                "old_reaction": [],
                "new_reaction": reaction,
            }
            if self.chance(70):
                found["user"] = self.user()
            return found
        if kind == "message_reaction_count":
            return {
                "chat": self.chat(None),
                "message_id": self.message_id(),
                "date": self.date(),
                "reactions": [
                    {"type": {"type": "emoji", "emoji": "👍"}, "total_count": rng.randint(0, 9)}
                ],
            }
        if kind == "shipping_query":
            address = ("country_code", "state", "city", "street_line1", "street_line2", "post_code")
            return {
                "id": self.text(10),
                "from": self.user(),
                "invoice_payload": self.text(),
                "shipping_address": {key: self.text(10) for key in address},
            }
        if kind == "pre_checkout_query":
            return {
                "id": self.text(10),
                "from": self.user(),
                "currency": "EUR",
                "total_amount": rng.randint(0, 10**6),
                "invoice_payload": self.text(),
            }
        if kind == "deleted_business_messages":
            return {
                "business_connection_id": self.text(10),
                "chat": self.chat(None),
                "message_ids": [self.message_id() for _ in range(rng.randint(0, 3))],
            }
        if kind == "business_connection":
            return {
                "id": self.text(10),
                "user": self.user(),
                "user_chat_id": rng.randint(1, 2**40),
                "date": self.date(),
                "can_reply": self.chance(50),
                "is_enabled": self.chance(50),
            }
        if kind in ("chat_boost", "removed_chat_boost"):
            source = {"source": "premium", "user": self.user("stranger")}
            if kind == "chat_boost":
                boost = {
                    "boost_id": self.text(8),
                    "add_date": self.date(),
                    "expiration_date": self.date(),
                    "source": source,
                }
                return {"chat": self.chat(None), "boost": boost}
            return {
                "chat": self.chat(None),
                "boost_id": self.text(8),
                "remove_date": self.date(),
                "source": source,
            }
        return {self.text(5): self.text(5) for _ in range(rng.randint(0, 3))}

    def update(self) -> dict[str, Any]:
        """One raw update dict (without ``update_id``: the feeder numbers them)."""
        kind = self.pick(
            message=10,
            callback_query=5,
            edited_message=2,
            channel_post=1,
            edited_channel_post=1,
            business_message=1,
            edited_business_message=1,
            guest_message=1,
            other=3,
            real_press=2,
        )
        if kind == "real_press":
            # The worker presses a button of their current question: drafts move, entries
            # (with odd descriptions) get saved.
            kind, body = "callback_query", self.real_press()
        elif kind == "callback_query":
            body: Any = self.callback_query()
        elif kind == "other":
            kind = self.rng.choice(OTHER_KINDS)
            body = self.other(kind)
        else:
            body = self.message()
            if kind in ("business_message", "edited_business_message"):
                body["business_connection_id"] = self.text(10)
            if kind == "guest_message":
                body["guest_query_id"] = self.text(10)
            if kind.startswith("edited"):
                body.setdefault("edit_date", self.date())
        update = {kind: body}
        if self.chance(4):
            self.drop_some_field(update)
        return update

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [self.update() for _ in range(size)]


# --- what may change ------------------------------------------------------------------------


def _private_own(user: Any, chat: Any) -> bool:
    return (
        isinstance(user, dict)
        and isinstance(chat, dict)
        and chat.get("type") == "private"
        and chat.get("id") == user.get("id")
    )


def _active_member(user: Any) -> bool:
    return isinstance(user, dict) and user.get("id") in ENROLLED and user.get("is_bot") is False


def may_store(update: dict[str, Any]) -> bool:
    """True for the updates that may legitimately change stored rows: an enrolled person
    in their own private chat typing text (commands too) or sharing a location, or
    pressing a real button of their current question. Everything else must not store."""
    if "message" in update:
        message = update["message"]
        return (
            _active_member(message.get("from"))
            and _private_own(message.get("from"), message.get("chat"))
            and bool(message.get("text") or "location" in message)
        )
    if "callback_query" in update:
        query = update["callback_query"]
        message = query.get("message") or {}
        return (
            _active_member(query.get("from"))
            and _private_own(query.get("from"), message.get("chat"))
            and message.get("date") != 0
            and str(query.get("data", "")).startswith(REAL_BUTTON)
        )
    return False


# --- the bot under fuzz -----------------------------------------------------------------------


class FuzzBot:
    """The real Telegram runtime on the fake Bot API, with everything recorded."""

    def __init__(
        self, fake: FakeTelegram, config: Config, clock: FakeClock, tally: Tally, replay: str
    ) -> None:
        self.fake = fake
        self.config = config
        self.clock = clock
        self.replay = replay  # how to replay this batch, for failure messages
        self.runtime: Runtime | None = None
        self.handler_errors: list[tuple[object, BaseException | None]] = []
        self.logged = ErrorRecords()
        self.tally = tally
        self.processed: Counter[int] = Counter()
        self._next_update_id = 1
        self._changed = asyncio.Condition()
        self._quiet: dict[str, int] = {}

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    @property
    def transport(self) -> TelegramTransport:
        transport = self.rt.transports[0]
        assert isinstance(transport, TelegramTransport)
        return transport

    async def start(self) -> None:
        self.runtime = await build_runtime(self.config, clock=self.clock, terminal=False)
        app = self.transport.app
        app.bot._rate_limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=5)
        app.add_error_handler(self._record_error)
        app.add_handler(TypeHandler(Update, self._done), group=DONE_GROUP)
        await app.initialize()
        logging.getLogger().addHandler(self.logged)
        # As ``havainto run`` does (bot/cli/run.py): no INFO line per HTTP request.
        self._quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        await self._people()

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self.logged)
        for name, level in self._quiet.items():
            logging.getLogger(name).setLevel(level)
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def _record_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.handler_errors.append((update, context.error))

    async def _done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with self._changed:
            self.processed[update.update_id] += 1
            self._changed.notify_all()

    # --- the people the fuzz writes as ------------------------------------------------------

    async def _people(self) -> None:
        for user_id, role in (*ENROLLED.items(), (REVOKED, "worker")):
            code = await self.rt.service.create_invite("hki-etsiva", role, timedelta(days=1))
            await self.process(_private_text(user_id, f"/start {code}"))
        async with self.rt.db.transaction() as session:
            revoked = await repo.find_member(session, "telegram", str(REVOKED))
            assert revoked is not None
            await revoke_person(session, revoked.pseudonym, "fuzz", self.clock())
            worker = await repo.find_member(session, "telegram", str(WORKER))
            assert worker is not None
            # An entry older than the edit window: its own:... buttons are all refused.
            long_ago = self.clock() - timedelta(days=3)
            await repo.add_observation(
                session,
                **observation(
                    worker,
                    long_ago,
                    "helsinki",
                    team_id="hki-etsiva",
                    description="Vanha havainto",
                    language="fi",
                ),
            )
        await self.open_draft()

    async def open_draft(self, text: str = "Nuorille ei löydy yöpaikkaa") -> None:
        """Give the worker an open draft when they have none (they may have saved or cancelled)."""
        async with self.rt.db.transaction() as session:
            worker = await repo.find_member(session, "telegram", str(WORKER))
            assert worker is not None
            if await repo.load_draft(session, worker.person_id) is not None:
                return
        await self.process(_private_text(WORKER, text))

    # --- feeding ------------------------------------------------------------------------------

    def parse(self, raw: dict[str, Any]) -> Update | None:
        """The update as PTB parses it, numbered; None when PTB refuses it."""
        data = copy.deepcopy(raw)
        data["update_id"] = self._next_update_id
        self._next_update_id += 1
        kind = next(iter(raw))
        try:
            update = Update.de_json(data, self.transport.app.bot)
        except Exception:
            self.tally.rejected_by_parser += 1
            self.tally.rejected_kinds[kind] += 1
            return None
        self.tally.fed += 1
        self.tally.kinds[kind] += 1
        return update

    async def process(self, raw: dict[str, Any]) -> None:
        update = self.parse(raw)
        if update is not None:
            await self.transport.app.process_update(update)
        self.check_errors([raw])

    def check_errors(self, raws: list[dict[str, Any]]) -> None:
        unhandled = [
            (type(error).__name__, str(error)[:200])
            for _, error in self.handler_errors
            if not isinstance(error, TelegramError)
        ]
        self.tally.telegram_errors += len(self.handler_errors) - len(unhandled)
        logged = [(r.name, r.getMessage()[:200], traceback_of(r)) for r in self.logged.records]
        if unhandled or logged:
            raise AssertionError(
                f"{self.replay}\nunhandled: {unhandled}\nlogged: {logged}\nafter the updates:\n"
                + "\n".join(show(raw) for raw in raws)
            )
        self.handler_errors.clear()

    async def feed(self, batch: list[dict[str, Any]], opening: str) -> None:
        """Process a batch in order. The updates that may store are processed one by one;
        each run of updates between them that must not store anything is processed
        concurrently (as PTB does with ``concurrent_updates``), with the stored rows
        compared before and after the run. ``opening`` opens the worker's draft if they
        have none, so the entries the real presses save have odd descriptions too."""
        await self.open_draft(opening)
        run: list[dict[str, Any]] = []
        for raw in batch:
            self.tally.generated += 1
            if may_store(raw):
                await self._must_not_store(run)
                run = []
                self.tally.may_store += 1
                await self.process(self._press_real_button(raw))
            else:
                run.append(raw)
        await self._must_not_store(run)

    async def _must_not_store(self, run: list[dict[str, Any]]) -> None:
        if not run:
            return
        before = await snapshot(self.rt)
        parsed = [update for update in map(self.parse, run) if update is not None]
        await asyncio.gather(*(self.transport.app.process_update(u) for u in parsed))
        self.check_errors(run)
        await self._compare(before, run)

    async def _compare(self, before: Snapshot, run: list[dict[str, Any]]) -> None:
        after = await snapshot(self.rt)
        self.tally.checked_runs += 1
        if after != before:
            raise AssertionError(
                f"{self.replay}\nstored rows changed by updates that must not store anything:\n"
                + before.diff(after)
                + "\nthe updates:\n"
                + "\n".join(show(r) for r in run)
            )

    def _press_real_button(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A real press: the button (by index) of the sender's newest keyboard, if any."""
        query = raw.get("callback_query")
        if query is None:
            return raw
        user_id = query["from"]["id"]
        for call in reversed(self.fake.messages_to(user_id)):
            if call.method != "sendMessage" or call.message_id is None:
                continue
            message = self.fake.message(user_id, call.message_id)
            buttons = [data for row in keyboard(message) for _, data in row if data]
            if buttons:
                index = int(query["data"][len(REAL_BUTTON) :])
                pressed = copy.deepcopy(raw)
                pressed["callback_query"]["data"] = buttons[index % len(buttons)]
                pressed["callback_query"]["message"] = message
                return pressed
        return raw

    async def poll(self, batch: list[dict[str, Any]]) -> None:
        """Push updates through the fake's getUpdates to the polling transport."""
        acceptable = []
        for raw in batch:
            if next(iter(raw)) not in Update.ALL_TYPES:
                continue  # neither Telegram nor the fake delivers kinds the bot did not ask for
            data = copy.deepcopy(raw)
            data["update_id"] = self._next_update_id + len(acceptable)
            try:
                Update.de_json(copy.deepcopy(data), self.transport.app.bot)
                json.dumps(data)
            except Exception:
                continue
            acceptable.append(data)
        self._next_update_id += len(acceptable)
        before = await snapshot(self.rt)
        assert self.transport.app.updater is not None
        await self.transport.app.start()
        await self.transport.app.updater.start_polling(
            poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES
        )
        try:
            for data in acceptable:
                self.fake.push_update(data)
            ids = [data["update_id"] for data in acceptable]
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: all(self.processed[i] for i in ids)), 120
                )
        finally:
            await self.transport.app.updater.stop()
            await self.transport.app.stop()
        self.tally.polled += len(acceptable)
        self.check_errors(acceptable)
        await self._compare(before, acceptable)


def _private_text(user_id: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": user_id, "type": "private", "first_name": "Testi"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Testi", "language_code": "fi"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [
            {"type": "bot_command", "offset": 0, "length": len(text.split(" ", 1)[0])}
        ]
    return {"message": message}


def telegram_report(tally: Tally) -> str:
    return (
        f"telegram fuzz: {tally.batches} batches, {tally.generated} generated, "
        f"{tally.rejected_by_parser} refused by PTB "
        f"({dict(tally.rejected_kinds.most_common(5))}), {tally.fed} fed to process_update "
        f"({tally.may_store} of them allowed to store), {tally.polled} through getUpdates, "
        f"{tally.checked_runs} storage checks, {tally.saved} entries saved by real presses; "
        f"kinds {dict(tally.kinds.most_common())}"
    )


async def one_batch(
    db_url: str,
    folder: Path,
    make_config: Callable[..., Config],
    tally: Tally,
    replay: str,
    work: Callable[[FuzzBot], Any],
) -> None:
    """A fresh database and fake Bot API, the people enrolled, then ``work(bot)``."""
    async with fresh_database(db_url, folder) as url, FakeTelegram() as fake:
        config = telegram_config(make_config, fake, database={"url": url})
        bot = FuzzBot(fake, config, FakeClock(), tally, replay)
        try:
            await bot.start()
            await work(bot)
            tally.saved += len((await snapshot(bot.rt)).observations) - 1
        finally:
            await bot.stop()


# --- the test ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.slow
def test_random_telegram_updates_are_handled_and_store_nothing_they_must_not(
    db_url: str, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    seed = fuzz_seed()
    total = UPDATES_POSTGRESQL if db_url.startswith("postgresql") else UPDATES_SQLITE
    tally = Tally()
    with asyncio.Runner() as runner:

        @hypothesis_seed(seed)
        @settings(FUZZ_SETTINGS, max_examples=total // BATCH)
        @given(st.integers(*BATCH_SEEDS))
        def fuzz(batch_seed: int) -> None:
            maker = UpdateMaker(random.Random(batch_seed))
            batch, opening = maker.batch(BATCH), maker.any_text()
            replay = f"{rerun_hint(seed)} batch seed {batch_seed}"
            tally.batches += 1

            async def feed(bot: FuzzBot) -> None:
                await bot.feed(batch, opening)

            runner.run(one_batch(db_url, tmp_path, make_config, tally, replay, feed))

        fuzz()
        polled = UpdateMaker(random.Random(seed)).batch(POLLED)

        async def poll(bot: FuzzBot) -> None:
            await bot.poll([raw for raw in polled if not may_store(raw)])

        replay = f"{rerun_hint(seed)} the polled batch"
        runner.run(one_batch(db_url, tmp_path, make_config, tally, replay, poll))
    report = f"{rerun_hint(seed)}\n{telegram_report(tally)}"
    print(report)
    assert tally.generated == total, report
    # PTB parses most of what the generator makes: the fuzz reaches the bot's handlers.
    assert tally.rejected_by_parser < tally.generated // 10, report
    assert tally.may_store > total // 20 and tally.checked_runs > total // 20, report
    assert tally.polled > POLLED // 2, report
