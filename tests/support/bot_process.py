"""The real bot in a child process, for tests that signal or kill it.

``BotProcess`` writes a TOML config, starts ``python -m bot.cli run -c <config>``
(exactly what systemd runs) against a ``FakeTelegram`` living in the test's own
event loop, reads its log from stderr, and lets the test send it SIGTERM or
SIGKILL. ``ChatUser`` plays one Telegram user through the fake without assuming
anything about the bot's process: an action counts as answered when a new bot
message reached the chat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.support.fake_telegram import FakeTelegram, SentCall, keyboard

REPO = Path(__file__).resolve().parents[2]


def toml_text(values: dict[str, Any]) -> str:
    """A small TOML writer for configs: scalars, tables and arrays of tables."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list) and all(not isinstance(v, dict) for v in value):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        raise TypeError(f"cannot write {value!r}")

    def table(prefix: str, data: dict[str, Any], array: bool = False) -> None:
        simple = {k: v for k, v in data.items() if not _is_table(v)}
        nested = {k: v for k, v in data.items() if _is_table(v)}
        if prefix:
            lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        for key, value in simple.items():
            lines.append(f"{key} = {scalar(value)}")
        lines.append("")
        for key, value in nested.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                table(name, value)
            else:
                for item in value:
                    table(name, item, array=True)

    table("", values)
    return "\n".join(lines)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


class BotProcess:
    """``havainto run`` in a child process; its stderr log is collected in ``log``."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.toml"
        self.config_path.write_text(toml_text(config), encoding="utf-8")
        self.process: asyncio.subprocess.Process | None = None
        self.log = ""
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, ready_timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAVAINTO_")}
        env["PYTHONPATH"] = str(REPO)
        self.log = ""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "-c",
            str(self.config_path),
            cwd=self.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_log("running transports=", ready_timeout)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log += line.decode("utf-8", "replace")
            self._changed.set()
        self._changed.set()

    async def wait_log(self, text: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.log:
            assert self.process is not None
            if self.process.returncode is not None and self._reader and self._reader.done():
                raise AssertionError(f"bot exited ({self.process.returncode}):\n{self.log}")
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log[-3000:]}")
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 40.0) -> int:  # noqa: ASYNC109
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def terminate(self, timeout: float = 40.0) -> int:  # noqa: ASYNC109
        self.signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.wait()


class ChatUser:
    """One Telegram user in their private chat, acting through the fake Bot API."""

    def __init__(self, fake: FakeTelegram, user_id: int, language_code: str = "fi") -> None:
        self.fake = fake
        self.user_id = user_id
        # update_id -> (message_id of the pressed keyboard, len(sent), len(failed) before)
        self.pressed: dict[int, tuple[int, int, int]] = {}
        fake.user(user_id, first_name=f"U{user_id}", language_code=language_code)

    def bot_messages(self) -> list[SentCall]:
        # New messages, and the next question edited into the pressed one.
        return self.fake.messages_to(self.user_id)

    async def wait_message(
        self,
        after: int,
        contains: str | None = None,
        timeout: float = 20.0,  # noqa: ASYNC109
    ) -> SentCall:
        """The first bot message to this chat at ``sent`` index >= ``after`` (with the text)."""

        def match(call: SentCall) -> bool:
            return self.fake.is_message_to(call, self.user_id) and (
                contains is None or contains in (call.text or "")
            )

        return await self.fake.wait_for(match, timeout, after)

    def say(self, text: str) -> tuple[int, int]:
        """Push a text; returns (sent index mark, update_id)."""
        mark = self.fake.mark()
        return mark, self.fake.send_text(self.user_id, text)

    def buttons(self) -> list[tuple[str, str]]:
        """(label, data) of the newest bot message in the chat that has a keyboard."""
        for message in reversed(self.fake.bot_messages(self.user_id)):
            rows = keyboard(message)
            if rows:
                return [(label, data) for row in rows for label, data in row if data]
        return []

    def tap_value(self, value: str) -> tuple[int, int]:
        """Press the button whose callback data ends with ``:value``; (mark, update_id)."""
        for _, data in self.buttons():
            if data.endswith(":" + value) or data == value:
                mark, failed = self.fake.mark(), len(self.fake.failed)
                message_id = self._keyboard_message_id()
                update_id = self.fake.press(self.user_id, data)
                self.pressed[update_id] = (message_id, mark, failed)
                return mark, update_id
        raise AssertionError(f"no button {value!r} in {self.buttons()}")

    def _keyboard_message_id(self) -> int:
        for message in reversed(self.fake.bot_messages(self.user_id)):
            if keyboard(message):
                return int(message["message_id"])
        raise AssertionError("no keyboard")

    async def wait_press_done(self, update_id: int, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has finished a button press: its last step edits the pressed
        message, into the next question (``editMessageText``) or without its spent keyboard
        (``editMessageReplyMarkup``), answered or refused as "not modified"."""
        message_id, sent_from, failed_from = self.pressed[update_id]

        def removal(calls: list[SentCall], start: int) -> bool:
            return any(
                c.method in ("editMessageReplyMarkup", "editMessageText")
                and str(c.params.get("chat_id")) == str(self.user_id)
                and c.params.get("message_id") == message_id
                for c in calls[start:]
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Only the calls recorded since the last look are scanned: 50 users poll at once.
            if removal(self.fake.sent, sent_from) or removal(self.fake.failed, failed_from):
                return
            sent_from, failed_from = len(self.fake.sent), len(self.fake.failed)
            if loop.time() > deadline:
                raise AssertionError(f"press {update_id} not finished\n{self.transcript()}")
            await asyncio.sleep(0.05)

    def transcript(self) -> str:
        return "\n".join(f"  {c.summary()}" for c in self.bot_messages())
