"""Where ragtune keeps things: the user cache, the default index, the shipped corpus."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$RAGTUNE_CACHE``, else ``$XDG_CACHE_HOME/ragtune``, else ``~/.cache/ragtune``."""
    if os.environ.get("RAGTUNE_CACHE"):
        return Path(os.environ["RAGTUNE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ragtune"


def default_index_dir() -> Path:
    """``$RAGTUNE_INDEX``, else ``.ragtune/index`` in the working directory (like ``.git``)."""
    return Path(os.environ.get("RAGTUNE_INDEX") or ".ragtune/index")


def corpora_dir() -> Path:
    """The shipped document collection (``$RAGTUNE_CORPORA`` overrides)."""
    if os.environ.get("RAGTUNE_CORPORA"):
        return Path(os.environ["RAGTUNE_CORPORA"]).expanduser()
    from importlib.resources import files

    return Path(str(files("ragtune.corpora")))
