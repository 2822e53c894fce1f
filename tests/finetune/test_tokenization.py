"""Tests for chat-template tokenization with answer-only labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from finetune.tokenization import (
    IGNORE_INDEX,
    REJECT_ANSWER_TOO_LONG,
    ExampleRejectedError,
    tokenize_example,
    tokenize_examples,
)
from tests.utils.tiny_models import CHATML_TEMPLATE, build_word_tokenizer

WORDS = (
    "system user assistant you help shop customers where is my order it ships today "
    "thanks and the refund takes five days can i pay by card yes"
).split()


@pytest.fixture(scope="module")
def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with ChatML special tokens: one token per word and newline."""
    return build_word_tokenizer(WORDS)


def _conversation(*contents: str, system: str | None = "you help shop customers") -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    roles = ["user", "assistant"]
    messages += [{"role": roles[i % 2], "content": text} for i, text in enumerate(contents)]
    return messages


def _labelled_ids(example) -> list[int]:
    return [label for label in example.labels if label != IGNORE_INDEX]


def test_tokenize_example_labels_only_answer(word_tokenizer):
    messages = _conversation("where is my order", "it ships today")

    example = tokenize_example(messages, word_tokenizer, max_seq_len=64)

    answer_ids = word_tokenizer("it ships today", add_special_tokens=False)["input_ids"]
    assert _labelled_ids(example) == answer_ids + [word_tokenizer.eos_token_id]
    assert len(example.labels) == len(example.input_ids)
    assert example.labels[-1] == IGNORE_INDEX  # the template's newline after <|im_end|>
    assert not example.is_truncated


def test_tokenize_example_labels_match_input_ids(word_tokenizer):
    messages = _conversation("where is my order", "it ships today")

    example = tokenize_example(messages, word_tokenizer, max_seq_len=64)

    for token, label in zip(example.input_ids, example.labels, strict=True):
        assert label in (IGNORE_INDEX, token)


def test_tokenize_example_truncation_keeps_answer(word_tokenizer):
    messages = _conversation(
        "where is my order", "it ships today", "thanks", "yes", "can i pay by card", "yes"
    )
    full = tokenize_example(messages, word_tokenizer, max_seq_len=512)
    last_turn = tokenize_example([messages[0], *messages[-2:]], word_tokenizer, max_seq_len=512)

    example = tokenize_example(messages, word_tokenizer, max_seq_len=len(full.input_ids) - 1)

    assert example.is_truncated
    assert len(example.input_ids) < len(full.input_ids)
    assert _labelled_ids(example) == _labelled_ids(full)
    assert example.input_ids[:3] == full.input_ids[:3]  # the system message survives
    assert len(example.input_ids) >= len(last_turn.input_ids)


def test_tokenize_example_truncation_drops_whole_turns(word_tokenizer):
    messages = _conversation("where is my order", "it ships today", "can i pay by card", "yes")
    last_turn = tokenize_example([messages[0], *messages[-2:]], word_tokenizer, max_seq_len=512)

    example = tokenize_example(messages, word_tokenizer, max_seq_len=len(last_turn.input_ids))

    assert example.input_ids == last_turn.input_ids
    assert example.labels == last_turn.labels


def test_tokenize_example_cuts_long_question_from_left(word_tokenizer):
    messages = _conversation("where is my order and the refund", "yes", system=None)
    full = tokenize_example(messages, word_tokenizer, max_seq_len=512)

    example = tokenize_example(messages, word_tokenizer, max_seq_len=len(full.input_ids) - 3)

    assert example.is_truncated
    assert example.input_ids == full.input_ids[3:]
    assert _labelled_ids(example) == _labelled_ids(full)


def test_tokenize_example_rejects_long_answer(word_tokenizer):
    messages = _conversation("thanks", "the refund takes five days", system=None)

    with pytest.raises(ExampleRejectedError, match="answer of 7 tokens") as error:
        tokenize_example(messages, word_tokenizer, max_seq_len=7)

    assert error.value.reason == REJECT_ANSWER_TOO_LONG


def test_tokenize_examples_counts_rejections(word_tokenizer):
    short = _conversation("thanks", "yes", system=None)
    long = _conversation(
        "thanks", "the refund takes five days and it ships today thanks", system=None
    )

    result = tokenize_examples([short, long, long], word_tokenizer, max_seq_len=12)

    assert len(result.examples) == 1
    assert result.rejected == {REJECT_ANSWER_TOO_LONG: 2}
    assert result.truncated == 0


def test_tokenize_example_without_template_raises(word_tokenizer):
    tokenizer = word_tokenizer.__class__(tokenizer_object=word_tokenizer.backend_tokenizer)

    with pytest.raises(ValueError, match="has no chat template"):
        tokenize_example(_conversation("thanks", "yes"), tokenizer, max_seq_len=64)


def test_tokenize_example_mismatched_generation_prompt_raises(word_tokenizer):
    tokenizer = word_tokenizer.__class__(tokenizer_object=word_tokenizer.backend_tokenizer)
    tokenizer.chat_template = CHATML_TEMPLATE.replace(
        "'<|im_start|>assistant\n'", "'<|im_start|>bot\n'"
    )

    with pytest.raises(ValueError, match="renders the prompt with add_generation_prompt"):
        tokenize_example(_conversation("thanks", "yes"), tokenizer, max_seq_len=64)


@pytest.mark.parametrize(
    "roles", [["user"], ["user", "assistant", "assistant"], ["system", "assistant"]]
)
def test_tokenize_example_invalid_roles_raise(word_tokenizer, roles):
    messages = [{"role": role, "content": "yes"} for role in roles]

    with pytest.raises(ValueError, match="last message must be the assistant"):
        tokenize_example(messages, word_tokenizer, max_seq_len=64)


@pytest.mark.slow
def test_tokenize_example_smollm2_decodes_answer(packaged_generator_path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(packaged_generator_path)
    messages = _conversation("Where is my order?", "It ships today, 2 to 3 days.")
    messages += [
        {"role": "user", "content": "Can I pay by card?"},
        {"role": "assistant", "content": "Yes, all major cards."},
    ]

    example = tokenize_example(messages, tokenizer, max_seq_len=512)
    answer = tokenizer.decode(_labelled_ids(example))
    truncated = tokenize_example(messages, tokenizer, max_seq_len=len(example.input_ids) - 5)

    assert answer == "Yes, all major cards.<|im_end|>"
    assert tokenizer.decode(_labelled_ids(truncated)) == answer
    assert "Where is my order?" not in tokenizer.decode(truncated.input_ids)
