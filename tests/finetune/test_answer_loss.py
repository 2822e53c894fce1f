"""The answer-only loss matches the model's own loss while computing fewer logits."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from finetune.answer_loss import answer_only_loss
from finetune.packing import pack_examples
from finetune.tokenization import IGNORE_INDEX, tokenize_examples
from tests.utils.tiny_models import build_tiny_llama, build_word_tokenizer

WORDS = "you help where is my order it ships today can i pay by card yes".split()
CONVERSATIONS = [
    [
        {"role": "system", "content": "you help"},
        {"role": "user", "content": "where is my order"},
        {"role": "assistant", "content": "it ships today"},
    ],
    [
        {"role": "system", "content": "you help"},
        {"role": "user", "content": "can i pay by card"},
        {"role": "assistant", "content": "yes you can pay by card"},
    ],
]


@pytest.fixture(scope="module")
def packed_inputs() -> dict:
    tokenizer = build_word_tokenizer(WORDS)
    examples = tokenize_examples(CONVERSATIONS, tokenizer, max_seq_len=64).examples
    [row] = pack_examples(examples, max_tokens=128)
    return row.model_inputs()


def _reference_loss(model, inputs) -> torch.Tensor:
    return model(**inputs).loss


def test_loss_matches_model_loss(packed_inputs):
    model = build_tiny_llama(len(build_word_tokenizer(WORDS)))

    loss, _ = answer_only_loss(model, packed_inputs)

    assert torch.allclose(loss, _reference_loss(model, packed_inputs), atol=1e-5)


def test_logits_only_for_answer_positions(packed_inputs):
    model = build_tiny_llama(len(build_word_tokenizer(WORDS)))
    answer_tokens = int((packed_inputs["labels"] != IGNORE_INDEX).sum())

    _, outputs = answer_only_loss(model, packed_inputs)

    assert outputs.logits.shape[1] == answer_tokens
    assert outputs.logits.shape[1] < packed_inputs["input_ids"].shape[1]


def test_loss_through_lora_wrapper(packed_inputs):
    base = build_tiny_llama(len(build_word_tokenizer(WORDS)))
    config = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(base, config)

    loss, _ = answer_only_loss(model, packed_inputs)

    assert torch.allclose(loss, _reference_loss(model, packed_inputs), atol=1e-5)


def test_gradients_match_model_loss(packed_inputs):
    first = build_tiny_llama(len(build_word_tokenizer(WORDS)), seed=3)
    second = build_tiny_llama(len(build_word_tokenizer(WORDS)), seed=3)

    answer_only_loss(first, packed_inputs)[0].backward()
    _reference_loss(second, packed_inputs).backward()

    for (name, one), (_, other) in zip(
        first.named_parameters(), second.named_parameters(), strict=True
    ):
        assert torch.allclose(one.grad, other.grad, atol=1e-5), name


def test_given_token_count_divides_sum(packed_inputs):
    model = build_tiny_llama(len(build_word_tokenizer(WORDS)))
    answer_tokens = int((packed_inputs["labels"][:, 1:] != IGNORE_INDEX).sum())

    mean_loss, _ = answer_only_loss(model, packed_inputs)
    scaled_loss, _ = answer_only_loss(model, packed_inputs, num_items_in_batch=answer_tokens * 4)

    assert torch.allclose(scaled_loss * 4, mean_loss, atol=1e-6)
