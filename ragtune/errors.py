"""One exception family for ragtune.

Every error a user can cause derives from :class:`RagtuneError` and carries a message that says what
failed, the offending value or file, and what to do about it. The CLI prints ``str(err)`` and exits
with ``err.exit_code``; no traceback is shown for these.
"""

from __future__ import annotations


class RagtuneError(Exception):
    """Base class of every error ragtune raises on purpose."""

    exit_code = 1


class ConfigError(RagtuneError):
    """A setting, option or configuration file is invalid."""

    exit_code = 2


class IngestError(RagtuneError):
    """A single file could not be turned into text (reported per file, the batch goes on)."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class IndexFormatError(RagtuneError):
    """A directory is not a ragtune index, or is one of an unsupported format version."""


class ModelMismatchError(RagtuneError):
    """A model other than the one something was built with: an index opened with another embedding model,
    or an adapter loaded on another base model."""


class IndexLockedError(RagtuneError):
    """Another process is writing to the index."""

    exit_code = 3


class IndexWriteError(RagtuneError):
    """Writing a new index generation failed (disk full, I/O error); the previous one is intact."""


class ModelLoadError(RagtuneError):
    """A model, tokenizer or adapter directory could not be loaded."""


class GeneratorError(RagtuneError):
    """Text generation failed (unreachable API, bad key, model error)."""


class PromptTooLongError(GeneratorError):
    """The prompt does not fit the model's context window (an evaluation skips such a question and counts it)."""


class DatasetError(RagtuneError):
    """An evaluation dataset (BEIR layout, QA file) is malformed."""


class AdvisorError(RagtuneError):
    """An advisor questionnaire answer or matrix file is invalid."""

    exit_code = 2


class TrainingDataError(RagtuneError):
    """Training data is malformed: a record is reported with its file and line, and nothing trains."""

    exit_code = 2


class UnknownFilterKeyWarning(UserWarning):
    """A search filter names a metadata key that no chunk of the index has, so it matched nothing (a typo such
    as ``{"fle_type": "pdf"}`` would otherwise look like "no results"). The CLI prints its own note instead."""
