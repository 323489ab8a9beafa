"""The ``havainto`` command line (Typer).

    havainto run [-c config.toml]                       start the bot
    havainto invite --team T --role worker [--expires 7d]  print an invite code
    havainto invite list | revoke CODE                  manage invite codes
    havainto export --format FORMAT [...]               observations in comparable codes
    havainto report --region R --period 2026-H2 ...     the printable social report
    havainto report notes --region R --period P --file F  its conclusions
    havainto audit | teams list | people list|revoke    data care and administration
    havainto db upgrade                                 migrate the database
    havainto digest weekly --team T [--week W] [--send]  print (or deliver) a weekly digest
    havainto digest monthly [--region R] [--month M] [--send]  the monthly summary
    havainto health [-c ...] [--url URL]                health report as JSON (exit 1: unhealthy)

The config file may also be given as HAVAINTO_CONFIG.

The commands live by area: ``run`` (running the bot, ``health``, ``db upgrade``),
``people`` (people and invites), ``datacare`` (export, report, audit, teams,
retention) and ``digests``; ``common`` holds what they share and ``app`` puts them
together. Commands import the heavy parts of the bot inside their bodies, so that
``havainto --help`` starts fast.
"""

from __future__ import annotations

from bot.cli.app import app, main

__all__ = ["app", "main"]
