"""Options shared by every ``havainto`` command module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HAVAINTO_CONFIG",
        help="TOML config file.",
        exists=True,
        dir_okay=False,
    ),
]
