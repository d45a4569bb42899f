"""Documents: upload files, see what is indexed, re-index incrementally, remove a document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from ragtune import api

from . import state
from .uploads import UploadError, allowed_suffixes, inside, save_upload

# One writer at a time for the whole server: every session's indexing runs under this job name.
INDEX_JOB = "index"


def _index_uploaded(job: api.Job, index: api.SharedIndex, paths: list[Path]) -> Any:
    report = api.index_paths(index, paths, progress=job.report)
    # A stored upload that could not be indexed is deleted: the page lists only indexed files, so it could
    # not be removed there, and every Re-index would skip it again. The report keeps its name and reason.
    failed = {str(Path(p.path).resolve()) for p in [*report.problems, *report.skipped]}
    for path in paths:
        if str(path.resolve()) in failed:
            path.unlink(missing_ok=True)
    return report


def _reindex(job: api.Job, index: api.SharedIndex, uploads: Path) -> Any:
    return api.reindex(index, [uploads], progress=job.report)


def _remove(job: api.Job, index: api.SharedIndex, source: str, uploads: Path) -> Any:
    report = api.remove_sources(index, [source], progress=job.report)
    # The stored copy goes too, but only after the index no longer lists it, and only inside uploads/.
    if source in report.removed and inside(uploads, source):
        Path(source).unlink(missing_ok=True)
    return report


def upload_section(index: api.SharedIndex, uploads: Path, max_mb: float) -> None:
    st.subheader("Add documents")
    suffixes = allowed_suffixes()
    files = st.file_uploader(
        f"Files up to {max_mb:g} MB each: {', '.join(s.lstrip('.') for s in suffixes)}",
        type=[s.lstrip(".") for s in suffixes], accept_multiple_files=True,
        key=f"uploader-{st.session_state.get('uploads_added', 0)}",  # a new key empties it once added
    )
    if files and st.button("Add to the index", type="primary"):
        _save_and_index(index, uploads, max_mb, files)
    # Kept in the session, so a refusal stays readable through the reruns that follow the progress.
    for message in st.session_state.get("upload_errors", []):
        st.error(message)


def _save_and_index(index: api.SharedIndex, uploads: Path, max_mb: float, files: list) -> None:
    saved: list[Path] = []
    errors: list[str] = []
    for f in files:
        try:
            saved.append(save_upload(uploads, f.name, f.getvalue(), max_mb))
        except UploadError as exc:
            errors.append(str(exc))
    st.session_state["upload_errors"] = errors
    if saved:
        st.session_state["uploaded"] = [p.name for p in saved]
        if state.start_job(INDEX_JOB, _index_uploaded, index, saved, exclusive=True) is not None:
            st.session_state["uploads_added"] = st.session_state.get("uploads_added", 0) + 1
            st.rerun()  # draws the progress, and an empty uploader: these files are on their way in


def report_section(job: api.Job | None) -> None:
    """The outcome of the last indexing run: counts, then skipped files with their reasons."""
    if job is None or job.state != "done" or job.result is None:
        return
    r = job.result
    st.success(f"{len(r.added)} added, {len(r.updated)} updated, {len(r.unchanged)} unchanged, "
               f"{len(r.removed)} removed; +{r.chunks_added} / -{r.chunks_removed} chunks")
    for what, paths in (("added", r.added), ("updated", r.updated), ("removed", r.removed)):
        if paths:
            names = [Path(p).name for p in paths]
            st.caption(f"{what}: {', '.join(names[:10])}" + (f" and {len(names) - 10} more" if len(names) > 10 else ""))
    skipped = [*r.problems, *r.skipped]
    if skipped:
        st.warning(f"{len(skipped)} file(s) skipped")
        st.dataframe([{"file": Path(p.path).name, "reason": p.reason} for p in skipped], hide_index=True)
    for w in r.warnings:
        st.caption(f"warning {Path(w.path).name}: {w.reason}")


def files_section(index: api.SharedIndex, uploads: Path) -> None:
    info = index.info()
    files = index.files()
    st.subheader("Indexed")
    c1, c2, c3 = st.columns(3)
    c1.metric("Files", info.get("files", len(files)))
    c2.metric("Chunks", info.get("chunks", 0))
    c3.metric("Last update", state.when(info.get("updated")))
    if not files:
        st.info("Nothing is indexed yet: upload documents above.")
        return
    rows = [{"file": Path(s).name, "type": m.get("type"), "chunks": m.get("n_chunks"),
             "uploaded": inside(uploads, s), "folder": str(Path(s).parent)} for s, m in sorted(files.items())]
    st.dataframe(rows, hide_index=True)
    left, right = st.columns(2)
    started = None
    with left:
        if st.button("Re-index", help="re-embed changed files, drop deleted ones, add new uploads"):
            started = state.start_job(INDEX_JOB, _reindex, index, uploads, exclusive=True)
    with right:
        source = st.selectbox("Remove a document", sorted(files), format_func=lambda s: Path(s).name,
                              index=None, placeholder="choose a file")
        if source and st.button("Remove", type="secondary"):
            started = state.start_job(INDEX_JOB, _remove, index, source, uploads, exclusive=True)
    if started is not None:
        # The progress and the report are drawn above these buttons, before they were pressed in this run:
        # draw the page again, or it shows the previous report until the next click.
        st.rerun()


def render() -> None:
    st.title("Documents")
    cfg = state.settings()
    index = state.shared_index()
    if index is None:
        state.wait_for(state.index_job(), "Opening the index ...")
        return
    st.caption(f"Index: {cfg.index_dir} · uploads are stored in {cfg.uploads_dir}")
    upload_section(index, cfg.uploads_dir, cfg.max_upload_mb)
    job = state.session_job(INDEX_JOB) or api.jobs.find(INDEX_JOB)
    if job is not None and job.running:
        state.wait_for(job, "Indexing ...")
    else:
        state.show_job(job)
        report_section(job)
    files_section(index, cfg.uploads_dir)
