"""``ragtune search "query"``: ranked chunks, with every retriever's score in --json."""

from __future__ import annotations

import textwrap

from ragtune.commands.common import add_index_option, add_json_option, open_index, parse_filters, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="search the index (hybrid dense + BM25 by default)",
        description="Return the chunks that best match QUERY. --json shows, for each hit, the dense "
        "(cosine) score, the BM25 score, each retriever's rank and the fused score.",
    )
    p.add_argument("query")
    add_index_option(p)
    p.add_argument("--k", type=int, default=5, help="number of results (default 5)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retriever (default: the index's, hybrid)")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="source=GLOB, file_type=pdf, page=3, section=..., or any metadata key (repeatable)")
    p.add_argument("--rerank", metavar="DIR", help="rerank with a local cross-encoder model directory")
    p.add_argument("--mmr", action="store_true", help="diversify results (maximal marginal relevance)")
    add_json_option(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    index = open_index(args)
    options = {"mmr": True} if args.mmr else {}
    if args.rerank:
        options["rerank"] = args.rerank
    hits = index.search(args.query, k=args.k, filters=parse_filters(args.filter), mode=args.mode, **options)
    if args.json:
        print_json({"query": args.query, "mode": args.mode or index.config.retrieval.mode,
                    "hits": [h.to_dict() for h in hits]})
        return 0
    if not hits:
        print("no results")
        return 0
    for rank, hit in enumerate(hits, 1):
        where = hit.source + (f", page {hit.page}" if hit.page else "") + (f", \u00a7 {hit.section}" if hit.section else "")
        print(f"[{rank}] {hit.score:.4f}  {where}")
        print(textwrap.indent(textwrap.shorten(hit.text.replace("\n", " "), 300), "    "))
    return 0
