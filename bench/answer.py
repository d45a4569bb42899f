"""Answer quality and latency of ragtune's answering layer on the shipped corpus.

    python bench/answer.py                                  # extractive + local, all questions
    python bench/answer.py --generators extractive --limit 10 --json
    python bench/answer.py --index .ragtune/index --latency-runs 5

Quality, per generator, on corpora/qa.jsonl (answerable) and corpora/unanswerable.jsonl:
  F1 / EM        token F1 and exact match of the answer (citation markers removed) vs the gold answer
  cite-prec      share of citations whose chunk comes from the gold source file
  cited          share of answered questions with at least one citation
  abst(ans)      abstentions on answerable questions (lower is better)
  abst(unans)    abstentions on the unanswerable questions (higher is better)
and "local, no RAG": the same local model asked the bare question, to show what retrieval adds.

Latency (local generator): time to first token and tokens/s inside ragtune (RAG.stream, prompt already
built) vs raw ``model.generate`` on the identical prompt ids (target: ragtune >= 0.9x raw tokens/s), plus
retrieval time and the whole ask.

Relevance threshold: the best hit's dense cosine on answerable vs unanswerable questions, and how well
the default ``min_score`` separates them (abstention also uses ``min_support``, a lexical test; see
``ragtune.rag.answer``).

Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import string
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
NO_RAG_SYSTEM = "Answer the question briefly. If you do not know, say exactly: I do not know."


# -- scoring ---------------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """SQuAD-style: lower case, citation markers, punctuation and articles removed, spaces collapsed."""
    text = re.sub(r"\[\s*\d+(?:\s*[,;\-]\s*\d+)*\s*\]", " ", text.lower())
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref or same == 0:
        return float(pred == ref)
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def said_unknown(text: str) -> bool:
    lower = text.lower()
    return any(p in lower for p in ("documents do not say", "do not know", "don't know", "i'm not sure"))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


# -- data ------------------------------------------------------------------------------------------------
def load_questions(qa_path: Path, unanswerable_path: Path, limit: int | None):
    from ragtune.rag.datasets import load_qa

    qa = load_qa(qa_path)[:limit]
    unanswerable = []
    if unanswerable_path.is_file():
        for line in unanswerable_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                unanswerable.append(json.loads(line)["question"])
    return qa, unanswerable[:limit]


def open_index(path: str | None):
    if path:
        from ragtune.rag.index import Index

        return Index.open(path)
    from ragtune.api import corpus_index

    return corpus_index()


def make_generator(kind: str, args: argparse.Namespace):
    from ragtune.rag.generators import load_generator

    config: dict[str, Any] = {"kind": kind}
    if kind == "local" and args.model:
        config["model_path"] = args.model
    if kind == "local" and args.adapter:
        config["adapter"] = args.adapter
    if kind == "api":
        config.update(base_url=os.environ.get("RAGTUNE_API_BASE"), model=os.environ.get("RAGTUNE_API_MODEL"))
    generator = load_generator(config)
    if hasattr(generator, "warm_up"):
        generator.warm_up()
    return generator


# -- runs ------------------------------------------------------------------------------------------------
def run_quality(rag, qa, unanswerable, label: str, progress: bool) -> dict[str, Any]:
    from ragtune.rag.evaluate import source_matches

    f1s, ems, cite_ok, cite_all, answered, with_cites, false_abst = [], [], 0, 0, 0, 0, 0
    retrieve, first, total = [], [], []
    for i, item in enumerate(qa, 1):
        answer = rag.ask(item.question)
        f1s.append(token_f1(answer.text, item.answer))
        ems.append(exact_match(answer.text, item.answer))
        retrieve.append(answer.timings.get("retrieve", 0.0))
        total.append(answer.timings["total"])
        if "first_token" in answer.timings:
            first.append(answer.timings["first_token"])
        if answer.abstained:
            false_abst += 1
        else:
            answered += 1
            with_cites += bool(answer.citations)
            cite_all += len(answer.citations)
            cite_ok += sum(source_matches(c.source, item.source) for c in answer.citations)
        if progress:
            print(f"\r{label}: {i}/{len(qa)}", end="", file=sys.stderr, flush=True)
    abstained_unans = sum(rag.ask(q).abstained for q in unanswerable)
    if progress:
        print(file=sys.stderr)
    return {
        "generator": label,
        "questions": len(qa),
        "f1": _mean(f1s),
        "em": _mean(ems),
        "citation_precision": cite_ok / cite_all if cite_all else None,
        "cited": with_cites / answered if answered else None,
        "abstain_answerable": false_abst / len(qa) if qa else None,
        "abstain_unanswerable": abstained_unans / len(unanswerable) if unanswerable else None,
        "unanswerable": len(unanswerable),
        "retrieve_ms": 1000 * _mean(retrieve) if retrieve else None,
        "first_token_ms": 1000 * _mean(first) if first else None,
        "total_ms": 1000 * _mean(total) if total else None,
    }


def run_no_rag(generator, qa, unanswerable, max_new_tokens: int) -> dict[str, Any]:
    """The same model asked the bare question: what it knows without the documents."""
    f1s, ems, unknown = [], [], 0
    for item in qa:
        text = generator.generate([{"role": "system", "content": NO_RAG_SYSTEM},
                                   {"role": "user", "content": item.question}], max_new_tokens=max_new_tokens)
        f1s.append(token_f1(text, item.answer))
        ems.append(exact_match(text, item.answer))
    for q in unanswerable:
        text = generator.generate([{"role": "system", "content": NO_RAG_SYSTEM},
                                   {"role": "user", "content": q}], max_new_tokens=max_new_tokens)
        unknown += said_unknown(text)
    return {
        "generator": f"{generator.name}, no RAG", "questions": len(qa), "f1": _mean(f1s), "em": _mean(ems),
        "citation_precision": None, "cited": None, "abstain_answerable": None,
        "abstain_unanswerable": unknown / len(unanswerable) if unanswerable else None,
        "unanswerable": len(unanswerable), "retrieve_ms": None, "first_token_ms": None, "total_ms": None,
    }


def run_latency(rag, questions: list[str], runs: int) -> dict[str, Any]:
    """TTFT and tokens/s: ragtune's stream vs raw ``model.generate`` on the same prompt ids (greedy)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    gen = rag.generator
    model, tokenizer = gen.model, gen.tokenizer

    class FirstToken(BaseStreamer):
        def __init__(self):
            self.calls, self.first = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2 and self.first is None:  # call 1 is the prompt, call 2 the first new token
                self.first = time.perf_counter()

        def end(self):
            pass

    def ragtune_once(question: str) -> tuple[float, float, int, list]:
        stream = rag.stream(question)  # retrieval and prompt happen here, outside the timed part
        start, first = time.perf_counter(), None
        for _ in stream:
            first = first or time.perf_counter()
        end = time.perf_counter()
        n = len(tokenizer.encode(stream.answer.text, add_special_tokens=False))
        messages = stream.prompt.messages if stream.prompt is not None else None
        return (first or end) - start, end - start, n, messages

    def raw_once(messages) -> tuple[float, float, int]:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)], device=model.device)
        streamer = FirstToken()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=rag.max_new_tokens,
                                 do_sample=False, temperature=None, top_p=None, top_k=None, streamer=streamer,
                                 pad_token_id=pad)
        end = time.perf_counter()
        return (streamer.first or end) - start, end - start, out.shape[1] - ids.shape[1]

    rows = []
    warm = ragtune_once(questions[0])[3]  # warm-up, both paths: first-call costs are not what we measure
    if warm is not None:
        raw_once(warm)
    for question in questions:
        for run in range(runs):
            # Alternate which path goes first, so a burst of load on a shared machine hits both alike.
            if run % 2 == 0:
                r_ttft, r_total, r_tokens, messages = ragtune_once(question)
                if messages is None:
                    break  # abstained before generating: nothing to compare
                w_ttft, w_total, w_tokens = raw_once(messages)
            else:
                w_ttft, w_total, w_tokens = raw_once(messages)
                r_ttft, r_total, r_tokens, messages = ragtune_once(question)
            rows.append((r_ttft, r_total, r_tokens, w_ttft, w_total, w_tokens))
    if not rows:
        return {}
    r_tps = sum(r[2] for r in rows) / sum(r[1] for r in rows)
    w_tps = sum(r[5] for r in rows) / sum(r[4] for r in rows)
    # Decoding alone (after the first token), where per-token overhead would show.
    r_dec = sum(max(r[2] - 1, 0) for r in rows) / max(sum(r[1] - r[0] for r in rows), 1e-9)
    w_dec = sum(max(r[5] - 1, 0) for r in rows) / max(sum(r[4] - r[3] for r in rows), 1e-9)
    return {
        "generator": gen.name,
        "samples": len(rows),
        "device": str(model.device),
        "ragtune_first_token_ms": 1000 * statistics.median(r[0] for r in rows),
        "raw_first_token_ms": 1000 * statistics.median(r[3] for r in rows),
        "ragtune_tokens_per_s": r_tps,
        "raw_tokens_per_s": w_tps,
        "throughput_ratio": r_tps / w_tps if w_tps else None,
        "ragtune_decode_tokens_per_s": r_dec,
        "raw_decode_tokens_per_s": w_dec,
        "decode_ratio": r_dec / w_dec if w_dec else None,
    }


def relevance_threshold(index, qa, unanswerable, k: int, current: float) -> dict[str, Any]:
    """The best dense cosine per question, answerable vs not, and the threshold that separates them best."""

    def best(q: str) -> float:
        hits = index.search(q, k=k, mode="dense")
        return max((h.scores.get("dense", h.score) for h in hits), default=-1.0)

    pos = [best(item.question) for item in qa]
    neg = [best(q) for q in unanswerable]

    def balanced_accuracy(t: float) -> float:
        tpr = sum(s >= t for s in pos) / len(pos) if pos else 0.0
        tnr = sum(s < t for s in neg) / len(neg) if neg else 0.0
        return (tpr + tnr) / 2

    candidates = sorted(set(round(s, 3) for s in pos + neg))
    best_t = max(candidates, key=balanced_accuracy) if candidates else current

    def summary(xs):
        return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)} if xs else None

    return {
        "answerable": summary(pos), "unanswerable": summary(neg),
        "current_min_score": current, "current_balanced_accuracy": balanced_accuracy(current),
        "answerable_kept_at_current": sum(s >= current for s in pos) / len(pos) if pos else None,
        "unanswerable_abstained_at_current": sum(s < current for s in neg) / len(neg) if neg else None,
        "best_threshold": best_t, "best_balanced_accuracy": balanced_accuracy(best_t),
    }


# -- output ----------------------------------------------------------------------------------------------
def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(report: dict[str, Any]) -> None:
    print(f"index: {report['index']}  ({report['chunks']} chunks), k={report['k']}, min_score={report['min_score']}, "
          f"min_support={report['min_support']}, max_new_tokens={report['max_new_tokens']}")
    cols = ["generator", "n", "F1", "EM", "cite-prec", "cited", "abst(ans)", "abst(unans)", "retr ms", "ttft ms",
            "total ms"]
    print("\n" + "  ".join(f"{c:>11}" if i else f"{c:<34}" for i, c in enumerate(cols)))
    for r in report["quality"]:
        cells = [r["generator"][:34], str(r["questions"]), _fmt(r["f1"]), _fmt(r["em"]),
                 _fmt(r["citation_precision"]), _fmt(r["cited"]), _fmt(r["abstain_answerable"]),
                 _fmt(r["abstain_unanswerable"]), _fmt(r["retrieve_ms"], ".1f"), _fmt(r["first_token_ms"], ".0f"),
                 _fmt(r["total_ms"], ".0f")]
        print("  ".join(f"{c:>11}" if i else f"{c:<34}" for i, c in enumerate(cells)))
    lat = report.get("latency")
    if lat:
        print(f"\nlatency ({lat['generator']} on {lat['device']}, {lat['samples']} runs, same prompt ids, greedy):")
        print(f"  time to first token  ragtune {lat['ragtune_first_token_ms']:.0f} ms   "
              f"raw generate {lat['raw_first_token_ms']:.0f} ms")
        print(f"  tokens/s             ragtune {lat['ragtune_tokens_per_s']:.1f}   raw generate "
              f"{lat['raw_tokens_per_s']:.1f}   ratio {_fmt(lat['throughput_ratio'], '.2f')}x (target >= 0.9x)")
        print(f"  decode tokens/s      ragtune {lat['ragtune_decode_tokens_per_s']:.1f}   raw generate "
              f"{lat['raw_decode_tokens_per_s']:.1f}   ratio {_fmt(lat['decode_ratio'], '.2f')}x")
    th = report.get("threshold")
    if th and th["answerable"]:
        print("\nbest dense cosine per question (min / median / max):")
        for key in ("answerable", "unanswerable"):
            s = th[key]
            if s:
                print(f"  {key:<13} {s['min']:.3f} / {s['median']:.3f} / {s['max']:.3f}")
        print(f"  min_score={th['current_min_score']}: keeps {_fmt(th['answerable_kept_at_current'], '.0%')} of "
              f"answerable, abstains on {_fmt(th['unanswerable_abstained_at_current'], '.0%')} of unanswerable; "
              f"best separating threshold {th['best_threshold']:.3f} "
              f"(balanced accuracy {th['best_balanced_accuracy']:.2f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="index directory (default: the shipped corpora's index, built on first use)")
    p.add_argument("--qa", default=str(ROOT / "corpora" / "qa.jsonl"))
    p.add_argument("--unanswerable", default=str(ROOT / "corpora" / "unanswerable.jsonl"))
    p.add_argument("--generators", default="extractive,local", help="comma-separated: extractive,local,api")
    p.add_argument("--model", help="local model folder or .gguf (default: the shipped SmolLM2)")
    p.add_argument("--adapter", help="LoRA adapter folder for the local model")
    p.add_argument("--limit", type=int, default=None, help="first N questions of each file")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--min-score", type=float, default=None, help="default: ragtune's DEFAULT_MIN_SCORE")
    p.add_argument("--min-support", type=float, default=None,
                   help="default: ragtune's DEFAULT_MIN_SUPPORT; 0 turns the lexical abstention test off")
    p.add_argument("--latency-questions", type=int, default=3)
    p.add_argument("--latency-runs", type=int, default=2)
    p.add_argument("--no-baseline", action="store_true", help="skip the local-model-without-RAG run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from ragtune.rag.answer import DEFAULT_MIN_SCORE, DEFAULT_MIN_SUPPORT, RAG

    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    min_support = DEFAULT_MIN_SUPPORT if args.min_support is None else (args.min_support or None)
    qa, unanswerable = load_questions(Path(args.qa), Path(args.unanswerable), args.limit)
    index = open_index(args.index)
    report: dict[str, Any] = {
        "index": str(getattr(index, "root", args.index)), "chunks": len(index), "k": args.k,
        "min_score": min_score, "min_support": min_support, "max_new_tokens": args.max_new_tokens,
        "quality": [],
    }
    progress = sys.stderr.isatty() and not args.json
    for kind in [g.strip() for g in args.generators.split(",") if g.strip()]:
        generator = make_generator(kind, args)
        rag = RAG(index, generator, k=args.k, min_score=min_score, min_support=min_support,
                  max_new_tokens=args.max_new_tokens)
        report["quality"].append(run_quality(rag, qa, unanswerable, generator.name, progress))
        if kind == "local":
            if not args.no_baseline:
                report["quality"].append(run_no_rag(generator, qa, unanswerable, args.max_new_tokens))
            questions = [item.question for item in qa[: args.latency_questions]]
            report["latency"] = run_latency(rag, questions, args.latency_runs) if questions else {}
    report["threshold"] = relevance_threshold(index, qa, unanswerable, args.k, min_score)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
