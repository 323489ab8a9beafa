"""What the identifier guard costs per worker text: ``find_identifiers`` now and before.

Every text a worker types passes ``flows.privacy.find_identifiers`` once where it enters.
This measures its CPU time on texts of about 190 characters made from the observation
corpora in tests/data/identifiers (clean ones, and labelled ones with names, addresses and
other identifiers), against the detector of an earlier revision (``git show
REV:flows/privacy.py``, loaded as a module of its own) in the same process, the two
interleaved batch by batch so that a busy machine slows both alike. Times are CPU time
(``time.thread_time``), medians per text over the batches.

    .venv/bin/python -m bench.identifier_cost                   # against origin of this branch
    .venv/bin/python -m bench.identifier_cost --baseline main --rounds 200

"Cold" clears the name caches before every text (each word looked up afresh); "warm" is
the steady state of a running bot, where common words are cached.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "identifiers"
TARGET = 190
MARK_RE = re.compile(r"\[\[\w+:(.+?)\]\]")


def texts() -> tuple[list[str], list[str]]:
    """(clean, with identifiers): corpus lines joined to about 190 characters each."""

    def lines(name: str) -> list[str]:
        raw = (DATA / name).read_text(encoding="utf-8").splitlines()
        return [MARK_RE.sub(r"\1", line) for line in raw if line and line[0] != "#"]

    def joined(source: list[str]) -> list[str]:
        out, current = [], ""
        for line in source:
            current = f"{current} {line}".strip()
            if len(current) >= TARGET:
                out.append(current[:TARGET])
                current = ""
        return out

    clean = joined(lines("clean_fi.txt") + lines("clean_sv.txt"))
    return clean, joined(lines("labelled.txt"))


def baseline_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:flows/privacy.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_privacy.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("baseline_privacy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_privacy"] = module
    spec.loader.exec_module(module)
    return module


def per_text_cpu(
    find: Callable[[str], object], batch: list[str], cold: Callable[[], None]
) -> float:
    start = time.thread_time()
    for text in batch:
        cold()
        find(text)
    return (time.thread_time() - start) / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", default="c6e42d6", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()

    from flows import privacy, privacy_words

    before = baseline_module(args.baseline)

    def clear() -> None:
        privacy_words.name_bases.cache_clear()
        privacy_words._lookup.cache_clear()

    def nothing() -> None:
        return None

    clean, labelled = texts()
    for sample in (clean, labelled):  # warm up both (phonenumbers metadata, the name list)
        for text in sample:
            before.find_identifiers(text)
            privacy.find_identifiers(text)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"load average at start: {load}; {args.rounds} rounds, baseline {args.baseline}\n")
    print("| texts | n | mean length | before (µs) | now, warm (µs) | now, cold (µs) |")
    print("|---|---|---|---|---|---|")
    for label, sample in (("clean observations", clean), ("with identifiers", labelled)):
        old, warm, cold = [], [], []
        for _ in range(args.rounds):
            cold.append(per_text_cpu(privacy.find_identifiers, sample, clear))
            per_text_cpu(privacy.find_identifiers, sample, nothing)  # warm the caches again
            warm.append(per_text_cpu(privacy.find_identifiers, sample, nothing))
            old.append(per_text_cpu(before.find_identifiers, sample, nothing))
        mean_length = statistics.mean(map(len, sample))
        print(
            f"| {label} | {len(sample)} | {mean_length:.0f} "
            f"| {statistics.median(old) * 1e6:.0f} | {statistics.median(warm) * 1e6:.0f} "
            f"| {statistics.median(cold) * 1e6:.0f} |"
        )


if __name__ == "__main__":
    main()
