"""One public surface: ragtune and ragtune.api export the same names, lazily."""

from __future__ import annotations

import subprocess
import sys

import ragtune
from ragtune import api


def test_every_api_name_resolves_and_ragtune_exports_the_same_objects():
    for name in api.__all__:
        assert getattr(ragtune, name) is getattr(api, name), name
    assert set(api.__all__) <= set(ragtune.__all__)
    assert {"Index", "RAG", "Conversation", "load_generator", "advise", "load_questions", "evaluate_dataset",
            "jobs", "SharedGenerator", "SharedIndex", "ProgressFn"} <= set(api.__all__)


def test_unknown_names_raise_attribute_error():
    for module in (ragtune, api):
        try:
            module.definitely_not_here  # noqa: B018
        except AttributeError as exc:
            assert "definitely_not_here" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("expected AttributeError")


def test_importing_the_api_loads_no_heavy_library():
    code = ("import sys, ragtune, ragtune.api; "
            "print(sorted(m for m in ('torch', 'numpy', 'faiss', 'transformers', 'streamlit', 'unstructured') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_available_and_supports_report_what_this_installation_offers():
    assert api.available("advise") and api.available("corpus_index")
    assert not api.available("no_such_function")
    assert api.supports(api.evaluate_dataset, "progress")
    assert not api.supports(api.evaluate_dataset, "weights")
