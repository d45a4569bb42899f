"""Build the binary documents of the shipped corpus (PDF, DOCX, PPTX) from source text kept in this file.

The Markdown, HTML, plain-text and CSV documents in corpora/ are written by hand; the formats that need a library
to produce are generated here so that their text stays reviewable in version control. The sources live in this
script as Python data (rather than in a side folder) so that corpora/ holds only the shipped documents.

Run from the repository root:

    python corpora/build.py            # writes into corpora/
    python corpora/build.py --out DIR  # writes elsewhere (used to check the build is reproducible)

Output is deterministic: fixed document dates, ids and zip timestamps, so rebuilding unchanged sources gives
byte-identical files.

Source mini-markup (one block per blank-line-separated paragraph):
    # Title            document title (first line only)
    ## Heading         section heading (PDF Heading1, DOCX "Heading 1")
    ### Heading        sub-section heading (PDF Heading2, DOCX "Heading 2")
    - item             bullet list item (consecutive lines starting with "- ")
    | a | b |          table rows; the first row is the header
    lines indented by 4 spaces form a preformatted block
    **bold**           inline bold
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

AUTHOR = "ragtune project"
FIXED_DATE = dt.datetime(2024, 1, 1, 12, 0, 0)
ZIP_DATE = (2024, 1, 1, 12, 0, 0)
CORPUS_DIR = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------------------------
# Parsing the mini-markup
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "para" | "bullets" | "table" | "pre"
    text: str = ""
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class SourceDoc:
    title: str
    blocks: list[Block]


def parse(source: str) -> SourceDoc:
    """Parse the mini-markup described in the module docstring into a title and a list of blocks."""
    title = ""
    blocks: list[Block] = []
    for chunk in re.split(r"\n\s*\n", source.strip("\n")):
        lines = chunk.split("\n")
        first = lines[0]
        if first.startswith("# "):
            title = first[2:].strip()
            rest = "\n".join(lines[1:]).strip()
            if rest:
                blocks.append(Block("para", text=" ".join(rest.split())))
        elif first.startswith("## "):
            blocks.append(Block("h1", text=first[3:].strip()))
        elif first.startswith("### "):
            blocks.append(Block("h2", text=first[4:].strip()))
        elif first.startswith("- "):
            items: list[str] = []
            for line in lines:
                if line.startswith("- "):
                    items.append(line[2:].strip())
                else:  # continuation line of the previous item
                    items[-1] += " " + line.strip()
            blocks.append(Block("bullets", items=items))
        elif first.startswith("|"):
            rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
            blocks.append(Block("table", rows=rows))
        elif first.startswith("    "):
            blocks.append(Block("pre", text="\n".join(line[4:] for line in lines)))
        else:
            blocks.append(Block("para", text=" ".join(chunk.split())))
    if not title:
        raise ValueError("source document has no '# Title' line")
    return SourceDoc(title, blocks)


def split_bold(text: str) -> list[tuple[str, bool]]:
    """Split text on **bold** markers into (text, is_bold) runs."""
    parts = re.split(r"(\*\*[^*]+\*\*)", text)
    return [(p[2:-2], True) if p.startswith("**") else (p, False) for p in parts if p]


def plain(text: str) -> str:
    return text.replace("**", "")


# --------------------------------------------------------------------------------------------------------------
# Deterministic zip containers (DOCX and PPTX are zip files whose entries carry the time of writing)
# --------------------------------------------------------------------------------------------------------------


def write_normalised_zip(data: bytes, path: Path) -> None:
    """Rewrite a zip container with fixed entry timestamps so repeated builds are byte-identical."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    path.write_bytes(out.getvalue())


# --------------------------------------------------------------------------------------------------------------
# PDF (reportlab)
# --------------------------------------------------------------------------------------------------------------


def build_pdf(doc: SourceDoc, path: Path, subject: str) -> None:
    """Render a document as a text PDF with real headings, a bookmark outline and several pages."""
    from reportlab import rl_config

    rl_config.invariant = 1  # fixed creation date and document id: reproducible bytes

    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        ListFlowable,
        ListItem,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )
    from xml.sax.saxutils import escape

    styles = getSampleStyleSheet()
    # Generous space around headings, paragraphs and list items: text extractors (pdfminer) group lines that sit
    # close together into one block, which would glue a heading onto the paragraph below it.
    h1 = ParagraphStyle("Heading1", parent=styles["Heading1"], fontSize=16, leading=20, spaceBefore=18, spaceAfter=12)
    h2 = ParagraphStyle("Heading2", parent=styles["Heading2"], fontSize=13, leading=16, spaceBefore=14, spaceAfter=10)
    body = ParagraphStyle("Body", parent=styles["BodyText"], fontSize=10.5, leading=14.5, alignment=TA_LEFT,
                          spaceAfter=9)
    cell = ParagraphStyle("Cell", parent=body, fontSize=9.5, leading=12, spaceAfter=0)
    code = ParagraphStyle("Code", parent=styles["Code"], fontSize=9, leading=11.5, leftIndent=12)

    def markup(text: str) -> str:
        return "".join(f"<b>{escape(t)}</b>" if bold else escape(t) for t, bold in split_bold(text))

    class OutlinedDoc(SimpleDocTemplate):
        """Adds a PDF outline (bookmarks) entry for every heading, as real authored documents have."""

        def afterFlowable(self, flowable):  # noqa: N802 (reportlab's hook name)
            level = {"Heading1": 0, "Heading2": 1}.get(getattr(getattr(flowable, "style", None), "name", ""))
            if level is not None:
                key = f"h{id(flowable)}"
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level, closed=False)

    story: list = [Paragraph(escape(doc.title), styles["Title"]), Spacer(1, 6)]
    for block in doc.blocks:
        if block.kind == "h1":
            story.append(Paragraph(escape(block.text), h1))
        elif block.kind == "h2":
            story.append(Paragraph(escape(block.text), h2))
        elif block.kind == "para":
            story.append(Paragraph(markup(block.text), body))
        elif block.kind == "bullets":
            # An en dash bullet: Helvetica's bullet glyph extracts as "(cid:127)" in pdfminer.
            items = [ListItem(Paragraph(markup(i), body), leftIndent=14) for i in block.items]
            story.append(ListFlowable(items, bulletType="bullet", start="\u2013", leftIndent=14))
        elif block.kind == "pre":
            story.append(Preformatted(block.text, code))
            story.append(Spacer(1, 6))
        elif block.kind == "table":
            # Each row is drawn as one monospace string with " | " between aligned cells. Text extractors then
            # read a row as one line; a grid of separately placed cells comes out as one fragment per cell.
            cells = [[plain(c) for c in row] for row in block.rows]
            widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
            lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
            table = Table([[line] for line in lines], repeatRows=1, hAlign="LEFT")
            table.setStyle(TableStyle([
                # Rows packed tightly (no inner rules, little padding) so the table is read as one block.
                ("BOX", (0, 0), (-1, -1), 0.5, colors.grey),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("FONTNAME", (0, 0), (-1, 0), "Courier-Bold"),
                ("FONTNAME", (0, 1), (-1, -1), "Courier"),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("LEADING", (0, 0), (-1, -1), 10),
            ]))
            story.extend([table, Spacer(1, 8)])

    pdf = OutlinedDoc(str(path), pagesize=A4, leftMargin=2.4 * cm, rightMargin=2.4 * cm, topMargin=2.2 * cm,
                      bottomMargin=2.2 * cm, title=doc.title, author=AUTHOR, subject=subject,
                      creator="ragtune corpora/build.py")
    pdf.build(story)


# --------------------------------------------------------------------------------------------------------------
# DOCX (python-docx)
# --------------------------------------------------------------------------------------------------------------


def build_docx(doc: SourceDoc, path: Path, subject: str) -> None:
    """Render a document as DOCX using the built-in Title, Heading 1/2, List Bullet and Table Grid styles."""
    import docx
    from docx.shared import Pt

    d = docx.Document()
    props = d.core_properties
    props.title, props.author, props.subject = doc.title, AUTHOR, subject
    props.last_modified_by, props.revision = AUTHOR, 1
    props.created = props.modified = props.last_printed = FIXED_DATE

    def add_runs(paragraph, text: str) -> None:
        for t, bold in split_bold(text):
            paragraph.add_run(t).bold = bold

    d.add_heading(doc.title, level=0)
    for block in doc.blocks:
        if block.kind in ("h1", "h2"):
            d.add_heading(block.text, level=1 if block.kind == "h1" else 2)
        elif block.kind == "para":
            add_runs(d.add_paragraph(), block.text)
        elif block.kind == "bullets":
            for item in block.items:
                add_runs(d.add_paragraph(style="List Bullet"), item)
        elif block.kind == "pre":
            for line in block.text.split("\n"):
                run = d.add_paragraph().add_run(line)
                run.font.name, run.font.size = "Courier New", Pt(9.5)
        elif block.kind == "table":
            table = d.add_table(rows=len(block.rows), cols=len(block.rows[0]), style="Table Grid")
            for r, row in enumerate(block.rows):
                for c, text in enumerate(row):
                    cell_par = table.cell(r, c).paragraphs[0]
                    for t, bold in split_bold(text):
                        cell_par.add_run(t).bold = bold or r == 0
            d.add_paragraph()
    buffer = io.BytesIO()
    d.save(buffer)
    write_normalised_zip(buffer.getvalue(), path)


# --------------------------------------------------------------------------------------------------------------
# PPTX (python-pptx)
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Slide:
    title: str
    bullets: list[str] = field(default_factory=list)  # "  " prefix per extra indent level
    table: list[list[str]] = field(default_factory=list)
    notes: str = ""


def build_pptx(title: str, subtitle: str, slides: list[Slide], path: Path, subject: str) -> None:
    """Render a slide deck: a title slide, then one 'Title and Content' slide per entry, with speaker notes."""
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    props = prs.core_properties
    props.title, props.author, props.subject = title, AUTHOR, subject
    props.last_modified_by, props.revision = AUTHOR, 1
    props.created = props.modified = props.last_printed = FIXED_DATE

    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = title
    first.placeholders[1].text = subtitle

    for spec in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = spec.title
        body = slide.placeholders[1]
        if spec.table:
            body.element.getparent().remove(body.element)  # the table takes the content area
            rows, cols = len(spec.table), len(spec.table[0])
            shape = slide.shapes.add_table(rows, cols, Inches(0.5), Inches(1.7), Inches(9), Inches(0.4) * rows)
            for r, row in enumerate(spec.table):
                for c, text in enumerate(row):
                    cell = shape.table.cell(r, c)
                    cell.text = text
                    for p in cell.text_frame.paragraphs:
                        for run in p.runs:
                            run.font.size = Pt(13)
        else:
            frame = body.text_frame
            frame.word_wrap = True
            for i, bullet in enumerate(spec.bullets):
                level = (len(bullet) - len(bullet.lstrip(" "))) // 2
                p = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
                p.text, p.level = bullet.strip(), level
                for run in p.runs:
                    run.font.size = Pt(15 if level == 0 else 13)
        if spec.notes:
            slide.notes_slide.notes_text_frame.text = spec.notes
    buffer = io.BytesIO()
    prs.save(buffer)
    write_normalised_zip(buffer.getvalue(), path)


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def build_all(out_dir: Path) -> list[Path]:
    """Write every generated document into out_dir and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, (subject, source) in PDF_SOURCES.items():
        build_pdf(parse(source), out_dir / name, subject)
        written.append(out_dir / name)
    for name, (subject, source) in DOCX_SOURCES.items():
        build_docx(parse(source), out_dir / name, subject)
        written.append(out_dir / name)
    build_pptx(PPTX_TITLE, PPTX_SUBTITLE, PPTX_SLIDES, out_dir / PPTX_NAME, PPTX_SUBJECT)
    written.append(out_dir / PPTX_NAME)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the PDF, DOCX and PPTX documents of the ragtune corpus.")
    parser.add_argument("--out", type=Path, default=CORPUS_DIR, help="output folder (default: corpora/)")
    args = parser.parse_args(argv)
    for path in build_all(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


# ==============================================================================================================
# Sources. Everything below is document text, original to the ragtune project (Apache-2.0).
# ==============================================================================================================

LORA_QLORA = """
# LoRA and QLoRA: Low-Rank Adaptation in Practice

Low-rank adaptation (LoRA) and its quantised variant QLoRA are the most widely used ways to fine-tune large language models on modest hardware. This document explains the idea behind LoRA, the meaning of its two main settings, rank r and alpha, how to count trainable parameters, and the three techniques that make QLoRA fit large models into a single GPU: 4-bit NormalFloat, double quantisation and paged optimisers.

## Why Parameter-Efficient Fine-Tuning

Full fine-tuning updates every weight of the model. With the Adam optimiser and mixed precision, training needs about 16 bytes per parameter: 2 bytes for the 16-bit weights, 2 for the gradients, 4 for a 32-bit master copy of the weights and 8 for Adam's two moment estimates. For a 7-billion-parameter model that is roughly 112 GB before activations, more than any single GPU holds. Each fine-tuned task also produces a full copy of the model.

Parameter-efficient methods freeze the pre-trained weights and train a small number of new parameters. When LoRA was introduced in 2021 and applied to GPT-3 175B, it reduced the number of trainable parameters by a factor of 10,000 and the GPU memory requirement by a factor of 3, while matching the quality of full fine-tuning on the tasks studied.

## The LoRA Idea

LoRA rests on the observation that the change in weights needed to adapt a pre-trained model to a task has a low intrinsic rank: it can be approximated well by a matrix of much lower rank than the weight itself. For a frozen weight matrix W0 of shape d x k, LoRA learns the update as a product of two small matrices, B of shape d x r and A of shape r x k, where the rank r is far smaller than d and k. The layer's output becomes

    h = W0 x + (alpha / r) * B A x

A is initialised with small random values and B with zeros, so the product B A is zero at the start and training begins exactly from the pre-trained model. Only A and B receive gradients; W0 never changes.

## The Rank r and Alpha Settings

The **rank r** sets the capacity of the update. Typical values range from 4 to 64, with 8 and 16 the most common defaults. Higher ranks can express more complex changes but train more parameters and can overfit small datasets; for many instruction-tuning tasks r = 8 or r = 16 is enough.

The **alpha** hyperparameter scales the update by alpha / r. With r = 8 and alpha = 16, the update is multiplied by 2. Common rules of thumb set alpha equal to r or to twice r. Because the scale divides by r, changing r while holding alpha fixed also changes the effective step size of the update, so re-tune the learning rate when sweeping r. A variant called rank-stabilised LoRA (rsLoRA) scales by alpha divided by the square root of r, which keeps training stable at higher ranks. A small dropout, such as 0.05, is often applied on the LoRA path.

## Counting Trainable Parameters

For one weight matrix of shape d x k, LoRA trains r x d parameters in B plus r x k in A, so the count is **r x (d + k)**.

- A single 4,096 x 4,096 attention projection with r = 8 trains 8 x (4,096 + 4,096) = 65,536 parameters, instead of 16,777,216 for the full matrix, about 0.39 percent.
- A 7B Llama-style model has 32 layers with hidden size 4,096. Adapting only the query and value projections with r = 8 trains 2 x 32 x 65,536 = 4,194,304 parameters, about 4.2 million or 0.06 percent of its 6.7 billion weights.
- Adapting all linear layers with r = 16 (four attention projections plus three MLP projections of size 4,096 x 11,008) trains 524,288 + 724,992 = 1,249,280 parameters per layer, or 39,976,960 in total: about 40 million, 0.6 percent of the model.

| Configuration (7B model) | Trainable parameters | Share of model | Adapter file (16-bit) |
| q and v projections, r = 8 | 4.2 million | 0.06 % | about 8 MB |
| all linear layers, r = 16 | 40 million | 0.6 % | about 80 MB |
| full fine-tuning | 6.7 billion | 100 % | about 13.5 GB |

## LoRA Target Modules

The original LoRA paper adapted only the query and value projections of attention. Later experience, including the QLoRA study, found that applying LoRA to all linear layers (query, key, value, output and the feed-forward projections) is needed to match full fine-tuning quality, and the extra parameters are cheap. The embedding layer and language-model head usually stay frozen unless new tokens are added to the vocabulary.

## Merging and Serving

After training, the update can be folded into the base weight: W = W0 + (alpha / r) B A. A merged model has exactly the same architecture and speed as the original, so LoRA adds **no inference latency**. Alternatively the adapter can be kept separate, which lets one copy of the base model serve many tasks by switching small adapters, and lets a serving system batch requests for different adapters together.

## QLoRA

QLoRA, published in 2023, fine-tunes LoRA adapters on top of a base model whose frozen weights are stored in 4 bits. Gradients flow through the quantised weights into the 16-bit LoRA parameters. With this approach a 65-billion-parameter model could be fine-tuned on a single 48 GB GPU while preserving the quality of 16-bit fine-tuning. QLoRA combines three techniques.

### 4-bit NormalFloat (NF4)

Pre-trained weights are roughly normally distributed around zero. The **4-bit NormalFloat (NF4)** data type places its 16 levels at quantiles of a standard normal distribution, rescaled to the range -1 to 1, so that each level is used about equally often. For normally distributed weights this is information-theoretically optimal, and it preserves more accuracy than plain 4-bit integers or 4-bit floats. NF4 also represents zero exactly.

Quantisation is done block-wise: the weights are split into blocks of 64, and each block is divided by its largest absolute value (absmax) before being mapped to the nearest NF4 level. The scale of each block is stored as a quantisation constant. During the forward and backward passes the weights are dequantised to the 16-bit computation data type, usually bfloat16, so storage is 4-bit while arithmetic stays 16-bit.

### Double Quantisation

The quantisation constants themselves take memory. With one 32-bit constant per block of 64 weights they cost 32 / 64 = 0.5 bits per parameter. **Double quantisation** quantises these constants a second time, to 8-bit floats in blocks of 256, with one 32-bit constant per block of constants. The cost becomes 8 / 64 + 32 / (64 x 256) = 0.125 + 0.002 = about 0.127 bits per parameter, a saving of about 0.373 bits per parameter, or roughly 3 GB for a 65B model.

### Paged Optimisers

Long sequences combined with gradient checkpointing cause short memory spikes that can crash a run that otherwise fits. **Paged optimisers** allocate optimiser states in NVIDIA unified memory, which is automatically paged between GPU memory and CPU RAM, much like virtual memory paging between RAM and disk. When the GPU runs short, optimiser states move to the CPU and come back when needed, so the spike causes a slowdown instead of an out-of-memory error.

## A QLoRA Memory Budget for a 7B Model

- Frozen base weights: 6.7 billion x 4 bits is about 3.4 GB, plus about 0.1 GB of quantisation constants with double quantisation.
- LoRA on all linear layers with r = 16: 40 million parameters, about 80 MB of 16-bit weights, 80 MB of gradients and 320 MB of 32-bit Adam moments.
- Activations: set by sequence length and batch size; gradient checkpointing trades extra compute for much less memory.

Such a run typically fits in a 12 to 16 GB GPU, whereas the 16-bit weights of the same model alone take about 14 GB.

## Hyperparameters That Usually Work

- Learning rate 1e-4 to 2e-4, about ten times higher than the 1e-5 to 2e-5 typical for full fine-tuning.
- Rank 8 to 16, alpha 16 to 32, LoRA dropout 0.05.
- One to three epochs, with evaluation loss checked every few hundred steps.
- An effective batch size of 16 to 64 sequences, reached with gradient accumulation when memory is tight.
- A cosine or linear learning-rate schedule with a short warm-up of about 3 percent of steps.

## Pitfalls

- **Template mismatch.** Train and serve with the same chat template and special tokens, or the adapter learns a format the application never sends.
- **Merging into a quantised model.** Merge a QLoRA adapter into a 16-bit copy of the base weights, not into the 4-bit weights, then quantise the merged model again if needed.
- **Speed.** QLoRA saves memory but each step is slower than 16-bit LoRA because of dequantisation.
- **Overfitting.** Small datasets overfit quickly at high rank or many epochs; keep a held-out set and stop when its loss rises.
"""

INFERENCE = """
# Inference Optimisation: Making LLMs Fast and Cheap

Serving a language model costs memory, time and money on every request. This document explains where inference time goes and the main techniques that reduce it: quantisation to int8 and int4, knowledge distillation, the KV cache, multi-query and grouped-query attention, FlashAttention, speculative decoding and batching.

## Where Inference Time Goes

Generation has two phases. In the **prefill** phase the model processes the whole prompt in one parallel pass and produces the first token; this phase is compute-bound. In the **decode** phase it generates one token at a time, and each step must read every weight from GPU memory to do a small amount of arithmetic; this phase is **memory-bandwidth-bound**. For a 7B model in 16-bit precision, each decode step reads about 14 GB of weights, so a GPU with 2 TB/s of bandwidth cannot exceed roughly 140 steps per second for a single sequence, whatever its compute power.

The numbers users feel are time to first token (TTFT), driven by prefill and queueing, and time per output token (TPOT), driven by decode. Operators also track throughput: tokens per second across all requests. Most optimisations either move fewer bytes per token or share each read of the weights across more tokens.

## Quantisation

Quantisation stores weights (and sometimes activations) in fewer bits. Because decode is bandwidth-bound, smaller weights are faster as well as smaller.

| Precision | Bytes per parameter | 7B model weights |
| fp32 | 4 | about 28 GB |
| fp16 or bf16 | 2 | about 14 GB |
| int8 | 1 | about 7 GB |
| int4 | 0.5 | about 3.5 GB |

- **int8.** Eight-bit weight quantisation usually loses very little quality. Large models contain a few outlier features with very large magnitudes; LLM.int8() handles them by keeping those dimensions in 16-bit while the rest use 8-bit matrix multiplication.
- **int4.** Four-bit weight-only quantisation roughly quarters memory with a small, measurable quality loss. GPTQ quantises layer by layer using second-order information to compensate for rounding error; AWQ (activation-aware weight quantisation) protects the small share of weights that matter most for activations. The GGUF file format used by llama.cpp offers many k-quant variants between 2 and 8 bits for CPU and GPU inference.
- **Weight-only versus weight-and-activation.** Weight-only schemes such as int4 with 16-bit activations cut memory traffic. Quantising activations too (for example W8A8) also speeds up compute-bound prefill, but is harder to do without losing accuracy.

Always measure quality after quantisation on your own evaluation set. Smaller models and aggressive 3-bit or 2-bit schemes lose more.

## Knowledge Distillation

Distillation trains a small **student** model to imitate a large **teacher**. Instead of learning only from hard labels, the student matches the teacher's full output distribution, often softened with a temperature above 1, which carries richer information about which answers are nearly right. DistilBERT, an early example, was 40 percent smaller and 60 percent faster than BERT while keeping about 97 percent of its language-understanding performance. For LLMs, a common practical form is training a small model on responses generated by a larger one. Distillation changes the model itself, so it pays off when one task runs at high volume.

## The KV Cache

During decoding, each new token attends to the keys and values of all previous tokens. Recomputing them at every step would be wasteful, so they are stored in the **KV cache**. Its size in bytes is 2 x layers x kv_heads x head_dim x bytes_per_value x tokens, where the 2 counts keys and values. For a 7B Llama-style model (32 layers, 32 heads of 128 dimensions, 16-bit values) that is 2 x 32 x 32 x 128 x 2 = 524,288 bytes, about 0.5 MB per token. A 4,096-token sequence therefore needs about 2 GB, and a batch of 16 such sequences needs 32 GB, more than the weights. The KV cache, not the weights, often limits how many requests a server can handle at once.

## Multi-Query and Grouped-Query Attention

Standard multi-head attention keeps separate keys and values for every head. **Multi-query attention (MQA)** shares a single key head and value head across all query heads, shrinking the KV cache by the number of heads, with some loss of quality. **Grouped-query attention (GQA)** is the middle ground: query heads are divided into groups that each share one key-value head. A 70B Llama-style model with 80 layers and 64 query heads uses 8 key-value heads; its cache is 2 x 80 x 8 x 128 x 2 = 327,680 bytes (320 KB) per token instead of 2.5 MB, an eight-fold reduction with quality close to full multi-head attention.

## FlashAttention

Standard attention writes the full n x n matrix of attention scores to GPU high-bandwidth memory and reads it back, which is slow and uses memory quadratic in sequence length. **FlashAttention** computes exactly the same result but processes queries and keys in tiles that fit in fast on-chip SRAM, using an online softmax so that the full score matrix is never stored. It is IO-aware: it minimises traffic between memory levels. The result is faster training and prefill and attention memory that grows linearly rather than quadratically with sequence length, which is what made long context windows practical. It is not an approximation.

## Speculative Decoding

Because decode is bandwidth-bound, verifying several tokens in one forward pass costs about the same as generating one. **Speculative decoding** exploits this: a small, fast draft model proposes gamma tokens, and the large target model scores all of them in a single pass. Tokens are accepted from left to right using a rejection-sampling rule; at the first rejection the target model's own corrected token is used. The rule guarantees that the output follows exactly the same distribution as the target model alone, so quality is unchanged.

If each draft token is accepted with probability a, the expected number of tokens produced per target pass is (1 - a^(gamma + 1)) / (1 - a). With a = 0.8 and gamma = 4 that is about 3.4 tokens per pass. Reported speedups are typically 2 to 3 times. Variants replace the separate draft model with extra prediction heads on the target model or with n-gram lookups in the prompt.

## Batching

One decode step reads all the weights; serving many sequences in the same step shares that cost.

- **Static batching** waits for a batch to fill and runs it to completion, so short requests wait for long ones.
- **Dynamic batching** groups requests that arrive within a short window.
- **Continuous batching** (also called in-flight batching) schedules at the level of individual decode steps: finished sequences leave the batch and new ones join immediately, keeping the GPU busy. It raises throughput several-fold over static batching.
- **PagedAttention**, introduced with the vLLM server, stores the KV cache in fixed-size blocks like virtual-memory pages, which removes fragmentation, allows larger batches and lets requests share cached prompt prefixes.

Larger batches raise throughput but also each user's time per token, so servers cap batch size to meet latency targets.

## Other Levers and a Checklist

- Shorter prompts: trim system prompts and retrieved context; cache shared prefixes.
- A smaller model: often the biggest single saving, especially after fine-tuning for the task.
- Output limits: cap the maximum number of new tokens.
- Checklist: measure TTFT, TPOT and throughput; quantise to int8 or int4 and re-evaluate; use a server with continuous batching, paged KV cache and FlashAttention; prefer GQA models for long contexts; add speculative decoding when latency for single users matters.
"""

RLHF_DPO = """
# Aligning Models with Human Preferences: RLHF and DPO

Supervised fine-tuning teaches a model to follow instructions by imitating demonstrations. It does not directly teach the model which of several plausible answers people prefer: more helpful, more honest, less harmful. Preference tuning fills that gap. This document explains reinforcement learning from human feedback (RLHF) and direct preference optimisation (DPO), the two dominant approaches, and their practical trade-offs.

## Why Preferences After SFT

Demonstrations are expensive to write and show only one good answer per prompt. Comparisons are cheaper: annotators look at two responses to the same prompt and say which is better. Comparisons also capture qualities that are hard to demonstrate, such as appropriate caution, conciseness or admitting uncertainty. Preference tuning usually starts from an SFT model and nudges it towards responses that people rank higher.

## Preference Data

A preference dataset consists of records with three fields: a **prompt**, a **chosen** response and a **rejected** response. Responses are usually sampled from the SFT model itself, sometimes at different temperatures or from different checkpoints, so that the data reflects what the model actually produces. Annotation guidelines define what "better" means, often in terms of being helpful, honest and harmless, and quality checks measure agreement between annotators. Some pipelines replace human labels with labels from a strong model guided by a written set of principles, an approach called reinforcement learning from AI feedback (RLAIF); Constitutional AI is a well-known example.

## The RLHF Pipeline

The classic RLHF recipe, popularised by InstructGPT in 2022, has three stages:

- **Stage 1, supervised fine-tuning:** train the pre-trained model on demonstrations of good responses.
- **Stage 2, reward model:** train a model to score responses so that preferred responses score higher.
- **Stage 3, policy optimisation:** fine-tune the SFT model with reinforcement learning to maximise the reward model's score, while staying close to the SFT model.

A striking InstructGPT result was that labellers preferred outputs from a 1.3B-parameter model trained this way over outputs from the 175B-parameter GPT-3, showing how much alignment can matter relative to scale.

## The Reward Model

The reward model is usually the SFT model with its language-model head replaced by a head that outputs a single scalar. It is trained on comparison pairs with a **Bradley-Terry** style loss: for a prompt x with chosen response y_w and rejected response y_l, the loss is -log sigmoid(r(x, y_w) - r(x, y_l)), which pushes the chosen response's score above the rejected one's. Only differences between scores matter, so rewards are often normalised before reinforcement learning.

## Policy Optimisation with PPO

In stage 3 the model being trained (the policy) generates responses to prompts, the reward model scores them, and **proximal policy optimisation (PPO)** updates the policy. The objective adds a penalty on the KL divergence between the policy and the frozen SFT model, the reference: the policy maximises reward(x, y) - beta x KL(policy || reference).

The KL penalty stops the policy from drifting into strange text that happens to fool the reward model. PPO's clipped update keeps each step small. In practice PPO-based RLHF keeps four models in memory, the policy, the reference model, the reward model and a value model that estimates expected reward, and it is sensitive to hyperparameters.

## Problems with RLHF

- **Reward hacking:** the policy finds outputs that score highly without being better, such as excessive length or flattery, because the reward model is only an approximation of human judgement.
- **Cost and complexity:** generating samples during training, running four models and tuning PPO is expensive and fragile.
- **Instability:** training can collapse or oscillate, and results vary between runs.

## Direct Preference Optimisation (DPO)

DPO, published in 2023, removes the separate reward model and the reinforcement-learning loop. Its authors showed that the optimal policy for the KL-constrained reward objective can be written in closed form, so the reward can be expressed through the policy itself. Substituting this into the Bradley-Terry loss gives a simple classification-style loss on preference pairs:

    loss = -log sigmoid( beta * [ log(pi(y_w|x) / ref(y_w|x)) - log(pi(y_l|x) / ref(y_l|x)) ] )

Here pi is the model being trained and ref is the frozen reference model, normally the SFT model. The loss raises the likelihood of chosen responses relative to the reference and lowers that of rejected ones. The quantity beta x log(pi / ref) acts as an **implicit reward**. The hyperparameter **beta**, typically around 0.1, controls how far the model may move from the reference: smaller values allow larger deviations.

DPO needs only the policy and the reference model, no sampling during training and no reward model, and it trains with ordinary supervised-learning tooling. On summarisation and dialogue benchmarks it matched or exceeded PPO-based RLHF, which made it the default choice for many open models.

## Practical DPO

- Start from a good SFT model; DPO refines behaviour but does not teach new skills.
- Use preference pairs generated by, or close to, your SFT model's own outputs.
- Use a low learning rate, such as 5e-7 to 5e-6 for full fine-tuning; with LoRA, somewhat higher rates are used.
- One to three epochs are usually enough; watch the reward margin (chosen minus rejected implicit reward) and the accuracy of ranking chosen above rejected on held-out pairs.
- LoRA works well with DPO: with the adapter disabled, the base model itself can serve as the reference, saving memory.

## Variants

- **IPO** (identity preference optimisation) changes the loss to reduce overfitting when preferences are nearly deterministic.
- **KTO** (Kahneman-Tversky optimisation) learns from single responses labelled desirable or undesirable, with no need for pairs.
- **ORPO** (odds ratio preference optimisation) combines SFT and preference learning in one stage without a reference model.

## Evaluating Aligned Models

Measure the win rate against the SFT model or a baseline, judged by humans or an LLM-as-judge; check that helpfulness has not been bought with verbosity; track refusal rates on harmless prompts and compliance on harmful ones; and re-run task benchmarks to catch regressions, sometimes called the alignment tax.

| Aspect | RLHF with PPO | DPO |
| Reward model | separate, trained first | none, implicit in the policy |
| Models in memory | policy, reference, reward, value | policy and reference |
| Sampling during training | yes | no |
| Stability | sensitive to hyperparameters | stable, supervised-style |
| Key setting | KL coefficient beta | beta, around 0.1 |
"""

PRETRAIN_VS_FINETUNE = """
# Pre-training versus fine-tuning

Every modern language model goes through at least two kinds of training. Pre-training builds general ability from enormous amounts of raw text; fine-tuning adapts that ability to particular tasks, formats or behaviour with far less data. Knowing what each phase does, and what it costs, explains why almost every team fine-tunes and almost none pre-trains.

## Two phases in a model's life

Think of pre-training as a broad education and fine-tuning as job training. Pre-training produces a **base model** (sometimes called a foundation model) that has absorbed language, facts and patterns but simply continues whatever text it is given. Fine-tuning turns that base model into something useful for a purpose: a chat assistant, a code completer, a classifier or a domain specialist.

## Pre-training

### Objective

Decoder-only models are pre-trained with **next-token prediction**, also called causal language modelling: for every position in a text, predict the following token, and minimise the cross-entropy loss over the vocabulary. The data needs no labels because the text supplies its own targets, so pre-training is described as **self-supervised**. Encoder models such as BERT use masked language modelling instead, predicting hidden tokens from both sides.

### Data

Pre-training corpora contain web crawls, books, encyclopaedias, scientific articles and source code, filtered for quality, stripped of duplicates and personal data, and balanced across languages and domains. Data work is a large part of the effort: deduplication reduces memorisation, and quality filtering has a measurable effect on downstream performance. Current models are trained on trillions of tokens; the Llama 2 models, for example, saw about 2 trillion tokens.

### Compute

Training compute is approximately 6 x N x D floating-point operations for N parameters and D training tokens. A 7-billion-parameter model trained on 2 trillion tokens therefore needs about 6 x 7e9 x 2e12 = 8.4e22 operations, which takes thousands of GPU-days. Research on compute-optimal training (the Chinchilla study) found that, for a fixed budget, parameters and tokens should grow together, at roughly **20 training tokens per parameter**; Chinchilla itself had 70 billion parameters and was trained on 1.4 trillion tokens. Many current small models are trained on far more tokens than that ratio, because a smaller model that has seen more data is cheaper to serve.

### Result

A base model is a powerful text continuer. Asked a question, it might answer, or it might continue with more questions, because both are plausible continuations. It has no notion of a user or an assistant and no training to refuse harmful requests. That is what fine-tuning adds.

## Fine-tuning

Fine-tuning continues training a pre-trained model on a smaller, targeted dataset. The main kinds are:

- **Supervised fine-tuning (SFT):** train on prompt-response pairs that demonstrate the desired behaviour.
- **Instruction tuning:** SFT on many tasks phrased as instructions, so the model learns to follow instructions in general.
- **Preference tuning:** RLHF or DPO on comparisons between responses, to make outputs more helpful and safe.
- **Task or domain fine-tuning:** train for one job, such as extracting fields from contracts or answering in a house style.

Fine-tuning can update all weights (**full fine-tuning**) or a small set of added parameters (**parameter-efficient fine-tuning**, such as LoRA). Datasets range from a few dozen to hundreds of thousands of examples, and runs take minutes to days on one or a few GPUs.

## Continued pre-training

Between the two sits **continued pre-training**, also called domain-adaptive pre-training: further next-token training of a base model on a large amount of unlabelled domain text, such as medical literature, legal filings or a company's documentation. It teaches vocabulary and domain knowledge better than SFT can, because it uses the same objective and much more text, but it needs millions to billions of tokens and correspondingly more compute. It is followed by SFT to restore instruction following.

## Side-by-side comparison

| Aspect | Pre-training | Fine-tuning |
| Goal | general language ability and knowledge | specific behaviour, task or domain |
| Data | trillions of unlabelled tokens | hundreds to thousands of curated examples |
| Objective | next-token prediction (self-supervised) | supervised targets or preferences |
| Compute | thousands of GPUs for weeks | one to a few GPUs for hours |
| Who does it | a few well-funded labs | almost any team |
| Output | base model | instruction, chat or task model |

## Catastrophic forgetting

Training hard on a narrow dataset can erode general abilities the model had before, a problem known as **catastrophic forgetting**. A model fine-tuned for many epochs on legal summaries may get worse at arithmetic or ordinary conversation. Mitigations include:

- a low learning rate and few epochs;
- mixing some general-purpose instruction data into the fine-tuning set;
- parameter-efficient methods such as LoRA, which leave the original weights untouched and constrain how far the model can move;
- evaluating general benchmarks as well as the target task before and after fine-tuning.

## Which does your project need?

Pre-training from scratch is almost never the right choice outside large labs: the cost runs from hundreds of thousands to many millions of dollars, and open base models are already available. Continued pre-training makes sense when a domain's language differs sharply from general text and a large unlabelled corpus exists. For most projects the choice is between prompting an existing instruction-tuned model, adding retrieval, and fine-tuning an open model with a parameter-efficient method, in that order of cost.
"""

SFT = """
# Supervised fine-tuning and instruction tuning

Supervised fine-tuning (SFT) is the step that turns a base model, which merely continues text, into a model that answers questions, follows instructions and holds a conversation. It is also the most common way for teams to specialise a model for their own task. This document covers instruction tuning, data formats, chat templates, loss masking, how much data is needed, training settings and evaluation.

## What SFT is

SFT trains a pre-trained model on pairs of inputs and desired outputs, using the same next-token prediction loss as pre-training but on curated examples. Each example shows the model a prompt and the response it should produce. Because the objective is unchanged, SFT is simple to run with standard training code; what matters is the data.

## Instruction tuning

**Instruction tuning** is SFT on a large and diverse collection of tasks, each phrased as a natural-language instruction: "Summarise this article", "Translate into French", "Classify the sentiment of this review". Work such as FLAN showed that a model tuned on many instruction-formatted tasks performs much better on unseen tasks described by new instructions, especially at larger scales. Instruction tuning is why current chat models can do tasks nobody trained them on explicitly. Instruction-tuned models are often released with an "Instruct" or "Chat" suffix next to their base model.

## Data formats

Two layouts are common:

- **Instruction format:** records with an instruction, an optional input and an output, as in the Alpaca dataset. It suits single-turn tasks.
- **Chat or messages format:** a list of messages, each with a role (system, user or assistant) and content. It handles multi-turn conversations and system prompts, and it is what most training libraries expect today.

JSON Lines, one example per line, is the usual file format. Keep a held-out validation split, typically 5 to 10 percent, that never appears in training.

## Chat templates

A chat model does not see role names as structured data; it sees one string in which special tokens mark where each message starts and ends. The exact layout is the model's **chat template**, and it differs between model families. Training and inference must use the same template. A model fine-tuned with one template and served with another produces erratic output, so use the tokenizer's own template function rather than formatting strings by hand, and make sure the end-of-turn token is part of each training target so the model learns to stop.

## Loss masking

In SFT the model should learn to produce responses, not to predict the user's prompt. **Loss masking** computes the loss only on the response (assistant) tokens: the labels for system and user tokens are set to an ignore value, conventionally -100 in PyTorch, so they contribute nothing to the gradient. Training on prompts as well wastes capacity and can teach the model to imitate users. Most SFT libraries provide an option to train on completions only.

## How much data, and what kind

Quality matters far more than quantity. The LIMA study fine-tuned a 65B model on only 1,000 carefully chosen examples and obtained responses competitive with much larger training sets, supporting the idea that SFT mainly teaches format and style while knowledge comes from pre-training. Practical guidance:

- About **50 high-quality examples** is a sensible floor before a clear improvement appears; a few hundred to a few thousand is typical for a focused task.
- Every example should be correct, consistent in style and format, and representative of real inputs, including difficult and edge cases.
- Diversity beats repetition: many different prompts teach more than many paraphrases of a few.
- Remove duplicates and near-duplicates, and check that no validation or test examples leaked into training.
- When the model should decline or say it does not know, include examples of exactly that.

## Synthetic data

When real examples are scarce, a stronger model can generate question-answer pairs from your documents or expand a small seed set. Synthetic data needs filtering: check answers against the source, remove duplicates and near-copies of the source text, and review a sample by hand. Also check the licence terms of the model used to generate data.

## Training settings

### Hyperparameters

| Setting | Full fine-tuning | LoRA or QLoRA |
| Learning rate | 1e-5 to 2e-5 | 1e-4 to 2e-4 |
| Epochs | 1 to 3 | 1 to 3 |
| Effective batch size | 32 to 128 sequences | 16 to 64 sequences |
| Maximum sequence length | cover most examples, e.g. 2,048 tokens | same |

### Packing and epochs

**Packing** concatenates several short examples into one sequence up to the maximum length, which speeds up training when examples are short; use attention masking or separators so examples do not bleed into each other. Too many epochs on a small dataset leads to memorisation: training loss keeps falling while validation loss rises.

## Evaluating a fine-tuned model

- **Validation loss** on the held-out split, to detect overfitting.
- **Task metrics** such as exact match, token F1, accuracy or ROUGE on a test set, compared with the base model and with a prompted baseline.
- **Human or LLM-as-judge review** of a sample of outputs for quality, tone and format.
- **Regression checks** on general abilities, to catch catastrophic forgetting.

## Common pitfalls

- Training and inference with different chat templates or system prompts.
- Forgetting the end-of-sequence token in targets, so the model never stops generating.
- Computing loss on prompt tokens by accident.
- Judging success from a handful of hand-picked examples instead of a fixed test set.
- Expecting SFT to add large amounts of new factual knowledge; for facts that change, retrieval-augmented generation is the better tool.
"""

PDF_SOURCES = {
    "lora_qlora.pdf": ("Parameter-efficient fine-tuning: LoRA and QLoRA", LORA_QLORA),
    "inference_optimisation.pdf": ("Inference optimisation for LLMs", INFERENCE),
    "rlhf_and_dpo.pdf": ("Preference tuning: RLHF and DPO", RLHF_DPO),
}

DOCX_SOURCES = {
    "pretraining_vs_finetuning.docx": ("Pre-training and fine-tuning", PRETRAIN_VS_FINETUNE),
    "supervised_fine_tuning.docx": ("Supervised fine-tuning and instruction tuning", SFT),
}

PPTX_NAME = "hybrid_search_and_reranking.pptx"
PPTX_SUBJECT = "Hybrid retrieval and reranking for RAG"
PPTX_TITLE = "Hybrid search and reranking for RAG"
PPTX_SUBTITLE = "Combining BM25 and dense retrieval, fusing rankings, and reranking with cross-encoders"
PPTX_SLIDES = [
    Slide("Why one retriever is not enough", [
        "Dense retrieval matches meaning: paraphrases, synonyms, questions phrased differently from the text",
        "Lexical retrieval (BM25) matches exact terms: product codes, error messages, names, rare jargon",
        "Each fails where the other succeeds, so their errors are only partly correlated",
        "Hybrid search runs both and merges the results, raising recall at little extra cost",
        "A reranker then reorders the merged candidates so the best few reach the prompt",
    ], notes="Frame the talk: recall first (hybrid), then precision (reranking)."),
    Slide("Lexical retrieval: BM25", [
        "Scores a chunk by the query terms it contains",
        "  Rare terms count more: inverse document frequency (IDF)",
        "  Repeated terms saturate: controlled by k1, commonly 1.2 to 2.0",
        "  Long chunks are penalised: controlled by b, commonly 0.75",
        "No model, no GPU, fast on millions of chunks; stemming and stop-word removal help",
        "Weak on vocabulary mismatch: 'car' does not match 'automobile'",
    ]),
    Slide("Dense retrieval: embeddings", [
        "A bi-encoder embeds queries and chunks separately into vectors",
        "Similarity is cosine similarity; with unit-length vectors it equals the inner product",
        "Chunk vectors are computed once at indexing time and stored in a vector index (flat, IVF, HNSW)",
        "It is strong on paraphrase and semantic similarity",
        "It is weak on exact identifiers, numbers and terms the embedding model never saw in training",
    ]),
    Slide("Where each one fails: examples", [
        "Query 'error E1234 on startup': BM25 finds the exact code; dense search returns generic startup pages",
        "Query 'how do I make the model forget less when tuning': dense search finds 'catastrophic forgetting'; BM25 misses it",
        "Query 'QLoRA paged optimiser memory spikes': both find it, and agreement is strong evidence of relevance",
        "Lesson: combine the two lists instead of choosing one retriever",
    ]),
    Slide("Two ways to merge result lists", [
        "Score fusion: normalise each retriever's scores, then take a weighted sum",
        "  Min-max normalisation maps scores to 0..1; the weight (often called alpha) needs tuning",
        "  Sensitive to score distributions that change from query to query",
        "Rank fusion: ignore raw scores and combine ranks",
        "  Reciprocal rank fusion (RRF) is the standard choice",
        "  It needs no tuning beyond one constant and is robust across very different retrievers",
    ]),
    Slide("Reciprocal rank fusion (RRF)", [
        "Each document's score is the sum of 1 / (k + rank) over the lists in which it appears",
        "The constant k is usually 60; it damps the advantage of the very top ranks",
        "Documents ranked well by both retrievers rise to the top",
        "A document found by only one retriever still gets credit, so recall is kept",
        "Works with any number of lists: several queries, several embedding models, BM25",
    ], notes="RRF was proposed for combining results of different search systems and beat more complex methods."),
    Slide("RRF worked example (k = 60)", table=[
        ["Document", "BM25 rank", "Dense rank", "RRF score"],
        ["X", "1", "3", "1/61 + 1/63 = 0.03227"],
        ["Y", "not retrieved", "1", "1/61 = 0.01639"],
        ["Z", "2", "not retrieved", "1/62 = 0.01613"],
        ["W", "4", "2", "1/64 + 1/62 = 0.03175"],
    ], notes="X wins because both retrievers place it high; W is second for the same reason."),
    Slide("Reranking with cross-encoders", [
        "A cross-encoder reads the query and one candidate chunk together and outputs a relevance score",
        "Joint reading lets it model word-level interactions, so it is far more accurate than comparing embeddings",
        "But it runs once per candidate: rerank only the top 20 to 100 fused results",
        "Typical cost: tens to a few hundred milliseconds on a GPU for 50 candidates",
        "Alternatives: late-interaction models, or an LLM asked to rank candidates (slower, costlier)",
    ]),
    Slide("A practical pipeline", [
        "1. BM25 top 50 and dense top 50 for the query",
        "2. Merge with reciprocal rank fusion",
        "3. Rerank the top 20 to 50 fused candidates with a cross-encoder",
        "4. Keep the best 3 to 8 chunks that fit the prompt budget",
        "5. Generate the answer with numbered citations to those chunks",
        "Keep source, page and section metadata on every chunk so citations are exact",
    ]),
    Slide("Latency budget", [
        "BM25 search takes a few milliseconds",
        "Query embedding plus vector search: about 5 to 30 milliseconds on CPU for a small model",
        "Cross-encoder reranking of 50 candidates: the largest retrieval cost; cap the candidate count",
        "Generation still dominates end-to-end time: retrieval is usually under 10 percent",
        "Cache embeddings of frequent queries and keep indexes in memory",
    ]),
    Slide("Measuring the gains", [
        "Build a test set of questions with known supporting passages",
        "Retrieval metrics: recall@k (did a supporting chunk reach the top k), MRR and nDCG@10",
        "Run ablations: BM25 only, dense only, hybrid, and hybrid plus reranker",
        "Hybrid search typically raises recall@k over either retriever alone",
        "Reranking mainly raises precision at the top: MRR and nDCG@10",
        "Check end-to-end answer quality too, with token F1 or a judge",
    ]),
    Slide("Tips and pitfalls", [
        "Use the same text normalisation for indexing and querying on the BM25 side",
        "Prefix chunks with document title and section before embedding",
        "Do not compare raw BM25 scores with cosine similarities; fuse ranks or normalise",
        "Watch duplicate chunks crowding out diverse evidence; deduplicate before reranking",
        "Re-evaluate after changing the chunk size, the embedding model or the reranker",
    ]),
    Slide("Summary", [
        "Hybrid search = BM25 for exact terms + dense embeddings for meaning",
        "Reciprocal rank fusion merges rankings robustly, with k = 60 as a default",
        "A cross-encoder reranker sharpens the top of the list",
        "Measure each stage with recall@k, MRR and nDCG on your own questions",
    ]),
]


if __name__ == "__main__":
    raise SystemExit(main())
