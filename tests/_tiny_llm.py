"""One builder for the tiny in-process tokenizer every generator and tuning test uses: ChatML specials
(ids 0, 1, 2), byte-level BPE trained on a few sentences, ragtune's ChatML chat template."""

from __future__ import annotations

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
CORPUS = ["LoRA trains two small matrices.", "The capital of France is Paris.", "user assistant system",
          "Sources: Question: The documents do not say."]


def build_tokenizer(vocab_size: int = 300, corpus: list[str] | None = None, pad_token: str = "<|endoftext|>"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ragtune.rag.generators.models import CHATML_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((corpus or CORPUS) * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token=pad_token)
    fast.chat_template = CHATML_TEMPLATE
    return fast
