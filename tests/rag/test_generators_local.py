"""LocalGenerator on a tiny randomly initialised Llama with a ChatML byte-level BPE tokenizer.

Everything is built in-process in well under a second, so these tests check behaviour (streaming,
stop strings, limits, adapters, errors) rather than answer quality; the real SmolLM2 is exercised
in test_generators_smollm2.py.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ragtune.errors import ConfigError, GeneratorError, ModelLoadError  # noqa: E402
from ragtune.rag.generators import LocalGenerator  # noqa: E402
from ragtune.rag.generators.base import Generator  # noqa: E402

from _tiny_llm import SPECIALS  # noqa: E402
from _tiny_llm import build_tokenizer as _build_tokenizer  # noqa: E402

ASK = [{"role": "user", "content": "What is the capital of France?"}]


def build_tokenizer():
    # Its own vocabulary and padding: token counts and stop strings below are checked against it.
    return _build_tokenizer(400, ["The capital of France is Paris.", "Hello world, this is a tiny model.",
                                  "user assistant system"], pad_token="<|im_end|>")


def tiny_llama(vocab_size: int, hidden: int = 32, seed: int = 0, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # never predict special tokens, so greedy answers run to max_new_tokens
        model.lm_head.weight[: len(SPECIALS)] = 0
        model.lm_head.weight[: len(SPECIALS), 0] = -100.0
    return model


def save_lora(base_dir, out_dir, seed: int, target_modules=("q_proj", "v_proj"), base=None):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = base if base is not None else AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=list(target_modules), init_lora_weights=False)
    with warnings.catch_warnings():  # peft's own deprecation and Conv1D notices while saving
        warnings.simplefilter("ignore")
        get_peft_model(base, lora).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def gen(tiny_dir):
    # The loop guards change what greedy decoding picks and where it ends; these tests compare with raw
    # model.generate.
    g = LocalGenerator(tiny_dir, device="cpu", no_repeat_ngram=0, stop_on_repetition=False)
    g.warm_up()
    return g


def raw_generate(gen, messages, max_new_tokens):
    """What plain model.generate + decode gives for the same prompt (the baseline the bench uses)."""
    prompt = gen.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([gen.tokenizer.encode(prompt, add_special_tokens=False)])
    out = gen.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=2)
    return gen.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_local_generator_satisfies_the_generator_protocol(gen):
    assert isinstance(gen, Generator)
    assert gen.name == f"local:{gen.model_path.name}"


def test_stream_pieces_join_to_generate_and_to_raw_model_generate(gen):
    pieces = list(gen.stream(ASK, max_new_tokens=24))
    assert len(pieces) > 1
    assert "".join(pieces) == gen.generate(ASK, max_new_tokens=24)
    assert "".join(pieces) == raw_generate(gen, ASK, 24)


def test_max_new_tokens_bounds_the_answer(gen):
    short, long = gen.generate(ASK, max_new_tokens=3), gen.generate(ASK, max_new_tokens=12)
    assert short and long.startswith(short) and len(long) > len(short)
    assert short == raw_generate(gen, ASK, 3)


def test_stop_string_cuts_the_answer_just_before_it(gen):
    full = gen.generate(ASK, max_new_tokens=30)
    stop = full[8:11]
    expected = full[: full.find(stop)]
    assert gen.generate(ASK, max_new_tokens=30, stop=[stop]) == expected
    assert "".join(gen.stream(ASK, max_new_tokens=30, stop=["never-produced", stop])) == expected


def test_sampling_with_temperature_depends_on_the_seed(gen):
    torch.manual_seed(1)
    a = gen.generate(ASK, max_new_tokens=20, temperature=1.0)
    torch.manual_seed(1)
    again = gen.generate(ASK, max_new_tokens=20, temperature=1.0)
    torch.manual_seed(2)
    b = gen.generate(ASK, max_new_tokens=20, temperature=1.0)
    assert a == again and a != b


def test_token_counts_use_the_model_tokenizer_and_chat_template(gen):
    text = "The capital of France is Paris."
    assert gen.count_tokens(text) == len(gen.tokenizer.encode(text, add_special_tokens=False))
    prompt = gen.tokenizer.apply_chat_template(ASK, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>assistant\n" in prompt
    assert gen.count_message_tokens(ASK) == len(gen.tokenizer.encode(prompt, add_special_tokens=False))
    assert gen.count_message_tokens(ASK) > gen.count_tokens(ASK[0]["content"])


def test_context_window_is_read_from_config_without_loading_weights(tiny_dir):
    g = LocalGenerator(tiny_dir)
    assert g.context_window == 256
    assert not g.loaded  # reading the window did not load the model
    assert LocalGenerator(tiny_dir, context_window=64).context_window == 64


def test_prompt_longer_than_context_window_is_a_clear_error(tiny_dir):
    g = LocalGenerator(tiny_dir, device="cpu", context_window=16)
    with pytest.raises(GeneratorError, match="accepts 16"):
        g.generate(ASK)


def test_error_inside_generation_thread_reaches_the_caller(tiny_dir, monkeypatch):
    g = LocalGenerator(tiny_dir, device="cpu")

    def broken_forward(*args, **kwargs):
        raise RuntimeError("kaboom in forward")

    monkeypatch.setattr(g.model, "forward", broken_forward)
    with pytest.raises(GeneratorError, match="kaboom in forward"):
        list(g.stream(ASK, max_new_tokens=5))
    assert not any(t.name == "ragtune-generate" for t in threading.enumerate())


def test_leaving_a_stream_early_stops_generating(tiny_dir, monkeypatch):
    g = LocalGenerator(tiny_dir, device="cpu")
    steps, forward = [], g.model.forward

    def slow_counted_forward(*args, **kwargs):  # 200 steps take >= 1 s, so a late cancel cannot hide
        steps.append(1)
        time.sleep(0.005)
        return forward(*args, **kwargs)

    monkeypatch.setattr(g.model, "forward", slow_counted_forward)
    pieces = g.stream(ASK, max_new_tokens=200)
    next(pieces)
    pieces.close()
    assert not any(t.name == "ragtune-generate" for t in threading.enumerate())
    assert len(steps) < 100  # far from the 200 it would run to


def test_bad_arguments_are_config_errors(gen):
    with pytest.raises(ConfigError, match="max_new_tokens"):
        gen.generate(ASK, max_new_tokens=0)
    with pytest.raises(ConfigError, match="temperature"):
        gen.generate(ASK, temperature=-1)
    with pytest.raises(ConfigError, match="role"):
        gen.generate([{"role": "robot", "content": "hi"}])
    with pytest.raises(ConfigError, match="device"):
        LocalGenerator(device="gpu")
    with pytest.raises(ConfigError, match="dtype"):
        LocalGenerator(dtype="int3")


def test_folders_that_are_not_models_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        LocalGenerator(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        LocalGenerator(tmp_path).warm_up()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no weights"):
        LocalGenerator(tmp_path).warm_up()


def test_4bit_without_cuda_is_a_clear_error(tiny_dir):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: 4-bit loading is allowed here")
    with pytest.raises(ModelLoadError, match="CUDA"):
        LocalGenerator(tiny_dir, load_in_4bit=True).warm_up()


def test_model_without_chat_template_gets_plain_turns(tiny_dir, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_dir, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    g = LocalGenerator(plain, device="cpu")
    prompt = g.tokenizer.apply_chat_template(ASK, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("User: What is") and prompt.endswith("Assistant: ")
    assert g.generate(ASK, max_new_tokens=3)


# ----------------------------------------------------------------------------------------- adapters
@pytest.fixture(scope="module")
def adapter_dirs(tiny_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {name: save_lora(tiny_dir, root / name, seed) for name, seed in (("alpha", 1), ("beta", 2))}


def logits(g):
    ids = torch.tensor([g.tokenizer.encode("The capital of France", add_special_tokens=False)])
    with torch.no_grad():
        return g.model(ids).logits


def test_adapter_changes_output_and_base_comes_back_exactly(tiny_dir, adapter_dirs):
    g = LocalGenerator(tiny_dir, device="cpu")
    base_logits, base_text = logits(g), g.generate(ASK, max_new_tokens=12)
    model, weight = g.model, g.model.model.embed_tokens.weight.data_ptr()

    assert g.load_adapter(adapter_dirs["alpha"]) == "alpha"
    assert g.active_adapter == "alpha" and g.name.endswith("+alpha")
    assert not torch.allclose(logits(g), base_logits)
    assert g.generate(ASK, max_new_tokens=12) != base_text

    g.set_adapter(None)
    assert torch.equal(logits(g), base_logits)
    assert g.generate(ASK, max_new_tokens=12) == base_text
    assert g.model is model and g.model.model.embed_tokens.weight.data_ptr() == weight  # no reload


def test_an_adapter_recorded_for_another_base_model_is_refused(tiny_dir, adapter_dirs, tmp_path):
    from ragtune.errors import ModelMismatchError
    from ragtune.rag.generators.adapters import META_FILE, model_fingerprint

    # Same shapes, so peft would load it without a word; ragtune's record names another base model.
    other = shutil.copytree(adapter_dirs["alpha"], tmp_path / "other")
    (other / META_FILE).write_text(json.dumps({"base_model": {"name": "another-model", "fingerprint": "0" * 16}}))
    own = shutil.copytree(adapter_dirs["alpha"], tmp_path / "own")
    (own / META_FILE).write_text(json.dumps({"base_model": {"fingerprint": model_fingerprint(tiny_dir)}}))
    g = LocalGenerator(tiny_dir, device="cpu")
    base_text = g.generate(ASK, max_new_tokens=12)
    with pytest.raises(ModelMismatchError, match="trained on another-model"):
        g.load_adapter(other)
    assert g.adapters == [] and g.generate(ASK, max_new_tokens=12) == base_text  # nothing attached
    assert g.load_adapter(own) == "own"


def test_two_adapters_switch_and_unload(tiny_dir, adapter_dirs):
    g = LocalGenerator(tiny_dir, device="cpu")
    base_logits = logits(g)
    g.load_adapter(adapter_dirs["alpha"])
    alpha = logits(g)
    g.load_adapter(adapter_dirs["beta"], name="b")
    beta = logits(g)
    assert g.adapters == ["alpha", "b"] and g.active_adapter == "b"
    assert not torch.allclose(alpha, beta)
    g.set_adapter("alpha")
    assert torch.equal(logits(g), alpha)

    g.unload_adapter("alpha")
    assert g.adapters == ["b"] and g.active_adapter is None
    assert torch.equal(logits(g), base_logits)
    g.set_adapter("b")
    assert torch.equal(logits(g), beta)
    g.unload_adapter("b")
    assert g.adapters == [] and torch.equal(logits(g), base_logits)
    with pytest.raises(ConfigError, match="No adapter named 'b'"):
        g.set_adapter("b")


def test_adapter_given_at_construction_is_active_after_loading(tiny_dir, adapter_dirs):
    g = LocalGenerator(tiny_dir, adapter=adapter_dirs["beta"], device="cpu")
    g.warm_up()
    assert g.adapters == ["beta"] and g.active_adapter == "beta"


def lora_output(g, name="q_proj"):
    """The adapted projection of layer 0 on a fixed input: linear in the adapter's scale."""
    layer = getattr(g.model.model.layers[0].self_attn, name)
    x = torch.ones(1, 3, layer.in_features)
    with torch.no_grad():
        return layer(x)


def test_adapter_scale_interpolates_between_the_base_and_the_adapter(tiny_dir, adapter_dirs):
    g = LocalGenerator(tiny_dir, device="cpu")
    base_logits = logits(g)
    g.load_adapter(adapter_dirs["alpha"])
    full_logits, full = logits(g), lora_output(g)
    assert g.adapter_scale("alpha") == 1.0 and g.name.endswith("+alpha")

    g.set_adapter_scale("alpha", 0)
    assert torch.allclose(logits(g), base_logits, atol=1e-6)  # 0: the base model, nothing unloaded
    none = lora_output(g)
    g.set_adapter_scale("alpha", 0.5)
    assert g.name.endswith("+alpha@0.5") and g.adapter_scale("alpha") == 0.5
    assert torch.allclose(lora_output(g), (none + full) / 2, atol=1e-6)  # halfway, as WiSE-FT interpolates
    half_logits = logits(g)
    assert not torch.allclose(half_logits, full_logits) and not torch.allclose(half_logits, base_logits)
    g.set_adapter_scale("alpha", 1)
    assert torch.equal(logits(g), full_logits)


def test_each_adapter_keeps_its_scale_across_switches(tiny_dir, adapter_dirs):
    g = LocalGenerator(tiny_dir, device="cpu")
    g.load_adapter(adapter_dirs["alpha"], scale=0.5)
    half = logits(g)
    g.load_adapter(adapter_dirs["beta"], name="b")
    beta = logits(g)
    assert g.adapter_scale("b") == 1.0
    g.set_adapter("alpha")
    assert torch.equal(logits(g), half) and g.adapter_scale("alpha") == 0.5
    g.set_adapter("b")
    assert torch.equal(logits(g), beta)
    g.unload_adapter("alpha")
    with pytest.raises(ConfigError, match="No adapter named 'alpha'"):
        g.set_adapter_scale("alpha", 1)


def test_adapter_scale_given_at_construction_and_bad_scales(tiny_dir, adapter_dirs):
    base = logits(LocalGenerator(tiny_dir, device="cpu"))
    g = LocalGenerator(tiny_dir, adapter=adapter_dirs["beta"], device="cpu", adapter_scale=0)
    assert torch.allclose(logits(g), base, atol=1e-6) and g.adapter_scale("beta") == 0
    for bad in (-0.1, 2.5, float("nan"), True, "half"):
        with pytest.raises(ConfigError, match="scale"):
            g.set_adapter_scale("beta", bad)
        with pytest.raises(ConfigError, match="adapter_scale must be a number"):
            LocalGenerator(tiny_dir, adapter=adapter_dirs["beta"], adapter_scale=bad)
    assert g.adapter_scale("beta") == 0  # a refused scale changes nothing


def test_broken_adapter_at_construction_fails_every_load(tiny_dir, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{not json")
    g = LocalGenerator(tiny_dir, adapter=tmp_path, device="cpu")
    for _ in range(2):  # and does not quietly fall back to the base model the second time
        with pytest.raises(ModelLoadError, match="not valid JSON"):
            g.generate(ASK, max_new_tokens=2)


def _missing_config(d, tiny_dir, good):
    shutil.copytree(good, d)
    (d / "adapter_config.json").unlink()


def _corrupt_weights(d, tiny_dir, good):
    shutil.copytree(good, d)
    (d / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 16)


def _other_shapes(d, tiny_dir, good):
    save_lora(None, d, 3, base=tiny_llama(400, hidden=64))


def _fewer_layers(d, tiny_dir, good):
    save_lora(None, d, 5, base=tiny_llama(400, layers=1))


def _other_architecture(d, tiny_dir, good):
    from transformers import GPT2Config, GPT2LMHeadModel

    save_lora(None, d, 4, target_modules=["c_attn"],
              base=GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=400)))


@pytest.mark.parametrize("breakage, message", [
    (_missing_config, "adapter_config.json is missing"),
    (_corrupt_weights, "corrupt"),
    (_other_shapes, "shapes do not match"),
    (_fewer_layers, "missing weight"),
    (_other_architecture, "not found in the base model"),
])
def test_broken_adapter_dir_raises_model_load_error_and_leaves_model_intact(
        tiny_dir, adapter_dirs, tmp_path, breakage, message):
    g = LocalGenerator(tiny_dir, device="cpu")
    g.load_adapter(adapter_dirs["alpha"])
    alpha = logits(g)
    broken = tmp_path / "broken"
    breakage(broken, tiny_dir, adapter_dirs["alpha"])
    with pytest.raises(ModelLoadError, match=message) as err:
        g.load_adapter(broken)
    assert str(broken) in str(err.value)
    assert g.adapters == ["alpha"] and g.active_adapter == "alpha"
    assert torch.equal(logits(g), alpha)


def test_loop_guard_stops_repeated_ngrams_in_the_answer(tiny_dir, gen):
    import torch
    from transformers import LogitsProcessorList

    from ragtune.rag.generators.streaming import NoRepeatAnswerNGram

    prompt = torch.tensor([gen.tokenizer("hello there", add_special_tokens=False)["input_ids"]])
    kwargs = dict(max_new_tokens=40, do_sample=False, pad_token_id=0)
    plain = gen.model.generate(prompt, **kwargs)[0, prompt.shape[1]:].tolist()
    guarded = gen.model.generate(
        prompt, logits_processor=LogitsProcessorList([NoRepeatAnswerNGram(prompt.shape[1], 3)]), **kwargs
    )[0, prompt.shape[1]:].tolist()
    trigrams = lambda ids: [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]  # noqa: E731
    assert len(set(trigrams(plain))) < len(trigrams(plain))  # the random model loops without the guard
    assert len(set(trigrams(guarded))) == len(trigrams(guarded))
    messages = [{"role": "user", "content": "hello"}]
    looped = gen.generate(messages, max_new_tokens=40)
    assert LocalGenerator(tiny_dir, device="cpu", no_repeat_ngram=3).generate(messages, max_new_tokens=40) != looped


def test_paraphrased_loop_ends_the_answer_after_the_first_sentence(tiny_dir, monkeypatch):
    # n-gram bans stop exact loops; a model that rephrases the same sentence forever is stopped here.
    import ragtune.rag.generators.streaming as streaming

    produced = []

    def looping(model, kwargs, decode, on_error):
        def pieces():
            n = 0
            while True:
                n += 1
                produced.append(n)
                yield f"Paris is the capital of France{'' if n % 2 else ' indeed'}. "
        return pieces()

    monkeypatch.setattr(streaming, "stream_generate", looping)
    g = LocalGenerator(tiny_dir, device="cpu")
    assert g.generate(ASK, max_new_tokens=200) == "Paris is the capital of France."
    assert len(produced) <= 3
    off = LocalGenerator(tiny_dir, device="cpu", stop_on_repetition=False)
    produced.clear()
    pieces = off.stream(ASK)
    assert [next(pieces) for _ in range(5)][-1].startswith("Paris")  # without the guard it runs on


def test_local_generator_names_a_short_default_answer_length():
    from _answer_fakes import FakeSearcher  # tests/rag is on pytest's pythonpath

    from ragtune.rag.answer import RAG

    assert RAG(FakeSearcher(), LocalGenerator()).max_new_tokens == LocalGenerator.default_max_new_tokens == 128


def test_from_loaded_wraps_a_model_in_memory_and_decodes_as_a_loaded_generator(tiny_dir, gen):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    wrapped = LocalGenerator.from_loaded(model, AutoTokenizer.from_pretrained(tiny_dir), no_repeat_ngram=0,
                                         stop_on_repetition=False)
    assert wrapped.loaded and wrapped.model is model
    assert wrapped.generate(ASK, max_new_tokens=6) == gen.generate(ASK, max_new_tokens=6)
