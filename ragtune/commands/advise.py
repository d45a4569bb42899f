"""``ragtune advise``: should you call an API model, build RAG, fine-tune, or combine them?

    ragtune advise                                    # answer the questions in the terminal
    ragtune advise --answers answers.yaml --json      # machine-readable recommendation on stdout
    ragtune advise --answers answers.yaml --report advice.md        # advice.md + advice.png chart
    ragtune advise --answers a.yaml --evidence docs/ --qa qa.jsonl  # measure accuracy/latency on your docs

Answers files map question ids to answers (see advisor/examples/*.yaml); questions left out are neutral
(with too few answers the result is "undetermined" and the report lists the deciding questions). Quotes
backing the advice come from the shipped corpus (--no-cite to skip).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "advise", help="recommend API model, RAG, fine-tuning or both, with reasons and citations",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--answers", metavar="FILE", help="answers file (.yaml or .json); without it the questions "
                                                     "are asked in the terminal")
    p.add_argument("--matrix", metavar="FILE", help="your own weighted-factor matrix (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON on stdout "
                                                       "(and write REPORT.json next to --report)")
    p.add_argument("--report", metavar="OUT.md", help="write a Markdown report and OUT.png bar chart")
    p.add_argument("--no-cite", action="store_true", help="do not quote the corpus (faster, no index needed)")
    p.add_argument("--draws", type=int, default=2000, metavar="N",
                   help="weight-perturbation draws for the robustness figure, 100 to 200000 (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the robustness draws (default 0)")
    ev = p.add_argument_group("evidence mode (a pilot on your documents)")
    ev.add_argument("--evidence", metavar="DOCS_DIR", help="folder of documents to run the pilot on")
    ev.add_argument("--qa", metavar="QA.jsonl", help="questions with reference answers "
                                                     "({\"question\": ..., \"answer\": ...} per line)")
    ev.add_argument("--generator", choices=("local", "extractive"), default="local",
                    help="generator for the pilot (default local)")
    ev.add_argument("--adapter", metavar="DIR", help="a LoRA adapter to add the fine-tuned arms")
    ev.add_argument("--limit", type=int, default=20, metavar="N", help="questions to use (default 20)")
    p.set_defaults(func=run_advise)


# -- seams the tests replace ----------------------------------------------------------------------------
def corpus_searcher() -> Any:
    from ragtune.api import corpus_index

    return corpus_index()


def run_pilot(args: argparse.Namespace) -> Any:
    from ragtune.advisor.evidence import pilot_from_folder

    return pilot_from_folder(args.evidence, args.qa, generator=args.generator, adapter=args.adapter,
                             limit=args.limit)


def _ask_on_stderr(prompt: str) -> str:
    """``input`` with the prompt on stderr, so that stdout carries only the result (``--json``)."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return input()


# -- command --------------------------------------------------------------------------------------------
def run_advise(args: argparse.Namespace) -> int:
    from ragtune.advisor import advise, load_matrix
    from ragtune.advisor.questionnaire import Questionnaire, stdin_is_interactive
    from ragtune.advisor.recommend import load_answers

    # check every option before asking fifteen questions
    if (args.evidence is None) != (args.qa is None):
        raise AdvisorError("evidence mode needs both --evidence DOCS_DIR and --qa QA.jsonl")
    if args.evidence is not None and not Path(args.evidence).is_dir():
        raise AdvisorError(f"--evidence {args.evidence}: not a folder")
    if args.limit < 1:
        raise AdvisorError(f"--limit must be at least 1, got {args.limit}")
    robustness_config = _robustness_config(args)
    matrix = load_matrix(args.matrix)
    if args.answers:
        questionnaire = load_answers(args.answers)
    elif stdin_is_interactive():
        print("Answer each question with its number; Enter skips it (a skipped question is neutral: it changes "
              "no weight or score).", file=sys.stderr)
        questionnaire = Questionnaire.interactive(input_fn=_ask_on_stderr,
                                                  print_fn=lambda line: print(line, file=sys.stderr))
        print(file=sys.stderr)
    else:
        example = Path(sys.modules["ragtune.advisor"].__file__).parent / "examples" / "rag_team.yaml"
        raise AdvisorError(f"no terminal to ask the questions in: pass --answers FILE.yaml (example: {example})")

    if args.report is not None:  # before the work (a pilot takes minutes): "" or a path it cannot write
        from ragtune.advisor.report import check_report_path

        check_report_path(args.report)
    evidence = run_pilot(args) if args.evidence else None
    searcher, why_not = None, "Citations skipped (--no-cite)."
    if not args.no_cite:
        try:
            searcher = corpus_searcher()
        except Exception as e:  # advice without quotes beats no advice; the report says why
            why_not = f"Citations unavailable: the corpus index could not be opened ({type(e).__name__}: {e})."
    rec = advise(questionnaire, matrix=matrix, searcher=searcher, evidence=evidence,
                 robustness_config=robustness_config)
    if searcher is None:
        rec.citations_note = why_not

    if args.report:
        for path in rec.save(args.report, json_too=args.json):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(rec.to_json())
    elif not args.report:
        print(rec.to_markdown())
    else:
        print(_summary(rec))
    return 0


def _summary(rec: Any) -> str:
    """One line for the terminal when the report went to a file."""
    if not rec.ranked:
        return "Every option is ruled out."
    top = rec.ranked[0]
    if not rec.determined:
        return f"Undetermined: answer {', '.join(rec.deciding_questions[:4]) or 'more questions'} to decide."
    status = {"close_call": ", a close call", "firm_preference": ", a firm preference"}.get(rec.status, "")
    return f"Recommendation: {top.name} ({top.total:.1f}/100{status})"


def _robustness_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from ragtune.advisor.robustness import RobustnessConfig

    try:
        return RobustnessConfig(draws=args.draws, seed=args.seed)
    except ValidationError as e:
        err = e.errors()[0]
        raise AdvisorError(f"--{err['loc'][0]}: {err['msg']}") from None
