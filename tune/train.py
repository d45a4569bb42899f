"""LoRA / DoRA / QLoRA fine-tuning of a causal LM with peft and transformers' Trainer.

    >>> result = train_adapter("data.jsonl", "runs/smollm2-raft", TrainConfig(max_steps=200))   # doctest: +SKIP
    >>> result.adapter, result.metrics["best_eval_loss"]                                         # doctest: +SKIP

The run directory ``out`` holds::

    adapter/             the peft adapter (safetensors) + ragtune_adapter.json (config, data hash, base model
                         identity and fingerprint, metrics); replaced atomically at the end of a run
    checkpoints/         Trainer checkpoints; a rerun with the same data and config resumes from the last one
    training_log.csv     step, epoch, loss, eval_loss, eval_answer_accuracy, eval_answer_f1, learning_rate per step
    loss_curve.png       training and validation loss
    metrics.json         the run's figures (also inside ragtune_adapter.json)

Mode: on CUDA, bf16 (fp16 without bf16 support) and optionally a 4-bit base (QLoRA, bitsandbytes); on CPU, fp32
LoRA. The chosen mode and the reason are in the result and in metrics.json. Under ``accelerate launch`` or
``torchrun`` the Trainer runs data-parallel by itself: each rank sees its own shard of the data, and only rank 0
writes the adapter, log and plot.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ragtune.errors import ConfigError, TrainingDataError
from ragtune.progress import ProgressFn, emit

from .artifacts import (ADAPTER_CONFIG, FORMAT_VERSION, META_FILE, base_identity, check_out_path, ours_to_replace,
                        plot_loss, publish_dir, recover_dir, write_json, write_log_csv)
from .config import TrainConfig, default_target_modules
from .data import IGNORE, encode_record, file_hash, load_records, split_records
from .questions import is_question

RUN_FILE = "run.json"  # in checkpoints/: what the checkpoints were trained on, checked before resuming
FINISHED_FILE = "finished.json"  # in checkpoints/: written once the run's adapter is published
_CHECKPOINT = re.compile(r"checkpoint-\d+")  # the Trainer's checkpoint folders (what transformers resumes from)
_LOGS = ("training_log.csv", "loss_curve.png", "metrics.json")  # written into the run folder at the end


@dataclass
class TrainResult:
    """What :func:`train_adapter` produced. ``metrics`` is also saved beside the adapter."""

    out: str
    adapter: str | None  # None when the run was cancelled before finishing (checkpoints are kept)
    mode: str
    mode_reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    cancelled: bool = False
    resumed_from: str | None = None
    seen: list[int] = field(default_factory=list)  # indices of the train records this process trained on

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("seen")
        return d


def choose_mode(config: TrainConfig, cuda: bool, bf16_ok: bool) -> tuple[str, str]:
    """(mode, reason): which precision and quantisation this run uses, and why."""
    if not cuda:
        if config.quantization == "4bit":
            raise ConfigError("quantization=4bit (QLoRA) needs a CUDA GPU and bitsandbytes; none is available here. "
                              "Use quantization=none to train fp32 LoRA on the CPU.")
        if config.precision in ("bf16", "fp16"):
            raise ConfigError(f"precision={config.precision} needs a CUDA GPU here; use precision=auto or fp32 on CPU")
        return "fp32-lora-cpu", "no CUDA GPU found, so fp32 LoRA on the CPU"
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if bf16_ok else "fp16"
    if precision == "bf16" and not bf16_ok:
        raise ConfigError("precision=bf16 was asked for but this GPU does not support bf16; use fp16 or auto")
    if config.quantization == "4bit":
        return f"qlora-4bit-{precision}", f"CUDA GPU with quantization=4bit: 4-bit NF4 base, {precision} compute"
    return f"{precision}-lora-cuda", f"CUDA GPU found: {precision} LoRA ({'supported' if bf16_ok else 'no bf16'})"


def train_adapter(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    on_log: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on ``data`` (any format of :mod:`ragtune.tune.data`) into the run folder ``out``.

    ``on_log(record)`` receives every Trainer log record (step, loss, eval_loss, learning_rate, epoch);
    ``should_stop()`` is polled after every step, and True ends the run at once (checkpoint kept, adapter not
    replaced). ``resume=False`` discards checkpoints of an earlier run instead of continuing it.

    ``out`` is a new or empty folder or an earlier run's: one holding files a run did not write but would replace
    (an ``adapter/`` without ragtune_adapter.json, other files in ``checkpoints/``, logs without a run) is
    refused before anything is read or written (ConfigError).
    """
    import torch

    if isinstance(config, dict):  # the fields as a dict: checked like any config (a typo is an error)
        config = TrainConfig(**config)
    elif config is not None and not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig or a dict of its fields, got {type(config).__name__}")
    config = config or TrainConfig()
    out = Path(out)
    _check_out(out)
    emit(progress, "prepare", 0, None, "reading data")
    data_hash, groups, model_dir, tokenizer, train_set, val_set = _prepare(data, config)
    mode, reason = choose_mode(config, torch.cuda.is_available(),
                               torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    emit(progress, "prepare", 0, None, f"mode: {reason}")
    # Before the model loads (~10 s for SmolLM2 on this CPU): a finished run or another run's checkpoints are
    # refused at once.
    ckpt_dir = out / "checkpoints"
    resume_from = _resume_point(ckpt_dir, data_hash, config, resume)
    torch.manual_seed(config.seed)
    model = _load_model(model_dir, config, mode)
    model, trainable, total = _add_lora(model, config)

    collator = Collator(tokenizer.pad_token_id)
    watcher = _watcher(progress, on_log, should_stop, config.max_minutes)
    if resume_from:  # the log of the steps before the interruption, so training_log.csv and the curve stay whole
        watcher.log = _earlier_log(Path(resume_from))
    trainer = _trainer(model, tokenizer, config, ckpt_dir, mode, train_set, val_set, collator, watcher)
    if config.select_by == "answer_f1" and val_set:
        trainer.f1_records = _f1_sample(groups["validation"], config)
        trainer.f1_max_new_tokens = config.f1_max_new_tokens
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started

    metrics = _metrics(trainer, watcher, config, train_set, val_set, seconds, torch) | {
        "trainable_params": trainable, "total_params": total, "trainable_fraction": trainable / total,
        "mode": mode, "mode_reason": reason}
    result = TrainResult(out=str(out), adapter=None, mode=mode, mode_reason=reason, metrics=metrics,
                         log=watcher.log, cancelled=watcher.cancelled,
                         resumed_from=resume_from, seen=sorted(collator.seen))
    if trainer.is_world_process_zero():
        _write_outputs(trainer, out, config, model_dir, data, data_hash, result)
        if not result.cancelled:
            write_json(ckpt_dir / FINISHED_FILE, {"data_hash": data_hash, "config": config.to_dict()})
    emit(progress, "train", trainer.state.global_step, trainer.state.max_steps, "cancelled" if result.cancelled else "done")
    return result


# ------------------------------------------------------------------------------------------ stages
def _prepare(data: str | Path, config: TrainConfig):
    """The data's hash, its split groups, the base model's folder and tokenizer, and the encoded training and
    validation sets (raises TrainingDataError when no training record fits ``max_length``)."""
    records = load_records(data)
    groups = split_records(records, seed=config.seed)
    from ragtune.rag.generators.models import resolve_model_path

    model_dir = resolve_model_path(config.base_model)
    tokenizer = _tokenizer(model_dir)
    train_set = _encode(tokenizer, groups["train"], config.max_length, "train")
    # Question records (human-written, asked through RAG) are for answer F1 only; the loss reads template records.
    val_records = [r for r in groups["validation"] if not is_question(r)][: config.eval_records or None]
    val_set = _encode(tokenizer, val_records, config.max_length, "validation") if val_records else None
    if not groups["train"]:
        counts = ", ".join(f"{name} {len(rs)}" for name, rs in groups.items() if rs)
        raise TrainingDataError(f"{data}: no records in the train split ({counts}); label some records "
                                "\"split\": \"train\", or remove every split to have them assigned")
    if not train_set:
        raise TrainingDataError(f"{data}: no training records with answer tokens within max_length={config.max_length}"
                                f" ({train_set.too_long} longer); raise max_length")
    return file_hash(data), groups, model_dir, tokenizer, train_set, val_set


def _metrics(trainer, watcher, config: TrainConfig, train_set, val_set, seconds: float, torch) -> dict:
    """What the run measured: records, steps, losses and selection figures at the kept checkpoint, speed, memory."""
    return {
        "train_records": len(train_set), "validation_records": len(val_set or []),
        "skipped_too_long": train_set.too_long, "split_long_text": train_set.split_text,
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
        "train_loss": _last(watcher.log, "loss"), "selected_by": config.select_by,
        "best_eval_loss": (trainer.state.best_metric if config.select_by == "eval_loss" else
                           _at_best(watcher.log, trainer, "eval_loss")),
        "best_answer_accuracy": _at_best(watcher.log, trainer, "eval_answer_accuracy"),
        "best_answer_f1": _at_best(watcher.log, trainer, "eval_answer_f1"),
        "best_step": _best_step(trainer),
        # "best": the best validated checkpoint by select_by; "last": no validation, or none validated and saved.
        "kept": "best" if trainer.args.load_best_model_at_end and _best_step(trainer) else "last",
        "final_eval_loss": _last(watcher.log, "eval_loss"), "seconds": round(seconds, 1),
        "tokens": watcher.tokens, "tokens_per_s": round(watcher.tokens / seconds, 1) if seconds else None,
        "peak_memory_mb": _peak_memory_mb(torch),
        "stopped_early": watcher.stopped_early(trainer, config), "out_of_time": watcher.out_of_time,
        "world_size": trainer.args.world_size,
    }


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        from ragtune.rag.generators.models import CHATML_TEMPLATE

        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


class _Examples:
    """A list of tokenized examples as the torch Dataset shape the Trainer wants."""

    def __init__(self, items: list[dict]):
        self.items = items
        self.too_long = 0  # chat examples left out
        self.split_text = 0  # plain-text records split into max_length windows

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _encode(tokenizer, records, max_length: int, split: str) -> _Examples:
    """Tokenized examples. A chat example longer than ``max_length`` is left out rather than cut, since cutting
    would drop the end of its answer and teach the model not to stop; plain text (continued pre-training) has no
    answer to keep whole, so a long one is split into consecutive ``max_length`` windows and none of it is lost."""
    items, too_long, split_text = [], 0, 0
    for i, record in enumerate(records):
        ids, labels = encode_record(tokenizer, record, 1 << 30)
        pieces = [(ids, labels)]
        if len(ids) > max_length:
            if record.text is None:
                too_long += 1
                continue
            split_text += 1
            # A last window of one token has nothing to predict (the loss is on the next token), so it is dropped.
            pieces = [(ids[s:s + max_length], labels[s:s + max_length]) for s in range(0, len(ids), max_length)
                      if len(ids) - s > 1]
        for piece_ids, piece_labels in pieces:
            if any(label != IGNORE for label in piece_labels):
                item = {"input_ids": piece_ids, "labels": piece_labels}
                if split == "train":  # the collator records which training records this process saw
                    item["index"] = i
                items.append(item)
    examples = _Examples(items)
    examples.too_long, examples.split_text = too_long, split_text
    return examples


class Collator:
    """Pads a batch to its longest example (labels padded with -100) and notes which examples it saw."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.seen: set[int] = set()

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            mask[row, :n] = 1
            if "index" in b:
                self.seen.add(int(b["index"]))
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _load_model(model_dir: Path, config: TrainConfig, mode: str):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"local_files_only": True}
    dtype = torch.bfloat16 if "bf16" in mode else torch.float16 if "fp16" in mode else torch.float32
    kwargs["dtype"] = dtype
    if mode.startswith("qlora"):
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"QLoRA needs bitsandbytes: pip install 'ragtune[gpu]' ({e})") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if mode.startswith("qlora"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    model.config.use_cache = False  # the KV cache is for generation; in training it only costs memory
    return model


def _add_lora(model, config: TrainConfig):
    import torch
    from peft import LoraConfig, get_peft_model

    linear = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                     if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Linear4bit"})
    targets = config.target_modules or default_target_modules(model.config.model_type, linear)
    missing = [t for t in targets if t not in linear]
    if missing:
        raise ConfigError(f"target_modules {missing} are not linear layers of this model; it has: {', '.join(linear)}")
    layers = None
    if config.top_layers is not None:
        n = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        if not n:
            raise ConfigError("top_layers needs a model whose config has num_hidden_layers; leave it unset")
        layers = list(range(max(0, n - config.top_layers), n))
    lora = LoraConfig(r=config.rank, lora_alpha=config.effective_alpha, lora_dropout=config.dropout,
                      target_modules=targets, use_dora=config.use_dora, task_type="CAUSAL_LM",
                      layers_to_transform=layers)
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing: not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return model, trainable, total


def _trainer(model, tokenizer, config: TrainConfig, ckpt_dir: Path, mode: str, train_set, val_set, collator, watcher):
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

    has_eval = val_set is not None and len(val_set) > 0
    early = has_eval and config.early_stopping_patience is not None
    # Whenever validation runs, the kept checkpoint is the best one by select_by, with or without early stopping.
    # transformers can only choose among checkpoints that were validated: every save must be an evaluation step
    # (the config requires it when early stopping is on; otherwise, where it does not hold, the last checkpoint is
    # kept and the run's summary says so).
    keep_best = has_eval and config.save_steps % config.eval_steps == 0
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay, lr_scheduler_type="cosine", seed=config.seed,
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy="steps" if has_eval else "no", eval_steps=config.eval_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        load_best_model_at_end=keep_best, metric_for_best_model=(_metric_name(config) if keep_best else None),
        greater_is_better=config.select_by != "eval_loss",
        bf16="bf16" in mode, fp16="fp16" in mode, use_cpu=mode.endswith("cpu"),
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        # Batches of similar length waste less compute on padding (examples here range 200-1000 tokens).
        train_sampling_strategy="group_by_length", remove_unused_columns=False, include_num_input_tokens_seen="non_padding",
        report_to=[], disable_tqdm=True, dataloader_num_workers=0, save_only_model=False,
    )
    callbacks = [watcher] + ([EarlyStoppingCallback(config.early_stopping_patience)] if early else [])
    # answer_f1 runs also log the (free) teacher-forced accuracy, to compare the two signals.
    scored = has_eval and config.select_by in ("answer_accuracy", "answer_f1")
    trainer_class = _answer_f1_trainer() if has_eval and config.select_by == "answer_f1" else Trainer
    trainer = trainer_class(model=model, args=args, data_collator=collator, train_dataset=train_set,
                      eval_dataset=val_set if has_eval else None, processing_class=tokenizer, callbacks=callbacks,
                      compute_metrics=answer_accuracy if scored else None,
                      preprocess_logits_for_metrics=_argmax if scored else None)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # log dicts on stdout; progress goes through the callback instead
    return trainer


def _metric_name(config: TrainConfig) -> str:
    return {"eval_loss": "eval_loss", "answer_accuracy": "eval_answer_accuracy",
            "answer_f1": "eval_answer_f1"}[config.select_by]


def _f1_sample(records, config: TrainConfig) -> list:
    """The validation questions answered at each evaluation, in file order.

    With question records (``tune data --questions``): those, all of them; the template questions are left out,
    since their F1 ranked four adapters in the reverse of held-out F1 (BENCHMARKS.md), and one pass over 11
    RAG prompts already takes ~2 minutes on one loaded core. Without: a fixed seeded sample of ``f1_questions``.
    """
    import random

    questions = [r for r in records if is_question(r)]
    if questions:
        return questions
    chat = [r for r in records if r.messages]
    if len(chat) <= config.f1_questions:
        return chat
    keep = set(random.Random(config.seed).sample(range(len(chat)), config.f1_questions))
    return [r for i, r in enumerate(chat) if i in keep]


def _answer_f1_trainer():
    """A Trainer whose evaluations also generate answers and report ``eval_answer_f1`` (select_by=answer_f1).

    It hooks ``evaluation_loop``: ``evaluate()`` logs the loop's metrics and hands them to the callbacks (early
    stopping) and to the best-checkpoint choice (``metric_for_best_model``), so the figure reaches all three.
    """
    from transformers import Trainer

    from .evaluate import validation_answer_f1

    class AnswerF1Trainer(Trainer):
        f1_records: list = []
        f1_max_new_tokens: int = 48

        def evaluation_loop(self, *args, **kwargs):
            output = super().evaluation_loop(*args, **kwargs)
            prefix = kwargs.get("metric_key_prefix", "eval")
            if prefix == "eval" and self.f1_records:
                figures = validation_answer_f1(self.model, self.processing_class, self.f1_records,
                                               self.f1_max_new_tokens)
                output.metrics.update({f"{prefix}_{k}": v for k, v in figures.items() if v is not None})
            return output

    return AnswerF1Trainer


def _argmax(logits, labels):
    # Keep only the predicted token ids: the full logits of a validation set (49k vocabulary) would not fit.
    return logits.argmax(dim=-1)


def answer_accuracy(eval_pred) -> dict:
    """Share of answer tokens (label != -100) whose teacher-forced argmax prediction is the gold token."""
    import numpy as np

    preds, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
    preds, labels = preds[:, :-1], labels[:, 1:]  # the logit at position t predicts token t + 1
    mask = labels != IGNORE
    total = int(mask.sum())
    return {"answer_accuracy": float((preds[mask] == labels[mask]).sum() / total) if total else 0.0}


def _resume_point(ckpt_dir: Path, data_hash: str, config: TrainConfig, resume: bool) -> str | None:
    """The checkpoint folder to continue from (the latest), after checking it belongs to this run; None: start.

    A run that finished (its adapter published) is not continued: transformers would train past ``max_steps``
    and replace the adapter, so the same command twice is refused instead.
    """
    run = {"data_hash": data_hash, "config": config.to_dict()}
    rank0 = int(os.environ.get("RANK", 0)) == 0
    have = any(_is_checkpoint(p) for p in ckpt_dir.iterdir()) if ckpt_dir.is_dir() else False
    if have and resume:
        recorded = read_meta_json(ckpt_dir / RUN_FILE)
        if recorded and recorded != run:
            what = "data" if recorded.get("data_hash") != data_hash else "training config"
            raise ConfigError(f"{ckpt_dir} holds checkpoints of a run with other {what}; pass --fresh (resume=False) "
                              "to start over, or use another --out")
        if read_meta_json(ckpt_dir / FINISHED_FILE) == run:
            raise ConfigError(f"{ckpt_dir.parent} already holds a finished run of this data and config (its adapter is "
                              f"{ckpt_dir.parent / 'adapter'}); to train again pass --fresh (resume=False), or use "
                              "another --out (in the app: another adapter name)")
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(str(ckpt_dir))
    # Starting over deletes the earlier run's checkpoints, and only those: checked on every rank, so that all
    # of them stop, before rank 0 deletes anything.
    foreign = sorted(p.name for p in ckpt_dir.iterdir() if not _ours(p)) if ckpt_dir.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"{ckpt_dir} holds {shown}, which `ragtune tune run` did not write; starting the run "
                          "would clear that folder, so nothing was changed: move them elsewhere, or use another --out")
    if rank0:
        for p in ckpt_dir.iterdir() if ckpt_dir.is_dir() else ():  # the earlier run's (nothing else is left)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json(ckpt_dir / RUN_FILE, run)
    return None


def _is_checkpoint(path: Path) -> bool:
    return bool(_CHECKPOINT.fullmatch(path.name)) and path.is_dir() and not path.is_symlink()


def _ours(path: Path) -> bool:
    """Whether a run wrote ``path`` (an entry of checkpoints/). Not "is a folder": under torchrun, rank 0 may
    be deleting that checkpoint while another rank looks at it."""
    if path.name in (RUN_FILE, FINISHED_FILE):
        return True
    return bool(_CHECKPOINT.fullmatch(path.name)) and not path.is_symlink() and not path.is_file()


def _check_out(out: Path) -> None:
    """Refuse a run folder whose contents the run would replace but ragtune did not write, before anything is
    read or written (mirrors `tune merge --out`: only a folder of our own is ever replaced)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the run (its checkpoints, adapter and logs)")
    check_out_path(out, "--out")
    if (out / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"--out {out} is an adapter folder ({ADAPTER_CONFIG} in it), not a run folder: the run would "
                          f"nest inside it. Give the run folder (the adapter goes to OUT/adapter), e.g. --out "
                          f"{out.parent} if this is a run's adapter, or a new folder")
    adapter, ckpt_dir = out / "adapter", out / "checkpoints"
    if not ours_to_replace(adapter, META_FILE):
        raise ConfigError(f"{adapter} exists and is not an adapter written by `ragtune tune run` (no {META_FILE} in "
                          "it); a run replaces that folder whole, so nothing was changed: use another --out, or move "
                          "it away first")
    if ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise ConfigError(f"{ckpt_dir} is a file; a run keeps its checkpoints in that folder, so nothing was "
                          "changed: use another --out, or move the file away first")
    ours = (ckpt_dir / RUN_FILE).is_file() or (adapter / META_FILE).is_file()
    clash = [] if ours else [name for name in _LOGS if (out / name).exists()]
    if clash:
        raise ConfigError(f"--out {out} holds {', '.join(clash)} but no ragtune run (no checkpoints/{RUN_FILE} or "
                          f"adapter/{META_FILE}); a run writes files of those names, so nothing was changed: use a "
                          "new --out, or move them away first")


def _earlier_log(checkpoint: Path) -> list[dict]:
    """The loss and validation records of the steps up to ``checkpoint``, as :class:`_Watcher` logs them."""
    history = read_meta_json(checkpoint / "trainer_state.json").get("log_history") or []
    records = (_log_record(entry.get("step"), entry.get("epoch"), entry) for entry in history)
    return [r for r in records if r is not None]


def _log_record(step, epoch, logs: dict) -> dict | None:
    """One training log record (step, epoch and the numeric figures), or None unless it has a loss."""
    record = {"step": step, "epoch": round(epoch or 0.0, 4)}
    record.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
    return record if any(k in record for k in ("loss", "eval_loss")) else None


def read_meta_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_outputs(trainer, out: Path, config: TrainConfig, model_dir: Path, data, data_hash: str, result) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_log_csv(result.log, out / "training_log.csv")
    plot_loss(result.log, out / "loss_curve.png")
    write_json(out / "metrics.json", result.metrics)
    if result.cancelled:
        return
    target = out / "adapter"
    recover_dir(target)
    _check_finite(trainer.model, target, out, config)
    tmp = out / f".adapter.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp), safe_serialization=True)
    meta = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "base_model": base_identity(model_dir),
            "data": {"path": str(Path(data).resolve()), "sha256": data_hash}, "metrics": result.metrics,
            "ragtune_version": _version()}
    write_json(tmp / META_FILE, meta)
    publish_dir(tmp, target)
    result.adapter = str(target)


def _check_finite(model, target: Path, out: Path, config: TrainConfig) -> None:
    """Refuse to publish an adapter whose weights hold NaN or inf (training diverged): it would only produce
    garbage, and publishing it would replace the last good adapter."""
    import torch

    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        kept = f"; the previous adapter in {target} is kept" if target.exists() else ""
        raise ConfigError(
            f"training diverged: {len(bad)} adapter weight tensor(s) hold NaN or infinite values (e.g. {bad[0]}), so "
            f"the adapter was not written{kept}. Lower the learning rate (learning_rate {config.learning_rate:g}) "
            f"and start over with --fresh (resume=False); the loss per step is in {out / 'training_log.csv'}")


def _version() -> str:
    from ragtune import __version__

    return __version__


def _peak_memory_mb(torch) -> float:
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _at_best(log: list[dict], trainer, key: str):
    """``key`` at the kept (best) checkpoint's evaluation, else its last logged value."""
    best = trainer.state.best_model_checkpoint
    step = int(best.rsplit("-", 1)[-1]) if best else None
    values = [r[key] for r in log if key in r and (step is None or r.get("step") == step)]
    return values[-1] if values else _last(log, key)


def _best_step(trainer) -> int | None:
    best = trainer.state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None


def _last(log: list[dict], key: str):
    values = [r[key] for r in log if r.get(key) is not None]
    return values[-1] if values else None


def _watcher(progress, on_log, should_stop, max_minutes):
    # TrainerCallback is subclassed here, not at module level, so importing this module stays torch-free.
    from transformers import TrainerCallback

    class Watcher(_Watcher, TrainerCallback):
        pass

    return Watcher(progress, on_log, should_stop, max_minutes)


class _Watcher:
    """Trainer callback body: progress, the log records, token counting, and the cancel switch."""

    def __init__(self, progress, on_log, should_stop, max_minutes=None):
        self._progress, self._user_log, self._should_stop = progress, on_log, should_stop
        self.log: list[dict] = []
        self.cancelled = False
        self.tokens = 0
        self._tokens_at_start = 0
        self._deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        self.out_of_time = False

    def on_train_begin(self, args, state, control, **kw):
        self._tokens_at_start = state.num_input_tokens_seen or 0

    def on_step_end(self, args, state, control, **kw):
        self.tokens = (state.num_input_tokens_seen or 0) - self._tokens_at_start
        if self._should_stop is not None and self._should_stop():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True
        elif self._deadline is not None and time.monotonic() > self._deadline:
            self.out_of_time = True
            control.should_training_stop = True
            # Score and keep the last steps, as transformers does at max_steps: otherwise the best *evaluated*
            # checkpoint is reloaded at the end and every step since it is thrown away (the 14:11 RAFT run ran
            # out of time at step 35 and shipped step 20's weights). Costs one validation pass past the budget.
            control.should_evaluate = args.eval_strategy != "no" and state.global_step % args.eval_steps != 0
            control.should_save = True

    def on_log(self, args, state, control, logs=None, **kw):
        record = _log_record(state.global_step, state.epoch, logs or {})
        if record is None:
            return
        self.log.append(record)
        if self._user_log is not None:
            self._user_log(dict(record))
        msg = f"loss {record['loss']:.3f}" if "loss" in record else f"eval_loss {record['eval_loss']:.3f}"
        emit(self._progress, "train", state.global_step, state.max_steps, msg)

    def stopped_early(self, trainer, config: TrainConfig) -> bool:
        return (not self.cancelled and not self.out_of_time
                and trainer.state.global_step < trainer.state.max_steps)
