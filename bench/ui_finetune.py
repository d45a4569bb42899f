"""The Fine-tune page with the real SmolLM2-135M: build data, train a few steps, evaluate, hand to Chat.

    python bench/ui_finetune.py                       # 3 steps, 3 test questions, the shipped corpus's index
    python bench/ui_finetune.py --steps 10 --questions 10

Drives the page's own code (streamlit's AppTest, the same session logic the browser gets) over the shipped
corpus's index, and prints what the page showed at each stage with wall-clock times. Not a test: a smoke run
of the real model, sized by the flags (the browser test does the same with a tiny random model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run_page(at, timeout: float) -> None:
    from ragtune.api import jobs

    at.run()
    deadline = time.monotonic() + timeout
    for job in jobs.all_jobs():
        job.wait(max(0.0, deadline - time.monotonic()))
    at.run()


def click(at, label: str):
    next(b for b in at.button if b.label == label).click()
    return at


def table(at, index: int = -1) -> str:
    return at.table[index].value.to_string() if at.table else "(no table)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--home", type=Path, default=None,
                        help="working folder; training data already built there (training-data/) is reused")
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    from ragtune.api import corpus_index

    index = corpus_index()
    home = args.home or Path(tempfile.mkdtemp(prefix="ragtune-ui-finetune-"))
    os.environ.update({"RAGTUNE_INDEX": str(index.root), "RAGTUNE_ADAPTERS": str(home / "adapters"),
                       "RAGTUNE_UPLOADS": str(home / "uploads")})
    index.close()
    at = AppTest.from_string("from ragtune.ui import finetune\nfinetune.render()\n", default_timeout=args.timeout)
    run_page(at, args.timeout)
    figures: dict[str, float] = {}

    if not (home / "training-data" / "train.jsonl").exists():
        started = time.perf_counter()
        run_page(click(at, "Build training data from the index").run(), args.timeout)
        figures["data_s"] = time.perf_counter() - started
        print(f"training data ({figures['data_s']:.1f} s):\n{table(at, 0)}\n", flush=True)

    at.text_input[0].set_value("smollm2-smoke")
    next(n for n in at.number_input if n.label.startswith("At most")).set_value(args.steps)
    started = time.perf_counter()
    run_page(click(at, "Start training").run(), args.timeout)
    figures["train_s"] = time.perf_counter() - started
    print(f"training ({figures['train_s']:.1f} s): {[s.value for s in at.success]} {[e.value for e in at.error]}")
    print(f"{table(at)}\nloss chart shown: {bool(at.get('vega_lite_chart'))}\n", flush=True)
    if at.error:
        return 1

    next(n for n in at.number_input if n.label.startswith("Test questions")).set_value(args.questions)
    started = time.perf_counter()
    run_page(click(at, "Evaluate: base vs base + adapter").run(), args.timeout)
    figures["evaluate_s"] = time.perf_counter() - started
    print(f"evaluation ({figures['evaluate_s']:.1f} s): {[e.value for e in at.error]}\n{table(at)}", flush=True)
    print("warnings:", [w.value for w in at.warning])

    click(at, "Use this adapter in Chat").run()
    print("chat now uses:", at.session_state["choice:generator"], at.session_state["choice:adapter"])
    print(json.dumps({k: round(v, 1) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
