"""Digests: reporting periods, the digest rules, digest figures as data, and their renderings.

Pure: no database, chat library or event loop. The figures come from
``storage.digest_queries`` (``weekly_digest_data``, ``monthly_summary_data``)
and ``storage.report_queries``; what a digest shows of them (rising themes,
which quotes, ranking and grouping) is decided once, in ``digests.rules``,
for the weekly digest, the monthly summary and the social report alike. The
delivery side renders them with ``render_weekly``/``render_monthly`` (or
``digests.report``) in a process pool and splits the text with
``bot.transports.base.split_text``.

Import from the modules (``digests.model``, ``digests.periods``, ``digests.rules``,
``digests.render``...): the package re-exports nothing, so importing it or its data
modules loads no drawing library. matplotlib and Pillow are imported by
``digests.charts`` and the chart functions of ``digests.report``, WeasyPrint by
``render_pdf``, only when something is drawn.
"""
