"""The ``havainto`` Typer app, assembled from the command modules of ``bot.cli``.

The order here is the order of ``havainto --help``: commands first, then groups.
"""

from __future__ import annotations

import sys

import typer

from bot.cli import datacare, digests, knowledge, people, run
from bot.config_errors import ConfigError

# Expected errors (a config error, a missing database, a wrong option) are a short
# message and exit status 2 (bot.cli.common.fail). What is left is a bug: a plain
# Python traceback, never Rich's page of source lines and local variables (which
# could show a token).
app = typer.Typer(
    help="Havainto: observations from street work to decision makers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command("run")(run.run)
app.command("health")(run.health)
app.command("export")(datacare.export)
app.command("audit")(datacare.audit_command)

app.add_typer(datacare.report_app, name="report")
app.add_typer(run.db_app, name="db")
app.add_typer(people.invite_app, name="invite")
app.add_typer(datacare.teams_app, name="teams")
app.add_typer(people.people_app, name="people")
app.add_typer(datacare.retention_app, name="retention")
app.add_typer(digests.digest_app, name="digest")
app.add_typer(knowledge.phenomenon_app, name="phenomenon")
app.add_typer(knowledge.proposal_app, name="proposal")


def main() -> None:
    try:
        app()
    except ConfigError as error:  # a command that read the config without common.load
        for line in str(error).splitlines():
            print(line if line.startswith(" ") else f"error: {line}", file=sys.stderr)
        sys.exit(2)
