"""``ragtune tune embedder``: fine-tune the embedding model on an index's own chunks (no labels).

    ragtune tune embedder --index .ragtune/index --out models/my-embedder            # inverse-cloze pairs
    ragtune tune embedder --index DIR --out models/e --generator local --reembed     # generated questions,
                                                                                     # then re-embed DIR
    ragtune index add docs/ --index NEW --embedder models/my-embedder                # a new index with it

The ``tune`` group (ragtune/commands/tune.py) registers this verb when the module is present.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ragtune.commands.common import add_index_option, add_json_option, index_path, print_json


def register(tune_subparsers: argparse._SubParsersAction) -> None:
    p = tune_subparsers.add_parser(
        "embedder", help="fine-tune the embedding model on the index's own chunks (no labels needed)",
        description="Build (query, passage) pairs from the index's chunks -- questions written by a generator "
        "with --generator, inverse-cloze pairs otherwise -- and train the sentence-transformers model with "
        "MultipleNegativesRankingLoss. Writes a model directory (weights + ragtune_embedder.json) that "
        "--embedder DIR can name; --reembed also switches this index to it (crash-safe).",
    )
    add_index_option(p)
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="the model directory to write")
    p.add_argument("--steps", type=int, metavar="N", help="training steps (default 40: ~10 minutes on a 2-core CPU)")
    p.add_argument("--batch-size", type=int, metavar="N", help="pairs per step (default 32; in-batch negatives)")
    p.add_argument("--generator", choices=("local", "api"), default=None,
                   help="write questions with this generator (default: none, inverse-cloze pairs)")
    p.add_argument("--reembed", action="store_true", help="re-embed the index with the tuned model afterwards")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_option(p)
    p.set_defaults(func=cmd_embedder)


def cmd_embedder(args) -> int:
    from ragtune.progress import terminal_progress
    from ragtune.rag.index import Index
    from ragtune.tune.embedder import reembed_index, tune_embedder

    index = Index.open(index_path(args))
    config = {"batch_size": args.batch_size} if args.batch_size else None
    with terminal_progress(force=False if (args.no_progress or args.json) else None) as bar:
        result = tune_embedder(index, args.out, steps=args.steps, generator=args.generator, config=config,
                               progress=bar)
        if args.reembed:
            index = reembed_index(index, result.out, progress=bar)
    out = {**result.to_dict(), "reembedded": str(index.root) if args.reembed else None}
    if args.json:
        print_json(out)
        return 0
    before, after = result.metrics.get("before", {}), result.metrics.get("after", {})
    print(f"tuned embedder written to {result.out}: {result.pairs} pairs, {result.steps} steps, "
          f"{result.train_seconds:.0f} s, peak memory {result.peak_memory_mb:.0f} MB")
    if before and after:
        print(f"held-out pairs ({result.metrics['heldout_pairs']}): top-1 {before['accuracy@1']:.3f} -> "
              f"{after['accuracy@1']:.3f}, MRR {before['mrr']:.3f} -> {after['mrr']:.3f}")
    if args.reembed:
        print(f"index {index.root} re-embedded with {result.out.name}")
    else:
        print(f"use it: ragtune tune embedder ... --reembed, or ragtune index add PATH --index NEW "
              f"--embedder {result.out}", file=sys.stderr)
    return 0
