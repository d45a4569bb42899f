"""Human-written development questions, asked through the RAG pipeline: checkpoint selection on what is reported.

The figure an adapter is judged by (``bench/tune_quality.py --sections heldout``) is answer F1 on human-written
questions (``corpora/qa.jsonl``: question, answer, source) asked through ``RAG`` over the index: hybrid retrieval,
k = 5, the abstention gates, ``build_prompt``, citation filtering and the grounding check. Template-built validation
prompts did not rank adapters as that figure does (BENCHMARKS.md, "Fine-tuning": four adapters in the reverse
order). So ``ragtune tune data --questions FILE`` stores, for each question whose gold file is a *validation*
document, a ``kind: "question"`` validation record holding the hits the pipeline retrieved for it and the exact
prompt it built from them. Training's ``select_by: answer_f1`` then asks those questions again through ``RAG``,
replaying the stored hits (:class:`StoredHits`), so everything after retrieval runs the same code as the bench.

Questions whose gold file is a test document are skipped before anything is retrieved for them (the test split
stays held out); those of training documents are skipped too (the adapter trained on their passages).

    >>> records, counts = question_records(index, "corpora/qa.jsonl", split_of, generator)   # doctest: +SKIP
    >>> counts                                                                                # doctest: +SKIP
    {'validation': 12, 'skipped_test': 18, 'skipped_train': 56, 'skipped_unknown': 0, 'gated': 1}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ragtune.errors import TrainingDataError

from .data import Record, json_lines, read_text

QUESTION_KIND = "question"  # meta["kind"] of these records
# The answer length the held-out bench decodes with (bench/tune_quality.py --max-new-tokens): the prompt's
# token budget (build_prompt) reserves this much, so the stored prompt is the one the bench builds.
MAX_NEW_TOKENS = 48


def is_question(record: Record) -> bool:
    return record.meta.get("kind") == QUESTION_KIND


def load_questions(path: str | Path) -> list[dict]:
    """The question/answer/source objects of a QA JSONL file; every bad line is reported as ``file:line``."""
    path = Path(path)
    try:
        text = read_text(path)
    except OSError as e:
        raise TrainingDataError(f"questions file {path}: cannot read it ({e.strerror or e})") from None
    items, problems = [], []
    for where, obj, error in json_lines(path, text):
        if error is not None:
            problems.append(f"{where}: {error}")
            continue
        bad = [key for key in ("question", "answer", "source")
               if not isinstance(obj, dict) or not isinstance(obj.get(key), str) or not obj[key].strip()]
        if bad:
            problems.append(f"{where}: needs non-empty strings 'question', 'answer' and 'source' "
                            f"(missing or empty: {', '.join(bad)})")
            continue
        items.append(obj)
    if problems:
        raise TrainingDataError(f"{len(problems)} bad question(s), nothing was written:\n  " + "\n  ".join(problems[:20]))
    if not items:
        raise TrainingDataError(f"questions file {path} holds no questions; expected JSON lines with question, "
                                "answer and source")
    return items


def question_records(index: Any, path: str | Path, split_of: dict[str, str], generator: Any, *, k: int = 5,
                     max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[list[Record], dict[str, int]]:
    """Validation records for the questions of ``path`` whose source is a validation document, and counts.

    ``split_of`` maps file names to splits (:func:`ragtune.tune.synth.split_sources`); ``generator`` is the model
    the prompts are built for (its tokenizer and context window decide what fits, as at answer time).
    """
    from ragtune.rag.answer import RAG
    from ragtune.rag.prompt import SYSTEM_PROMPT, format_user_message

    rag = RAG(index, generator, k=k, max_new_tokens=max_new_tokens, attribute=False)
    counts = {"validation": 0, "skipped_test": 0, "skipped_train": 0, "skipped_unknown": 0, "gated": 0}
    records = []
    for item in load_questions(path):
        source = os.path.basename(item["source"])
        split = split_of.get(source)
        if split != "validation":  # checked before retrieval: test questions are never asked here
            counts[{"test": "skipped_test", "train": "skipped_train"}.get(split, "skipped_unknown")] += 1
            continue
        stream = rag.stream(item["question"])  # retrieval and prompt only; generation would start on iteration
        hits, prompt = stream.hits, stream.prompt
        if prompt is not None:
            messages = [dict(m) for m in prompt.messages]
            shown = [s.hit for s in prompt.sources]
        else:  # the gates abstain without asking the model; the record still shows what was retrieved
            counts["gated"] += 1
            messages = [{"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": format_user_message(item["question"], [(h, h.text.strip()) for h in hits])}]
            shown = hits
        marker = next((n for n, h in enumerate(shown, start=1) if os.path.basename(h.source) == source), None)
        reply = item["answer"] + (f" [{marker}]" if marker else "")
        records.append(Record(
            messages=messages + [{"role": "assistant", "content": reply}], split="validation",
            meta={"kind": QUESTION_KIND, "question": item["question"], "answer": item["answer"], "source": source,
                  "k": k, "hits": [h.to_dict() for h in hits], "gated": prompt is None}))
        counts["validation"] += 1
    return records, counts


class StoredHits:
    """A searcher that returns the hits stored in a question record, whatever the query: RAG over it replays
    the pipeline from retrieval on. It has no length, so RAG does not take it for an empty index."""

    def __init__(self, hits: list[dict]):
        from ragtune.rag.types import Chunk, Hit

        self.hits = [Hit(chunk=Chunk(id=h["chunk_id"], text=h["text"], source=h["source"], page=h.get("page"),
                                     section=h.get("section"), metadata=dict(h.get("metadata") or {})),
                         score=h["score"], scores=dict(h.get("scores") or {}), ranks=dict(h.get("ranks") or {}))
                     for h in hits]

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None) -> list:
        return list(self.hits[:k])


def ask_stored(generator: Any, record: Record, max_new_tokens: int = MAX_NEW_TOKENS):
    """The :class:`~ragtune.rag.types.Answer` RAG gives to a question record, with the same settings as the
    held-out bench (k as stored, abstention gates and grounding on, attribution off)."""
    from ragtune.rag.answer import RAG

    rag = RAG(StoredHits(record.meta["hits"]), generator, k=record.meta.get("k", 5), max_new_tokens=max_new_tokens,
              attribute=False)
    return rag.ask(record.meta["question"])
