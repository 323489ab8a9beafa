"""A fake Telegram Bot API server for tests.

``FakeTelegram`` is a small aiohttp web server bound to ``127.0.0.1`` that speaks enough of the
Bot API for the *real* ``telegram.ext.Application`` (python-telegram-bot 22) to run against it
over real HTTP: long polling, sending and editing messages, inline keyboards, callback queries,
photo/document uploads, bot commands, file downloads and fault injection. Nothing ever leaves
the machine.

Usage (pytest-asyncio, ``asyncio_mode = "auto"``)::

    from telegram.ext import Application
    from tests.support.fake_telegram import FakeTelegram, keyboard

    async def test_start_command():
        async with FakeTelegram() as tg:           # or: await tg.start() / await tg.stop()
            app = (
                Application.builder()
                .token(tg.token)
                .base_url(tg.base_url)
                .base_file_url(tg.base_file_url)
                .build()
            )
            app.add_handler(...)
            async with app:
                await app.start()
                await app.updater.start_polling(poll_interval=0, timeout=5)
                try:
                    tg.send_text(42, "/start")          # user 42 writes to the bot
                    reply = await tg.wait_reply(42)     # next unread bot message in chat 42
                    assert reply.text == "Hei!"
                    assert keyboard(reply) == [[("Kyllä", "yes")]]
                    tg.press(42, "yes")                 # taps the button on the last keyboard
                    await tg.wait_for(lambda c: c.method == "answerCallbackQuery")
                finally:
                    await app.updater.stop()
                    await app.stop()

Playing users: ``user()``, ``send_text()``, ``press()``, ``send_location()``, ``send_media()``,
``edit_text()``, ``push_update()`` (raw update dicts) and ``redeliver()`` (duplicate delivery).
They are plain functions returning the update_id; call them from the test's event loop thread
(they may be called before ``start()`` too: updates just wait in the queue).

Slowing down: ``delay(method, seconds)`` answers every call of ``method`` late (the call is
counted in ``counts`` on arrival, recorded in ``sent`` once answered).

Telegram's flood limits (off by default; ``FakeTelegram(flood_limit=True)`` or
``enable_flood_limit()``): more than 30 messages a second for the token, or more than 20 a
minute to one group chat, are answered 429 ``Too Many Requests: retry after N`` with
``parameters.retry_after`` N, as Telegram answers them. A message is a call that carries a
``chat_id`` and posts or changes a message (``FLOOD_METHODS``; ``answerCallbackQuery`` is not
one). Each limit is a leaky bucket (GCRA): a burst of 30 (20) is taken at once, after that one
message per 1/30 s (3 s), and a message may come 0.1 s before its turn (jitter on the way); so
in any interval of T seconds at most 33 + 30·T messages pass for the token. PTB's
``AIORateLimiter`` with Telegram's figures stays under it. Rejections are counted in
``flood_rejections`` (``"token"``, ``"group"``) and recorded in ``failed`` like any error.

Recording: every successful Bot API call except ``getUpdates``/``getMe`` is appended to
``sent`` as a ``SentCall`` (``method``, decoded ``params`` -- ``reply_markup`` etc. parsed from
JSON --, uploaded ``files``, ``time`` from ``time.monotonic()``, the ``result`` returned).
Calls answered with an error (injected or because the request was invalid) go to ``failed``.
``counts`` counts every call per method, including ``getUpdates``.

Realism, so that bugs show up in tests as they would in production:

* ``getUpdates`` honours ``offset`` (updates below it are confirmed and forgotten for good),
  ``limit``, ``allowed_updates`` (remembered between calls like Telegram does; by default
  ``chat_member``, ``message_reaction`` and ``message_reaction_count`` are not delivered) and
  ``timeout`` (real long polling that wakes up at once on ``push_update``). A newer
  ``getUpdates`` terminates an older pending one with 409, and while a webhook is set
  ``getUpdates`` answers 409, as Telegram does.
* ``parse_mode="HTML"`` is parsed: unsupported tags, a stray ``<`` and unclosed or mismatched
  tags give Telegram's 400 "can't parse entities"; the returned message carries the plain text
  and entities. ``MarkdownV2`` is checked for unescaped reserved characters (best effort).
* 400 errors for empty or too long texts (4096) and captions (1024), callback_data longer than
  64 bytes, editing a missing or foreign message, "message is not modified" and unknown
  callback query ids; 403 for chats of users who ``block()``-ed the bot.
* Unknown methods: 404 ``Not Found``; a wrong token: 401 ``Unauthorized``.
* Message ids grow per chat, shared by the user's and the bot's messages.

Bot messages to chats the fake has never seen are allowed (a positive id is taken as a private
chat, ``-100…`` as a supergroup, other negative ids as a group); ``chat()`` registers a chat
explicitly, e.g. to give a group its title.
"""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

__all__ = ["FLOOD_METHODS", "FakeTelegram", "SentCall", "keyboard"]

JSON = dict[str, Any]

#: Methods whose calls ``messages_to`` / ``wait_reply`` treat as "a message to the chat".
MESSAGE_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "editMessageText"})

#: Methods that count against Telegram's flood limits (when the fake enforces them).
FLOOD_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "editMessageReplyMarkup",
    }
)
#: Telegram's limits: messages per second for one token, per minute to one group chat.
TOKEN_MESSAGES_PER_SECOND = 30
GROUP_MESSAGES_PER_MINUTE = 20
#: How early a message may arrive for its turn and still pass (requests jitter on the way).
FLOOD_SLACK_S = 0.1

#: Parameters that are free-form strings and must never be JSON-decoded (PTB sends ``str`` values
#: unencoded, everything else JSON-encoded, so a text of "42" would otherwise turn into an int).
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "action",
        "secret_token",
        "ip_address",
        "language_code",
        "file_id",
        "title",
        "description",
        "short_description",
        "name",
        "emoji",
        "business_connection_id",
        "message_effect_id",
        "photo",
        "document",
        "voice",
        "video",
        "audio",
        "animation",
        "sticker",
        "thumbnail",
        "question",
        "explanation",
        "address",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
    }
)

_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"
_MAX_TEXT = 4096
_MAX_CAPTION = 1024
_MAX_CALLBACK_DATA = 64


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class SentCall:
    """One Bot API call the bot made."""

    method: str
    params: JSON
    files: dict[str, bytes] = field(default_factory=dict)
    time: float = 0.0  # time.monotonic() when the request arrived
    result: Any = None  # the "result" answered (e.g. the Message dict), None on errors
    status: int = 200  # HTTP status answered
    error: str | None = None  # Telegram's "description" when status != 200
    filenames: dict[str, str] = field(default_factory=dict)  # upload part name -> file name
    index: int = -1  # position in FakeTelegram.sent (or .failed)

    @property
    def chat_id(self) -> int | str | None:
        chat_id = self.params.get("chat_id")
        if chat_id is None and isinstance(self.result, dict) and "chat" in self.result:
            chat_id = self.result["chat"]["id"]
        return chat_id

    @property
    def text(self) -> str | None:
        """``text`` or ``caption`` as sent (markup and all)."""
        return self.params.get("text", self.params.get("caption"))

    @property
    def message_id(self) -> int | None:
        if isinstance(self.result, dict) and "message_id" in self.result:
            return int(self.result["message_id"])
        mid = self.params.get("message_id")
        return int(mid) if mid is not None else None

    @property
    def reply_markup(self) -> JSON | None:
        markup = self.params.get("reply_markup")
        return markup if isinstance(markup, dict) else None

    def summary(self) -> str:
        bits = [f"#{self.index} {self.method}"]
        if self.status != 200:
            bits.append(f"[{self.status} {self.error}]")
        for key in ("chat_id", "message_id", "callback_query_id"):
            if key in self.params:
                bits.append(f"{key}={self.params[key]!r}")
        if self.text is not None:
            bits.append(f"text={self.text[:80]!r}")
        if self.files:
            bits.append(f"files={sorted(self.files)}")
        if self.reply_markup:
            bits.append(f"markup={json.dumps(self.reply_markup, ensure_ascii=False)[:120]}")
        return " ".join(bits)


def keyboard(call: SentCall | JSON) -> list[list[tuple[str, str | None]]]:
    """The inline keyboard of a recorded call (or of a message dict) as rows of
    ``(text, callback_data)``; ``callback_data`` is None for URL and other buttons."""
    if isinstance(call, SentCall):
        markup = call.reply_markup
        if markup is None and isinstance(call.result, dict):
            markup = call.result.get("reply_markup")
    else:
        markup = call.get("reply_markup")
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        [(button.get("text", ""), button.get("callback_data")) for button in row]
        for row in markup["inline_keyboard"]
    ]


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    times: int
    description: str | None
    chat_id: int | str | None = None  # only calls to this chat fail


class _Bucket:
    """A leaky bucket of ``burst`` messages draining at ``burst / period`` a second (GCRA)."""

    def __init__(self, burst: int, period: float, slack: float = FLOOD_SLACK_S) -> None:
        self.interval = period / burst
        # A full burst fits at once, and a message may come ``slack`` early (network jitter).
        self.tolerance = period - self.interval + slack
        self.tat = 0.0  # theoretical arrival time of the next message

    def wait(self, now: float) -> float:
        """0 when a message may pass now (and it is counted), else the seconds to wait."""
        tat = max(self.tat, now)
        allowed_at = tat - self.tolerance
        if now < allowed_at:
            return allowed_at - now
        self.tat = tat + self.interval
        return 0.0


def most_in_window(times: list[float], period: float) -> int:
    """The most of ``times`` that fall in any half-open window of ``period`` seconds."""
    times = sorted(times)
    most = 0
    start = 0
    for end, at in enumerate(times):
        while times[start] <= at - period:
            start += 1
        most = max(most, end - start + 1)
    return most


def flood_refusals(times: list[float], burst: int, period: float, slack: float = 0.0) -> int:
    """How many of the messages arriving at ``times`` Telegram's model (``_Bucket``) would
    refuse, with ``slack`` seconds of arrival jitter allowed."""
    bucket = _Bucket(burst, period, slack)
    refused = 0
    for at in sorted(times):
        if bucket.wait(at) > 0:
            refused += 1
    return refused


def slack_needed(times: list[float], burst: int, period: float) -> float:
    """The least arrival jitter (seconds, to 1 ms) with which Telegram's model refuses none
    of the messages arriving at ``times``: how early the earliest of them came."""
    low, high = 0.0, period
    while high - low > 0.001:
        middle = (low + high) / 2
        if flood_refusals(times, burst, period, middle):
            low = middle
        else:
            high = middle
    return 0.0 if not flood_refusals(times, burst, period) else high


@dataclass
class _Pending:
    update: JSON
    forced: bool = False  # redelivered: survives an offset above its id once


# --------------------------------------------------------------------------- text parsing

_TAG_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[a-zA-Z_:][a-zA-Z0-9_:.-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)"
    r"\s*(/?)>"
)
_ATTR_RE = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:.-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'=<>`]+)))?"
)
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


def _parse_html(text: str) -> tuple[str, list[JSON]]:
    """Telegram-style HTML: returns (plain text, entities) or raises a 400 _ApiError."""
    out: list[str] = []
    pos = 0  # utf-16 position in the plain text
    stack: list[tuple[str, int, JSON]] = []
    entities: list[JSON] = []
    i = 0

    def error(detail: str) -> _ApiError:
        return _ApiError(400, f"Bad Request: can't parse entities: {detail}")

    def byte_offset(index: int) -> int:
        return len(text[:index].encode("utf-8"))

    while i < len(text):
        lt = text.find("<", i)
        chunk = text[i:] if lt == -1 else text[i:lt]
        if chunk:
            plain = html.unescape(chunk)
            out.append(plain)
            pos += _utf16_len(plain)
        if lt == -1:
            break
        match = _TAG_RE.match(text, lt)
        if not match:
            snippet = re.match(r"</?([^<>]{0,20})", text[lt:])
            name = snippet.group(1) if snippet else ""
            raise error(f'Unsupported start tag "{name}" at byte offset {byte_offset(lt)}')
        closing, name, raw_attrs = match.group(1), match.group(2).lower(), match.group(3)
        if name not in _HTML_ENTITY_TYPES:
            kind = "end" if closing else "start"
            raise error(f'Unsupported {kind} tag "{name}" at byte offset {byte_offset(lt)}')
        if closing:
            if not stack:
                raise error(f"Unexpected end tag at byte offset {byte_offset(lt)}")
            open_name, start, attrs = stack.pop()
            if open_name != name:
                raise error(
                    f"Unmatched end tag at byte offset {byte_offset(lt)}, "
                    f'expected "</{open_name}>", found "</{name}>"'
                )
            entity: JSON = {"type": _HTML_ENTITY_TYPES[name], "offset": start}
            if name == "a":
                href = attrs.get("href", "")
                user = re.fullmatch(r"tg://user\?id=(\d+)", href)
                if user:
                    entity["type"] = "text_mention"
                    entity["user"] = {"id": int(user.group(1)), "is_bot": False, "first_name": ""}
                elif href:
                    entity["url"] = href
                else:
                    entity = {}
            elif name == "tg-emoji":
                entity["custom_emoji_id"] = attrs.get("emoji-id", "")
            elif name == "blockquote" and "expandable" in attrs:
                entity["type"] = "expandable_blockquote"
            elif name == "code" and stack and stack[-1][0] == "pre":
                language = attrs.get("class", "")
                if language.startswith("language-"):
                    stack[-1][2]["_language"] = language.removeprefix("language-")
                    entity = {}
            elif name == "pre" and attrs.get("_language"):
                entity["language"] = attrs["_language"]
            if entity and pos > start:
                entity["length"] = pos - start
                entities.append(entity)
        else:
            attrs = {
                m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                for m in _ATTR_RE.finditer(raw_attrs)
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise error(f'Unsupported start tag "span" at byte offset {byte_offset(lt)}')
            stack.append((name, pos, attrs))
        i = match.end()
    if stack:
        raise error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MDV2_ALWAYS_RESERVED = frozenset("#+-={}.!")


def _parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Best effort: reject unescaped reserved characters like Telegram does; strip markup."""
    out: list[str] = []
    i = 0
    in_code = False
    in_pre = False
    line_start = True
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            line_start = False
            continue
        if text.startswith("```", i) and not in_code:
            in_pre = not in_pre
            i += 3
            continue
        if ch == "`" and not in_pre:
            in_code = not in_code
            i += 1
            continue
        if in_code or in_pre:
            out.append(ch)
        elif ch in _MDV2_ALWAYS_RESERVED or (ch == ">" and not line_start):
            raise _ApiError(
                400,
                f"Bad Request: can't parse entities: Character '{ch}' is reserved and must be "
                "escaped with the preceding '\\'",
            )
        elif ch in "*_~|[" or (ch == ">" and line_start):
            pass
        elif ch == "]" and text.startswith("(", i + 1):
            close = text.find(")", i + 2)
            i = (close if close != -1 else len(text) - 1) + 1
            line_start = False
            continue
        elif ch in "])":
            pass
        elif ch == "(":
            raise _ApiError(
                400,
                "Bad Request: can't parse entities: Character '(' is reserved and must be "
                "escaped with the preceding '\\'",
            )
        else:
            out.append(ch)
        line_start = ch == "\n"
        i += 1
    if in_code or in_pre:
        raise _ApiError(
            400, "Bad Request: can't parse entities: Can't find end of Pre entity at byte offset 0"
        )
    return "".join(out), []


def _format_text(text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[JSON]]:
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode in ("", "markdown"):
        return text, list(entities or [])
    raise _ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")


# --------------------------------------------------------------------------- the server


Handler = Callable[[JSON, dict[str, bytes], dict[str, str]], Awaitable[Any]]


class FakeTelegram:
    """A fake Bot API server; see the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST",
        bot_username: str = "havainto_test_bot",
        flood_limit: bool = False,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        bot_id = token.split(":", 1)[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 123456,
            "is_bot": True,
            "first_name": "Havainto Test",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.port: int = 0
        # recorder
        self.sent: list[SentCall] = []
        self.failed: list[SentCall] = []
        self.counts: Counter[str] = Counter()
        # state
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, JSON] = {}
        self.webhook_url: str = ""
        self.webhook_params: JSON = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.blocked: set[int] = set()
        self._messages: dict[tuple[int, int], JSON] = {}
        self._bot_message_order: dict[int, list[int]] = defaultdict(list)
        self._next_message_id: dict[int, int] = defaultdict(lambda: 1)
        self._pending: list[_Pending] = []
        self._history: dict[int, JSON] = {}  # every update ever pushed, by update_id
        self._next_update_id = 100_000_001
        self._allowed_updates: list[str] = []
        self._callback_ids: set[str] = set()
        self._callback_counter = itertools.count(4_200_000_000_000_000_001)
        self._file_counter = itertools.count(1)
        self._files: dict[str, tuple[bytes, str]] = {}  # file_id -> (content, file_path)
        self._file_paths: dict[str, bytes] = {}
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self.flood_limit = flood_limit
        self.flood_rejections: Counter[str] = Counter()
        self._token_bucket = _Bucket(TOKEN_MESSAGES_PER_SECOND, 1.0)
        self._group_buckets: dict[str, _Bucket] = {}
        self._reply_cursor: dict[str, int] = {}
        self.last_callback_query_id: str | None = None
        self._poll_generation = 0
        self._closing = False
        self._update_event = asyncio.Event()
        self._sent_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "deleteWebhook": self._delete_webhook,
                "setWebhook": self._set_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "answerCallbackQuery": self._answer_callback_query,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getMyCommands": self._get_my_commands,
                "getFile": self._get_file,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._closing = False
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release pending long polls and shut the server down."""
        self._closing = True
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ playing users

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        language_code: str | None = "fi",
        username: str | None = None,
        **extra: Any,
    ) -> JSON:
        """Register (or replace) a user; returns the Telegram ``User`` dict."""
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        user.update(extra)
        self.users[user_id] = user
        return user

    def chat(self, chat_id: int, chat_type: str = "private", title: str | None = None) -> JSON:
        """Register (or replace) a chat; returns the Telegram ``Chat`` dict."""
        chat: JSON = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            user = self._user(chat_id)
            chat["first_name"] = user["first_name"]
            for key in ("last_name", "username"):
                if key in user:
                    chat[key] = user[key]
        else:
            chat["title"] = title or f"Test {chat_type} {chat_id}"
        self.chats[chat_id] = chat
        return chat

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to their private chat answer 403."""
        self.blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self.blocked.discard(user_id)

    def push_update(self, update: JSON) -> int:
        """Queue a raw update dict; assigns ``update_id`` if missing; returns it."""
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._history[update["update_id"]] = copy.deepcopy(update)
        self._pending.append(_Pending(copy.deepcopy(update)))
        self._wake_pollers()
        return int(update["update_id"])

    def redeliver(self, update_id: int) -> None:
        """Deliver an already pushed update again, with the same ``update_id``, even if it was
        confirmed already -- like Telegram does when a confirmation got lost. It is returned by
        the next ``getUpdates`` regardless of its offset."""
        update = self._history.get(update_id)
        if update is None:
            raise KeyError(f"no update with update_id {update_id} was ever pushed")
        self._pending.append(_Pending(copy.deepcopy(update), forced=True))
        self._wake_pollers()

    def send_text(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        chat_type: str = "private",
        **extra: Any,
    ) -> int:
        """The user writes ``text``; ``/commands`` get ``bot_command`` entities. ``extra`` is
        merged into the Message dict (e.g. ``reply_to_message=...``). Returns the update_id."""
        message = self._user_message(user_id, chat_id, chat_type)
        message["text"] = text
        entities = self._command_entities(text)
        if entities:
            message["entities"] = entities
        message.update(extra)
        return self._push_message(message)

    def press(
        self,
        user_id: int,
        callback_data: str,
        message_id: int | None = None,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> int:
        """The user taps an inline button. The message defaults to the last bot message in the
        chat that (still) has an inline keyboard; with ``strict`` the data must be on one of its
        buttons. Returns the update_id; the callback query id is ``last_callback_query_id``."""
        chat_id = user_id if chat_id is None else chat_id
        if message_id is None:
            for mid in reversed(self._bot_message_order[chat_id]):
                if keyboard(self._messages[(chat_id, mid)]):
                    message_id = mid
                    break
            else:
                raise AssertionError(f"no bot message with an inline keyboard in chat {chat_id}")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise AssertionError(f"no message {message_id} in chat {chat_id}")
        if strict:
            data = [d for row in keyboard(message) for _, d in row]
            if callback_data not in data:
                raise AssertionError(
                    f"callback_data {callback_data!r} is not on message {message_id}'s "
                    f"keyboard {keyboard(message)}"
                )
        query_id = str(next(self._callback_counter))
        self._callback_ids.add(query_id)
        self.last_callback_query_id = query_id
        return self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user_id),
                    "chat_instance": str(-(abs(chat_id) * 7919 + 17)),
                    "data": callback_data,
                    "message": copy.deepcopy(message),
                }
            }
        )

    def send_location(
        self, user_id: int, lat: float, lon: float, chat_id: int | None = None, **extra: Any
    ) -> int:
        message = self._user_message(user_id, chat_id)
        message["location"] = {"latitude": lat, "longitude": lon}
        message.update(extra)
        return self._push_message(message)

    def send_media(
        self,
        user_id: int,
        kind: Literal["voice", "photo", "document", "sticker"],
        chat_id: int | None = None,
        content: bytes = b"fake media",
        caption: str | None = None,
        file_name: str = "document.pdf",
        **extra: Any,
    ) -> int:
        """The user sends a voice message, photo, document or sticker; ``content`` is what the
        bot gets from ``getFile`` + download."""
        message = self._user_message(user_id, chat_id)
        if kind == "voice":
            file_id, unique = self._store_file(content, "voice", "oga")
            message["voice"] = {
                "file_id": file_id,
                "file_unique_id": unique,
                "duration": 3,
                "mime_type": "audio/ogg",
                "file_size": len(content),
            }
        elif kind == "photo":
            message["photo"] = self._photo_sizes(content)
        elif kind == "document":
            file_id, unique = self._store_file(content, "documents", file_name.rsplit(".")[-1])
            message["document"] = {
                "file_id": file_id,
                "file_unique_id": unique,
                "file_name": file_name,
                "mime_type": "application/pdf" if file_name.endswith(".pdf") else "text/plain",
                "file_size": len(content),
            }
        elif kind == "sticker":
            file_id, unique = self._store_file(content, "stickers", "webp")
            message["sticker"] = {
                "file_id": file_id,
                "file_unique_id": unique,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
                "file_size": len(content),
            }
        else:
            raise ValueError(f"unknown media kind {kind!r}")
        if caption is not None and kind in ("photo", "document"):
            message["caption"] = caption
        message.update(extra)
        return self._push_message(message)

    def edit_text(
        self, user_id: int, message_id: int, new_text: str, chat_id: int | None = None
    ) -> int:
        """The user edits their own earlier message: an ``edited_message`` update."""
        chat_id = user_id if chat_id is None else chat_id
        stored = self._messages.get((chat_id, message_id))
        if stored is None or stored.get("from", {}).get("id") != user_id:
            raise AssertionError(f"user {user_id} has no message {message_id} in chat {chat_id}")
        stored["text"] = new_text
        stored.pop("entities", None)
        entities = self._command_entities(new_text)
        if entities:
            stored["entities"] = entities
        stored["edit_date"] = int(time.time())
        return self.push_update({"edited_message": copy.deepcopy(stored)})

    # ------------------------------------------------------------------ recorder

    def message(self, chat_id: int, message_id: int) -> JSON:
        """Current state of a message (user's or bot's) as Telegram would describe it."""
        return copy.deepcopy(self._messages[(chat_id, message_id)])

    def bot_messages(self, chat_id: int) -> list[JSON]:
        """Current state of every message the bot sent to the chat, oldest first."""
        return [self.message(chat_id, mid) for mid in self._bot_message_order[chat_id]]

    def added_text(self, call: SentCall) -> str:
        """The text ``call`` put in front of the person: for an edit that kept the message's
        earlier text above the new (the bot closing a pressed question with its answer),
        only what it added; otherwise the text as sent."""
        result = call.result if isinstance(call.result, dict) else {}
        if call.method == "editMessageText" and "text" in result:
            target = (result["chat"]["id"], result["message_id"])
            before = next(
                (
                    c.result.get("text", "")
                    for c in reversed(self.sent[: call.index])
                    if isinstance(c.result, dict)
                    and (c.result.get("chat", {}).get("id"), c.result.get("message_id")) == target
                ),
                "",
            )
            if before and result["text"].startswith(before + "\n\n"):
                return str(result["text"][len(before) + 2 :])
        return call.text or ""

    def messages_to(self, chat_id: int | str) -> list[SentCall]:
        """sendMessage/sendPhoto/sendDocument/editMessageText calls to the chat, in order."""
        return [c for c in self.sent if self.is_message_to(c, chat_id)]

    def mark(self) -> int:
        """``len(sent)`` -- pass it as ``after=`` to only look at calls from now on."""
        return len(self.sent)

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates queued and not yet confirmed by an offset."""
        return [copy.deepcopy(p.update) for p in self._pending]

    async def wait_for(
        self,
        predicate: Callable[[SentCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the API asked for is wait_for(..., timeout=)
        after: int = 0,
    ) -> SentCall:
        """First recorded call at index >= ``after`` matching ``predicate``; waits for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = after
        while True:
            for call in self.sent[index:]:
                if predicate(call):
                    return call
            index = len(self.sent)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching Bot API call within {timeout}s (looked from #{after}).\n"
                    + self.describe()
                )
            event = self._sent_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_reply(
        self,
        chat_id: int | str,
        after: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentCall:
        """The next message (see ``messages_to``) to the chat. Without ``after`` the fake keeps
        a read cursor per chat, so successive calls return successive messages, each once;
        ``after`` (e.g. from ``mark()``) restricts to calls at ``sent`` index >= after."""
        key = str(chat_id)
        start = self._reply_cursor.get(key, 0) if after is None else after
        call = await self.wait_for(lambda c: self.is_message_to(c, chat_id), timeout, start)
        self._reply_cursor[key] = call.index + 1
        return call

    def describe(self) -> str:
        """Human-readable list of what was sent and what failed (for assertion messages)."""
        lines = ["sent:"] + ([f"  {c.summary()}" for c in self.sent] or ["  (nothing)"])
        if self.failed:
            lines += ["failed:"] + [f"  {c.summary()}" for c in self.failed]
        return "\n".join(lines)

    keyboard = staticmethod(keyboard)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        status: int,
        retry_after: int | None = None,
        times: int = 1,
        description: str | None = None,
        chat_id: int | str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error like Telegram's:
        429 (``retry_after`` defaults to 1), 5xx, 400, 403, 409, ...; with ``chat_id``
        only the calls addressed to that chat fail (others go through)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        canonical = self._methods.get(method.lower(), (method, None))[0]
        fault = _Fault(status, retry_after, times, description, chat_id)
        self._faults[canonical].append(fault)

    def enable_flood_limit(self, enabled: bool = True, slack: float | None = None) -> None:
        """Answer 429 past Telegram's flood limits (see the module docstring). ``slack``: how
        early a message may come for its turn (default ``FLOOD_SLACK_S``); a fresh token
        bucket when given."""
        self.flood_limit = enabled
        if slack is not None:
            self._token_bucket = _Bucket(TOKEN_MESSAGES_PER_SECOND, 1.0, slack)

    def _check_flood(self, method: str, params: JSON) -> None:
        if not self.flood_limit or method not in FLOOD_METHODS:
            return
        chat_id = params.get("chat_id")
        if chat_id is None:
            return
        now = time.monotonic()
        group: _Bucket | None = None
        if str(chat_id).startswith("-"):
            group = self._group_buckets.get(str(chat_id))
            if group is None:
                group = self._group_buckets[str(chat_id)] = _Bucket(GROUP_MESSAGES_PER_MINUTE, 60.0)
            # Look before counting: a message refused by one limit is counted by neither.
            wait = max(0.0, group.tat - group.tolerance - now)
            if wait > 0:
                self._refuse_flood("group", wait)
        wait = self._token_bucket.wait(now)
        if wait > 0:
            self._refuse_flood("token", wait)
        if group is not None:
            group.wait(now)

    def _refuse_flood(self, kind: str, wait: float) -> None:
        self.flood_rejections[kind] += 1
        retry_after = max(1, math.ceil(wait))
        raise _ApiError(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )

    def delay(self, method: str, seconds: float) -> None:
        """Answer every call of ``method`` only after ``seconds`` (0 removes the delay), e.g.
        to keep a bot's handler in flight. ``counts`` grows when the request arrives."""
        canonical = self._methods.get(method.lower(), (method, None))[0]
        if seconds > 0:
            self._delays[canonical] = seconds
        else:
            self._delays.pop(canonical, None)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        if request.match_info["token"] != self.token:
            return self._error_response(401, "Unauthorized")
        raw_method = request.match_info["method"]
        method, handler = self._methods.get(raw_method.lower(), (raw_method, None))
        self.counts[method] += 1
        try:
            params, files, filenames = await self._read_params(request)
        except _ApiError as exc:
            self._record_failed(SentCall(method, {}, time=received), exc)
            return self._error_response(exc.status, exc.description, exc.parameters)
        call = SentCall(method, params, files, received, filenames=filenames)
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        try:
            if handler is None:
                raise _ApiError(404, "Not Found")
            self._inject_fault(method, params)
            self._check_flood(method, params)
            result = await handler(params, files, filenames)
        except _ApiError as exc:
            self._record_failed(call, exc)
            return self._error_response(exc.status, exc.description, exc.parameters)
        call.result = result
        if method not in ("getUpdates", "getMe"):
            call.index = len(self.sent)
            self.sent.append(call)
            self._notify_sent()
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error_response(401, "Unauthorized")
        content = self._file_paths.get(request.match_info["path"])
        if content is None:
            return self._error_response(404, "Not Found")
        return web.Response(body=content, content_type="application/octet-stream")

    async def _read_params(
        self, request: web.Request
    ) -> tuple[JSON, dict[str, bytes], dict[str, str]]:
        params: JSON = {}
        files: dict[str, bytes] = {}
        filenames: dict[str, str] = {}
        for key, value in request.query.items():
            params[key] = self._decode(key, value)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise _ApiError(400, "Bad Request: can't parse JSON object") from exc
            if isinstance(body, dict):
                params.update(body)
        elif request.can_read_body:
            form = await request.post()
            for name, part in form.items():
                if isinstance(part, web.FileField):
                    files[name] = part.file.read()
                    filenames[name] = part.filename
                elif isinstance(part, bytes | bytearray):
                    files[name] = bytes(part)
                else:
                    params[name] = self._decode(name, str(part))
        return params, files, filenames

    @staticmethod
    def _decode(key: str, value: str) -> Any:
        if key in _STRING_PARAMS:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def _inject_fault(self, method: str, params: JSON | None = None) -> None:
        faults = self._faults.get(method)
        if not faults:
            return
        fault = faults[0]
        if fault.chat_id is not None and str((params or {}).get("chat_id")) != str(fault.chat_id):
            return
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        if fault.status == 429:
            raise _ApiError(
                429,
                fault.description or f"Too Many Requests: retry after {fault.retry_after}",
                {"retry_after": fault.retry_after} if fault.retry_after is not None else None,
            )
        defaults = {
            400: "Bad Request: injected failure",
            401: "Unauthorized",
            403: _BLOCKED_DESCRIPTION,
            404: "Not Found",
            409: "Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        description = fault.description or defaults.get(fault.status, "Internal Server Error")
        parameters = {"retry_after": fault.retry_after} if fault.retry_after else None
        raise _ApiError(fault.status, description, parameters)

    @staticmethod
    def _error_response(
        status: int, description: str, parameters: JSON | None = None
    ) -> web.Response:
        body: JSON = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    def _record_failed(self, call: SentCall, exc: _ApiError) -> None:
        call.status = exc.status
        call.error = exc.description
        call.index = len(self.failed)
        self.failed.append(call)
        self._notify_sent()

    def _notify_sent(self) -> None:
        event, self._sent_event = self._sent_event, asyncio.Event()
        event.set()

    def _wake_pollers(self) -> None:
        event, self._update_event = self._update_event, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ helpers

    def _user(self, user_id: int) -> JSON:
        if user_id not in self.users:
            self.user(user_id)
        return copy.deepcopy(self.users[user_id])

    def _chat(self, chat_id: int, chat_type: str | None = None) -> JSON:
        if chat_id not in self.chats:
            if chat_type is None:
                if chat_id > 0:
                    chat_type = "private"
                elif str(chat_id).startswith("-100"):
                    chat_type = "supergroup"
                else:
                    chat_type = "group"
            self.chat(chat_id, chat_type)
        return copy.deepcopy(self.chats[chat_id])

    def _user_message(
        self, user_id: int, chat_id: int | None, chat_type: str | None = None
    ) -> JSON:
        chat_id = user_id if chat_id is None else chat_id
        if chat_type == "private" and chat_id != user_id:
            chat_type = None  # a group chat id given: infer its type
        return {
            "message_id": self._take_message_id(chat_id),
            "from": self._user(user_id),
            "chat": self._chat(chat_id, chat_type),
            "date": int(time.time()),
        }

    def _push_message(self, message: JSON) -> int:
        self._messages[(message["chat"]["id"], message["message_id"])] = copy.deepcopy(message)
        return self.push_update({"message": message})

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _command_entities(self, text: str) -> list[JSON]:
        entities = []
        for match in re.finditer(r"(?:^|(?<=\s))/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?", text):
            entities.append(
                {
                    "type": "bot_command",
                    "offset": _utf16_len(text[: match.start()]),
                    "length": _utf16_len(match.group()),
                }
            )
        return entities

    def _store_file(self, content: bytes, folder: str, extension: str) -> tuple[str, str]:
        number = next(self._file_counter)
        file_id = f"FAKE{number:06d}{folder.upper()}"
        file_path = f"{folder}/file_{number}.{extension}"
        self._files[file_id] = (content, file_path)
        self._file_paths[file_path] = content
        return file_id, f"U{number:06d}"

    def _photo_sizes(self, content: bytes) -> list[JSON]:
        file_id, unique = self._store_file(content, "photos", "jpg")
        return [
            {
                "file_id": file_id + "_s",
                "file_unique_id": unique + "s",
                "width": 90,
                "height": 90,
                "file_size": min(len(content), 1500),
            },
            {
                "file_id": file_id,
                "file_unique_id": unique,
                "width": 800,
                "height": 800,
                "file_size": len(content),
            },
        ]

    def is_message_to(self, call: SentCall, chat_id: int | str) -> bool:
        """A message the chat sees arrive (sent, or edited into an earlier one)."""
        return call.method in MESSAGE_METHODS and str(call.chat_id) == str(chat_id)

    def _target_chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(chat_id)
        except (TypeError, ValueError):
            raise _ApiError(400, "Bad Request: chat not found") from None
        if chat_id in self.blocked:
            raise _ApiError(403, _BLOCKED_DESCRIPTION)
        return self._chat(chat_id)

    @staticmethod
    def _check_markup(params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return None  # reply keyboards etc. are not echoed in the Message
        for row in rows:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= _MAX_CALLBACK_DATA:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not button.get("text"):
                    raise _ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
        return markup

    def _bot_message(self, chat: JSON, params: JSON, **content: Any) -> JSON:
        message: JSON = {
            "message_id": self._take_message_id(chat["id"]),
            "from": dict(self.bot_user),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        markup = self._check_markup(params)
        if markup is not None:
            message["reply_markup"] = markup
        reply_to = params.get("reply_to_message_id") or (params.get("reply_parameters") or {}).get(
            "message_id"
        )
        original = self._messages.get((chat["id"], int(reply_to))) if reply_to else None
        if original is not None:
            message["reply_to_message"] = {
                k: v for k, v in original.items() if k != "reply_to_message"
            }
        self._messages[(chat["id"], message["message_id"])] = message
        self._bot_message_order[chat["id"]].append(message["message_id"])
        return copy.deepcopy(message)

    def _text_content(self, params: JSON, key: str, limit: int, too_long: str) -> JSON:
        raw = params.get(key)
        if raw is None:
            return {}
        text, entities = _format_text(
            str(raw),
            params.get("parse_mode"),
            params.get("entities" if key == "text" else "caption_entities"),
        )
        if _utf16_len(text) > limit:
            raise _ApiError(400, too_long)
        content: JSON = {key: text}
        if entities:
            content["entities" if key == "text" else "caption_entities"] = entities
        return content

    def _editable_message(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        message = self._messages.get((chat["id"], int(message_id)))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return message

    # ------------------------------------------------------------------ Bot API methods

    async def _true(self, params: JSON, files: dict[str, bytes], names: dict[str, str]) -> bool:
        return True

    async def _get_me(self, params: JSON, files: dict[str, bytes], names: dict[str, str]) -> JSON:
        return dict(self.bot_user)

    async def _get_updates(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> list[JSON]:
        if self.webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # a newer getUpdates terminates an older one
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            event = self._update_event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._pending = [
                p for p in self._pending if p.forced or p.update["update_id"] >= offset
            ]
        elif offset < 0:
            self._pending = self._pending[offset:]
            for p in self._pending:
                p.forced = False

    def _deliverable(self, limit: int) -> list[JSON]:
        allowed = set(self._allowed_updates)

        def wanted(update: JSON) -> bool:
            kind = next((k for k in update if k != "update_id"), "")
            return kind in allowed if allowed else kind not in _DEFAULT_EXCLUDED_UPDATES

        self._pending = [p for p in self._pending if wanted(p.update)]
        self._pending.sort(key=lambda p: p.update["update_id"])
        batch = self._pending[:limit]
        for p in batch:
            p.forced = False
        return [copy.deepcopy(p.update) for p in batch]

    async def _delete_webhook(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.webhook_url = ""
        self.webhook_params = {}
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _set_webhook(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        url = params.get("url") or ""
        if url and not url.startswith("https://"):
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        self.webhook_url = url
        self.webhook_params = dict(params)
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON:
        info: JSON = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook_url:
            info["max_connections"] = int(self.webhook_params.get("max_connections") or 40)
            if self.webhook_params.get("allowed_updates"):
                info["allowed_updates"] = self.webhook_params["allowed_updates"]
        return info

    async def _send_message(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON:
        chat = self._target_chat(params)
        content = self._text_content(params, "text", _MAX_TEXT, "Bad Request: message is too long")
        if not content.get("text", "").strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        return self._bot_message(chat, params, **content)

    async def _edit_message_text(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON | bool:
        if params.get("inline_message_id"):
            return True
        message = self._editable_message(params)
        if not str(params.get("text") or "").strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if "text" not in message:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        content = self._text_content(params, "text", _MAX_TEXT, "Bad Request: message is too long")
        markup = self._check_markup(params)
        if (
            content["text"] == message.get("text")
            and content.get("entities", []) == message.get("entities", [])
            and markup == message.get("reply_markup")
        ):
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message["text"] = content["text"]
        message.pop("entities", None)
        if "entities" in content:
            message["entities"] = content["entities"]
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    async def _edit_message_reply_markup(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON | bool:
        if params.get("inline_message_id"):
            return True
        message = self._editable_message(params)
        markup = self._check_markup(params)
        if markup == message.get("reply_markup"):
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    async def _answer_callback_query(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        if str(params.get("callback_query_id") or "") not in self._callback_ids:
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        if len(str(params.get("text") or "")) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    def _upload(self, params: JSON, files: dict[str, bytes], key: str) -> tuple[bytes, str | None]:
        if key in files:
            return files[key], None
        ref = params.get(key)
        if isinstance(ref, str) and ref.startswith("attach://") and ref[9:] in files:
            return files[ref[9:]], None
        if isinstance(ref, str) and ref:
            if ref in self._files:
                return self._files[ref][0], ref
            if ref.startswith(("http://", "https://")):
                return b"", None  # Telegram would fetch the URL; the fake does not
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise _ApiError(400, f"Bad Request: there is no {key} in the request")

    def _caption(self, params: JSON) -> JSON:
        return self._text_content(
            params, "caption", _MAX_CAPTION, "Bad Request: message caption is too long"
        )

    async def _send_photo(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON:
        chat = self._target_chat(params)
        content, _ = self._upload(params, files, "photo")
        caption = self._caption(params)
        return self._bot_message(chat, params, photo=self._photo_sizes(content), **caption)

    async def _send_document(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> JSON:
        chat = self._target_chat(params)
        content, existing = self._upload(params, files, "document")
        caption = self._caption(params)
        if existing:
            file_id, unique = existing, "U" + existing
            file_name = self._files[existing][1].rsplit("/", 1)[-1]
        else:
            file_name = names.get("document") or "document"
            extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
            file_id, unique = self._store_file(content, "documents", extension)
        document = {
            "file_id": file_id,
            "file_unique_id": unique,
            "file_name": file_name,
            "mime_type": "application/octet-stream",
            "file_size": len(content),
        }
        return self._bot_message(chat, params, document=document, **caption)

    async def _send_chat_action(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _ApiError(400, "Bad Request: command description is empty")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _delete_my_commands(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_my_commands(
        self, params: JSON, files: dict[str, bytes], names: dict[str, str]
    ) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _get_file(self, params: JSON, files: dict[str, bytes], names: dict[str, str]) -> JSON:
        file_id = str(params.get("file_id") or "")
        base = file_id.removesuffix("_s")
        if base not in self._files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        content, file_path = self._files[base]
        return {
            "file_id": file_id,
            "file_unique_id": "U" + base,
            "file_size": len(content),
            "file_path": file_path,
        }

    def commands_for(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """Commands the bot registered with setMyCommands for a scope/language."""
        key = self._commands_key({"scope": scope, "language_code": language_code})
        return copy.deepcopy(self.commands.get(key, []))
