"""Runs last: the logs of the whole test session carry no text, no hetu, no secret.

Havainto's own loggers (``havainto.*``) may only carry ids and event kinds, so
every argument of their records must be a number or a short token without
spaces. Every record of every library is also searched for personal identity
codes and for the secrets the tests use (bot tokens, Matrix access tokens).
"""

from __future__ import annotations

import re

from tests.conftest import CAPTURED_LOGS

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
TOKEN_ARG = re.compile(r"^[\w.:@!#/+=-]{0,80}$")


def test_logs_carry_only_ids_and_kinds() -> None:
    offending = []
    for name, msg, args, _text in CAPTURED_LOGS:
        if not name.startswith("havainto"):
            continue
        if " " in msg and not args and not re.fullmatch(r"[\w]+( [\w.]+=[^ ]{0,80})*", msg):
            offending.append((name, msg))
        for arg in args:
            if isinstance(arg, (int, float, bool)) or arg is None:
                continue
            if not TOKEN_ARG.fullmatch(str(arg)):
                offending.append((name, msg, str(arg)[:40]))
    assert not offending, offending[:10]


def test_logs_carry_no_identity_code_and_no_secret() -> None:
    assert CAPTURED_LOGS, "the session captured no log records at all"
    hetus = [text[:120] for *_, text in CAPTURED_LOGS if HETU.search(text)]
    secrets = [text[:120] for *_, text in CAPTURED_LOGS if SECRET.search(text)]
    assert not hetus, hetus[:5]
    assert not secrets, secrets[:5]
