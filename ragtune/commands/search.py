"""``ragtune search "query"``: ranked chunks, each with its rank and which retrievers found it."""

from __future__ import annotations

import textwrap

from ragtune.errors import ConfigError
from ragtune.commands.common import (
    NO_INDEX_BEHAVIOUR,
    add_json_option,
    add_retrieval_options,
    index_or_corpus,
    note_unknown_filter_keys,
    print_json,
    retrieval_options,
    warm_embedder,
)

DESCRIPTION = """Return the chunks that best match QUERY, best first.

Each hit shows its rank, the fused score and, per retriever, the rank it gave the chunk and its own
score: dense (cosine similarity of embeddings, -1..1) and bm25 (keyword score, unbounded). A hit found
by only one retriever was missed by the other. --json prints all of it for scripts.

""" + NO_INDEX_BEHAVIOUR

EXAMPLES = """examples:
  ragtune search "LoRA rank and alpha"
  ragtune search "QLoRA NormalFloat" --k 3 --mode bm25 --filter file_type=pdf --json"""


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="search the index (hybrid dense + BM25 by default)", description=DESCRIPTION,
        epilog=EXAMPLES, formatter_class=_raw(),
    )
    p.add_argument("query", help="what to look for")
    p.add_argument("--index", metavar="DIR", default=None, help="the index to search (see above)")
    p.add_argument("--all-copies", action="store_true",
                   help="list a passage once per file that holds it (by default copies of a document under "
                        "other names are shown once, with 'also in:' naming the other files)")
    add_retrieval_options(p)
    add_json_option(p)
    p.set_defaults(func=cmd_search)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def cmd_search(args) -> int:
    filters, options = retrieval_options(args)
    if not args.query.strip():  # refused before the index and the embedding model load
        raise ConfigError("the query is empty; ask something")
    index, _ = index_or_corpus(args.index)
    if args.mode != "bm25":
        warm_embedder(index)
    hits = index.search(args.query, k=args.k, filters=filters, mode=args.mode, distinct=not args.all_copies,
                        **options)
    if not hits:
        note_unknown_filter_keys(index, filters)
    if args.json:
        print_json({"query": args.query, "mode": args.mode or index.config.retrieval.mode,
                    "hits": [h.to_dict() for h in hits]})
        return 0
    if not hits:
        print("no results")
        return 0
    for rank, hit in enumerate(hits, 1):
        where = hit.source + (f", page {hit.page}" if hit.page else "") + (f", section {hit.section!r}" if hit.section else "")
        print(f"[{rank}] {where}")
        print(f"    {explain_scores(hit)}")
        if hit.also_in:
            print(f"    also in: {', '.join(hit.also_in)}")
        print(textwrap.indent(textwrap.shorten(hit.text.replace("\n", " "), 300), "    "))
    return 0


def explain_scores(hit) -> str:
    """``score 0.0325 (rrf); dense: rank 1, cosine 0.71; bm25: rank 3, score 12.3``: why a hit is where it is."""
    kind = next((k for k in ("rerank", "rrf", "dense", "bm25") if k in hit.scores), "score")
    parts = [f"score {hit.score:.4f} ({kind})"]
    for name, label in (("dense", "cosine"), ("bm25", "score")):
        if name in hit.ranks or name in hit.scores:
            rank = f"rank {hit.ranks[name]}" if name in hit.ranks else "not ranked"
            value = f", {label} {hit.scores[name]:.3f}" if name in hit.scores else ""
            parts.append(f"{name}: {rank}{value}")
        elif kind == "rrf":
            parts.append(f"{name}: not found")
    return "; ".join(parts)
