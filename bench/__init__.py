"""Benchmarks at national scale (issue 6): run each with ``python -m bench.<name>``.

``bench.generate`` builds the synthetic data set, ``bench.capture_load`` drives
the real Telegram runtime with simulated workers, ``bench.digests_scale`` times
the digest engine on 100,000 and 1,000,000 observations and ``bench.export_scale``
streams them to CSV. See ``bench/README.md`` for the commands and
``bench/RESULTS.md`` for the figures of one full run. None of them is a test:
``tests/test_bench_smoke.py`` only checks that each runs at a small size.
"""
