"""PTB's requests over aiohttp (bot/transports/telegram_http.py): errors PTB understands, and no
bot token in what gets logged when a request fails."""

from __future__ import annotations

import asyncio
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.transports.telegram_http import AiohttpRequest, redact

TOKEN = "123456:TEST-secret_token"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/bot{TOKEN}"
    finally:
        server.close()
        await server.wait_closed()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"this is not HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


async def silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)
    writer.close()


async def echo_form(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    body = await reader.readexactly(length)
    answer = b'{"ok": true, "result": "' + body.replace(b'"', b"'") + b'"}'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
    )
    await writer.drain()
    writer.close()


@pytest.fixture
async def request_() -> AsyncIterator[AiohttpRequest]:
    made = AiohttpRequest(read_timeout=0.3, connect_timeout=1, pool_timeout=1)
    await made.initialize()
    try:
        yield made
    finally:
        await made.shutdown()


def _all_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


async def test_an_answer_that_is_not_http_is_a_network_error_without_the_token(
    request_: AiohttpRequest,
) -> None:
    async for base in serve(garbage):
        with pytest.raises(NetworkError) as caught:
            await request_.do_request(f"{base}/getUpdates", "POST")
    assert TOKEN not in _all_text(caught.value)
    assert "bot<token>" in str(caught.value) or "aiohttp." in str(caught.value)


async def test_a_refused_connection_is_a_network_error_without_the_token(
    request_: AiohttpRequest,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError) as caught:
        await request_.do_request(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe", "POST")
    assert TOKEN not in _all_text(caught.value)


async def test_a_server_that_does_not_answer_times_out(request_: AiohttpRequest) -> None:
    async for base in serve(silence):
        with pytest.raises(TimedOut) as caught:
            await request_.do_request(f"{base}/getMe", "POST")
    assert TOKEN not in _all_text(caught.value)


async def test_parameters_are_sent_form_encoded(request_: AiohttpRequest) -> None:
    data = RequestData(parameters=[RequestParameter("text", "Hei & moi ä", None)])
    async for base in serve(echo_form):
        status, payload = await request_.do_request(f"{base}/sendMessage", "POST", data)
    assert status == 200
    assert b"text=Hei+%26+moi+%C3%A4" in payload


def test_redact_removes_tokens_from_bot_and_file_urls() -> None:
    text = f"url='http://h/bot{TOKEN}/getMe' and http://h/file/bot{TOKEN}/a.jpg"
    assert TOKEN not in redact(text)
    assert redact(text).count("bot<token>") == 2
