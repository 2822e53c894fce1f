"""Tiny config-built models and tokenizers for tests of training mechanics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# The same layout as SmolLM2-135M-Instruct's template, without its default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer with ChatML special tokens: one token per word and newline.

    Words outside ``words`` become "[UNK]" (id 0), which is also the pad token.
    """
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2, "\n": 3}
    vocab.update({word: index + 4 for index, word in enumerate(dict.fromkeys(words))})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", behavior="removed"),
            pre_tokenizers.Split("\n", behavior="isolated"),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", eos_token="<|im_end|>", pad_token="[UNK]"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_llama(vocab_size: int, *, seed: int = 0) -> LlamaForCausalLM:
    """Build a randomly initialised 2-layer Llama with hidden size 32, in eval mode."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny_model_folder(path: Path, words: Sequence[str]) -> Path:
    """Save a tiny Llama and its word tokenizer into ``path`` as a local model folder."""
    tokenizer = build_word_tokenizer(words)
    model = build_tiny_llama(len(tokenizer))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
