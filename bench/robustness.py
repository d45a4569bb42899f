"""The issue-14 battery at full size: how many bad inputs, faults and concurrent trials ran, and how many
lost, corrupted or crashed anything. Target: zero, on every run.

    python bench/robustness.py                 # ~10 minutes on 2 cores
    python bench/robustness.py --quick         # the suite's sizes (a few minutes)

The trials are the functions in ``tests/robustness/battery.py`` (the same code the suite asserts on),
run here with more kills, more publishes and the full 10,000 tiny files. Definitions of lost, corrupted
and crashed are in that module's docstring. Exit status 1 if any trial lost, corrupted or crashed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "robustness"), str(ROOT / "tests" / "rag")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test suite's sizes")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILL trials (default 50)")
    parser.add_argument("--tiny", type=int, default=10_000, help="tiny files in one add (default 10,000)")
    parser.add_argument("--publishes", type=int, default=40, help="publishes under 8 sharing threads (default 40)")
    parser.add_argument("--writer-pairs", type=int, default=5, help="two-writer trials (default 5)")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.tiny, args.publishes, args.writer_pairs = 20, 2000, 10, 2

    import battery

    runs = [
        ("bad files", lambda tmp: battery.bad_files(tmp)),
        ("tiny files", lambda tmp: battery.tiny_files(tmp, args.tiny)),
        ("bad queries", lambda tmp: battery.bad_queries(battery.new_index(tmp / "q"))),
        ("kills", lambda tmp: battery.kill_trials(tmp, args.kills, seed=int(time.time()))),
        ("disk full (tmpfs)", lambda tmp: battery.disk_full_tmpfs(tmp)),
        ("disk full (injected)", lambda tmp: battery.disk_full_injected(tmp)),
        ("shared readers", lambda tmp: battery.concurrent_readers(tmp, args.publishes)),
        ("two writers", lambda tmp: battery.two_writers(tmp, args.writer_pairs)),
    ]
    tallies = []
    for name, run in runs:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ragtune-robust-") as tmp:
            tally = run(Path(tmp))
        if tally is None:
            print(f"{name:<22} skipped (cannot mount a tmpfs: not root)", flush=True)
            continue
        tallies.append(tally)
        print(f"{tally.line()}   ({time.perf_counter() - t0:.0f} s)", flush=True)
        for note in tally.notes[:5]:
            print(f"    {note}", flush=True)
    bad = sum(t.lost + t.corrupted + t.crashed for t in tallies)
    print(f"\ntotal: {sum(t.trials for t in tallies)} trials; "
          f"{sum(t.lost for t in tallies)} lost, {sum(t.corrupted for t in tallies)} corrupted, "
          f"{sum(t.crashed for t in tallies)} crashed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
