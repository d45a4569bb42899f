"""Render a :class:`Recommendation` as Markdown (factor table, reasons, sensitivity, sources), JSON and a
PNG bar chart of the option scores.

    >>> rec.save("advice.md", json_too=True)   # advice.md, advice.png, advice.json   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

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
    lines: list[str] = []
    add = lines.append
    ranked = rec.ranked
    if rec.winner is None:
        add("# ragtune advisor: every option is ruled out")
    else:
        top = ranked[0]
        add(f"# ragtune advisor: {top.name} ranks first")
        add("")
        lead = f"**Recommendation: {top.name}** with {top.total:.1f} / 100"
        if len(ranked) > 1:
            lead += f", {top.total - ranked[1].total:.1f} points ahead of {ranked[1].name} ({ranked[1].total:.1f})"
        add(lead + ".")
    add("")
    add("| Rank | Option | Score (0-100) |")
    add("|---:|---|---:|")
    for o in rec.options:
        add(f"| {o.rank if o.rank else '–'} | {_cell(o.name)} | {o.total:.1f}{' (excluded)' if o.excluded else ''} |")
    if chart_path is not None:
        add("")
        add(f"![Option scores]({Path(chart_path).as_posix()})")

    if rec.excluded:
        add("")
        add("## Ruled out by hard constraints")
        add("")
        for o in rec.excluded:
            for reason in o.exclusion_reasons:
                add(f"- **{o.name}**: {reason}")

    add("")
    add("## Reasons for and against each option")
    for o in rec.options:
        add("")
        status = f"rank {o.rank}" if o.rank else "excluded"
        add(f"### {o.name} — {o.total:.1f} ({status})")
        add("")
        for rule in o.rules:
            source = f" ({rule.source})" if rule.source else ""
            add(f"> {rule.text}{source}{_markers(rule.citations)}")
            add(">")
        if o.rules:
            lines.pop()  # no empty quote line after the last rule
            add("")
        for r in o.reasons_for:
            add(f"- **+{r.impact:.1f}** {r.text}{_markers(r.citations)}")
        for r in o.reasons_against:
            add(f"- **{r.impact:.1f}** {r.text}{_markers(r.citations)}")
        for reason in o.exclusion_reasons:
            add(f"- **Ruled out:** {reason}")

    add("")
    add("## Factor table")
    add("")
    add("Scores are 1 (serves the factor badly) to 5 (very well); `a → b` marks a matrix score adjusted for your "
        "answers or replaced by a measurement, and the figure in brackets is the factor's contribution to the "
        "option's total.")
    add("")
    add("| Factor | Weight | " + " | ".join(_cell(o.name) for o in rec.options) + " |")
    add("|---|---:|" + "---:|" * len(rec.options))
    for fid, name in rec.factor_names.items():
        source = rec.weight_sources.get(fid)
        weight = f"{rec.weights[fid]:g}" + (f" ({_cell(source)})" if source else "")
        add(f"| {_cell(name)} | {weight} | " + " | ".join(_score_cell(o, fid) for o in rec.options) + " |")
    add("| **Total** | | " + " | ".join(f"**{o.total:.1f}**" for o in rec.options) + " |")

    add("")
    add("## Sensitivity: which weight change flips the recommendation")
    add("")
    if not rec.sensitivity:
        add("Not applicable: fewer than two options remain.")
    else:
        winner = rec.option(rec.winner)
        runner_up = rec.ranked[1]
        add(f"{winner.name} leads {runner_up.name} by {winner.total - runner_up.total:.1f} points. Each row changes "
            f"one factor's weight (all others fixed) to the point where another option ties with {winner.name}; "
            "past it, that option ranks first. Nearest flip first.")
        if all(fl.delta is None for fl in rec.sensitivity):
            add("")
            add("**Robust:** no single weight change within the allowed range flips the recommendation.")
        add("")
        add("| Factor | Weight | Flip weight | Change | New first |")
        add("|---|---:|---:|---:|---|")
        for fl in sorted(rec.sensitivity, key=lambda f: (f.delta is None, abs(f.delta or 0.0))):
            if fl.delta is None:
                add(f"| {_cell(fl.factor_name)} | {fl.current_weight:g} | – | – | {_cell(fl.note)} |")
            else:
                add(f"| {_cell(fl.factor_name)} | {fl.current_weight:g} | {fl.flip_weight:.2f} | {fl.delta:+.2f} | "
                    f"{_cell(rec.option(fl.new_winner).name)} |")

    if rec.evidence:
        add("")
        add("## Evidence: pilot on your documents")
        add("")
        add(f"{rec.evidence['n_questions']} questions. Measured scores replace the matrix's accuracy and latency "
            "scores in the table above.")
        add("")
        add("| Arm | Option | Answered | Token F1 | Latency p50 (s) | Accuracy score | Latency score |")
        add("|---|---|---:|---:|---:|---:|---:|")
        measured = rec.evidence.get("measured_scores", {})
        for arm in rec.evidence["arms"].values():
            m = measured.get(arm["option_id"], {})
            add(f"| {arm['arm']} | {arm['option_id']} | {arm['n']} | {arm['f1']:.3f} | {arm['latency_p50']:.3f} | "
                f"{m.get('domain_accuracy', '–')} | {m.get('latency', '–')} |")

    add("")
    add("## Sources")
    add("")
    if rec.quotes:
        for q in rec.quotes:
            where = ", ".join(x for x in (_display_path(q.source), q.section and f"section “{q.section}”",
                                         q.page is not None and f"page {q.page}") if x)
            add(f"[{q.marker}] {where}: “{q.text}”")
            add("")
    if rec.citations_note:
        add(rec.citations_note)
        add("")

    add("## Your answers")
    add("")
    for qid, label in rec.answer_labels.items():
        add(f"- `{qid}`: {label}")
    if rec.unanswered:
        add(f"- Not answered (matrix defaults kept): {', '.join(f'`{q}`' for q in rec.unanswered)}")
    if rec.notes:
        add("")
        add("## Notes")
        add("")
        for n in rec.notes:
            add(f"- {n}")
    add("")
    add("## Method")
    add("")
    add(f"Matrix version {rec.matrix_version} ({rec.matrix_origin}). {rec.scale}. Equal totals keep the order "
        "API, RAG, fine-tuning, RAG + fine-tuning: prompt engineering first, then RAG, then fine-tuning.")
    return "\n".join(lines) + "\n"


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


def save_report(rec: Recommendation, md_path: str | Path, *, json_too: bool = False) -> list[Path]:
    """Write ``X.md`` and ``X.png`` (and ``X.json`` if asked) side by side; returns the paths written."""
    md_path = Path(md_path)
    png = write_chart(rec, md_path.with_suffix(".png"))
    md_path.write_text(rec.to_markdown(chart_path=png.name), encoding="utf-8")
    written = [md_path, png]
    if json_too:
        js = md_path.with_suffix(".json")
        js.write_text(rec.to_json() + "\n", encoding="utf-8")
        written.append(js)
    return written
