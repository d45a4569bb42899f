"""What sits beside an adapter: its identity file, the training log and loss curve, written safely.

An adapter directory is self-describing::

    adapter/   adapter_config.json, adapter_model.safetensors   (peft)
               ragtune_adapter.json   training config, data hash, base model identity + fingerprint, metrics

:func:`check_base` refuses to put an adapter on a base model whose fingerprint differs from the one it was
trained on. :func:`publish_dir` replaces a directory atomically: the new content is written to a temporary
sibling, fsynced, and renamed over the old one, so an interrupted save leaves the previous adapter intact.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

# The reading side (identity of a base model, refusing an adapter on another one) lives with the loader, since
# `ragtune ask --adapter` needs it without the training stack; re-exported here for the writing side.
from ragtune.errors import ConfigError
from ragtune.rag.generators.adapters import (  # noqa: F401
    ADAPTER_CONFIG, META_FILE, check_base, model_fingerprint, read_meta)

FORMAT_VERSION = 1


def base_identity(model_dir: str | Path) -> dict:
    """Name, path, architecture and fingerprint of a base model folder."""
    # Resolved: `tune eval`/`tune merge` run from another folder find the base by this path; a relative one
    # would send them to the shipped model instead.
    model_dir = Path(model_dir).resolve()
    cfg = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
    return {"name": model_dir.name, "path": str(model_dir), "model_type": cfg.get("model_type"),
            "architectures": cfg.get("architectures"), "fingerprint": model_fingerprint(model_dir)}


def check_out_path(path: Path, flag: str = "--out") -> None:
    """Refuse ``path`` when a folder above it is a file, so nothing can be created there: one clear error up
    front instead of NotADirectoryError/FileExistsError from deep inside a save."""
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {path}: {parent} is a file, so nothing can be written under it; "
                                  "give a path inside a folder")
            return


def ours_to_replace(folder: Path, marker: str) -> bool:
    """Whether publishing may replace ``folder`` whole: it is not there, is empty, or holds ``marker`` (the file
    ragtune writes into what it publishes). Anything else is the user's and is never deleted."""
    return not folder.exists() or (folder.is_dir() and (not any(folder.iterdir()) or (folder / marker).is_file()))


def fsync_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_dir(tmp: Path, target: Path) -> None:
    """Make ``tmp`` (fully written) become ``target``, replacing what was there without a half state.

    rename() cannot replace a non-empty directory, so the old one is moved aside first; if the process dies
    between the two renames, :func:`recover_dir` (called before every read and write) moves it back.
    """
    fsync_tree(tmp)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_parent(target)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    """Undo a publish interrupted between its two renames: the previous directory comes back."""
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)


def _fsync_parent(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


LOG_FIELDS = ["step", "epoch", "loss", "eval_loss", "eval_answer_accuracy", "eval_answer_f1", "learning_rate",
              "grad_norm"]


def write_log_csv(records: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({k: r.get(k, "") for k in LOG_FIELDS})


def plot_loss(records: list[dict], path: Path) -> bool:
    """Training and validation loss against step, as a PNG; False when there is nothing to plot."""
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") not in (None, "")]
    val = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") not in (None, "")]
    if not train and not val:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; also keeps a Tk window from ever opening
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train), label="training loss")
    if val:
        ax.plot(*zip(*val), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
