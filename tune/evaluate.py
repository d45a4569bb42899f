"""Does the adapter help? Base model vs adapter, each with and without retrieval, on held-out questions.

Two question sets:

- the **test split** of a ``ragtune tune data`` file (questions from documents the adapter never trained on), each
  asked with the sources it was built with (gold chunk among distractors, or no gold chunk: must abstain);
- a **QA file** (``corpora/qa.jsonl`` style: question, answer, source) asked through the full RAG pipeline over an
  index, plus an unanswerable file; with ``data`` given, only questions whose source is a test document are used.

Figures per configuration: answer token F1 and exact match, gold-fact rate (the gold answer appears in the
answer as a run of whole words), all three after :func:`ragtune.rag.text.normalize_answer` as the answers
bench scores; citation precision (share of the ``[n]`` markers the model wrote that point at the gold
source; no attribution is added), abstention on answerable and unanswerable
questions, and validation perplexity (answer tokens of the validation split). A regression -- the adapter worse
than the base model on a headline figure -- is listed in ``regressions``. With ``answers`` given, every answer
is also written there (JSON lines: section, configuration, question, gold, answer and its scores), so a
regression can be read question by question.

    >>> report = evaluate_adapter("runs/raft/adapter", data="data.jsonl", index=index,
    ...                           qa="corpora/qa.jsonl")                             # doctest: +SKIP
    >>> report["test_split"]["adapter+rag"]["f1"]                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, DatasetError, PromptTooLongError
from ragtune.progress import ProgressFn, emit
from ragtune.rag.text import answer_f1, holds_fact, normalize_answer

from .data import IGNORE, encode_record, load_records
from .questions import is_question

_MARKER_RE = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
HEADLINE = ("f1", "citation_precision", "abstain_unanswerable")


def cited_numbers(text: str) -> list[int]:
    return [int(n) for m in _MARKER_RE.finditer(text) for n in re.split(r"\s*[,;]\s*", m.group(1))]


def is_abstention(text: str) -> bool:
    """An answer that abstains: the abstention anywhere in it (see ``rag.citations.says_abstention``)."""
    from ragtune.rag.citations import says_abstention

    return says_abstention(text)


class Scores:
    """Accumulates per-question outcomes into the figures above."""

    def __init__(self):
        self.f1, self.em, self.fact, self.abst_ans = [], [], [], []
        self.abst_unans: list[bool] = []
        self.cited = self.cited_ok = 0
        self.skipped = 0  # questions whose prompt did not fit the model's window: not scored, counted
        self.rows: list[dict] = []  # one per answer, for ``evaluate_adapter(answers=...)``

    def skip(self, gold: str | None, question: str | None, reason: str) -> None:
        self.skipped += 1
        self.rows.append({"question": question, "gold": gold, "answer": None, "skipped": reason})

    def add(self, prediction: str, gold: str | None, correct_citation, question: str | None = None) -> None:
        abstained = is_abstention(prediction)
        row = {"question": question, "gold": gold, "answer": prediction, "abstained": abstained}
        self.rows.append(row)
        if gold is None:
            self.abst_unans.append(abstained)
            return
        self.abst_ans.append(abstained)
        self.f1.append(answer_f1(prediction, gold))
        self.em.append(float(normalize_answer(prediction) == normalize_answer(gold)))
        self.fact.append(float(holds_fact(prediction, gold)))
        markers = cited_numbers(prediction)
        right = sum(bool(correct_citation(n)) for n in markers)
        self.cited += len(markers)
        self.cited_ok += right
        row.update(f1=round(self.f1[-1], 4), gold_fact=bool(self.fact[-1]), citations=len(markers),
                   citations_right=right)

    def result(self) -> dict:
        mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
        return {"f1": mean(self.f1), "exact_match": mean(self.em), "gold_fact_rate": mean(self.fact),
                "citation_precision": round(self.cited_ok / self.cited, 4) if self.cited else None,
                "citations": self.cited, "abstain_answerable": mean(self.abst_ans),
                "abstain_unanswerable": mean(self.abst_unans), "answerable": len(self.f1),
                "unanswerable": len(self.abst_unans), "skipped_too_long": self.skipped}


def evaluate_adapter(
    adapter: str | Path | None,
    *,
    index: Any = None,
    data: str | Path | None = None,
    qa: str | Path | None = None,
    unanswerable: str | Path | None = None,
    base_model: str | Path | None = None,
    limit: int | None = 60,
    max_new_tokens: int = 64,
    without_retrieval: bool = True,
    qa_sources: list[str] | None = None,
    progress: ProgressFn | None = None,
    adapter_scale: float = 1.0,
    also_scales: Sequence[float] = (),
    answers: str | Path | None = None,
    check_adapter: bool = False,
) -> dict:
    """Figures for base and adapter (``adapter=None``: base only), with and without retrieval; see module doc.

    ``adapter_scale`` is the strength the "adapter" rows use (see ``LocalGenerator.set_adapter_scale``);
    each of ``also_scales`` adds rows "adapter@S", from the same loaded adapter, in the same run.
    ``answers``: a JSON-lines file to write every answer to (replaced whole at the end of the run).
    ``check_adapter``: also rows "adapter+check+rag" for the QA questions: the adapter's answers checked by the
    extractive reader, the base model answering where it disagrees (``RAG(fallback=...)``).
    """
    from ragtune.rag.generators import LocalGenerator

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit (--limit) must be 0 or None (all questions) or a positive number, got {limit!r}")
    if data is None and (qa is None or index is None):
        raise DatasetError("nothing to evaluate on: give data (a `ragtune tune data` file) and/or qa with an index")
    if adapter is not None:
        from ragtune.rag.generators.adapters import check_adapter_dir

        adapter = check_adapter_dir(adapter)  # a run folder is taken for its adapter
    if adapter is not None:
        from .export import base_model_dir

        # The base given, else the recorded one if it is still there, else the shipped model; refused when its
        # fingerprint differs, and without a base given the error says which was tried and why.
        base_model = base_model_dir(adapter, base_model)
    from ragtune.rag.generators.adapters import check_scale

    for s in also_scales:  # before any answer is generated, not after the base rows
        check_scale(s, "also_scales")
    gen = LocalGenerator(base_model, device="cpu" if not _cuda() else None)
    configs: dict[str, float | None] = {"base": None}  # label -> adapter strength (None: adapter off)
    if adapter is not None:
        gen.load_adapter(adapter, name="adapter", scale=adapter_scale)
        configs["adapter"] = adapter_scale
        configs.update({f"adapter@{s:g}": s for s in also_scales if s != adapter_scale})
    checked = {"adapter+check": adapter_scale} if check_adapter and adapter is not None else {}
    report: dict[str, Any] = {"adapter": str(adapter) if adapter else None, "limit": limit,
                              "adapter_scale": adapter_scale if adapter is not None else None}
    rows: list[dict] = []  # every answer, tagged with its section and configuration
    test_sources = None
    if data is not None:
        records = load_records(data)
        test = [r for r in records if r.split == "test" and r.messages][: limit or None]
        test_sources = sorted({r.meta.get("source") for r in records if r.split == "test"} - {None})
        report["test_split"] = _run_records(gen, configs, test, max_new_tokens, progress, without_retrieval,
                                            rows=rows)
        val = [r for r in records if r.split == "validation" and r.messages and not is_question(r)][: limit or None]
        report["validation_perplexity"] = {c: _perplexity(gen, val, configs[c]) for c in configs}
    if qa is not None and index is not None:
        test_sources = qa_sources if qa_sources is not None else test_sources
        # --limit N: N answerable and N unanswerable questions (a cut of both together at 2N dropped every
        # unanswerable one when the QA file had 2N answerable questions).
        items = (_qa_items(qa, test_sources)[: limit or None]
                 + (_qa_items(unanswerable, None)[: limit or None] if unanswerable else []))
        report["qa"] = _run_qa(gen, {**configs, **checked}, index, items, max_new_tokens, progress, without_retrieval,
                               rows=rows, checked=set(checked))
        report["qa"]["sources"] = test_sources or "all"
    report["regressions"] = _regressions(report)
    if answers is not None:
        _write_answers(Path(answers), rows)
        report["answers"] = str(answers)
    return report


def _write_answers(path: Path, rows: list[dict]) -> None:
    """``rows`` as JSON lines, written to a temporary file and renamed: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"answers file {path}: {e}") from None
    os.replace(tmp, path)


def _tagged(scores: Scores, section: str, label: str) -> list[dict]:
    return [{"section": section, "config": label, **row} for row in scores.rows]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _use(gen, scale: float | None) -> None:
    """Answer with the base model (``scale`` None) or with the adapter at strength ``scale``."""
    gen.set_adapter(None if scale is None else "adapter")
    if scale is not None and gen.adapter_scale("adapter") != scale:
        gen.set_adapter_scale("adapter", scale)


def _run_records(gen, configs, records, max_new_tokens, progress, without_retrieval=True, rows=None) -> dict:
    out = {}
    total = len(records) * len(configs) * (2 if without_retrieval else 1)
    done = 0
    for config in configs:
        _use(gen, configs[config])
        for rag in (True, False) if without_retrieval else (True,):
            label = f"{config}{'+rag' if rag else ''}"
            scores = score_records(gen, records, max_new_tokens, rag=rag, progress=progress,
                                   label=label, done=done, total=total)
            out[label] = scores.result()
            if rows is not None:
                rows += _tagged(scores, "test_split", label)
            done += len(records)
    return out


def score_records(gen, records, max_new_tokens: int, *, rag: bool = True, progress: ProgressFn | None = None,
                  label: str = "", done: int = 0, total: int | None = None) -> Scores:
    """Greedy answers of ``gen`` to chat ``records`` (their messages minus the answer), scored against their gold.

    The gold answer is ``meta["answer"]`` for ``ragtune tune data`` records (None: must abstain), else the
    record's own assistant answer. Question records (:mod:`ragtune.tune.questions`) are asked through ``RAG``
    over their stored hits and scored as the held-out bench scores (:func:`score_answer`). Used by ``tune eval`` and by training's answer-F1 checkpoint selection, so
    both score the same prompts with the same decoding.
    """
    scores = Scores()
    for i, r in enumerate(records, start=1):
        try:
            _score_record(scores, gen, r, max_new_tokens, rag)
        except PromptTooLongError as e:  # one long record must not end an evaluation of hundreds
            scores.skip(_gold(r), _question(r), str(e))
        emit(progress, "evaluate", done + i, total, label)
    return scores


def _gold(record) -> str | None:
    """The answer a record is scored against: ``meta["answer"]`` (None: must abstain), else its own answer."""
    return record.meta["answer"] if "answer" in record.meta else record.messages[-1]["content"]


def _question(record) -> str:
    return record.meta.get("question") or record.messages[-2]["content"]


def _score_record(scores: Scores, gen, record, max_new_tokens: int, rag: bool) -> None:
    """Add one record's answer to ``scores`` (see :func:`score_records`); nothing for a record without one."""
    from ragtune.rag.prompt import format_user_message

    from .questions import ask_stored

    meta = record.meta
    if is_question(record):  # a development question: asked through RAG over its stored hits, as the bench asks
        if rag:
            score_answer(scores, ask_stored(gen, record, max_new_tokens), meta["answer"], meta["source"],
                         question=meta.get("question"))
        return
    messages = record.messages[:-1]
    if not rag:
        if "question" not in meta:  # the user's own chat data: no retrieved sources to take out of its prompt
            return
        messages = [messages[0], {"role": "user", "content": format_user_message(meta["question"], [])}]
    answer = gen.generate(messages, max_new_tokens=max_new_tokens)
    gold = _gold(record)
    # Without sources there is nothing to abstain from: only the answerable questions count.
    if gold is not None or rag:
        scores.add(answer, gold, lambda n, g=meta.get("gold_marker"): rag and n == g, question=_question(record))


def validation_answer_f1(model, tokenizer, records, max_new_tokens: int) -> dict:
    """Generated-answer figures of ``model`` on validation ``records``, for checkpoint selection during training.

    Returns ``answer_f1`` (mean token F1 of the answerable records, citations stripped; 0.0 when none is
    answerable), ``abstain_unanswerable`` and ``answer_f1_seconds``. The model's train/eval mode and KV-cache
    setting are restored afterwards.
    """
    import time

    from ragtune.rag.generators import LocalGenerator

    # Wrapped as a LocalGenerator so validation decodes exactly as ``tune eval`` and ``ragtune ask`` do
    # (greedy, n-gram ban, repetition stop).
    gen = LocalGenerator.from_loaded(model, tokenizer)
    was_training, cache = model.training, model.config.use_cache
    model.eval()
    model.config.use_cache = True  # training turns the cache off; without it every new token re-reads the prompt
    started = time.perf_counter()
    try:
        result = score_records(gen, records, max_new_tokens).result()
    finally:
        model.config.use_cache = cache
        model.train(was_training)
    return {"answer_f1": result["f1"] or 0.0, "abstain_unanswerable": result["abstain_unanswerable"],
            "answer_f1_seconds": round(time.perf_counter() - started, 3)}


def _qa_items(path, sources: list[str] | None) -> list[dict]:
    """The QA file's records; a bad one is named by its line in the file (a JSON error's own "line 1 column
    15" counts inside that one line, and a decoding error gives a byte offset)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"QA file {path}: {e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise DatasetError(f"{path}:{number}: expected an object with a 'question' string")
        items.append(item)
    if sources is not None:
        items = [it for it in items if it.get("answer") is None or os.path.basename(it.get("source", "")) in sources]
    return items


def _run_qa(gen, configs, index, items, max_new_tokens, progress, without_retrieval=True, rows=None,
            checked: set[str] = frozenset()) -> dict:
    """``checked``: configurations whose answers the extractive reader checks (no row without retrieval:
    without passages there is nothing to check against)."""
    from ragtune.rag.answer import RAG
    from ragtune.rag.generators.adapters import AdapterOff
    from ragtune.rag.prompt import SYSTEM_PROMPT, format_user_message

    out: dict[str, Any] = {}
    total = sum(len(items) * (2 if without_retrieval and c not in checked else 1) for c in configs)
    done = 0
    for config in configs:
        _use(gen, configs[config])
        # attribute=False: only the citations the model wrote itself are scored.
        rag = RAG(index, gen, max_new_tokens=max_new_tokens, attribute=False,
                  fallback=AdapterOff(gen) if config in checked else None)
        for with_rag in (True, False) if without_retrieval and config not in checked else (True,):
            scores = Scores()
            for item in items:
                gold, source = item.get("answer"), os.path.basename(item.get("source") or "")
                try:
                    if with_rag:
                        score_answer(scores, rag.ask(item["question"]), gold, source, question=item["question"])
                    else:
                        if gold is None:
                            continue
                        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                                    {"role": "user", "content": format_user_message(item["question"], [])}]
                        scores.add(gen.generate(messages, max_new_tokens=max_new_tokens), gold, lambda n: False,
                                   question=item["question"])
                except PromptTooLongError as e:
                    scores.skip(gold, item["question"], str(e))
                done += 1
                emit(progress, "evaluate", done, total, f"qa {config}{'+rag' if with_rag else ''}")
            label = f"{config}{'+rag' if with_rag else ''}"
            out[label] = scores.result()
            if rows is not None:
                rows += _tagged(scores, "qa", label)
    return out


def score_answer(scores: Scores, answer, gold: str | None, source: str, question: str | None = None) -> None:
    """Add a RAG :class:`Answer` to ``scores``: a citation is right when its marker points at the gold file."""
    cited = {c.marker: c.source for c in answer.citations}
    # Markers the model wrote that point at no shown source are wrong citations too.
    scores.add(answer.text, gold, lambda n: n in cited and os.path.basename(cited[n]) == source, question=question)


def _perplexity(gen, records, scale: float | None) -> float | None:
    """exp(mean loss) over the answer tokens of ``records``, with the adapter at ``scale`` (see :func:`_use`)."""
    import torch

    if not records:
        return None
    _use(gen, scale)
    model, tok = gen.model, gen.tokenizer
    total, count = 0.0, 0
    with torch.no_grad():
        for r in records:
            ids, labels = encode_record(tok, r, 2048)
            n = sum(1 for x in labels if x != IGNORE) - 1  # the loss is over shifted labels
            if n <= 0:
                continue
            loss = model(input_ids=torch.tensor([ids], device=model.device),
                         labels=torch.tensor([labels], device=model.device)).loss
            total += float(loss) * n
            count += n
    return round(math.exp(total / count), 3) if count else None


def _regressions(report: dict) -> list[str]:
    found = []
    for section in ("test_split", "qa"):
        figures = report.get(section) or {}
        base = figures.get("base+rag")
        for label in ("adapter+rag", "adapter+check+rag"):
            tuned = figures.get(label)
            if not base or not tuned:
                continue
            for key in HEADLINE:
                if base.get(key) is not None and tuned.get(key) is not None and tuned[key] < base[key] - 1e-9:
                    found.append(f"{section}: {label} {key} {tuned[key]:.3f} < base+rag {base[key]:.3f}")
    ppl = report.get("validation_perplexity") or {}
    if ppl.get("adapter") and ppl.get("base") and ppl["adapter"] > ppl["base"]:
        found.append(f"validation perplexity: adapter {ppl['adapter']} > base {ppl['base']}")
    return found
