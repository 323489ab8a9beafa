"""What the tests share: fake servers, harnesses, drivers and small helpers.

- ``fake_telegram``: a fake Telegram Bot API server over HTTP on 127.0.0.1;
- ``synapse_harness``: a real Matrix homeserver (Synapse) for the session;
- ``telegram``: the Telegram config section built from the fake server;
- ``db``: counting rows;
- ``telegram_helpers``, ``escalation_helpers``: drivers of the real bot on the fake;
- ``datacare_helpers``: seed data for exports, reports, retention and administration;
- ``fuzz``: the random update generators of the fuzz tests;
- ``bot_process``, ``delivery_process``, ``instance_process``: bots in processes of
  their own (the last two are started as ``python -m tests.support.<name>``).
"""
