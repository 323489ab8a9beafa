"""What the logs of a test session may carry: ids and event kinds, no text, no hetu, no secret.

``tests/conftest.py`` keeps every log record of the session (``CAPTURED_LOGS``) and
runs these checks when the session finishes (``pytest_sessionfinish``), whichever
tests ran and in whatever order; a finding fails the session.

Havainto's own loggers (``havainto.*``) may only carry ids and event kinds, so
every argument of their records must be a number or a short token without
spaces. Every record of every library is also searched for personal identity
codes and for the secrets the tests use (bot tokens, Matrix access tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (logger name, the message before formatting, its arguments, the formatted line)
Record = tuple[str, str, tuple[object, ...], str]

HETU = re.compile(
    r"(?<![0-9A-Za-z])\d{6}\s?[-+A-FU-Y]\s?\d{3}[0-9A-Y](?![0-9A-Za-z])", re.IGNORECASE
)
# Bot tokens (standing alone or inside URLs such as /bot123456:TEST/getMe), Synapse
# access tokens. A Matrix user id such as @havainto-ua7617573:havainto.test is not a
# token: digits glued to letters before them only count after "/bot".
SECRET = re.compile(
    r"(?:(?<=/bot)|(?<![0-9A-Za-z]))\d{6,}:[A-Za-z][A-Za-z0-9_-]{3,}"
    r"|syt_[A-Za-z0-9_]+|\bTEST-TOKEN\b"
)
# One id or key, no spaces: a delivery key with a Matrix room id runs to about 100 characters.
TOKEN_ARG = re.compile(r"^[\w.:@!#/+=-]{0,128}$")
SHOWN = 10  # findings shown per check


def text_in_own_logs(records: Iterable[Record]) -> list[tuple[str, ...]]:
    """Records of ``havainto.*`` loggers whose message or arguments carry more than ids."""
    offending: list[tuple[str, ...]] = []
    for name, msg, args, _text in records:
        if not name.startswith("havainto"):
            continue
        if " " in msg and not args and not re.fullmatch(r"[\w]+( [\w.]+=[^ ]{0,80})*", msg):
            offending.append((name, msg))
        for arg in args:
            if isinstance(arg, (int, float, bool)) or arg is None:
                continue
            if not TOKEN_ARG.fullmatch(str(arg)):
                offending.append((name, msg, str(arg)[:40]))
    return offending


def identity_codes(records: Iterable[Record]) -> list[str]:
    """Log lines (of any logger) with something that looks like a personal identity code."""
    return [text[:120] for *_, text in records if HETU.search(text)]


def secrets_in(records: Iterable[Record]) -> list[str]:
    """Log lines (of any logger) with a bot token or a Matrix access token."""
    return [text[:120] for *_, text in records if SECRET.search(text)]


def problems(records: list[Record]) -> list[str]:
    """Every finding of the three checks, as lines to print (empty: the logs are clean)."""
    found: list[str] = []
    for title, items in (
        ("havainto.* log records carrying more than ids and event kinds", text_in_own_logs),
        ("log lines carrying a personal identity code (hetu)", identity_codes),
        ("log lines carrying a secret (bot token, access token)", secrets_in),
    ):
        hits = items(records)
        if hits:
            found.append(f"{title}: {len(hits)}")
            found.extend(f"  {hit!r}" for hit in hits[:SHOWN])
    return found
