"""Answer quality of the RAFT adapter vs the base SmolLM2, both with retrieval, on documents it never trained on.

    python bench/tune_quality.py --adapter runs/smollm2-raft/adapter --data data.jsonl --index IDX \
        [--unseen-index DIR --unseen-qa FILE --unseen-unanswerable FILE] [--out bench/out/tune-quality.json]

Sections (each written to ``--out`` as soon as it is done, since CPU generation is slow):
  heldout   corpora/qa.jsonl questions whose gold file is a test document of ``--data`` + corpora/unanswerable.jsonl,
            through the full RAG pipeline (k=5, ragtune's abstention gates on, attribution off)
  split     the test split of ``--data`` with the sources it was built with (gold among distractors, or none)
  unseen    another document set with its own index and questions (e.g. the answers bench's realdocs)
Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--index", required=True, help="index of corpora/")
    ap.add_argument("--split-limit", type=int, default=12)
    ap.add_argument("--unseen-index")
    ap.add_argument("--unseen-qa")
    ap.add_argument("--unseen-unanswerable")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--adapter-scales", type=float, nargs="+", default=[1.0], metavar="X",
                    help="adapter strengths scored in the same run: the first gives the 'adapter' rows, the others "
                         "'adapter@X' rows (default 1)")
    ap.add_argument("--check-adapter", action="store_true",
                    help="also 'adapter+check' rows: the adapter's answers checked by the extractive reader, the base "
                         "model answering where it disagrees (RAG's fallback)")
    ap.add_argument("--sections", default="heldout,unseen,split",
                    help="comma-separated sections to run, in this order (default heldout,unseen,split)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "tune-quality.json"))
    ap.add_argument("--answers", metavar="DIR",
                    help="also write every answer of each section to DIR/SECTION.jsonl (tune eval --answers)")
    args = ap.parse_args()

    from ragtune.rag.index import Index
    from ragtune.tune.data import load_records
    from ragtune.tune.evaluate import evaluate_adapter

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    test_docs = sorted({r.meta.get("source") for r in load_records(args.data) if r.split == "test"} - {None})

    def save(name: str, report: dict, started: float) -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = report
        out.write_text(json.dumps(results, indent=2))
        print(name, json.dumps(report, indent=1), flush=True)

    scales = {"adapter_scale": args.adapter_scales[0], "also_scales": args.adapter_scales[1:],
              "check_adapter": args.check_adapter}

    def answers(section: str) -> dict:
        return {"answers": Path(args.answers) / f"{section}.jsonl"} if args.answers else {}

    runs = {
        "heldout": lambda: evaluate_adapter(
            args.adapter, index=Index.open(args.index), qa=ROOT / "corpora" / "qa.jsonl",
            unanswerable=ROOT / "corpora" / "unanswerable.jsonl", qa_sources=test_docs, limit=None,
            without_retrieval=False, max_new_tokens=args.max_new_tokens, **scales, **answers("heldout")),
        "split": lambda: evaluate_adapter(args.adapter, data=args.data, limit=args.split_limit,
                                          without_retrieval=False, max_new_tokens=args.max_new_tokens, **scales,
                                          **answers("split")),
        "unseen": lambda: evaluate_adapter(
            args.adapter, index=Index.open(args.unseen_index), qa=args.unseen_qa, unanswerable=args.unseen_unanswerable,
            limit=None, without_retrieval=False, max_new_tokens=args.max_new_tokens, **scales, **answers("unseen")),
    }
    for name in [s.strip() for s in args.sections.split(",") if s.strip()]:
        if name not in runs:
            ap.error(f"--sections: unknown section {name!r}; choose from {', '.join(runs)}")
        if name == "unseen" and not (args.unseen_index and args.unseen_qa):
            print("unseen: skipped (give --unseen-index and --unseen-qa)")
            continue
        t = time.perf_counter()
        save(name, runs[name](), t)

if __name__ == "__main__":
    main()
