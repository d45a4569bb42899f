"""The real shipped SmolLM2-135M-Instruct, end to end: GGUF -> cached safetensors -> answers.

The first run converts the GGUF into the user cache (~30 s); later runs reuse it.
"""

from __future__ import annotations

import time

import pytest

from ragtune.rag.generators import LocalGenerator
from ragtune.rag.generators.models import DEFAULT_MODEL_NAME, default_model_dir

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]


@pytest.fixture(scope="module")
def smollm2():
    default_model_dir()  # converts once, if this machine has never done it
    # Import what loading needs first: the figure below is the model load, not Python's imports.
    import transformers.models.llama.modeling_llama  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    start = time.perf_counter()
    gen = LocalGenerator()  # the shipped default, found through default_model_dir() again
    gen.warm_up()
    gen.load_seconds = time.perf_counter() - start
    return gen


def test_converted_model_reloads_fast_with_its_chat_template(smollm2):
    assert smollm2.load_seconds < 5
    assert smollm2.name == f"local:{DEFAULT_MODEL_NAME}"
    assert "<|im_start|>assistant" in smollm2.tokenizer.chat_template
    assert smollm2.context_window == 8192


def test_shipped_model_answers_a_simple_question(smollm2):
    answer = smollm2.generate(ASK, max_new_tokens=24)
    assert "Paris" in answer


def test_shipped_model_streams_the_same_answer_in_pieces(smollm2):
    pieces = list(smollm2.stream(ASK, max_new_tokens=24))
    assert len(pieces) > 1
    assert "".join(pieces) == smollm2.generate(ASK, max_new_tokens=24)
