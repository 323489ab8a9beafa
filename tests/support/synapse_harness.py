"""A real Matrix homeserver (Synapse) for tests.

Synapse is installed from PyPI into its own virtualenv at ``.cache/synapse-venv``
by ``.ci/install-synapse`` (so its pins never touch the project's ``.venv``);
``ensure_synapse_installed()`` (called by ``Synapse.start()``) runs that script,
which installs only when the venv is missing or the pin changed (~30 s), else
returns at once.

Usage (synchronous start/stop, async helpers)::

    from tests.support.synapse_harness import Synapse, ensure_synapse_installed

    server = Synapse(tmp_path / "synapse")      # one workdir per instance
    server.start()                               # free 127.0.0.1 port, ~3-5 s
    try:
        user_id, token, device_id = await server.register("alice")
        client = await server.nio_client("bob")  # logged-in nio.AsyncClient
        ...
    finally:
        server.stop()

or ``with Synapse(workdir) as server: ...``.

What the server looks like:

* ``server_name`` is ``havainto.test`` (user ids ``@alice:havainto.test``),
  ``base_url`` is ``http://127.0.0.1:<port>``. Only a client (+admin API)
  listener on 127.0.0.1, no federation listener, no trusted key servers:
  Synapse makes no outbound connections.
* SQLite database, media store, signing key, ``homeserver.yaml``,
  ``homeserver.log`` (WARNING and up) and ``stdout.log`` all live in the workdir.
* Open registration without verification (``m.login.dummy``), presence off,
  URL previews off, stats reporting off.
* All ``rc_*`` rate limits are set very high, so tests never hit them by chance.

Provoking ``M_LIMIT_EXCEEDED`` on purpose, two ways:

1. Per user, on a relaxed server: ``await server.set_user_ratelimit(user_id,
   messages_per_second=1, burst_count=1)`` uses the admin API
   ``/_synapse/admin/v1/users/<user_id>/override_ratelimit`` (with an admin user
   the harness registers through the shared-secret API). It governs only the
   *event sending* limiter (``rc_message``: messages, reactions, state events).
   Values must be integers >= 1; ``messages_per_second=0`` would mean "unlimited".
   With 1/1 the second event within a second is refused (``retry_after_ms``
   under 1000); creating a room counts as an event too.
2. Whole server: ``server.start(strict_ratelimit=True)`` sets
   ``rc_message`` to 0.1/s with burst 2 for every user (the third quick event
   gets a 429).

Synapse answers each rate-limited request only after a 0.5 s pause.
``nio.AsyncClient`` retries 429 responses by itself (sleeping ``retry_after_ms``)
unless ``AsyncClientConfig(max_limit_exceeded=0)`` is given; ``nio_client()``
takes a ``config`` for that.

Parallel use: every instance has its own workdir and port; processes are
stopped by ``stop()``, by an ``atexit`` hook, and (if the test process dies
hard) by a watchdog thread inside the Synapse process that exits once its
parent process is gone. If Synapse cannot be installed or started a
``RuntimeError`` with the reason (and the log tail) is raised: tests fail, they
never skip.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

if TYPE_CHECKING:
    import nio

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER_NAME = "havainto.test"

# Rate limits used when nothing should ever be rate limited.
_RELAXED = {"per_second": 10000, "burst_count": 100000}
_RELAXED_RC_KEYS = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_admin_redaction",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
    "rc_joins_per_room",
)
# Strict server-wide limit for start(strict_ratelimit=True).
_STRICT_RC_MESSAGE = {"per_second": 0.1, "burst_count": 2}

# Runs inside the Synapse venv: exit when the parent (test) process is gone,
# then behave exactly like `python -m synapse.app.homeserver -c CONFIG`.
_LAUNCHER = """\
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))
def _watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)
threading.Thread(target=_watch, name="havainto-parent-watch", daemon=True).start()
sys.argv[0] = "synapse.app.homeserver"
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
"""

_ENSURED: set[pathlib.Path] = set()
_LIVE: set[Synapse] = set()  # strong refs: atexit must see every server


def _stop_all_at_exit() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_at_exit)


def synapse_venv(repo_root: pathlib.Path | str = REPO_ROOT) -> pathlib.Path:
    return pathlib.Path(repo_root) / ".cache" / "synapse-venv"


def ensure_synapse_installed(repo_root: pathlib.Path | str = REPO_ROOT) -> pathlib.Path:
    """Make sure ``.cache/synapse-venv`` holds Synapse; return that venv's python.

    Runs ``.ci/install-synapse`` (once per process and repo): it installs
    Synapse when the venv is missing or the pinned version changed, and
    returns in well under a second when all is in place. Safe to call from
    parallel processes (an flock serialises the installs). Raises RuntimeError
    with the installer's output on failure.
    """
    repo_root = pathlib.Path(repo_root).resolve()
    venv = synapse_venv(repo_root)
    python = venv / "bin" / "python"
    if repo_root in _ENSURED and python.exists():
        return python
    script = repo_root / ".ci" / "install-synapse"
    if not script.exists():
        raise RuntimeError(f"cannot install Synapse: {script} does not exist")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "synapse-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = dict(os.environ, SYNAPSE_VENV=str(venv))
        try:
            result = subprocess.run(
                ["bash", str(script)],
                cwd=repo_root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"running {script} failed: {exc}") from exc
    if result.returncode != 0 or not python.exists():
        output = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(
            f"installing Synapse with {script} failed (exit {result.returncode}):\n{output}"
        )
    _ENSURED.add(repo_root)
    return python


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secret(n: int = 40) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _signing_key_line() -> str:
    # Same format signedjson.key.write_signing_keys() writes:
    # "<alg> <version> <unpadded base64 of the 32-byte ed25519 seed>".
    seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    return f"ed25519 a_{_secret(4)} {seed}\n"


class Synapse:
    """One Synapse homeserver process listening on 127.0.0.1 (see module docstring)."""

    def __init__(
        self,
        workdir: pathlib.Path,
        *,
        server_name: str = SERVER_NAME,
        repo_root: pathlib.Path | str = REPO_ROOT,
    ) -> None:
        self.workdir = pathlib.Path(workdir).resolve()
        self.server_name = server_name
        self.repo_root = pathlib.Path(repo_root)
        self.port = 0
        self.base_url = ""
        self.strict_ratelimit = False
        self.registration_shared_secret = _secret()
        self.config_path = self.workdir / "homeserver.yaml"
        self.log_path = self.workdir / "homeserver.log"
        self.stdout_path = self.workdir / "stdout.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: tuple[str, str, str] | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Synapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, strict_ratelimit: bool = False, timeout: float = 60.0) -> None:
        """Write the config, start Synapse and wait until the client API answers.

        ``strict_ratelimit=True`` sets a tight server-wide ``rc_message`` so any
        user gets ``M_LIMIT_EXCEEDED`` after two quick events.
        Raises RuntimeError (with the log tail) when Synapse does not come up.
        """
        if self.running:
            raise RuntimeError(f"Synapse in {self.workdir} is already running")
        python = ensure_synapse_installed(self.repo_root)
        self.strict_ratelimit = strict_ratelimit
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        last_error = ""
        for _attempt in range(3):  # a port picked as free can be taken meanwhile
            self.port = _free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
            self._write_config()
            self._spawn(python)
            try:
                self._wait_ready(deadline)
                _LIVE.add(self)
                return
            except RuntimeError as exc:
                last_error = str(exc)
                self._kill()
                if "Address already in use" not in last_error or time.monotonic() > deadline:
                    break
        raise RuntimeError(last_error)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        self._kill()
        _LIVE.discard(self)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def _spawn(self, python: pathlib.Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        }
        env["PYTHONUNBUFFERED"] = "1"
        # Synapse reads SYNAPSE_* variables; none of the caller's should leak in.
        for key in [k for k in env if k.startswith("SYNAPSE_")]:
            del env[key]
        with open(self.stdout_path, "ab") as out:
            self._proc = subprocess.Popen(
                [str(python), "-c", _LAUNCHER, str(os.getpid()), "-c", str(self.config_path)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal goes to pytest only
            )

    def _wait_ready(self, deadline: float) -> None:
        url = f"{self.base_url}/_matrix/client/versions"
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"Synapse exited with code {code} during startup.\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200 and "versions" in json.load(resp):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Synapse did not answer {url} in time.\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.log_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- tail of {path} ---\n" + "\n".join(text))
            else:
                parts.append(f"--- {path} does not exist ---")
        return "\n".join(parts)

    # --------------------------------------------------------------------- config

    def config(self) -> dict[str, Any]:
        """The homeserver.yaml content (JSON is valid YAML, so it is written as JSON)."""
        wd = self.workdir
        rc: dict[str, Any] = {key: dict(_RELAXED) for key in _RELAXED_RC_KEYS}
        rc.update(
            rc_login={
                "address": dict(_RELAXED),
                "account": dict(_RELAXED),
                "failed_attempts": dict(_RELAXED),
            },
            rc_joins={"local": dict(_RELAXED), "remote": dict(_RELAXED)},
            rc_invites={
                "per_room": dict(_RELAXED),
                "per_user": dict(_RELAXED),
                "per_issuer": dict(_RELAXED),
            },
            rc_presence={"per_user": dict(_RELAXED)},
        )
        if self.strict_ratelimit:
            rc["rc_message"] = dict(_STRICT_RC_MESSAGE)
        return {
            "server_name": self.server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(wd / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(wd / "homeserver.db")},
            },
            "log_config": str(wd / "log.config.yaml"),
            "media_store_path": str(wd / "media_store"),
            "signing_key_path": str(wd / "signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": _secret(),
            "form_secret": _secret(),
            "report_stats": False,
            "bcrypt_rounds": 4,  # fast password hashing: registration is ~0.3 s faster
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "allow_guest_access": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "federation_domain_whitelist": [],
            "allow_public_rooms_over_federation": False,
            "limit_profile_requests_to_users_who_share_rooms": False,
            **rc,
        }

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {
                "precise": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        (self.workdir / "log.config.yaml").write_text(json.dumps(self._log_config(), indent=2))
        key = self.workdir / "signing.key"
        if not key.exists():
            key.write_text(_signing_key_line())
            key.chmod(0o600)

    # ------------------------------------------------------------------- clients

    def _url(self, path: str) -> str:
        if not self.base_url:
            raise RuntimeError("Synapse is not started")
        return self.base_url + path

    async def register(self, username: str, password: str = "pw") -> tuple[str, str, str]:
        """Register a user via the client API (m.login.dummy).

        Returns ``(user_id, access_token, device_id)``.
        """
        url = self._url("/_matrix/client/v3/register")
        body: dict[str, Any] = {"username": username, "password": password}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body) as resp:
                data = await resp.json()
            if resp.status == 401 and "session" in data:
                body["auth"] = {"type": "m.login.dummy", "session": data["session"]}
                async with http.post(url, json=body) as resp:
                    data = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"registering {username!r} failed: HTTP {resp.status} {data}")
        return data["user_id"], data["access_token"], data["device_id"]

    async def register_admin(
        self, username: str, password: str = "pw", *, admin: bool = True
    ) -> tuple[str, str, str]:
        """Register a (server admin) user via the shared-secret admin API."""
        url = self._url("/_synapse/admin/v1/register")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                nonce = (await resp.json())["nonce"]
            mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(
                b"\x00".join(
                    [
                        nonce.encode(),
                        username.encode(),
                        password.encode(),
                        b"admin" if admin else b"notadmin",
                    ]
                )
            )
            body = {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            async with http.post(url, json=body) as resp:
                data = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"admin registration of {username!r} failed: {data}")
        return data["user_id"], data["access_token"], data["device_id"]

    async def admin_token(self) -> str:
        """Access token of a server admin (registered on first use)."""
        if self._admin is None:
            self._admin = await self.register_admin("harness-admin-" + _secret(6).lower())
        return self._admin[1]

    async def set_user_ratelimit(
        self, user_id: str, messages_per_second: int = 1, burst_count: int = 1
    ) -> None:
        """Override the event-sending rate limit of one user (admin API).

        ``messages_per_second`` and ``burst_count`` must be ints; 0/0 disables
        rate limiting for that user. See ``clear_user_ratelimit`` to undo.
        """
        await self._admin_request(
            "POST",
            f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit",
            {"messages_per_second": messages_per_second, "burst_count": burst_count},
        )

    async def clear_user_ratelimit(self, user_id: str) -> None:
        """Remove a per-user override: the server's rc_message applies again."""
        await self._admin_request(
            "DELETE", f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit", None
        )

    async def _admin_request(self, method: str, path: str, body: Any) -> Any:
        token = await self.admin_token()
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                self._url(path),
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path} failed: HTTP {resp.status} {data}")
            return data

    async def nio_client(
        self, username: str, password: str = "pw", *, config: nio.AsyncClientConfig | None = None
    ) -> nio.AsyncClient:
        """Register ``username`` and return a logged-in ``nio.AsyncClient``.

        The caller must ``await client.close()``.
        """
        import nio

        user_id, token, device_id = await self.register(username, password)
        client = nio.AsyncClient(self.base_url, user_id, device_id=device_id, config=config)
        client.restore_login(user_id, device_id, token)
        return client


if __name__ == "__main__":  # manual smoke test: python tests/support/synapse_harness.py [workdir]
    import asyncio
    import tempfile

    wd = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="synapse-"))
    t0 = time.monotonic()
    with Synapse(wd) as hs:
        print(f"Synapse up at {hs.base_url} in {time.monotonic() - t0:.1f}s (workdir {wd})")
        print(asyncio.run(hs.register("smoke")))
