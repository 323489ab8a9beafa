"""The Telegram transport, on python-telegram-bot 22.

Updates arrive by long polling (or a webhook, see ``webhook_url``); each
handler below turns one kind of update into a neutral event for
``Havainto.handle`` and sends the replies back. Conversation state is not kept
in PTB (no ``ConversationHandler``): it lives in the database, shared by every
transport and every instance. The runtime hands in a ``SendBudget`` (kept in the
database for several instances on one token, or in this process) and
``SharedRateLimiter`` asks it before each message, answers to people before digests,
and retries 429 answers after the ``retry_after`` Telegram gives.
``telegram.base_url`` points the bot at another Bot API server, such as the fake one
the tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Update,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.config import TelegramConfig
from bot.transports.base import Health, receive, split_text
from bot.transports.telegram_http import AiohttpRequest
from flows.events import (
    Alert,
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
    Reprompt,
    TextIn,
)

if TYPE_CHECKING:
    from bot.service import Havainto
    from bot.transports.base import Router, SendBudget

log = logging.getLogger("havainto.telegram")
# httpx (PTB's default HTTP client, still imported by PTB) logs every request URL at
# INFO, and a Bot API URL contains the token.
for _client_logger in ("httpx", "httpcore"):
    if logging.getLogger(_client_logger).getEffectiveLevel() < logging.WARNING:
        logging.getLogger(_client_logger).setLevel(logging.WARNING)

NAME = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WebHandler = Callable[[web.Request], Awaitable[web.Response]]
MEDIA_KINDS = (
    "voice",
    "audio",
    "photo",
    "video",
    "video_note",
    "document",
    "sticker",
    "animation",
    "contact",
    "poll",
    "dice",
    "venue",
)
MEDIA = (
    filters.VOICE
    | filters.AUDIO
    | filters.PHOTO
    | filters.VIDEO
    | filters.VIDEO_NOTE
    | filters.Document.ALL
    | filters.Sticker.ALL
    | filters.ANIMATION
    | filters.CONTACT
    | filters.POLL
    | filters.Dice.ALL
)


#: How often a request is tried again after a 429 ``RetryAfter`` (PTB's ``max_retries``).
MAX_RETRIES = 5
ApiResult = bool | dict[str, Any] | list[dict[str, Any]]


def group_of(chat_id: object) -> str | None:
    """The chat a request is limited in as a group, as PTB's ``AIORateLimiter`` decides
    it: a negative chat id (a group, supergroup or channel) or an ``@channel`` name;
    None for a private chat."""
    with contextlib.suppress(ValueError, TypeError):
        chat_id = int(chat_id)  # type: ignore[call-overload]
    if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str):
        return str(chat_id)
    return None


@dataclass(frozen=True)
class Sending:
    """What one request tells ``SharedRateLimiter`` (PTB's ``rate_limit_args``)."""

    bulk: bool = False  # a digest or report: answers to people go first


#: PTB's per-request ``rate_limit_args`` for a bulk message.
BULK = Sending(bulk=True)


class SharedRateLimiter(BaseRateLimiter[Sending]):
    """PTB's rate limiter (``telegram.ext.BaseRateLimiter``) on a ``SendBudget``: the
    runtime's, kept in the database for every instance on the token or in this process
    (``storage.send_budget``), instead of ``AIORateLimiter``'s counters.

    Like ``AIORateLimiter``: a request that names a ``chat_id`` (every message sent or
    edited; not ``getUpdates`` or ``answerCallbackQuery``) takes a slot of the token's
    budget first, and of the chat's own when the chat is a group or channel; a 429
    ``RetryAfter`` pauses every request of this instance for ``retry_after`` + 0.1 s (and,
    through the budget, every message of the other instances) and the request is tried
    again, ``max_retries`` times at most, then the error is raised. Unlike it, a request
    sent with ``rate_limit_args=BULK`` (digests, reports) waits while answers to people
    need the token: ``AIORateLimiter`` serves its waiters in arrival order, so one answer
    would wait behind a whole weekly batch.
    """

    def __init__(self, budget: SendBudget, max_retries: int = 0) -> None:
        self.budget = budget
        self.max_retries = max_retries
        self._retry_after_event = asyncio.Event()
        self._retry_after_event.set()

    async def initialize(self) -> None:
        """Nothing to open: the budget lives as long as the runtime's database."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def process_request(
        self,
        callback: Callable[..., Awaitable[ApiResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Sending | None,
    ) -> ApiResult:
        max_retries = self.max_retries
        bulk = rate_limit_args is not None and rate_limit_args.bulk
        chat_id = data.get("chat_id")
        group = group_of(chat_id) if chat_id is not None else None
        for attempt in range(max_retries + 1):
            try:
                await self._retry_after_event.wait()
                if chat_id is not None:
                    await self.budget.take(group, bulk)
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt == max_retries:
                    log.warning(
                        "rate_limited endpoint=%s retries=%d retry_after=%.0fs",
                        endpoint,
                        max_retries,
                        _seconds(error),
                    )
                    raise
                pause = _seconds(error) + 0.1
                log.info("rate_limited endpoint=%s retry_in=%.1fs", endpoint, pause)
                self._retry_after_event.clear()
                await self.budget.pause(pause)  # the other instances hold back too
                await asyncio.sleep(pause)
            finally:
                self._retry_after_event.set()
        raise AssertionError("unreachable: the last attempt returns or raises")


def _seconds(error: RetryAfter) -> float:
    # As AIORateLimiter reads it: the public ``retry_after`` warns that its type will change.
    return error._retry_after.total_seconds()


def build_application(
    config: TelegramConfig,
    on_contact: Callable[[], None] | None = None,
    send_budget: SendBudget | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB application with our rate limiter and Bot API address.

    ``on_contact`` is called whenever the Bot API answered a request. With a
    ``send_budget`` (the runtime always hands one in) requests are limited by it
    (``SharedRateLimiter``); without one (the transport built alone, as in a tool) by
    PTB's ``AIORateLimiter``.
    """

    def noted() -> None:
        if on_contact is not None:
            on_contact()

    limiter: BaseRateLimiter[Any] = (
        SharedRateLimiter(send_budget, max_retries=MAX_RETRIES)
        if send_budget is not None
        else AIORateLimiter(max_retries=MAX_RETRIES)
    )
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(config.token)
        .base_url(config.base_url)
        .base_file_url(config.base_file_url)
        .rate_limiter(limiter)
        .concurrent_updates(True)
        .request(
            AiohttpRequest(
                # Sixteen keep-alive connections carry far more than Telegram's 30
                # messages/s; a burst queues for a free one (pool_timeout).
                connection_pool_size=16,
                pool_timeout=10,
                connect_timeout=10,
                read_timeout=10,
                write_timeout=20,
                on_answer=noted,
            )
        )
        .get_updates_request(
            AiohttpRequest(
                connection_pool_size=1,
                connect_timeout=10,
                read_timeout=config.poll_timeout + 10,
                write_timeout=20,
                on_answer=noted,
            )
        )
    )
    return builder.build()


class TelegramTransport:
    """Telegram by long polling, or by webhook when ``telegram.webhook_url`` is set.

    Webhook mode runs an aiohttp server on ``webhook_listen:webhook_port``; the
    path is the path of ``webhook_url`` (a TLS-terminating load balancer or
    reverse proxy forwards it). A POST is accepted only with the configured
    ``X-Telegram-Bot-Api-Secret-Token`` (403 otherwise) and answered 200 only
    after the update was handled and its replies sent, so an update lost to a
    crash is sent again by Telegram (and recognised by its update id if it had
    taken effect). ``setWebhook`` runs at every start; stopping leaves the
    webhook in place, because with several instances behind one URL another
    instance is still serving it (switching back to polling removes it).
    """

    name = NAME
    text_limit = MessageLimit.MAX_TEXT_LENGTH
    finished = None

    def __init__(
        self,
        config: TelegramConfig,
        service: Havainto,
        router: Router,
        send_budget: SendBudget | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.router = router
        self.last_contact: datetime | None = None
        self.app = build_application(config, self._contacted, send_budget)
        # Bulk messages are told to the budget (PTB's own limiter knows no such thing).
        self._bulk: dict[str, Any] = {"rate_limit_args": BULK} if send_budget else {}
        # Extra routes on the webhook server, e.g. GET /healthz (added before start()).
        self.web_routes: list[tuple[str, str, WebHandler]] = []
        self.webhook_port: int = config.webhook_port
        self._web_runner: web.AppRunner | None = None
        self._web_site: web.TCPSite | None = None
        self._accepting = False
        self._register_handlers()

    @property
    def mode(self) -> str:
        return "webhook" if self.config.webhook else "polling"

    @property
    def webhook_path(self) -> str:
        return urlsplit(self.config.webhook_url).path or "/"

    @property
    def running(self) -> bool:
        if not self.app.running:
            return False
        if self.config.webhook:
            return self._accepting
        return self.app.updater is not None and self.app.updater.running

    def health(self) -> Health:
        served = (
            (self.config.webhook_listen, self.config.webhook_port) if self.config.webhook else None
        )
        return Health(self.running, self.last_contact, self.mode, served)

    def _contacted(self) -> None:
        self.last_contact = datetime.now(UTC)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        if self.config.webhook:
            await self._start_webhook()
            log.info("telegram_started mode=webhook port=%d", self.webhook_port)
            return
        assert self.app.updater is not None
        await self.app.updater.start_polling(
            poll_interval=0.0,
            timeout=self.config.poll_timeout,
            allowed_updates=Update.ALL_TYPES,
        )
        log.info("telegram_started mode=polling")

    async def start_sending(self) -> bool:
        """Send only (``havainto digest --send`` beside the running bot): no polling, no
        webhook, so the running bot keeps receiving; ``stop`` closes it."""
        await self.app.initialize()
        return True

    async def stop_receiving(self) -> None:
        """Take no new updates; the ones already taken still finish (graceful shutdown)."""
        if self.config.webhook:
            self._accepting = False
            if self._web_site is not None:
                await self._web_site.stop()  # the listening socket closes; requests in flight go on
                self._web_site = None
        elif self.app.updater is not None and self.app.updater.running:
            # PTB confirms the updates it fetched; app.stop() below still handles them.
            await self.app.updater.stop()

    async def stop(self) -> None:
        await self.stop_receiving()
        if self._web_runner is not None:
            await self._web_runner.cleanup()
            self._web_runner = None
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    # --- webhook -----------------------------------------------------------------------

    async def _start_webhook(self) -> None:
        web_app = web.Application()
        web_app.router.add_post(self.webhook_path, self._on_webhook)
        for method, path, handler in self.web_routes:
            web_app.router.add_route(method, path, handler)
        self._web_runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=20.0)
        await self._web_runner.setup()
        self._web_site = web.TCPSite(
            self._web_runner, self.config.webhook_listen, self.config.webhook_port
        )
        await self._web_site.start()
        self.webhook_port = int(self._web_runner.addresses[0][1])
        self._accepting = True
        await self.app.bot.set_webhook(
            self.config.webhook_url,
            secret_token=self.config.webhook_secret,
            allowed_updates=Update.ALL_TYPES,
        )

    async def _on_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.config.webhook_secret.encode()):
            log.warning("webhook_refused reason=secret")
            return web.Response(status=403)
        if not self._accepting:
            # Shutting down: Telegram sends it again, to another instance behind the balancer.
            return web.Response(status=503)
        try:
            data = await request.json()
        except ValueError:
            log.warning("webhook_refused reason=not_json")
            return web.Response(status=400)
        try:
            update = Update.de_json(data, self.app.bot) if isinstance(data, dict) else None
        except (TypeError, ValueError, KeyError):
            update = None
        if update is None:
            log.warning("webhook_refused reason=not_an_update")
            return web.Response(status=400)
        self._contacted()
        await self.app.process_update(update)
        return web.Response(status=200)

    # --- incoming --------------------------------------------------------------------

    def _register_handlers(self) -> None:
        app = self.app
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.on_edit))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        app.add_handler(MessageHandler(filters.LOCATION, self.on_location))
        app.add_handler(MessageHandler(filters.TEXT, self.on_text))
        app.add_handler(MessageHandler(MEDIA, self.on_media))
        app.add_error_handler(self.on_error)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await self._dispatch(update, TextIn(update.effective_message.text or ""))

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        text = update.effective_message.text or ""
        head, _, args = text.partition(" ")
        name = head.lstrip("/").split("@", 1)[0].lower()
        await self._dispatch(update, CommandIn(name, args.strip()))

    async def on_location(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.location is not None
        location = message.location
        await self._dispatch(update, LocationIn(location.latitude, location.longitude))

    async def on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        kind = next((k for k in MEDIA_KINDS if getattr(message, k, None)), "other")
        await self._dispatch(update, MediaIn(kind))

    async def on_edit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.location is not None:
            # A live location sends an edit every few seconds: answering each would flood
            # the chat, and the first position was already coarsened into the draft.
            log.debug("live_location_update_ignored")
            return
        await self._dispatch(update, EditedIn())

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        private = update.effective_chat is not None and update.effective_chat.type == "private"
        pressed = query.message if private else None
        # The keyboard as the pressed message shows it (an inaccessible message has none).
        markup = getattr(pressed, "reply_markup", None)
        answered = False

        async def deliver(out: list[Outbound]) -> None:
            nonlocal answered
            # A refused or repeated press is answered to the presser alone, as the
            # callback's pop-up: nothing is posted to the chat for it.
            alerts = [o.reply.text for o in out if isinstance(o.reply, Alert)]
            out = [o for o in out if not isinstance(o.reply, Alert)]
            answered = True
            await _answer(query, alerts[0] if alerts else None, show_alert=not private)
            if pressed is None or not markup:
                # In group chats (leadership channels) a notice's buttons are shared by
                # several leaders and the bot edits that message itself.
                await self.router.deliver(out)
                return
            chat_id, message_id = pressed.chat.id, pressed.message_id
            refresh = next((o for o in out if isinstance(o.reply, Reprompt)), None)
            if refresh is not None and isinstance(refresh.reply, Reprompt):
                # A press on an older question: the current one goes in its place, unless
                # the pressed message shows it already (quick repeated taps).
                out = [o for o in out if o is not refresh]
                current = refresh.reply.message
                if _payloads(markup) != [c.data for c in current.flat_choices()]:
                    out.insert(0, replace(refresh, reply=current))
            # The pressed keyboard is spent. When the answer is the next question, it
            # takes the pressed message's place (one edit instead of a new message and
            # an edit, and the chat does not fill with questions); otherwise the old
            # buttons are removed so they do not pile up.
            if not out:
                return  # nothing was answered (a stale or redelivered press): nothing changes
            first = out[0]
            if (
                first.chat_id == str(chat_id)
                and isinstance(first.reply, Message)
                and first.reply.choices
                and await self._replace(chat_id, message_id, first.reply)
            ):
                await self.router.deliver(out[1:])
                return
            closing = _closing(pressed, first) if first.chat_id == str(chat_id) else None
            if closing is not None and await self._replace(chat_id, message_id, closing):
                # An answer without buttons (saved, cancelled) closes the pressed message:
                # it keeps what it showed, loses its buttons and gets the answer below.
                # One edit, where a new message and an edit of the keyboard were two: both
                # count against the token's 30 messages a second (bench/RESULTS.md).
                # When Telegram refuses that edit (the pressed text does not render back,
                # found by the fuzz test), the answer goes alone as a new message below.
                await self.router.sent(first, str(message_id))
                await self.router.deliver(out[1:])
                return
            await self.router.deliver(out)
            try:
                await self.app.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
            except TelegramError as error:
                log.info("keyboard_not_removed error=%s", type(error).__name__)

        try:
            await self._dispatch(update, ChoiceIn(query.data or ""), deliver)
        finally:
            if not answered:  # not handled (a foreign chat, a failure): stop the spinner
                await _answer(query, None)

    async def _replace(self, chat_id: int, message_id: int, message: Message) -> bool:
        """Edit an earlier bot message into ``message``; False when it cannot be."""
        try:
            await self.edit(str(chat_id), str(message_id), message)
        except ValueError:
            return False  # too long for one message: it is sent in pieces instead
        except TelegramError as error:
            log.info("message_not_replaced error=%s", type(error).__name__)
            return False
        return True

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram_error error=%s", type(context.error).__name__, exc_info=context.error)

    async def _dispatch(
        self,
        update: Update,
        event: Event,
        deliver: Callable[[list[Outbound]], Awaitable[None]] | None = None,
    ) -> None:
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or user.is_bot:
            return
        if _not_to_the_bot(update, user.id, chat.id, chat.type):
            log.info("update_ignored reason=foreign_chat")
            return
        incoming = Incoming(
            transport=NAME,
            user_id=str(user.id),
            chat_id=str(chat.id),
            event=event,
            is_private=chat.type == ChatType.PRIVATE,
            event_id=str(update.update_id),
            language_hint=user.language_code,
            reply_to=_reply_to(update),
        )
        await receive(self.service, self.router, incoming, deliver)

    # --- outgoing --------------------------------------------------------------------

    @staticmethod
    def is_permanent(error: BaseException) -> bool:
        """A refused request (400, 403, 401, 404, or one too long to send): retrying at
        once cannot help. Network errors, time-outs and 5xx answers are transient."""
        refused = BadRequest | Forbidden | InvalidToken | EndPointNotFound | ValueError
        return isinstance(error, refused)

    async def send_tracked(self, outbound: Outbound) -> str | None:
        """Send, and return the message id of the (last) message posted."""
        bot = self.app.bot
        reply = outbound.reply
        chat_id = outbound.chat_id
        limit = self._bulk if outbound.meta.get("bulk") else {}
        if isinstance(reply, Message):
            markup = keyboard(reply)
            if reply.html is not None:
                pieces = split_text(reply.html, MessageLimit.MAX_TEXT_LENGTH, utf16_len)
                mode: str | None = ParseMode.HTML
            else:
                pieces = split_text(reply.text, MessageLimit.MAX_TEXT_LENGTH, utf16_len)
                mode = None
            sent_id: int | None = None
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                posted = await bot.send_message(
                    chat_id,
                    piece,
                    parse_mode=mode,
                    reply_markup=markup if last else None,
                    **limit,
                )
                sent_id = posted.message_id
            return str(sent_id) if sent_id is not None else None
        if isinstance(reply, Image):
            posted = await bot.send_photo(
                chat_id,
                InputFile(reply.png, filename=reply.filename),
                caption=reply.caption[: MessageLimit.CAPTION_LENGTH] or None,
                **limit,
            )
            return str(posted.message_id)
        assert isinstance(reply, Document), "the router sends alerts and reprompts as messages"
        posted = await bot.send_document(
            chat_id,
            InputFile(reply.data, filename=reply.filename),
            caption=reply.caption[: MessageLimit.CAPTION_LENGTH] or None,
            **limit,
        )
        return str(posted.message_id)

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        """Replace the text and buttons of an earlier bot message (e.g. an acknowledged notice)."""
        body = message.html if message.html is not None else message.text
        if utf16_len(body) > MessageLimit.MAX_TEXT_LENGTH:
            raise ValueError("edited text too long for one message")
        try:
            await self.app.bot.edit_message_text(
                body,
                chat_id=chat_id,
                message_id=int(ref),
                parse_mode=ParseMode.HTML if message.html is not None else None,
                reply_markup=keyboard(message),
            )
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise
            # The message already says this (e.g. the same status twice): nothing to do.


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets. Text limits are
    counted in them too here (an emoji is two): safe whether Telegram counts units or
    characters. Found by the fuzz test: emoji-heavy texts came back "message is too long"."""
    return len(text.encode("utf-16-le")) // 2


def keyboard(message: Message) -> InlineKeyboardMarkup | None:
    if not message.choices:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(c.label, callback_data=c.data) for c in row]
            for row in message.choices
        ]
    )


def _not_to_the_bot(update: Update, user_id: int, chat_id: int, chat_type: str) -> bool:
    """Updates that are not a person writing to the bot (found by the fuzz test).

    People reach the bot by messages (and their edits) and button presses. Channel
    posts, business messages (chats of a business account the bot is connected to)
    and guest messages (chats the bot was called into) are someone else's chats even
    when they look private: handling them as the sender's private chat would move
    where the sender's replies go (their § 48 answers, reminders) to a stranger.
    """
    if update.message is None and update.edited_message is None and update.callback_query is None:
        return True
    # A private chat with the bot is always the sender's own (chat id = user id).
    return chat_type == ChatType.PRIVATE and chat_id != user_id


def _closing(pressed: Any, answer: Outbound) -> Message | None:
    """The pressed message closed by ``answer``: its text, then the answer's, no buttons;
    None when the answer is not a plain message, the pressed text is not known (an
    inaccessible message) or the two do not fit one message."""
    reply = answer.reply
    shown = getattr(pressed, "text", None)
    if not isinstance(reply, Message) or reply.choices or "edit" in answer.meta or not shown:
        return None
    try:
        shown_html = pressed.text_html
    except Exception:  # entities that do not fit the text (found by the fuzz test)
        return None
    html = f"{shown_html}\n\n{reply.html if reply.html is not None else escape(reply.text)}"
    if utf16_len(html) > MessageLimit.MAX_TEXT_LENGTH:
        return None
    return Message(f"{shown}\n\n{reply.text}", html=html, ref=reply.ref)


def _payloads(markup: InlineKeyboardMarkup | None) -> list[str | None]:
    if markup is None:
        return []
    return [button.callback_data for row in markup.inline_keyboard for button in row]  # type: ignore[misc]


def _reply_to(update: Update) -> str | None:
    message = update.effective_message
    if update.callback_query is not None or message is None:
        return None
    replied = message.reply_to_message
    return str(replied.message_id) if replied is not None else None


async def _answer(query: CallbackQuery, text: str | None, show_alert: bool = False) -> None:
    """Stop the spinner on the phone; with ``text``, show it to the presser alone (a toast,
    or a pop-up to dismiss in group chats, where the presser may not see their own chat)."""
    try:
        if text:
            await query.answer(text[:200], show_alert=show_alert)
        else:
            await query.answer()
    except TelegramError as error:
        log.info("callback_not_answered error=%s", type(error).__name__)
