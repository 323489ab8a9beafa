"""A renderer that says where it ran, for tests that check digests render off the loop.

The digest desk renders in a separate process (``bot.delivery.render_off_loop``), so the
probe must be importable there by name (a function local to a test cannot be pickled). It
records the process and thread it ran in to a file named after the process that started
the rendering process, which the test reads back."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from digests import render


def probe_file(parent_pid: int) -> Path:
    return Path(tempfile.gettempdir(), f"havainto-render-probe-{parent_pid}")


def render_monthly(*args: Any, **kwargs: Any) -> Any:
    with probe_file(os.getppid()).open("a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {threading.get_ident()}\n")
    return render.render_monthly(*args, **kwargs)


def where_rendered(parent_pid: int) -> list[tuple[int, int]]:
    path = probe_file(parent_pid)
    if not path.exists():
        return []
    return [
        (int(pid), int(thread))
        for pid, thread in (line.split() for line in path.read_text().splitlines())
    ]
