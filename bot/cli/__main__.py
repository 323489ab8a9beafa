"""``python -m bot.cli``: the same as the ``havainto`` command."""

from bot.cli.app import main

main()
