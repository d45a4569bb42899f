"""Progress reporting: one callback shape for indexing, evaluation and training.

Long operations take ``progress: ProgressFn | None`` and call it as ``progress(stage, done, total, message)``:
``stage`` names the step ("parse", "embed", "train", ...), ``done`` counts finished units, ``total`` is their
number when known (None otherwise) and ``message`` is a short human line ("loss 1.93"). The CLI turns the
calls into terminal bars (:func:`terminal_progress`); the UI stores the latest call per job and redraws it on
its next rerun. A callback must be cheap and must not raise: it runs on the worker's thread.

    >>> seen = []
    >>> report = lambda stage, done, total, message="": seen.append((stage, done, total))
    >>> emit(report, "embed", 3, 10)
    >>> seen
    [('embed', 3, 10)]
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

ProgressFn = Callable[[str, int, Optional[int], str], None]


def emit(progress: ProgressFn | None, stage: str, done: int, total: int | None = None, message: str = "") -> None:
    """Call ``progress`` if there is one; a failing callback never breaks the work it reports on."""
    if progress is None:
        return
    try:
        progress(stage, done, total, message)
    except Exception:  # pragma: no cover - a display problem must not abort indexing or training
        pass


class terminal_progress:
    """A :data:`ProgressFn` that draws one tqdm bar per stage on stderr (only when stderr is a terminal,
    unless ``force``); call :meth:`close` (or use it as a context manager) when the work is done."""

    def __init__(self, force: bool | None = None):
        self.enabled = sys.stderr.isatty() if force is None else force
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int | None, message: str = "") -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="", leave=False, file=sys.stderr)
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def __enter__(self) -> terminal_progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
