"""The neutral vocabulary between chat transports and the conversation logic.

Transports (one module per platform under ``bot/transports/``) turn
platform updates into these events and render these replies back, so the
flow in ``flows/`` never sees a chat library. This mirrors opsdroid's
``events.py``: a few small types, each one meaning the same on every platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- what a person sends -----------------------------------------------------


@dataclass(frozen=True)
class TextIn:
    """A plain text message."""

    text: str


@dataclass(frozen=True)
class ChoiceIn:
    """A button press (Telegram callback, Matrix reaction); ``data`` is the choice's payload."""

    data: str


@dataclass(frozen=True)
class CommandIn:
    """A command such as ``/uusi`` or ``!uusi``; ``name`` is lower-case without the prefix."""

    name: str
    args: str = ""


@dataclass(frozen=True)
class LocationIn:
    """A shared location. Never stored as such: the flow coarsens it or maps it to an area."""

    latitude: float
    longitude: float


@dataclass(frozen=True)
class MediaIn:
    """Voice, photo, file, sticker, video...: never stored, the person is told why."""

    kind: str


@dataclass(frozen=True)
class EditedIn:
    """An edit of an earlier message. Edits are not read back into the draft."""


Event = TextIn | ChoiceIn | CommandIn | LocationIn | MediaIn | EditedIn


@dataclass(frozen=True)
class Incoming:
    """An event with where it came from.

    ``user_id`` and ``chat_id`` are the platform's identifiers as strings; they
    stay inside ``bot/`` and ``storage/`` identities and are never logged with text.
    ``event_id`` lets the service process a redelivered update only once.
    """

    transport: str
    user_id: str
    chat_id: str
    event: Event
    is_private: bool = True
    event_id: str | None = None
    language_hint: str | None = None
    # The platform id of the message this one replies to (Telegram reply_to_message,
    # Matrix m.in_reply_to), when the transport knows it.
    reply_to: str | None = None


# --- what the bot sends ------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One button: the label shown and the opaque payload that comes back in ``ChoiceIn``."""

    label: str
    data: str


def match_choice(choices: list[Choice], typed: str) -> Choice | None:
    """The option a typed answer names: its number in the list (1-based) or its label.

    For platforms without buttons (Matrix, the terminal) and for a worker who types
    instead of tapping; case does not matter, nor a trailing full stop.
    """
    answer = typed.strip().rstrip(".").casefold()
    if answer.isdecimal():
        if len(answer) > 4:  # no list is that long; int() refuses 4,300 digits and more
            return None
        index = int(answer) - 1
        return choices[index] if 0 <= index < len(choices) else None
    for option in choices:
        if option.label.casefold() == answer:
            return option
    return None


@dataclass(frozen=True)
class Message:
    """A text reply, optionally with buttons laid out in rows.

    ``text`` is plain text. ``html`` (optional) is the same content in the small
    HTML subset Telegram and Matrix share (b, i, code, blockquote, a); whoever
    builds it escapes every piece of user text. ``ref`` names the message so a
    transport can later edit or thread on it (e.g. a § 48 notice).
    """

    text: str
    choices: tuple[tuple[Choice, ...], ...] = ()
    html: str | None = None
    ref: str | None = None

    def flat_choices(self) -> list[Choice]:
        return [c for row in self.choices for c in row]


@dataclass(frozen=True)
class Image:
    """A picture (PNG bytes) with a caption, e.g. a digest chart."""

    png: bytes
    caption: str = ""
    filename: str = "chart.png"


@dataclass(frozen=True)
class Document:
    """A file attachment, e.g. the escalated items of a monthly summary as CSV."""

    data: bytes
    filename: str
    caption: str = ""
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Alert:
    """A short answer only the person who pressed a button sees.

    Telegram shows it as the answer to the callback query (a pop-up), so a refused or
    repeated press in a group posts nothing to the group. A platform without that
    sends it as a message to the ``Outbound``'s chat, which the sender addresses to the
    presser's private chat (or leaves empty, and then nothing is sent).
    """

    text: str


@dataclass(frozen=True)
class Reprompt:
    """The question that is current, after a press on a button of an older one.

    Telegram puts it in place of the pressed message when that message shows something
    else (a reply lost on the way), and sends nothing when it already shows it: quick
    repeated taps never fill the chat. Other platforms send it as a message.
    """

    message: Message


Reply = Message | Image | Document | Alert | Reprompt


@dataclass(frozen=True)
class Outbound:
    """A reply addressed to a chat on a transport (the sender's own chat or another one).

    ``meta`` carries hints for the delivery, never shown: ``edit`` (replace the platform's
    message with this id), ``track`` (``Router.sent_hooks`` hear when it was taken) and
    ``bulk`` (a digest or report: sent in the room answers to people leave).
    """

    transport: str
    chat_id: str
    reply: Reply
    meta: dict[str, str] = field(default_factory=dict)
