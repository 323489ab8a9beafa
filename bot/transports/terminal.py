"""The terminal chat: Havainto in a text console, for trying it out and for demos.

Buttons are shown as numbers: type the number to press one. Commands start
with ``/`` as on Telegram (``/uusi``, ``/omat``, ``/kieli``, ``/apua``,
``/peru``); ``/sijainti 60.17 24.94`` shares a location. Images and files are
written to a folder and their paths printed. One local user, enrolled into the
first team automatically unless ``terminal.auto_enroll`` is off; when their team is
no longer in the config (the demo team, once a config file names the real ones) they
move to that team, and ``/start CODE`` moves them to the team of an invite.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.transports.base import CannotEdit, Health, answer_by_number, receive
from flows import commands
from flows.events import (
    Choice,
    ChoiceIn,
    CommandIn,
    Document,
    Event,
    Image,
    Incoming,
    LocationIn,
    Message,
    Outbound,
    TextIn,
)

if TYPE_CHECKING:
    from bot.service import Havainto
    from bot.transports.base import Router

log = logging.getLogger("havainto.terminal")

LOCAL_USER = "local"
LOCATION_COMMANDS = commands.words("location")


class TerminalTransport:
    """The local chat in this terminal: the embedded default with no token."""

    name = "terminal"
    text_limit = 100_000  # a terminal takes any length

    def __init__(
        self,
        service: Havainto,
        router: Router,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.service = service
        self.router = router
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.files_dir = files_dir or Path(tempfile.gettempdir()) / "havainto-terminal"
        self.choices: list[Choice] = []
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._counter = 0

    async def start(self) -> None:
        config = self.service.config
        said = None
        if config.terminal.auto_enroll:
            team = config.terminal.auto_enroll_team or config.teams[0].id
            said = await self.service.enrol_local_user(self.name, LOCAL_USER, team)
        self._write(_banner())
        if said is not None:  # e.g. moved from the demo team to the config's first team
            self._write(said)
        # After a restart the open question is shown again, with its numbers, not only the
        # banner: the worker goes on where they were.
        for reply in await self.service.open_question(self.name, LOCAL_USER):
            await self.send(Outbound(self.name, LOCAL_USER, reply))
        self._task = asyncio.create_task(self._read_loop(), name="terminal-input")

    async def start_sending(self) -> bool:
        """False: the local chat is this terminal's, not one another process sends to."""
        return False

    async def stop_receiving(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def stop(self) -> None:
        await self.stop_receiving()
        self.finished.set()

    def health(self) -> Health:
        return Health(running=self._task is not None and not self._task.done())

    @staticmethod
    def is_permanent(error: BaseException) -> bool:
        return True  # writing to the terminal does not get better by trying again

    async def edit(self, chat_id: str, ref: str, message: Message) -> None:
        raise CannotEdit("a terminal prints anew")

    async def send_tracked(self, outbound: Outbound) -> str | None:
        await self.send(outbound)
        return None

    async def _read_loop(self) -> None:
        try:
            while True:
                self.stdout.write("> ")
                self.stdout.flush()
                line = await asyncio.to_thread(self.stdin.readline)
                if not line:
                    break
                event = self.parse(line.rstrip("\r\n"))
                if event is None:
                    continue
                self._counter += 1
                incoming = Incoming(self.name, LOCAL_USER, LOCAL_USER, event)
                await receive(self.service, self.router, incoming)
        finally:
            self.finished.set()

    def parse(self, line: str) -> Event | None:
        """Turn a typed line into an event: a number presses a shown button."""
        stripped = line.strip()
        if stripped.isdecimal() and self.choices:
            chosen = answer_by_number(self.choices, stripped)
            if chosen is not None:
                return ChoiceIn(chosen.data)
        if stripped.startswith("/") and len(stripped) > 1:
            name, _, args = stripped[1:].partition(" ")
            name = name.lower()
            if name in LOCATION_COMMANDS:
                try:
                    lat, lon = (float(x.replace(",", ".")) for x in args.split())
                except ValueError:
                    return CommandIn(name, args)
                return LocationIn(lat, lon)
            return CommandIn(name, args.strip())
        if not line:
            return None
        return TextIn(line)

    async def send(self, outbound: Outbound) -> None:
        reply = outbound.reply
        if isinstance(reply, Message):
            self._write(reply.text)
            flat = reply.flat_choices()
            if flat:
                self.choices = flat
                for number, choice in enumerate(flat, start=1):
                    self._write(f"  {number}) {choice.label}")
            return
        assert isinstance(reply, Image | Document), "the router sends the others as messages"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        data = reply.png if isinstance(reply, Image) else reply.data
        path = self.files_dir / reply.filename
        path.write_bytes(data)
        self._write(f"{reply.caption}\n[{path}]")

    def _write(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()


def _banner() -> str:
    return (
        "Havainto - terminaalichatti / terminalchatt / terminal chat\n"
        "Kirjoita havainto tai /uusi, /omat, /kieli, /apua, /peru. Numero valitsee vaihtoehdon.\n"
        "Ctrl-D lopettaa."
    )
