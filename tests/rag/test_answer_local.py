"""RAG through the real LocalGenerator, with a tiny randomly initialised model (fast, offline).

The words it writes are random; what is checked is the plumbing a real model relies on: the prompt is
budgeted with the model's own tokenizer and chat template, tokens stream, the pieces join to the final
text, and every citation left in the text points to a source the model was shown.
"""

from __future__ import annotations

import pytest

from ragtune.rag.answer import RAG

from _answer_fakes import FakeSearcher, make_hit

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TEXT = "LoRA trains two small low-rank matrices per layer while the pretrained weights stay frozen. "


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("ragtune.rag.generators.local")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT + "Sources: [1] [2] Question: The documents do not say."] * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_rag_with_a_tiny_local_model_budgets_streams_and_keeps_only_valid_citations(tiny_model_dir):
    from ragtune.rag.generators.local import LocalGenerator

    gen = LocalGenerator(str(tiny_model_dir), device="cpu")
    # Ten long chunks cannot all fit in 512 tokens: some must be dropped, using the real tokenizer's counts.
    hits = [make_hit(i, TEXT * 6, dense=0.6) for i in range(1, 11)]
    rag = RAG(FakeSearcher(hits), gen, k=10, max_new_tokens=24)
    stream = rag.stream("What does LoRA train?")
    pieces = list(stream)
    answer = stream.answer

    assert gen.context_window == 512
    assert len(pieces) >= 2 and "".join(pieces) == answer.text
    prompt = stream.prompt
    assert 1 <= len(prompt.sources) < 10
    assert gen.count_message_tokens(prompt.messages) <= 512 - 24
    assert {c.marker for c in answer.citations} <= {s.number for s in prompt.sources}
    assert answer.timings["first_token"] <= answer.timings["total"]
