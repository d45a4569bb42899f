"""One validated training configuration, saved beside every adapter it produced.

    >>> cfg = TrainConfig(rank=8, max_steps=100)
    >>> cfg.rank, cfg.effective_alpha
    (8, 16)
    >>> TrainConfig.from_file("train.yaml")   # doctest: +SKIP  (YAML or JSON, same field names)

The RAFT run of BENCHMARKS.md ("Fine-tuning") uses tune/adapters/smollm2-raft.yaml: rank 8 on the top 10
layers (0.60% of SmolLM2-135M's weights trainable), checkpoint selected by generated-answer F1 on development
questions about the validation documents; tune/adapters/smollm2-raft-r4-all.yaml is the measured alternative
(rank 4 on all 30 layers, 0.90%).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ragtune.errors import ConfigError

# Which linear layers LoRA adapts, per architecture (config.model_type). All attention and MLP projections:
# the QLoRA paper found adapting every linear layer matters more than the rank; for a 135M model with rank 16
# that is still under 1% of the weights (bench/tune.py prints the fraction).
TARGET_MODULES: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


class TrainConfig(BaseModel):
    """Everything that decides a LoRA run. Unknown fields are an error (a typo must not be ignored)."""

    # allow_inf_nan=False: `weight_decay: .inf` or `epochs: .nan` in a YAML file would otherwise pass the range
    # checks (inf >= 0) and train a NaN adapter or overflow deep inside the Trainer.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    base_model: str | None = None  # model folder or .gguf; None = the shipped SmolLM2-135M-Instruct
    # LoRA
    rank: int = Field(16, ge=1, le=1024)
    alpha: int | None = Field(None, ge=1)  # None: 2 x rank
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None: TARGET_MODULES[model_type], else every linear layer
    use_dora: bool = False
    # Adapt only the top N transformer layers (None: all). The backward pass then stops at the lowest adapted
    # layer: with 10 of SmolLM2's 30 layers a step costs about half as much, which is what makes a useful
    # adapter fit in ~20 minutes on a shared 2-core CPU.
    top_layers: int | None = Field(None, ge=1)
    # optimisation
    learning_rate: float = Field(1e-3, gt=0, le=1.0)
    epochs: float = Field(1.0, gt=0, le=10_000)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs
    # A wall-clock budget: training ends after this many minutes and the adapter is still written (unlike a
    # cancel). For shared or slow machines where steps/s is not known in advance.
    max_minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_length: int = Field(1024, ge=16)
    seed: int = Field(0, ge=0, le=2**32 - 1)  # the range numpy's seeding accepts
    # evaluation, checkpoints, stopping
    logging_steps: int = Field(5, ge=1)
    eval_steps: int = Field(25, ge=1)
    save_steps: int = Field(25, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1)  # evaluations without improvement; None: off
    # Which validation figure picks the kept checkpoint (and drives early stopping). "answer_accuracy": the share
    # of answer tokens the model predicts exactly (teacher-forced argmax), computed from the same forward pass as
    # the loss, so it costs nothing extra; it tracks "says the right words" (including abstaining or not) more
    # directly than the loss, which a confident wrong abstention can keep low. "eval_loss": the classic choice.
    # "answer_f1": token F1 of greedily *generated* answers to `f1_questions` validation questions (citations
    # stripped, as `tune eval` scores), i.e. the figure the adapter is judged by. Teacher-forced accuracy does not
    # track it: the RAFT run's accuracy rose 0.724 -> 0.818 from step 20 to 73 while held-out F1 fell from 1.80x
    # to 1.31x the base's (BENCHMARKS.md). Costs a generation pass per evaluation (see f1_questions).
    select_by: Literal["eval_loss", "answer_accuracy", "answer_f1"] = "eval_loss"
    # select_by=answer_f1: the validation questions answered at each evaluation are the data's question records
    # (`tune data --questions`: human-written, asked through RAG as the held-out bench asks) when it has any,
    # else a fixed, seeded sample of `f1_questions` template validation records; and the answer length cap
    # (48 = bench/tune_quality.py's).
    f1_questions: int = Field(24, ge=1)
    f1_max_new_tokens: int = Field(48, ge=1)
    # Validation records used for the periodic validation loss. Each evaluation costs forward passes over all
    # of them: 32 RAFT examples take ~40 s on a 2-core CPU, so a bigger set would eat the training budget.
    eval_records: int | None = Field(32, ge=1)
    # hardware
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA if supported, else fp32
    quantization: Literal["none", "4bit"] = "none"  # 4bit = QLoRA (CUDA + bitsandbytes only)
    gradient_checkpointing: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic takes true/false as 1/0 for a number; `rank: true` is a mistake, not rank 1.
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(v, bool) and {int, float} & {annotation, *get_args(annotation)}:
            raise ValueError("must be a number, not true/false")
        return v

    @field_validator("target_modules")
    @classmethod
    def _non_empty_modules(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not isinstance(m, str) or not m for m in v)):
            raise ValueError("must be a non-empty list of module names, e.g. [q_proj, v_proj]")
        return v

    @model_validator(mode="after")
    def _steps_cover_eval(self) -> TrainConfig:
        if self.save_steps % self.eval_steps and self.early_stopping_patience is not None:
            # load_best_model_at_end needs every checkpoint to have an evaluation to compare.
            raise ValueError(f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}) "
                             "when early stopping is on")
        return self

    @property
    def effective_alpha(self) -> int:
        return self.alpha if self.alpha is not None else 2 * self.rank

    def __init__(self, **values: Any) -> None:
        """A bad value raises :class:`ConfigError` naming the field (ragtune's one error family), not
        pydantic's ValidationError."""
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigError(f"training config: {_describe(e)}") from None

    @classmethod
    def build(cls, **values) -> TrainConfig:
        """``TrainConfig(**values)``; kept for callers of earlier versions."""
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a YAML or JSON file of the fields above; ``overrides`` (not None) win over the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"training config {path}: cannot read it ({e.strerror or e})") from None
        try:
            import yaml

            data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
            raise ConfigError(f"training config {path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({e})") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"training config {path}: expected a mapping of field: value, got {type(data).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(str(e).replace("training config:", f"training config {path}:", 1)) from None

    def with_overrides(self, **overrides) -> TrainConfig:
        """A copy with the given fields changed (None values are ignored), validated."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.build(**data)

    def to_dict(self) -> dict:
        return self.model_dump()


def default_target_modules(model_type: str, linear_names: list[str]) -> list[str]:
    """The configured default for ``model_type``, else every linear layer except the output head."""
    known = TARGET_MODULES.get(model_type)
    if known:
        present = [m for m in known if m in linear_names]
        if present:
            return present
    return sorted({n for n in linear_names if n not in ("lm_head", "embed_out", "score")})


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "config"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # pydantic's prefix for our own checks
        parts.append(f"{field}: {msg} (got {err.get('input')!r})")
    return "; ".join(parts)
