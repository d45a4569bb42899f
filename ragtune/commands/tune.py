"""``ragtune tune``: build training data, train a LoRA adapter, evaluate it, merge it.

    ragtune tune data --index .ragtune/index --out data.jsonl          # RAFT-style QA from the index's chunks
    ragtune tune data --out data.jsonl --show-example                  # one formatted, masked example
    ragtune tune run --data data.jsonl --out runs/raft [--max-steps N] [--config train.yaml]
    ragtune tune eval --adapter runs/raft/adapter --data data.jsonl --qa corpora/qa.jsonl
    ragtune tune merge --adapter runs/raft/adapter --out models/merged

``tune run`` works unchanged under ``accelerate launch`` / ``torchrun`` (data-parallel; rank 0 writes).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections import Counter
from pathlib import Path

from ragtune.commands.common import group, print_json
from ragtune.errors import ConfigError

DESCRIPTION = __doc__


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = group(subparsers, "tune", help="fine-tune the generator with LoRA: data, run, eval, merge")
    _register_data(verbs)
    _register_run(verbs)
    _register_eval(verbs)
    _register_merge(verbs)
    try:  # the retrieval engineer's `tune embedder` verb, when that module exists
        module = importlib.import_module("ragtune.commands.tune_embedder")
    except ModuleNotFoundError as exc:
        if exc.name != "ragtune.commands.tune_embedder":
            raise
    else:
        module.register(verbs)


def _register_data(verbs) -> None:
    p = verbs.add_parser("data", help="build RAFT-style training data from an index, or check a data file",
                         description="Write question/answer examples (gold chunk among retrieved distractors, "
                         "answers citing [n], some abstaining), split by source document. With --show-example, "
                         "print one formatted example with its trained tokens in [[...]].")
    p.add_argument("--index", metavar="DIR", default=None, help="index to read chunks from (env RAGTUNE_INDEX)")
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="the JSONL file to write (or read with --show-example)")
    p.add_argument("--generator", default="template", choices=("template", "parsed", "local", "api"),
                   help="who writes the questions: template (patterns, no model, default), parsed (the same "
                        "from a spaCy dependency parse: grammatical), the local model, or the API")
    p.add_argument("--questions-per-chunk", type=int, default=4, metavar="N",
                   help="questions written per chunk, at most (default 4)")
    p.add_argument("--sources", type=int, nargs=2, default=(2, 5), metavar=("MIN", "MAX"),
                   help="sources shown per example, gold included (default 2 5)")
    p.add_argument("--abstain-share", type=float, default=0.1, metavar="X",
                   help="share of examples without the gold chunk (default 0.1)")
    p.add_argument("--max-answer-words", type=int, default=10, metavar="N",
                   help="answers cut to their first clause; longer ones dropped (default 10; 0: keep whole spans)")
    p.add_argument("--test-share", type=float, default=0.2, metavar="X",
                   help="share of documents held out for testing (default 0.2)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the split by document and of the choice of distractors (default 0)")
    p.add_argument("--questions", type=Path, metavar="FILE", default=None,
                   help="a QA jsonl (question, answer, source): questions about validation documents are stored "
                   "with the RAG prompt `ask` would build, for checkpoint selection (select_by: answer_f1); "
                   "questions about test or training documents are skipped")
    p.add_argument("--roundtrip", action="store_true",
                   help="keep a training example only if ragtune's extractive reader, given its sources, finds its "
                        "answer and cites its gold source (round-trip consistency; validation and test are kept whole)")
    p.add_argument("--show-example", action="store_true",
                   help="do not build: validate FILE and print one example as the model sees it")
    p.add_argument("--model", default=None,
                   help="the model folder whose tokenizer formats --show-example and --questions prompts "
                   "(default SmolLM2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_data)


def _register_run(verbs) -> None:
    p = verbs.add_parser("run", help="train a LoRA adapter on a data file",
                         description="Train a LoRA (or DoRA/QLoRA) adapter with transformers' Trainer. Resumes from "
                         "the last checkpoint in OUT when rerun with the same data and config.")
    p.add_argument("--data", type=Path, required=True, metavar="FILE", help="training data (jsonl/json/txt)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder; the adapter goes to DIR/adapter")
    p.add_argument("--config", type=Path, metavar="FILE", help="a YAML/JSON TrainConfig (fields as in TrainConfig)")
    p.add_argument("--base-model", metavar="PATH", help="model folder or .gguf (default: the shipped SmolLM2)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps (overrides epochs)")
    # The rest override the same fields of --config; the defaults named are TrainConfig's (a test checks them).
    p.add_argument("--epochs", type=float, metavar="X", help="passes over the training split (default 1)")
    p.add_argument("--learning-rate", type=float, metavar="X", help="peak learning rate (default 0.001)")
    p.add_argument("--rank", type=int, metavar="N", help="LoRA rank r (default 16)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="examples per device step (default 4). On a CPU, SmolLM2 at 4 x 1024 tokens takes ~16 GB "
                        "of RAM (README: 'Memory on a CPU')")
    p.add_argument("--grad-accum", type=int, metavar="N",
                   help="gradient accumulation: N device steps per optimizer step (default 1)")
    p.add_argument("--max-length", type=int, metavar="N",
                   help="tokens per example; longer chat examples are skipped and plain text is split into "
                        "windows, both counted (default 1024)")
    p.add_argument("--dora", action="store_true", default=None, help="DoRA instead of plain LoRA")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="recompute activations in the backward pass: less memory, slower steps")
    p.add_argument("--qlora", action="store_true", help="4-bit base model (CUDA + bitsandbytes only)")
    p.add_argument("--fresh", action="store_true", help="discard checkpoints in OUT instead of resuming")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_train, resumes=True)  # Ctrl-C: ragtune.cli says to rerun to resume


def _register_eval(verbs) -> None:
    p = verbs.add_parser("eval", help="base vs adapter, with and without retrieval, on held-out questions")
    p.add_argument("--adapter", type=Path, default=None,
                   help="adapter folder, or the run folder of `tune run` (omit: base model only)")
    p.add_argument("--data", type=Path, help="a `tune data` file: its test split and validation perplexity")
    p.add_argument("--qa", type=Path, help="a QA jsonl file asked through RAG over --index")
    p.add_argument("--unanswerable", type=Path, metavar="FILE", help="a jsonl of questions the documents do not answer")
    p.add_argument("--index", metavar="DIR", default=None, help="index for --qa (env RAGTUNE_INDEX)")
    p.add_argument("--base-model", metavar="PATH",
                   help="the base model (default: the one recorded in the adapter, else the shipped SmolLM2)")
    p.add_argument("--limit", type=int, default=60,
                   help="questions per set: test split, answerable and unanswerable QA each (default 60; 0 = all)")
    p.add_argument("--adapter-scale", type=float, default=1.0, metavar="X",
                   help="the adapter's strength: 1 as trained (default), 0.5 halfway to the base model (WiSE-FT)")
    p.add_argument("--also-scales", type=float, nargs="+", default=[], metavar="X",
                   help="also score the adapter at these strengths, in the same run (rows adapter@X)")
    p.add_argument("--answers", type=Path, metavar="FILE",
                   help="also write every answer, with its gold and scores, to this JSON-lines file")
    p.add_argument("--check-adapter", action="store_true",
                   help="also rows adapter+check+rag for --qa: the adapter's answers checked by the extractive reader, "
                        "the base model answering where it disagrees (as `ragtune ask --check-adapter`)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_eval)


def _register_merge(verbs) -> None:
    p = verbs.add_parser("merge", help="merge an adapter into its base model as a standalone model folder")
    p.add_argument("--adapter", type=Path, required=True,
                   help="the adapter folder (a run's OUT/adapter, or the run folder OUT)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="the standalone model folder to write (new, empty, or an earlier merge)")
    p.add_argument("--scale", type=float, default=1.0, metavar="X",
                   help="merge the adapter at this strength: 1 as trained (default), 0.5 halfway to the base model")
    p.add_argument("--base-model", metavar="PATH",
                   help="the base model the adapter was trained on (default: the one recorded in the adapter)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_merge)


# ------------------------------------------------------------------------------------------- actions
def _progress():
    from ragtune.progress import terminal_progress

    return terminal_progress()


def _index(path):
    from ragtune.rag.index import Index

    return Index.open(path or os.environ.get("RAGTUNE_INDEX") or ".ragtune/index")


def run_data(args) -> int:
    if args.show_example:
        from ragtune.tune.data import example_view, load_records, show_example
        from ragtune.tune.train import _tokenizer
        from ragtune.rag.generators.models import resolve_model_path

        records = load_records(args.out, checking=True)
        train = [r for r in records if r.split in (None, "train")] or records
        tokenizer = _tokenizer(resolve_model_path(args.model))
        if args.json:
            splits = Counter(r.split or "unsplit" for r in records)
            print_json({"file": str(args.out), "records": len(records), "splits": dict(splits), "shown": train[0].where,
                        **example_view(tokenizer, train[0], 4096)})
        else:
            print(show_example(tokenizer, train[0], 4096))
        return 0
    from ragtune.tune.synth import build_training_data

    with _progress() as bar:
        report = build_training_data(_index(args.index), args.out, generator=args.generator, progress=bar,
                                     questions_per_chunk=args.questions_per_chunk, abstain_share=args.abstain_share,
                                     sources_per_example=tuple(args.sources),
                                     max_answer_words=None if args.max_answer_words == 0 else args.max_answer_words,
                                     test_share=args.test_share, seed=args.seed, questions=args.questions,
                                     prompt_model=args.model, roundtrip=args.roundtrip)
    if args.json:
        print_json(report.to_dict())
    else:
        counts = ", ".join(f"{k} {v} ({report.abstain.get(k, 0)} abstain)" for k, v in sorted(report.records.items()))
        print(f"wrote {report.out}: {counts}; test documents: {', '.join(report.sources.get('test', [])) or '(none)'}")
        if args.roundtrip:
            print(f"round-trip check: {report.roundtrip_dropped} training example(s) left out")
        if report.questions is not None:
            q = report.questions
            print(f"questions: {q['validation']} validation records ({q['gated']} abstained by the gates); skipped "
                  f"{q['skipped_test']} test, {q['skipped_train']} training, {q['skipped_unknown']} not in the index")
    _empty_split_notes(report, args.test_share)
    return 0


def _empty_split_notes(report, test_share: float) -> None:
    """A note on stderr for each split the file has no records of, with why and what it means."""
    for split in ("train", "validation", "test"):
        questions = (report.questions or {}).get("validation", 0) if split == "validation" else 0
        if report.records.get(split) or questions:
            continue
        docs = report.sources.get(split, [])
        why = (f"its documents ({', '.join(docs)}) gave no examples" if docs else "no documents went to it"
               + (" (--test-share 0)" if split == "test" and test_share == 0 else " (too few documents in the index)"))
        use = {"train": "nothing can be trained on this file",
               "validation": "`tune run` will have no validation loss or checkpoint choice",
               "test": "`tune eval --data` will have no held-out questions"}[split]
        print(f"note: the {split} split is empty: {why}; {use}", file=sys.stderr)


def run_train(args) -> int:
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.train import train_adapter

    overrides = {"base_model": args.base_model, "max_steps": args.max_steps, "epochs": args.epochs,
                 "learning_rate": args.learning_rate, "rank": args.rank, "batch_size": args.batch_size,
                 "grad_accum": args.grad_accum, "max_length": args.max_length, "use_dora": args.dora,
                 "gradient_checkpointing": args.gradient_checkpointing,
                 "quantization": "4bit" if args.qlora else None}
    config = (TrainConfig.from_file(args.config, **overrides) if args.config
              else TrainConfig.build(**{k: v for k, v in overrides.items() if v is not None}))
    # Without a terminal (a log file, CI) each Trainer log record is one line on stderr instead of a bar.
    on_log = None if sys.stderr.isatty() else (lambda r: print(_log_line(r), file=sys.stderr, flush=True))
    with _progress() as bar:
        result = train_adapter(args.data, args.out, config, progress=bar, on_log=on_log, resume=not args.fresh)
    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    if args.json:
        print_json(result.to_dict())
    else:
        m = result.metrics
        print(f"mode: {result.mode_reason}")
        kept = _kept_line(m)
        loss = m["train_loss"]
        loss = f"{loss:.4f}" if isinstance(loss, float) else loss
        print(f"{m['steps']} steps, last logged train loss {loss}, {kept}, "
              f"{m['tokens_per_s']} tokens/s, trainable {m['trainable_fraction']:.2%}")
        if m.get("skipped_too_long"):
            print(f"note: {m['skipped_too_long']} training record(s) longer than max_length={config.max_length} tokens "
                  "were left out; raise max_length to train on them", file=sys.stderr)
        if m.get("split_long_text"):
            print(f"note: {m['split_long_text']} plain-text training record(s) longer than max_length="
                  f"{config.max_length} tokens were split into windows of that length", file=sys.stderr)
        print(f"adapter: {result.adapter or '(cancelled: not written; rerun to resume)'}")
    return 0


def _kept_line(m: dict) -> str:
    if not m.get("validation_records"):
        return "no validation set: the last checkpoint is kept"
    if m.get("kept") == "last":
        last = m.get("final_eval_loss")
        return ("the last checkpoint is kept: no validated checkpoint was saved to choose from"
                + (f" (last validation loss {last})" if last is not None else " (no validation ran)"))
    step = f" (step {m['best_step']})" if m.get("best_step") else ""
    if m.get("selected_by") == "answer_f1":
        return (f"kept checkpoint{step}: validation answer F1 {m['best_answer_f1']}, "
                f"answer accuracy {m['best_answer_accuracy']}, loss {m['best_eval_loss']}")
    if m.get("selected_by") == "answer_accuracy":
        return (f"kept checkpoint{step}: validation answer accuracy {m['best_answer_accuracy']}, "
                f"loss {m['best_eval_loss']}")
    return f"kept checkpoint{step}: validation loss {m['best_eval_loss']}"


def _log_line(record: dict) -> str:
    keys = ("step", "epoch", "loss", "eval_loss", "eval_answer_accuracy", "eval_answer_f1", "eval_answer_f1_seconds",
            "learning_rate", "train_tokens_per_second")
    return "train " + " ".join(f"{k}={record[k]:.4g}" if isinstance(record[k], float) else f"{k}={record[k]}"
                               for k in keys if k in record)


def run_eval(args) -> int:
    from ragtune.tune.evaluate import evaluate_adapter

    if args.check_adapter and (args.adapter is None or args.qa is None):
        raise ConfigError("--check-adapter needs --adapter DIR and --qa FILE (it checks the adapter's answers to the "
                          "QA questions)")
    index = _index(args.index) if args.qa else None
    with _progress() as bar:
        report = evaluate_adapter(args.adapter, index=index, data=args.data, qa=args.qa, base_model=args.base_model,
                                  unanswerable=args.unanswerable, limit=args.limit or None, progress=bar,
                                  adapter_scale=args.adapter_scale, also_scales=args.also_scales,
                                  answers=args.answers, check_adapter=args.check_adapter)
    if args.data and report.get("test_split") and not any(
            (fig or {}).get("answerable") or (fig or {}).get("unanswerable") for fig in report["test_split"].values()):
        print(f"note: {args.data} has no test split, so its rows are empty; build data with `ragtune tune data` "
              "(documents held out for testing) or label some records \"split\": \"test\"", file=sys.stderr)
    if args.json:
        print_json(report)
    else:
        for section in ("test_split", "qa"):
            for name, fig in (report.get(section) or {}).items():
                if isinstance(fig, dict):
                    print(f"{section:10s} {name:17s} " + "  ".join(f"{k}={v}" for k, v in fig.items()))
        if report.get("validation_perplexity"):
            print(f"validation perplexity: {report['validation_perplexity']}")
        if report.get("answers"):
            print(f"answers written to {report['answers']}")
    for line in report["regressions"]:
        print(f"REGRESSION: {line}", file=sys.stderr)
    return 0


def run_merge(args) -> int:
    from ragtune.tune.export import merge_adapter

    out = merge_adapter(args.adapter, args.out, scale=args.scale, base_model=args.base_model)
    print_json({"merged": str(out)}) if args.json else print(f"merged model: {out}")
    return 0
