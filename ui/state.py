"""What the pages share: settings, the process-wide index and generators, and job progress widgets.

Heavy objects live in Streamlit's resource cache, so every session of the server process uses one index
and one local model (both wrapped for thread-safety, see :mod:`ragtune.shared`). Opening them runs as a
background job, so the first page renders at once and shows a status until they are ready.

Settings come from the environment (``make run`` and the tests set them):

- ``RAGTUNE_INDEX``: the index folder (default ``.ragtune/index``; built from the shipped corpus when
  missing);
- ``RAGTUNE_UPLOADS``: where uploaded files are stored (default: ``uploads`` beside the index folder);
- ``RAGTUNE_ADAPTERS``: where LoRA adapters are trained and found (default: ``adapters`` beside it);
- ``RAGTUNE_MAX_UPLOAD_MB``: the per-file upload limit (default 25, the index's own file limit);
- ``RAGTUNE_UI_GENERATOR``: the generator selected at start, ``extractive`` (default) or ``local``;
- ``RAGTUNE_UI_MODEL``: the local model folder that Chat answers with and Fine-tune trains (default: the
  shipped SmolLM2-135M-Instruct; the browser tests use a tiny random model here).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from ragtune import api

from .uploads import MAX_UPLOAD_MB

GENERATORS = {
    "extractive": "Extractive (no model, instant)",
    "local": "Local model (SmolLM2-135M)",
    "adapter": "Local model + LoRA adapter",
    "api": "API (OpenAI-compatible)",
}


@dataclass(frozen=True)
class Settings:
    index_dir: Path
    uploads_dir: Path
    adapters_dir: Path
    generator: str
    max_upload_mb: float = MAX_UPLOAD_MB
    model: str | None = None  # None: the shipped SmolLM2


def settings() -> Settings:
    index_dir = Path(os.environ.get("RAGTUNE_INDEX") or ".ragtune/index").expanduser().resolve()
    home = index_dir.parent
    generator = os.environ.get("RAGTUNE_UI_GENERATOR", "extractive")
    return Settings(
        index_dir=index_dir,
        uploads_dir=Path(os.environ.get("RAGTUNE_UPLOADS") or home / "uploads").expanduser().resolve(),
        adapters_dir=Path(os.environ.get("RAGTUNE_ADAPTERS") or home / "adapters").expanduser().resolve(),
        generator=generator if generator in GENERATORS else "extractive",
        max_upload_mb=_positive(os.environ.get("RAGTUNE_MAX_UPLOAD_MB"), MAX_UPLOAD_MB),
        model=str(Path(os.environ["RAGTUNE_UI_MODEL"]).expanduser().resolve()) if os.environ.get("RAGTUNE_UI_MODEL")
        else None,
    )


# Chat's sidebar choices live under plain session keys ("choice:<name>"), never under a widget's own key.
# Streamlit deletes a widget's state whenever a run does not draw that widget (every visit to another page).
# Re-assigning the widget keys on every run (the previous way) kept them in quiet runs but twice lost the
# Fine-tune page's "use this adapter in Chat" on a loaded CI machine; a plain key is never deleted. Each Chat
# widget is seeded from its choice before it is drawn and copies a new value back in its on_change callback,
# which Streamlit runs before the script, so the choice is always what the widget shows.
def choice(name: str, default: Any = None) -> Any:
    """The session's Chat choice ``name`` (generator, adapter, k, mode, abstain), or ``default``."""
    return st.session_state.get(f"choice:{name}", default)


def choose(name: str, value: Any) -> None:
    """Set a Chat choice from any page; Chat's widget shows it the next time it is drawn."""
    st.session_state[f"choice:{name}"] = value


def bound(widget: Any, label: str, name: str, default: Any, **kwargs: Any) -> Any:
    """Draw ``widget(label, ...)`` showing choice ``name`` (``default`` at first) and keep its changes."""
    key, widget_key = f"choice:{name}", f"widget:{name}"
    st.session_state.setdefault(key, default)
    st.session_state[widget_key] = st.session_state[key]

    def copy_back() -> None:
        st.session_state[key] = st.session_state[widget_key]

    return widget(label, key=widget_key, on_change=copy_back, **kwargs)


def _positive(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


# ------------------------------------------------------------------------------ the shared index
def _open_index(job: api.Job, index_dir: Path) -> api.SharedIndex:
    if not api.is_index(index_dir):
        # First start without `make run`: index the shipped corpus so the chat works with no set-up.
        job.report("index", 0, None, "indexing the shipped documents (first start only)")
        built = api.Index.open(index_dir, create=True)
        try:
            built.add([api.corpora_dir()], exclude=["README.md"], progress=job.report)
        finally:
            built.close()
    job.report("open", 0, 2, "opening the index")
    shared = api.SharedIndex(api.Index.open(index_dir))
    job.report("open", 1, 2, "loading the embedding model")
    if len(shared):
        shared.search("warm up", k=1)  # loads the embedder now, not on the first question
    job.report("open", 2, 2, "ready")
    return shared


@st.cache_resource(show_spinner=False)
def _index_job(index_dir: str) -> api.Job:
    return api.jobs.start(_open_index, Path(index_dir), name="open index")


def index_job() -> api.Job:
    job = _index_job(str(settings().index_dir))
    if job.state in ("failed", "cancelled"):
        _index_job.clear()  # let the next rerun try again (e.g. after the user fixed the folder)
    return job


def shared_index() -> api.SharedIndex | None:
    """The process-wide index, or None while it is still opening (the caller shows :func:`wait_for`)."""
    job = index_job()
    return job.result if job.state == "done" else None


# ------------------------------------------------------------------------------ generators
@st.cache_resource(show_spinner=False)
def _local_generator(model: str | None) -> api.SharedGenerator:
    return api.SharedGenerator(api.load_generator({"kind": "local", "model_path": model}))


@st.cache_resource(show_spinner=False)
def _warm_job(model: str | None) -> api.Job:
    shared = _local_generator(model)
    return api.jobs.start(lambda job: shared.warm_up(), name="load local model")


def generator(kind: str, *, adapter: str | None = None, adapter_scale: float = 1.0,
              api_config: dict | None = None) -> tuple[Any, api.Job | None]:
    """The generator for a chat turn and, for a local model still loading, the job loading it."""
    if kind == "extractive":
        return api.load_generator("extractive"), None
    if kind == "api":
        return api.load_generator({"kind": "api", **(api_config or {})}), None
    model = settings().model
    job = _warm_job(model)
    if job.state == "failed":
        _warm_job.clear()
    if kind != "adapter":
        return _local_generator(model).view(), job
    return _local_generator(model).view(adapter=adapter, scale=adapter_scale), job


def adapters() -> list[Path]:
    """Adapter folders (those holding ``adapter_config.json``) under the adapters folder, newest first.

    A Fine-tune run writes ``<adapters>/<name>/adapter/`` (beside its checkpoints and logs); an adapter
    copied in by hand may sit at ``<adapters>/<name>/`` itself. Both are found.
    """
    root = settings().adapters_dir
    found = [p.parent for pattern in ("*/adapter_config.json", "*/adapter/adapter_config.json")
             for p in root.glob(pattern)] if root.is_dir() else []
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    shipped = attached_adapter()
    if shipped is not None and shipped not in found:
        found.append(shipped)
    return found


def attached_adapter() -> Path | None:
    """The adapter the local generator attaches by default (a shipped one), if any. Chat's "local model"
    answers without it (the base model); "local model + adapter" lists it beside the trained ones."""
    initial = getattr(_local_generator(settings().model).generator, "initial_adapter", None)
    return Path(initial).resolve() if initial else None


def adapter_name(path: str | Path) -> str:
    """``my-run`` for ``.../my-run/adapter`` (a training run's output), else the folder's own name."""
    path = Path(path)
    return path.parent.name if path.name == "adapter" else path.name


# ------------------------------------------------------------------------------ jobs on the page
def progress_line(job: api.Job) -> tuple[float | None, str]:
    p = job.progress
    if p is None:
        return None, f"{job.name}: starting"
    count = f" {p.done}/{p.total}" if p.total else (f" {p.done}" if p.done else "")
    message = f" - {p.message}" if p.message else ""
    return p.fraction, f"{job.name}: {p.stage}{count}{message} ({job.elapsed:.0f} s)"


def show_job(job: api.Job | None) -> None:
    """A progress bar while ``job`` runs; its error (one readable line) if it failed."""
    if job is None:
        return
    if job.running:
        fraction, text = progress_line(job)
        st.progress(fraction if fraction is not None else 0.0, text=text)
    elif job.state == "failed":
        st.error(f"{job.name} failed: {job.error}")
    elif job.state == "cancelled":
        st.warning(f"{job.name} was cancelled")


def wait_for(job: api.Job, what: str) -> None:
    """Show ``job``'s progress and rerun the page when it has finished (polled once a second)."""

    @st.fragment(run_every=1.0)
    def _poll() -> None:
        if not job.running:
            st.rerun()
        fraction, text = progress_line(job)
        # Not `with st.status(...)`: leaving that block marks the box complete (a check mark) while the
        # job is still running.
        box = st.status(what, state="running", expanded=True)
        box.progress(fraction if fraction is not None else 0.0, text=text)

    if job.running:
        _poll()
    else:
        show_job(job)


def follow_job(key: str, waiting: str, on_done) -> None:
    """This session's ``key`` job: its progress while it runs, then its error or ``on_done(result)``."""
    job = session_job(key)
    if job is not None and job.running:
        wait_for(job, waiting)
        return
    show_job(job)
    if job is not None and job.state == "done":
        on_done(job.result)


def session_job(key: str) -> api.Job | None:
    """The job this session started under ``key`` (kept across reruns)."""
    job_id = st.session_state.get(f"job:{key}")
    return api.jobs.get(job_id) if job_id is not None else None


def start_job(key: str, fn: Any, *args: Any, exclusive: bool = False, **kwargs: Any) -> api.Job | None:
    """Start ``fn`` as a background job remembered under ``key``; a refusal is shown as an error."""
    try:
        job = api.jobs.start(fn, *args, name=key, exclusive=exclusive, **kwargs)
    except api.RagtuneError as exc:
        st.error(str(exc))
        return None
    st.session_state[f"job:{key}"] = job.id
    return job


def error(exc: BaseException) -> None:
    """One readable line for a library error; unexpected ones are named, never shown as a traceback."""
    st.error(error_text(exc))


def error_text(exc: BaseException) -> str:
    if isinstance(exc, api.RagtuneError):
        return str(exc)
    return f"Something went wrong: {type(exc).__name__}: {exc}"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
