"""The ragtune web app (Streamlit): ``ragtune ui`` or ``streamlit run`` on :func:`app_path`."""

from __future__ import annotations

from pathlib import Path


def app_path() -> Path:
    """The Streamlit entry script, wherever the package is installed."""
    return Path(__file__).with_name("app.py")
