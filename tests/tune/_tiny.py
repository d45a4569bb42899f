"""Helpers for tests/tune: a tiny random Llama with a ChatML byte-level BPE tokenizer, built in-process; it trains in seconds."""

from __future__ import annotations

import json
from pathlib import Path

from _tiny_llm import SPECIALS, build_tokenizer  # noqa: F401  (re-exported for the tune tests)


def make_tiny_model(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path



QA = [("What does LoRA train?", "two small matrices"), ("What is the capital of France?", "Paris"),
      ("Who trains the matrices?", "LoRA"), ("What is said about Paris?", "it is the capital")]


def chat_records(n: int = 24, split: bool = True) -> list[dict]:
    records = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        rec = {"messages": [{"role": "system", "content": "Answer from the sources."},
                            {"role": "user", "content": f"Sources: [1] text {i}\n\nQuestion: {q}"},
                            {"role": "assistant", "content": f"{a} [1]"}]}
        if split:
            rec["split"] = "validation" if i % 6 == 5 else "train"
        records.append(rec)
    return records


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path




def script_answer_f1(monkeypatch, values: list[float]) -> None:
    """Real generation at each validation, but the answer-F1 figure replaced by ``values`` in turn, so a test
    knows which checkpoint is best whatever the tiny model happens to answer."""
    import ragtune.tune.evaluate as evaluate

    scripted = iter(values)
    real = evaluate.score_records

    def score_then_script(*args, **kwargs):
        scores = real(*args, **kwargs)
        scores.f1 = [next(scripted)]
        return scores

    monkeypatch.setattr(evaluate, "score_records", score_then_script)
