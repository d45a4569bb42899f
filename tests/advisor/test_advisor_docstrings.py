"""The examples in the advisor's docstrings are run, so they cannot drift from the behaviour."""

import doctest
import importlib

import pytest

MODULES = ["ragtune.advisor", "ragtune.advisor.types", "ragtune.advisor.decide", "ragtune.advisor.recommend",
           "ragtune.advisor.sensitivity", "ragtune.advisor.evidence", "ragtune.advisor.robustness",
           "ragtune.advisor.questionnaire", "ragtune.advisor.matrix", "ragtune.advisor.scenarios"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
