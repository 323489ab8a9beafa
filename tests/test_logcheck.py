"""The session's log check (tests/support/logcheck.py) finds what it must, and only that.

The check itself runs on the logs of the whole session when it finishes
(``pytest_sessionfinish`` in tests/conftest.py); these tests feed it records by hand.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.conftest import CAPTURED_LOGS
from tests.support import logcheck
from tests.support.logcheck import Record

REPO = Path(__file__).resolve().parents[1]


def record(name: str, msg: str, *args: object) -> Record:
    return (name, msg, args, f"INFO {name} {msg % args if args else msg}")


CLEAN = [
    record("havainto.service", "observation_saved id=%s person=%s", 12, 3),
    record("havainto.matrix", "event_ignored kind=%s", "m.reaction"),
    record("havainto.telegram", "choice_refused person=%s kind=%s", 3, "unknown"),
    record("telegram.ext", "Application started"),
    record("nio.rooms", "joined @havainto-ua7617573:havainto.test"),
]


def test_clean_logs_pass() -> None:
    assert logcheck.problems(CLEAN) == []


def test_observation_text_in_havainto_logs_is_found() -> None:
    texts = [
        record("havainto.service", "saved %s", "Nuorilla ei ole yöpaikkaa"),
        record("havainto.flow", "the worker wrote something long"),
    ]
    assert len(logcheck.text_in_own_logs(texts)) == 2
    # Another library's prose is not Havainto's to check (only hetus and secrets are).
    assert logcheck.text_in_own_logs([record("aiohttp.access", "GET / 200 took long")]) == []


def test_identity_codes_and_secrets_are_found_in_any_logger() -> None:
    hetu = record("aiohttp.server", "bad request body 131052-308T")
    token = record("httpx", "POST https://api.telegram.org/bot123456:TEST-abc/getMe")
    matrix = record("nio.client", "token syt_aGF2YWludG8_abcdef_123")
    assert logcheck.identity_codes([hetu, *CLEAN]) == [hetu[3][:120]]
    assert len(logcheck.secrets_in([token, matrix, *CLEAN])) == 2
    found = logcheck.problems([hetu, token, *CLEAN])
    assert any("identity code" in line for line in found)
    assert any("secret" in line for line in found)


def test_the_session_capture_is_in_place() -> None:
    logging.getLogger("havainto.tests").info("capture_check")
    assert CAPTURED_LOGS[-1][:2] == ("havainto.tests", "capture_check")


LEAKY_RUN = {
    "conftest.py": (
        "from tests.conftest import (  # noqa: F401 - the hooks of the real suite\n"
        "    pytest_configure, pytest_sessionfinish, pytest_terminal_summary,\n"
        "    pytest_testnodedown,\n"
        ")\n"
    ),
    "test_leaky.py": (
        "import logging\n"
        "def test_clean():\n"
        "    logging.getLogger('havainto.x').info('observation_saved id=%s', 1)\n"
        "def test_leaks_an_identity_code():\n"
        "    logging.getLogger('aiohttp.server').info('bad request body 131052-308T')\n"
    ),
}


def leaky_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    pytester.makepyfile(**LEAKY_RUN)
    env_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", env_path)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_a_leak_fails_the_session_whose_tests_all_passed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = leaky_run(pytester, monkeypatch)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*session log check FAILED*", "*identity code*"])


def test_a_leak_in_a_worker_process_fails_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pytest-xdist (.ci/run) the records are in the workers; the controller decides."""
    result = leaky_run(pytester, monkeypatch, "-n", "2")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*session log check FAILED*", "*identity code*"])
