"""Training data: read the formats people already have, validate every record, tokenize with loss masks.

Accepted inputs (one JSON object per line in ``.jsonl``, or a JSON array in ``.json``):

- chat transcripts: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}`` (OpenAI) or
  ``{"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}]}`` (ShareGPT); a conversation opens with
  the user (after an optional system turn) and ends with the assistant;
- instruction pairs: ``{"instruction": "...", "input": "...", "output": "..."}`` (alpaca; ``input`` optional);
- plain text for continued pre-training: ``{"text": "..."}``, or a ``.txt``/``.md`` file (split at blank lines);
  training splits text longer than ``max_length`` tokens into consecutive windows.

A record may carry ``"split": "train"|"validation"|"test"`` (``ragtune tune data`` writes one, split by source
document) and a free ``"meta"`` object. Every record is checked before anything trains; all problems are
reported at once as ``file:line: what is wrong`` in one :class:`TrainingDataError`.

The loss covers the assistant's tokens only (chat and alpaca), or every token (plain text): the prompt and
the retrieved passages are context to read, not text to imitate.

    >>> records = load_records("train.jsonl")                     # doctest: +SKIP
    >>> ids, labels = encode_record(tokenizer, records[0], 1024)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import TrainingDataError
from ragtune.textfile import decode_utf8

SPLITS = ("train", "validation", "test")
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
_MAX_REPORTED = 20  # problems listed in one error; the count of the rest is given
IGNORE = -100  # the label transformers' loss skips


@dataclass
class Record:
    """One training example, normalised: chat ``messages`` or plain ``text`` (exactly one is set)."""

    messages: list[dict] | None = None
    text: str | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "file:line", for messages about it

    def to_json(self) -> dict:
        out: dict[str, Any] = {"messages": self.messages} if self.messages is not None else {"text": self.text}
        if self.split:
            out["split"] = self.split
        if self.meta:
            out["meta"] = self.meta
        return out


def file_hash(path: str | Path) -> str:
    """sha256 of the file's bytes: recorded beside an adapter, so the data it was trained on is known."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_records(path: str | Path, *, checking: bool = False) -> list[Record]:
    """Read and validate a training file; raise :class:`TrainingDataError` listing every bad record.

    ``checking``: the file is only being checked (``tune data --show-example``), so the error does not say that
    nothing was trained."""
    path = Path(path)
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise TrainingDataError(f"training data {path} {what}; build it with `ragtune tune data --index DIR --out FILE`")
    if path.suffix.lower() in (".txt", ".md"):
        return _text_file(path)
    raw = read_text(path)
    items = _json_array(path, raw) if path.suffix.lower() == ".json" else json_lines(path, raw)
    records, problems = [], []
    for where, obj, error in items:
        if error is not None:
            problems.append(f"{where}: {error}")
            continue
        try:
            records.append(parse_record(obj, where))
        except ValueError as e:
            problems.append(f"{where}: {e}")
    if problems:
        more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        raise TrainingDataError(
            f"{len(problems)} bad record(s) in {path}{'' if checking else ', nothing was trained'}{more}:\n  "
            + "\n  ".join(problems[:_MAX_REPORTED])
        )
    if not records:
        raise TrainingDataError(f"{path} holds no records; expected JSON lines with messages, instruction/output or text")
    return records


def json_lines(path: Path, raw: str) -> list[tuple[str, Any, str | None]]:
    """(``file:line``, object, None) per non-blank line of ``raw``, or (``file:line``, None, what is wrong) for a
    line that is not JSON: every bad line is reported, not only the first. The error is its own field, so a
    line holding a JSON string is never mistaken for a parse error."""
    items = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{path}:{n}", json.loads(line), None))
        except json.JSONDecodeError as e:
            items.append((f"{path}:{n}", None, f"not valid JSON ({e.msg} at column {e.colno})"))
    return items


def _json_array(path: Path, raw: str) -> list[tuple[str, Any, str | None]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise TrainingDataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise TrainingDataError(f"{path}: expected a JSON array of records (or use .jsonl, one record per line)")
    return [(f"{path}[{i}]", obj, None) for i, obj in enumerate(data)]


def read_text(path: Path) -> str:
    """The file as UTF-8 text, a byte-order mark dropped (editors on Windows write one; it is not data)."""
    return decode_utf8(path.read_bytes(), path, TrainingDataError)


def _text_file(path: Path) -> list[Record]:
    raw = read_text(path)
    blocks = [b.strip() for b in raw.split("\n\n") if b.strip()]
    if not blocks:
        raise TrainingDataError(f"{path} is empty; plain-text training needs some text")
    return [Record(text=b, where=f"{path}#{i + 1}") for i, b in enumerate(blocks)]


def parse_record(obj: Any, where: str = "") -> Record:
    """Normalise one record of any accepted format; ValueError says what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    if "messages" in obj and _sharegpt_turns(obj["messages"]):  # ShareGPT turns under the OpenAI key
        messages = _check_messages(obj["messages"], "messages", "from", "value", _SHAREGPT_ROLES)
    elif "messages" in obj:
        messages = _check_messages(obj["messages"], "messages", "role", "content", None)
    elif "conversations" in obj:
        messages = _check_messages(obj["conversations"], "conversations", "from", "value", _SHAREGPT_ROLES)
    elif "instruction" in obj or "output" in obj:
        messages = _alpaca(obj)
    elif "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise ValueError("'text' must be a non-empty string")
        return Record(text=obj["text"], split=split, meta=meta, where=where)
    else:
        raise ValueError("unknown format: expected 'messages', 'conversations', 'instruction'/'output' or 'text'")
    return Record(messages=messages, split=split, meta=meta, where=where)


def _check_messages(turns: Any, key: str, role_key: str, content_key: str, role_map: dict | None) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"'{key}' must be a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"{key}[{i}] must be an object with '{role_key}' and '{content_key}'")
        role = turn.get(role_key)
        role = role_map.get(role) if role_map is not None else role
        if role not in ROLES:
            allowed = ", ".join(role_map) if role_map else ", ".join(ROLES)
            raise ValueError(f"{key}[{i}].{role_key} must be one of {allowed}, got {turn.get(role_key)!r}")
        content = _text_of(turn.get(content_key))
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"{key}[{i}].{content_key} must be a non-empty string (or a list of text parts)")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"'{key}' has no assistant turn, so there is nothing to learn from it")
    if out[-1]["role"] != "assistant":
        raise ValueError(f"'{key}' must end with an assistant turn (the last turn is {out[-1]['role']!r})")
    first = next(m["role"] for m in out if m["role"] != "system")
    if first != "user":
        # An answer needs a question; and a chat template renders a conversation that opens with an assistant
        # turn with its own default system prompt, which would then be trained on as if it were the answer.
        raise ValueError(f"'{key}' has no user turn before its first assistant turn; a conversation starts with "
                         "the user (after an optional system turn)")
    return out


def _sharegpt_turns(turns: Any) -> bool:
    return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict) and "from" in turns[0] \
        and "role" not in turns[0]


def _text_of(content: Any) -> Any:
    """OpenAI's list of content parts (``[{"type": "text", "text": ...}]``) as one string; other values as
    they are. A part that is not text (an image) leaves the list as it is, so it is reported."""
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return content


def _alpaca(obj: dict) -> list[dict]:
    for key in ("instruction", "output"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"alpaca record: '{key}' must be a non-empty string")
    extra = obj.get("input", "")
    if not isinstance(extra, str):
        raise ValueError("alpaca record: 'input' must be a string")
    prompt = obj["instruction"].strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": obj["output"]}]


# --------------------------------------------------------------------------------------- tokenizing
def encode_record(tokenizer: Any, record: Record, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (``-100`` where no loss is taken) for one record, cut to ``max_length``.

    Chat: the template is rendered turn by turn; each assistant turn's tokens (its end-of-turn marker
    included, so the model learns to stop) carry labels, everything else is -100. This relies on the
    template rendering a prefix of the conversation as a prefix of the text, which ChatML-style templates do;
    one that does not is reported instead of silently mislabelling.
    """
    if record.text is not None:
        ids = tokenizer.encode(record.text, add_special_tokens=True)
        if tokenizer.eos_token_id is not None:
            ids = ids + [tokenizer.eos_token_id]
        ids = ids[:max_length]
        return ids, list(ids)
    ids: list[int] = []
    labels: list[int] = []
    for j, message in enumerate(record.messages or []):
        if message["role"] == "assistant":
            prompt = _render(tokenizer, record.messages[:j], generation_prompt=True)
            _extend(tokenizer, ids, labels, prompt, IGNORE, record)
        full = _render(tokenizer, record.messages[: j + 1], generation_prompt=False)
        _extend(tokenizer, ids, labels, full, "copy" if message["role"] == "assistant" else IGNORE, record)
    return ids[:max_length], labels[:max_length]


def _render(tokenizer: Any, messages: list[dict], *, generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer.encode(text, add_special_tokens=False)


def _extend(tokenizer: Any, ids: list[int], labels: list[int], rendered: list[int], label: Any, record: Record) -> None:
    if rendered[: len(ids)] != ids:
        raise TrainingDataError(
            f"{record.where or 'a record'}: the tokenizer's chat template does not render a conversation's "
            "beginning as a prefix of the whole, so answer tokens cannot be masked reliably; use a model "
            "with a ChatML-style template or give plain 'text' records"
        )
    new = rendered[len(ids):]
    ids.extend(new)
    labels.extend(new if label == "copy" else [IGNORE] * len(new))


def show_example(tokenizer: Any, record: Record, max_length: int) -> str:
    """The formatted example as the model sees it, with the trained (labelled) tokens in ``[[...]]``."""
    view = example_view(tokenizer, record, max_length)
    return view["example"] + f"\n\n-- {view['tokens']} tokens, {view['trained_tokens']} with loss (shown in [[...]])"


def example_view(tokenizer: Any, record: Record, max_length: int) -> dict:
    """``example`` (the text as the model sees it, trained tokens in ``[[...]]``), ``tokens``, ``trained_tokens``."""
    ids, labels = encode_record(tokenizer, record, max_length)
    out, run, trained = [], [], None
    for tid, lab in zip(ids, labels):
        is_trained = lab != IGNORE
        if trained is not None and is_trained != trained:
            out.append(_wrap(tokenizer.decode(run), trained))
            run = []
        run.append(tid)
        trained = is_trained
    if run:
        out.append(_wrap(tokenizer.decode(run), bool(trained)))
    n_trained = sum(1 for lab in labels if lab != IGNORE)
    return {"example": "".join(out), "tokens": len(ids), "trained_tokens": n_trained}


def _wrap(text: str, trained: bool) -> str:
    return f"[[{text}]]" if trained else text


def split_records(records: list[Record], val_share: float = 0.1, seed: int = 0) -> dict[str, list[Record]]:
    """Records by split: their own ``split`` when every record has one, else a seeded hash split.

    A mix of records with and without a split is refused (:class:`TrainingDataError`).

    Data without splits gets ``val_share`` of records for validation (by a hash of the record, so the
    assignment does not change when records are appended) and no test split.
    """
    labelled = [r for r in records if r.split]
    if labelled and len(labelled) < len(records):
        # Hash-splitting the whole file would put records labelled "test" into training without a word.
        first = next(r for r in records if not r.split)
        raise TrainingDataError(
            f"{len(labelled)} of {len(records)} records have a 'split' and the others do not (the first without one: "
            f"{first.where or 'record ' + str(records.index(first) + 1)}); give every record a split, or none "
            "(then 10% go to validation by a hash of the record)")
    if labelled:
        groups: dict[str, list[Record]] = {s: [] for s in SPLITS}
        for r in records:
            groups[r.split].append(r)  # type: ignore[index]
        return groups
    groups = {"train": [], "validation": [], "test": []}
    for r in records:
        key = json.dumps(r.to_json(), sort_keys=True) + str(seed)
        bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        groups["validation" if bucket < val_share else "train"].append(r)
    if not groups["train"]:
        groups["train"], groups["validation"] = groups["validation"], []
    return groups
