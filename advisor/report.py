"""Render a :class:`Recommendation` as Markdown (factor table, reasons, sensitivity, sources), JSON and a
PNG bar chart of the option scores.

    >>> rec.save("advice.md", json_too=True)   # advice.md, advice.png, advice.json   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ragtune.errors import AdvisorError

from .types import OptionResult, Recommendation


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _display_path(source: str) -> str:
    """Paths under the working directory are shown relative to it, others as stored."""
    try:
        return Path(source).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return source


def _markers(markers: list[int]) -> str:
    return "".join(f" [{m}]" for m in markers)


def _score_cell(opt: OptionResult, factor_id: str) -> str:
    c = opt.contribution(factor_id)
    if c.measured_score is not None:
        shown = f"{c.prior_score} → **{c.measured_score:g}** (measured)"
    elif c.score != c.prior_score:
        shown = f"{c.prior_score} → {c.score:g}"
    else:
        shown = f"{c.score:g}"
    return f"{shown} ({c.points:+.1f})"


def to_markdown(rec: Recommendation, chart_path: str | Path | None = None) -> str:
    """The whole report: one function per section, each returning its lines."""
    sections = [
        _headline(rec, chart_path), _status(rec), _excluded(rec), _reasons(rec), _factor_table(rec),
        _answer_sensitivity(rec), _weight_sensitivity(rec), _robustness(rec), _evidence(rec), _sources(rec),
        _answers(rec), _method(rec),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"


def _headline(rec: Recommendation, chart_path: str | Path | None) -> list[str]:
    ranked = rec.ranked
    if rec.winner is None:
        lines = ["# ragtune advisor: every option is ruled out", ""]
    elif not rec.determined:
        lines = ["# ragtune advisor: undetermined - answer the deciding questions", "",
                 f"**No recommendation yet.** Until the answers settle it the order is the lever order, "
                 f"which puts {ranked[0].name} first.", ""]
    else:
        top = ranked[0]
        lead = f"**Recommendation: {top.name}** with {top.total:.1f} / 100"
        gap = top.total - ranked[1].total if len(ranked) > 1 else 0.0
        if len(ranked) > 1 and gap >= 0:
            lead += f", {gap:.1f} points ahead of {ranked[1].name} ({ranked[1].total:.1f})"
        elif len(ranked) > 1:  # a firm preference of the sources outranks a higher score
            lead += f", ranked above {ranked[1].name} ({ranked[1].total:.1f}, {-gap:.1f} points more)"
        if rec.firm_preference:
            lead += ", ranked first by a firm preference of the source documents"
        if rec.close_call:
            lead += " - **a close call**"
        lines = [f"# ragtune advisor: {top.name} ranks first", "", lead + ".", ""]
    lines += ["| Rank | Option | Score (0-100) |", "|---:|---|---:|"]
    for o in rec.options:
        lines.append(f"| {o.rank if o.rank else '–'} | {_cell(o.name)} | {o.total:.1f}"
                     f"{' (excluded)' if o.excluded else ''} |")
    if chart_path is not None:
        lines += ["", f"![Option scores]({Path(chart_path).as_posix()})"]
    return lines


def _status(rec: Recommendation) -> list[str]:
    lines: list[str] = []
    if rec.firm_preference:
        lines += ["", "## Firm preference", "", f"{rec.firm_preference} Weights do not move this; changing the "
                  "answers that trigger it does (see below)."]
    if rec.close_call:
        lines += ["", "## Close call", "", "Treat this as a close call: "
                  + "; and ".join(rec.close_call_reasons) + ". The source says: \"When a small change in weights "
                  "flips the ranking, the options are close and a pilot on real data should decide\" (Choosing a "
                  "model) - run `ragtune advise --evidence DOCS_DIR --qa QA.jsonl`."]
    if not rec.determined and rec.winner is not None:
        lines += ["", "## Deciding questions", ""] + _deciding(rec)
    return lines


def _deciding(rec: Recommendation) -> list[str]:
    """Per open question, what each of its answers would put first; questions whose answers settle the
    result come before those that only narrow it."""
    by_q: dict[str, list[str]] = {}
    settles: set[str] = set()
    for c in rec.answer_changes:
        if c.previous is not None:
            continue
        if c.new_winner is None:
            outcome = "rules out every option"
        elif c.leader is not None:
            outcome = f"{rec.option(c.leader).name} ahead (still open)"
        else:
            outcome = rec.option(c.new_winner).name + ("" if c.determined else " (still open)")
        by_q.setdefault(c.question_id, []).append(f"{c.label} → {outcome}")
        settles |= {c.question_id} if c.determined else set()
    if not by_q:
        return ["No single answer settles it: the remaining options score alike on every factor."]
    ordered = sorted(by_q, key=lambda q: q not in settles)
    return [f"- `{q}`: " + "; ".join(by_q[q]) for q in ordered]


def _excluded(rec: Recommendation) -> list[str]:
    if not rec.excluded:
        return []
    lines = ["", "## Ruled out by hard constraints", ""]
    return lines + [f"- **{o.name}**: {reason}" for o in rec.excluded for reason in o.exclusion_reasons]


def _reasons(rec: Recommendation) -> list[str]:
    lines = ["", "## Reasons for and against each option"]
    for o in rec.options:
        status = f"rank {o.rank}" if o.rank else "excluded"
        lines += ["", f"### {o.name} — {o.total:.1f} ({status})", ""]
        for rule in o.rules:
            source = f" ({rule.source})" if rule.source else ""
            lines += [f"> {rule.text}{source}{_markers(rule.citations)}", ">"]
        if o.rules:
            lines[-1] = ""  # no empty quote line after the last rule
        lines += [f"- **+{r.impact:.1f}** {r.text}{_markers(r.citations)}" for r in o.reasons_for]
        lines += [f"- **{r.impact:.1f}** {r.text}{_markers(r.citations)}" for r in o.reasons_against]
        lines += [f"- **Ruled out:** {reason}" for reason in o.exclusion_reasons]
    return lines


def _factor_table(rec: Recommendation) -> list[str]:
    lines = ["", "## Factor table", "",
             "Scores are 1 (serves the factor badly) to 5 (very well); `a → b` marks a matrix score adjusted for "
             "your answers or replaced by a measurement, and the figure in brackets is the factor's contribution "
             "to the option's total. A weight of 0 means no answer made the factor matter (neutral).", "",
             "| Factor | Weight | " + " | ".join(_cell(o.name) for o in rec.options) + " |",
             "|---|---:|" + "---:|" * len(rec.options)]
    for fid, name in rec.factor_names.items():
        source = rec.weight_sources.get(fid)
        weight = f"{rec.weights[fid]:g}" + (f" ({_cell(source)})" if source else "")
        lines.append(f"| {_cell(name)} | {weight} | " + " | ".join(_score_cell(o, fid) for o in rec.options) + " |")
    lines.append("| **Total** | | " + " | ".join(f"**{o.total:.1f}**" for o in rec.options) + " |")
    return lines


def _answer_sensitivity(rec: Recommendation) -> list[str]:
    if not rec.determined:
        return []
    lines = ["", "## Sensitivity: which answer changes the recommendation", ""]
    if not rec.answer_changes:
        return lines + ["No single answer, changed or added, changes first place."]
    return lines + [f"- {c.text}{' (one step)' if c.one_step else ''}" for c in rec.answer_changes]


def _weight_sensitivity(rec: Recommendation) -> list[str]:
    lines = ["", "## Sensitivity: which weight change flips the recommendation", ""]
    if not rec.sensitivity:
        if rec.firm_preference:
            return lines + ["Not applicable: a firm preference, not the weighted totals, puts the winner first."]
        if not rec.determined:
            return lines + ["Not applicable: nothing is recommended yet."]
        return lines + ["Not applicable: fewer than two options remain."]
    winner, runner_up = rec.option(rec.winner), rec.ranked[1]
    lines.append(f"{winner.name} leads {runner_up.name} by {winner.total - runner_up.total:.1f} points. Each row "
                 "changes one factor's weight (all others fixed) to the point where another option ties with "
                 f"{winner.name}; past it, that option ranks first. Nearest flip first.")
    if all(fl.delta is None for fl in rec.sensitivity):
        lines += ["", "**Robust:** no single weight change within the allowed range flips the recommendation."]
    lines += ["", "| Factor | Weight | Flip weight | Change | New first |", "|---|---:|---:|---:|---|"]
    for fl in sorted(rec.sensitivity, key=lambda f: (f.delta is None, abs(f.delta or 0.0))):
        if fl.delta is None:
            lines.append(f"| {_cell(fl.factor_name)} | {fl.current_weight:g} | – | – | {_cell(fl.note)} |")
        else:
            lines.append(f"| {_cell(fl.factor_name)} | {fl.current_weight:g} | {fl.flip_weight:.2f} | "
                         f"{fl.delta:+.2f} | {_cell(rec.option(fl.new_winner).name)} |")
    return lines


def _robustness(rec: Recommendation) -> list[str]:
    if not rec.robustness:
        return []
    if rec.status == "firm_preference":
        # The preferred option is first in every draw by construction; "100%" read as if the weights agreed.
        return ["", "## Robustness", "",
                f"Not applicable: {rec.option(rec.winner).name} is first by a firm preference (a rule, above), which "
                "no weight change moves. The weighted totals alone rank the options as in the table."]
    cfg = rec.robustness_config
    shares = ", ".join(f"{rec.option(o).name} {share:.0%}" for o, share in
                       sorted(rec.robustness.items(), key=lambda kv: -kv[1]) if share > 0)
    lines = ["", "## Robustness", "",
             f"First place when every weight is perturbed at once by a uniform factor in "
             f"[{1 - cfg['spread']:g}, {1 + cfg['spread']:g}] ({cfg['draws']} draws, seed {cfg['seed']}): {shares}."]
    deciding = rec.deciding_questions
    if deciding:
        # The draws perturb the weights the answers gave; an unanswered question weighs 0 in every draw, so
        # "100%" on a few answers said nothing about the questions that could still change first place.
        n = len(rec.unanswered)
        are = f"{n} questions are" if n > 1 else f"{n} question is"
        lines += ["", f"The draws vary only the weights of the answers given. {are} "
                  f"unanswered, and answering {', '.join(f'`{q}`' for q in deciding)} could change first place "
                  "(see the answer sensitivity above)."]
    return lines


def _evidence(rec: Recommendation) -> list[str]:
    if not rec.evidence:
        return []
    lines = ["", "## Evidence: pilot on your documents", "",
             f"{rec.evidence['n_questions']} questions. Measured scores replace the matrix's accuracy, latency and "
             "grounding scores in the table above; prior and measured side by side:", "",
             "| Arm | Option | Answered | Token F1 | Latency p50 (s) | Citation precision | Accuracy prior → "
             "measured | Latency prior → measured | Grounding prior → measured |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    measured = rec.evidence.get("measured_scores", {})
    for arm in rec.evidence["arms"].values():
        m = measured.get(arm["option_id"], {})
        opt = rec.option(arm["option_id"]) if arm["option_id"] in {o.id for o in rec.options} else None

        def pair(fid: str) -> str:
            prior = opt.contribution(fid).prior_score if opt is not None and fid in rec.weights else "–"
            return f"{prior} → {m.get(fid, '–')}"

        precision = arm.get("citation_precision")
        shown = "–" if precision is None else f"{precision:.3f}"
        lines.append(f"| {arm['arm']} | {arm['option_id']} | {arm['n']} | {arm['f1']:.3f} | "
                     f"{arm['latency_p50']:.3f} | {shown} | {pair('domain_accuracy')} | {pair('latency')} | "
                     f"{pair('grounding')} |")
    return lines + [""] + [f"- {m}" for m in rec.evidence.get("missing", [])]


def _sources(rec: Recommendation) -> list[str]:
    lines = ["", "## Sources", ""]
    for q in rec.quotes:
        where = ", ".join(x for x in (_display_path(q.source), q.section and f"section “{q.section}”",
                                     q.page is not None and f"page {q.page}") if x)
        lines += [f"[{q.marker}] {where}: “{q.text}”", ""]
    if rec.citations_note:
        lines += [rec.citations_note, ""]
    return lines


def _answers(rec: Recommendation) -> list[str]:
    lines = ["## Your answers", ""]
    lines += [f"- `{qid}`: {label}" for qid, label in rec.answer_labels.items()]
    if rec.unanswered:
        lines.append(f"- Not answered (neutral: they favour no option): {', '.join(f'`{q}`' for q in rec.unanswered)}")
    if rec.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rec.notes]
    return lines


def _method(rec: Recommendation) -> list[str]:
    return ["", "## Method", "",
            f"Matrix version {rec.matrix_version} ({rec.matrix_origin}). {rec.scale}. Hard constraints rule options "
            "out first, a firm preference of the source documents comes next, then the weighted totals; equal "
            "totals keep the order API, RAG, fine-tuning, RAG + fine-tuning: prompt engineering first, then RAG, "
            "then fine-tuning."]


def write_chart(rec: Recommendation, path: str | Path) -> Path:
    """A horizontal bar chart of the totals (winner highlighted, excluded options hatched) as PNG."""
    # The object-oriented API with an explicit Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    opts = list(reversed(rec.options))  # barh draws bottom-up; put rank 1 on top
    fig = Figure(figsize=(7, 0.6 * len(opts) + 1.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#bbbbbb" if o.excluded else ("#2a7ab9" if o.id == rec.winner else "#8fb9dc") for o in opts]
    bars = ax.barh([o.name for o in opts], [o.total for o in opts], color=colors)
    for bar, o in zip(bars, opts):
        if o.excluded:
            bar.set_hatch("//")
        label = f"{o.total:.1f}" + (" (excluded)" if o.excluded else "")
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=9)
    ax.set_xlim(0, 110)
    ax.set_xlabel("Score (0-100, weighted)")
    ax.set_title("ragtune advisor: option scores")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def check_report_path(md_path: str | Path) -> Path:
    """``md_path`` as a Path, after refusing what :func:`save_report` cannot write (checked before any work:
    a pilot can take minutes)."""
    if not str(md_path).strip():
        raise AdvisorError("--report needs a file name, e.g. advice.md")
    md_path = Path(md_path)
    if md_path.is_dir():  # before anything is written (a stray X.png beside the folder)
        raise AdvisorError(f"--report {md_path} is a folder; give the Markdown file to write, "
                           f"e.g. {md_path / 'advice.md'}")
    # The chart and the JSON go beside the Markdown under its name: a report named X.png or X.json would be
    # overwritten by them (the chart was, silently), and /dev/null would grow /dev/null.png.
    hint = "give a Markdown file name such as advice.md (the chart and JSON are written beside it)"
    if md_path.suffix.lower() in (".png", ".json"):
        raise AdvisorError(f"--report {md_path}: the chart or JSON would overwrite it; {hint}")
    if md_path.exists() and not md_path.is_file():
        raise AdvisorError(f"--report {md_path} is not a regular file; {hint}")
    if not md_path.parent.is_dir():
        why = "is not a folder" if md_path.parent.exists() else "does not exist (create it first)"
        raise AdvisorError(f"--report {md_path}: {md_path.parent} {why}")
    return md_path


def save_report(rec: Recommendation, md_path: str | Path, *, json_too: bool = False) -> list[Path]:
    """Write ``X.md`` and ``X.png`` (and ``X.json`` if asked) side by side; returns the paths written."""
    md_path = check_report_path(md_path)
    try:
        png = write_chart(rec, md_path.with_suffix(".png"))
        md_path.write_text(rec.to_markdown(chart_path=png.name), encoding="utf-8")
        written = [md_path, png]
        if json_too:
            js = md_path.with_suffix(".json")
            js.write_text(rec.to_json() + "\n", encoding="utf-8")
            written.append(js)
    except OSError as exc:
        raise AdvisorError(f"--report {md_path}: cannot write the report: {exc.strerror or exc}") from exc
    return written
