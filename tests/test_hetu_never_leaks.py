"""Property: a personal identity code typed by anyone never comes out anywhere.

For each example hypothesis builds free texts around a valid hetu (random century
sign, surrounded by letters, punctuation or spaces, with invisible characters,
full-width digits, line breaks or dash variants inserted), and every role that can
type text types one: the worker (an entry, and an answer to the leaders), the team
lead (a quick capture with ``/uusi``), the leader (a status note and a question to
the reporter) and the admin (a status note). Then nothing may hold the code's
digits in sequence: no stored column, no message the bot sent, the weekly digest,
the monthly summary and its CSV, the CSV export, the social report, the log.

The run prints its seed; ``HAVAINTO_TEST_SEED=<seed> pytest tests/test_hetu_never_leaks.py``
repeats it exactly. "Holds its digits in sequence" means: the nine digits in order,
separated at most by white space, invisible characters, dashes and the century sign,
with no digit right before or after (a check that joined every digit of every output
found a code's digits by chance in dates and counts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import subprocess
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_config
from bot.runtime import build_runtime
from digests.periods import month_label, week_of
from flows.events import (
    Alert,
    ChoiceIn,
    CommandIn,
    Document,
    Incoming,
    Message,
    Outbound,
    Reprompt,
    TextIn,
)
from flows.knowledge import NEW_VALUE
from storage.models import Base

SEED = int(os.environ.get("HAVAINTO_TEST_SEED") or random.SystemRandom().randrange(2**32))
print(f"tests/test_hetu_never_leaks.py seed={SEED} (HAVAINTO_TEST_SEED={SEED} repeats it)")

CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
SIGNS = {18: "+", 19: "-YXWVU", 20: "ABCDEF"}
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
DASHES = ("-", "\u2010", "\u2011", "\u2013", "\u2014", "\u2212", "\uff0d")
CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[terminal]
enabled = "no"

[[leadership]]
id = "hki-johto"
name = "Helsingin johto"
region = "helsinki"
telegram_chat_id = "-2001"

[[teams]]
id = "hki-etsiva"
name = "Helsingin etsivät"
region = "helsinki"
leadership = "hki-johto"
telegram_chat_id = "-1001"
"""
LEADERS = "-2001"
T = "telegram"


@st.composite
def hetus(draw: st.DrawFn) -> tuple[str, str]:
    """(the code as typed, its nine digits DDMMYYZZZ)."""
    century = draw(st.sampled_from(sorted(SIGNS)))
    year = draw(st.integers(0, 99))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    individual = draw(st.integers(2, 999))
    digits = f"{day:02d}{month:02d}{year:02d}{individual:03d}"
    check = CHECK[int(digits) % 31]
    sign = draw(st.sampled_from(SIGNS[century]))
    if sign == "-":
        sign = draw(st.sampled_from(DASHES))
    chars = list(f"{digits[:6]}{sign}{digits[6:]}{check}")
    if draw(st.booleans()):  # full-width digits and letters
        chars = [
            chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() and draw(st.booleans()) else c
            for c in chars
        ]
    typed = ""
    for index, char in enumerate(chars):
        typed += char
        if index < len(chars) - 1:
            extra = draw(st.sampled_from(("", "", "", *INVISIBLE, "\n", " ")))
            typed += extra
    return typed, digits


WORDS = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll"), max_codepoint=0x17F),
    min_size=0,
    max_size=8,
)
GLUE = st.sampled_from(("", " ", ", ", ". ", " (", ") ", ": ", "\n", "/"))


@st.composite
def texts(draw: st.DrawFn, hetu: str) -> str:
    before = draw(WORDS) + draw(GLUE)
    after = draw(GLUE) + draw(WORDS)
    return f"Havainto {before}{hetu}{after} loppu"


# Between the characters of a code as people obfuscate it: white space, invisible
# characters and dashes (after NFKC). Not ":" or ".", which separate times and dates.
_GAP = "[\\s\u00ad\u200b-\u200d\u2060\ufeff\u2010-\u2015\u2212-]*"


def leak_pattern(digits: str) -> re.Pattern[str]:
    """The code's nine digits in order, as a hetu would stand in a text: separated only by
    white space, invisible characters or dashes, with its sign between date and number,
    and no digit right before or after it."""
    date, number = digits[:6], digits[6:]
    body = _GAP.join(date) + _GAP + "[+A-Za-z-]?" + _GAP + _GAP.join(number)
    return re.compile(f"(?<![0-9]){body}(?![0-9])")


def normalised(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


class Chat:
    """Drives the service directly: every reply is kept for the check."""

    def __init__(self, runtime: object) -> None:
        self.rt = runtime
        self.out: list[Outbound] = []

    async def send(self, user: str, event: object, chat: str | None = None) -> list[Outbound]:
        incoming = Incoming(T, user, chat or user, event, is_private=chat is None)  # type: ignore[arg-type]
        replies = await self.rt.service.handle(incoming)  # type: ignore[attr-defined]
        self.out += replies
        return replies

    def _button(self, user: str, ending: str) -> str | None:
        for outbound in reversed(self.out):
            reply = outbound.reply
            message = reply.message if isinstance(reply, Reprompt) else reply
            if outbound.chat_id == user and isinstance(message, Message):
                for choice in message.flat_choices():
                    if choice.data.endswith(ending):
                        return choice.data
        return None

    def offers(self, user: str, ending: str) -> bool:
        """Whether the user's latest question has a button ending ``ending``."""
        last = next((o for o in reversed(self.out) if o.chat_id == user), None)
        reply = None if last is None else last.reply
        message = reply.message if isinstance(reply, Reprompt) else reply
        return isinstance(message, Message) and any(
            c.data.endswith(ending) for c in message.flat_choices()
        )

    async def press(self, user: str, ending: str) -> list[Outbound]:
        data = self._button(user, ending)
        if data is None:
            raise AssertionError(f"no button ending {ending!r}")
        return await self.send(user, ChoiceIn(data))

    def texts(self) -> list[str]:
        found: list[str] = []
        for outbound in self.out:
            reply = outbound.reply
            if isinstance(reply, Reprompt):
                reply = reply.message
            if isinstance(reply, Message):
                found += [reply.text, reply.html or ""]
            elif isinstance(reply, Alert):
                found.append(reply.text)
            elif isinstance(reply, Document):
                found.append(reply.data.decode("utf-8", "replace"))
        return found


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF (poppler's pdftotext; the test needs it, as the report tests do)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "summary.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout


async def scenario(config_path: Path, typed: dict[str, str]) -> list[str]:
    config = load_config(config_path)
    runtime = await build_runtime(config, terminal=False)
    chat = Chat(runtime)
    service = runtime.service
    for user, role in (("1", "worker"), ("2", "lead"), ("3", "leader"), ("4", "admin")):
        await service.enrol_directly(T, user, user, "hki-etsiva", role)
    # The worker's entry, raised as a notice.
    await chat.send("1", TextIn(typed["worker"]))
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await chat.press("1", value)
    await chat.press("1", "escalation.shl48")
    await chat.press("1", ":save")
    # The team lead's quick capture.
    await chat.send("2", CommandIn("uusi", typed["lead"]))
    if chat.offers("2", ":" + NEW_VALUE):  # "the same as #1?" (me too): no, a new one
        await chat.press("2", ":" + NEW_VALUE)
    for value in ("theme.income", "group.other", "signal.criteria", "frequency.new"):
        await chat.press("2", value)
    await chat.press("2", "escalation.none")
    await chat.press("2", ":save")
    number = 1
    # The leader's status note and question; the worker's answer; the admin's note.
    await chat.send("3", ChoiceIn(f"esc:st:in_progress:{number}"), LEADERS)
    await chat.send("3", TextIn(typed["leader_note"]), LEADERS)
    await chat.send("3", ChoiceIn(f"esc:ask:{number}"), LEADERS)
    await chat.send("3", TextIn(typed["leader_question"]), LEADERS)
    answer = next(
        c.data
        for o in chat.out
        if o.chat_id == "1" and isinstance(o.reply, Message)
        for c in o.reply.flat_choices()
        if c.data.startswith("esc:ans:")
    )
    await chat.send("1", ChoiceIn(answer))
    await chat.send("1", TextIn(typed["worker_answer"]))
    await chat.send("4", ChoiceIn(f"esc:st:decided:{number}"), LEADERS)
    await chat.send("4", TextIn(typed["admin_note"]), LEADERS)

    found = chat.texts()
    desk = runtime.digests
    assert desk is not None
    today = datetime.now(UTC).astimezone(service.zone).date()
    weekly = await desk.weekly("hki-etsiva", week_of(today))
    monthly = await desk.monthly("helsinki", month_label(today.year, today.month), "fi")
    for rendered in (weekly, monthly):
        found += [rendered.text, rendered.html or ""]
        if rendered.csv is not None:
            found.append(rendered.csv.decode("utf-8-sig", "replace"))
        if rendered.pdf is not None:  # the whole monthly summary, every escalation's text
            found.append(pdf_text(rendered.pdf))
    async with runtime.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                found.append(" ".join(str(v) for v in row))
    await runtime.db.close()
    return found


@seed(SEED)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_a_typed_hetu_comes_out_nowhere(data: st.DataObject) -> None:
    roles = ("worker", "lead", "leader_note", "leader_question", "worker_answer", "admin_note")
    typed: dict[str, str] = {}
    codes: list[str] = []
    for role in roles:
        code, digits = data.draw(hetus(), label=f"{role} hetu")
        typed[role] = data.draw(texts(code), label=f"{role} text")
        codes.append(digits)
    logs: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logs.append(self.format(record))

    handler = Keep(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "havainto.toml"
            path.write_text(CONFIG.format(db=Path(folder) / "h.db"), encoding="utf-8")
            found = asyncio.run(scenario(path, typed))
            runner = CliRunner()
            today = datetime.now(UTC).date()
            for args in (
                ["export", "--format", "csv", "--output", "-"],
                ["export", "--format", "jsonl", "--output", "-"],
                [
                    "report",
                    "--region",
                    "helsinki",
                    "--from",
                    today.replace(day=1).isoformat(),
                    "--to",
                    today.isoformat(),
                    "--format",
                    "html",
                    "--output",
                    str(Path(folder) / "report.html"),
                ],
            ):
                result = runner.invoke(app, [*args, "-c", str(path)], catch_exceptions=False)
                assert result.exit_code == 0, result.output
                found.append(result.output)
            found.append((Path(folder) / "report.html").read_text(encoding="utf-8"))
    finally:
        logging.getLogger().removeHandler(handler)
    found += logs
    texts_out = [normalised(text) for text in found]
    for role, digits in zip(roles, codes, strict=True):
        pattern = leak_pattern(digits)
        leaked = [text for text in texts_out if pattern.search(text)]
        assert not leaked, (
            f"seed={SEED}: the hetu typed by {role} ({typed[role]!r}) came out: {leaked[:2]!r}"
        )
