"""Fine-tuning throughput and memory: `ragtune tune run` vs a plain peft + transformers Trainer script.

Both train the same LoRA (rank 8, alpha 16, every attention and MLP projection of the top 10 layers) on the
same examples with the same batch size, accumulation, sampler, learning rate and number of steps, each in its
own fresh process (so peak RSS is its own), alternating ragtune/plain ``--repeats`` times. Figures: tokens/s (non-padding tokens over
the Trainer's train time), peak RSS, trainable fraction, and the ratio ragtune/plain (target >= 0.95x tokens/s,
no more memory).

    python bench/tune.py --data data.jsonl                      # SmolLM2-135M, 8 steps, 1 repeat
    python bench/tune.py --data data.jsonl --steps 20 --repeats 2 --json

``--data``: a ``ragtune tune data`` file (its train split is used). Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The RAFT run's settings (tune/adapters/smollm2-raft.yaml): rank 8 on the top 10 of SmolLM2's 30 layers.
SETTINGS = {"rank": 8, "alpha": 16, "top_layers": 10, "dropout": 0.05, "batch_size": 2, "grad_accum": 2,
            "learning_rate": 1e-3, "max_length": 768, "seed": 0}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ragtune(data: str, out: str, steps: int) -> dict:
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.train import train_adapter

    cfg = TrainConfig(max_steps=steps, early_stopping_patience=None, save_steps=10_000, eval_steps=10_000,
                      warmup_ratio=0.0, **SETTINGS)
    m = train_adapter(data, out, cfg, resume=False).metrics
    return {"tokens": m["tokens"], "seconds": m["seconds"], "trainable_fraction": m["trainable_fraction"]}


def child_plain(data: str, out: str, steps: int) -> dict:
    """What a user would write by hand: tokenizer chat template, prompt masked, peft + Trainer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from ragtune.rag.generators.models import default_model_dir

    path = str(default_model_dir())
    tok = AutoTokenizer.from_pretrained(path)
    rows = []
    for line in open(data, encoding="utf-8"):
        msgs = json.loads(line)["messages"]
        prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(msgs, tokenize=False)
        p_ids, ids = tok.encode(prompt, add_special_tokens=False), tok.encode(full, add_special_tokens=False)
        if len(ids) <= SETTINGS["max_length"]:
            rows.append({"input_ids": ids, "labels": [-100] * len(p_ids) + ids[len(p_ids):]})

    def collate(batch):
        width = max(len(b["input_ids"]) for b in batch)
        pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
        return {"input_ids": torch.tensor([pad(b["input_ids"], tok.pad_token_id) for b in batch]),
                "labels": torch.tensor([pad(b["labels"], -100) for b in batch]),
                "attention_mask": torch.tensor([pad([1] * len(b["input_ids"]), 0) for b in batch])}

    torch.manual_seed(SETTINGS["seed"])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=SETTINGS["rank"], lora_alpha=SETTINGS["alpha"], task_type="CAUSAL_LM",
                                             lora_dropout=SETTINGS["dropout"], target_modules=TARGETS,
                                             layers_to_transform=list(range(30 - SETTINGS["top_layers"], 30))))
    args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=SETTINGS["batch_size"],
                             gradient_accumulation_steps=SETTINGS["grad_accum"], learning_rate=SETTINGS["learning_rate"],
                             lr_scheduler_type="cosine", train_sampling_strategy="group_by_length",
                             include_num_input_tokens_seen="non_padding", save_strategy="no", report_to=[],
                             use_cpu=not torch.cuda.is_available(), seed=SETTINGS["seed"], disable_tqdm=True,
                             remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"tokens": trainer.state.num_input_tokens_seen, "seconds": seconds,
            "trainable_fraction": trainable / sum(p.numel() for p in model.parameters())}


def run_child(kind: str, data: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-tune-{kind}-") as out:
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--data", data, "--steps", str(steps),
                               "--out", out], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_only(data: str, folder: Path) -> str:
    """The train split of ``data`` as its own file, so neither run spends time on validation."""
    out = folder / "train.jsonl"
    with open(data, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            rec = json.loads(line)
            if rec.get("split", "train") == "train":
                dst.write(json.dumps({"messages": rec["messages"], "split": "train"}) + "\n")
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a `ragtune tune data` file")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=("ragtune", "plain"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fig = (child_ragtune if args.child == "ragtune" else child_plain)(args.data, args.out, args.steps)
        fig["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(fig))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = train_only(args.data, Path(tmp))
        runs = {"ragtune": [], "plain": []}
        for _ in range(args.repeats):
            for kind in ("plain", "ragtune"):
                runs[kind].append(run_child(kind, data, args.steps))
    summary = {}
    for kind, figs in runs.items():
        summary[kind] = {"tokens_per_s": statistics.median(f["tokens"] / f["seconds"] for f in figs),
                         "peak_rss_mb": statistics.median(f["peak_rss_mb"] for f in figs),
                         "trainable_fraction": figs[0]["trainable_fraction"], "runs": figs}
    summary["ratio_tokens_per_s"] = summary["ragtune"]["tokens_per_s"] / summary["plain"]["tokens_per_s"]
    summary["ratio_peak_rss"] = summary["ragtune"]["peak_rss_mb"] / summary["plain"]["peak_rss_mb"]
    summary["settings"] = {**SETTINGS, "steps": args.steps, "repeats": args.repeats}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for kind in ("plain", "ragtune"):
        s = summary[kind]
        print(f"{kind:8s} {s['tokens_per_s']:8.1f} tokens/s  peak RSS {s['peak_rss_mb']:7.0f} MB  "
              f"trainable {s['trainable_fraction']:.3%}")
    print(f"ragtune/plain: {summary['ratio_tokens_per_s']:.3f}x tokens/s, {summary['ratio_peak_rss']:.3f}x peak RSS")


if __name__ == "__main__":
    main()
