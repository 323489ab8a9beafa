"""PTB's HTTP requests made with aiohttp instead of httpx.

python-telegram-bot talks to the Bot API through a ``BaseRequest``; it ships one
on httpx and documents the class as the place to plug in another HTTP library.
This one uses aiohttp, which the webhook server already needs. Measured against
PTB's ``HTTPXRequest`` on the fake Bot API (``bench/RESULTS-earlier.md``), a
``sendMessage`` costs the bot about 1 ms of CPU instead of 2.3-2.9 ms: under
load httpcore spends most of its time checking every pooled connection on each
request (through anyio), and the bot makes two or three calls per button press.

The contract is PTB's: return the status and body of every answer (PTB turns
error statuses into its exceptions), raise ``TimedOut`` when a timeout
expires and ``NetworkError`` when the request could not be made. ``on_answer``
is called whenever the server answered with less than 500 (``/healthz`` shows
when the Bot API last answered).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


_TOKEN_IN_URL = re.compile(r"/(file/)?bot[^/\s'\"]+")


def redact(text: str) -> str:
    """``text`` with the token of any Bot API URL in it replaced by ``<token>``."""
    return _TOKEN_IN_URL.sub(lambda m: f"/{m.group(1) or ''}bot<token>", text)


def _value(given: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(given, DefaultValue) else given


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded pool of keep-alive connections."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 16,
        read_timeout: float | None = 10.0,
        write_timeout: float | None = 20.0,
        connect_timeout: float | None = 10.0,
        pool_timeout: float | None = 10.0,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._on_answer = on_answer
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[
            tuple[str, str | None, int | None], tuple[URL | None, aiohttp.BasicAuth | None]
        ] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def _proxy_for(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """HTTPS_PROXY and friends (NO_PROXY too), as httpx honours them for PTB.

        aiohttp's ``trust_env`` reads them on a worker thread for every request; the
        answer is the same for every request to one server, so it is looked up once.
        """
        target = URL(url)
        key = (target.scheme, target.host, target.port)
        if key not in self._proxies:
            found: tuple[URL | None, aiohttp.BasicAuth | None]
            try:
                found = await asyncio.to_thread(get_env_proxy_for_url, target)
            except LookupError:
                found = (None, None)
            self._proxies[key] = found
        return self._proxies[key]

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = _value(read_timeout, self._read_timeout)
        write = _value(write_timeout, self._write_timeout)
        connect = _value(connect_timeout, self._connect_timeout)
        pool = _value(pool_timeout, self._pool_timeout)
        # aiohttp has no write timeout of its own: a slow upload is bounded by a total
        # of all four (waiting for a connection, connecting, sending, answering).
        parts = (pool, connect, write, read)
        timeout = aiohttp.ClientTimeout(
            total=None if None in parts else sum(p for p in parts if p is not None),
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        body: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] | None = None
        if request_data is not None:
            parameters = request_data.json_parameters
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mime_type) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mime_type)
                body = form
            else:
                # Form-encoded, as PTB's httpx request sends it. Encoded here: given a
                # dict, aiohttp builds a multipart writer (and a uuid) for each request.
                body = request_data.url_encoded_parameters().encode()
                headers = FORM
        proxy, proxy_auth = await self._proxy_for(url)
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                payload = await response.read()
        except TimeoutError:
            raise TimedOut from None
        except aiohttp.ClientError as error:
            # Some aiohttp errors name the URL, and a Bot API URL holds the bot's token:
            # the message is redacted and the original is not chained (PTB logs both).
            raise NetworkError(f"aiohttp.{type(error).__name__}: {redact(str(error))}") from None
        if response.status < 500 and self._on_answer is not None:
            self._on_answer()
        return response.status, payload
