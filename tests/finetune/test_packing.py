"""Tests for padding-free packing and the padded baseline."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from finetune.packing import collate_padded, group_by_length, pack_examples
from finetune.tokenization import IGNORE_INDEX, TokenizedExample

VOCAB_SIZE = 64
PAD_TOKEN_ID = 0


def _example(input_ids: list[int], prompt_tokens: int) -> TokenizedExample:
    labels = [IGNORE_INDEX] * prompt_tokens + input_ids[prompt_tokens:]
    return TokenizedExample(input_ids=input_ids, labels=labels)


@pytest.fixture
def examples() -> list[TokenizedExample]:
    return [
        _example([5, 6, 7, 8, 9, 10], prompt_tokens=3),
        _example([11, 12, 13], prompt_tokens=1),
        _example([14, 15, 16, 17, 18, 19, 20], prompt_tokens=4),
        _example([21, 22], prompt_tokens=1),
        _example([23, 24, 25, 26], prompt_tokens=2),
    ]


def _build_tiny_llama(attn_implementation: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attn_implementation=attn_implementation,
    )
    return LlamaForCausalLM(config).eval()


def test_pack_examples_respects_max_tokens(examples):
    batches = pack_examples(examples, max_tokens=10)

    assert [batch.seq_lengths for batch in batches] == [[6, 3], [7, 2], [4]]
    for batch in batches:
        assert batch.input_ids.shape[1] <= 10
        assert batch.input_ids.shape == batch.labels.shape == batch.position_ids.shape


def test_pack_examples_keeps_every_token_once(examples):
    batches = pack_examples(examples, max_tokens=10)

    packed = torch.cat([batch.input_ids[0] for batch in batches]).tolist()
    assert packed == [token for example in examples for token in example.input_ids]


def test_pack_examples_restarts_positions(examples):
    batches = pack_examples(examples, max_tokens=10)

    assert batches[0].position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2]]
    assert batches[1].position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6, 0, 1]]


def test_pack_examples_keeps_labels(examples):
    batches = pack_examples(examples, max_tokens=10)

    packed = torch.cat([batch.labels[0] for batch in batches]).tolist()
    assert packed == [label for example in examples for label in example.labels]


def test_pack_examples_masks_first_token_of_each_example():
    # Labels that start with an answer token would train a prediction across examples.
    unmasked = [TokenizedExample([5, 6], [5, 6]), TokenizedExample([7, 8], [7, 8])]

    (batch,) = pack_examples(unmasked, max_tokens=10)

    assert batch.labels.tolist() == [[IGNORE_INDEX, 6, IGNORE_INDEX, 8]]


def test_pack_examples_too_long_example_raises(examples):
    with pytest.raises(ValueError, match="example 2 has 7 tokens, outside 1..6"):
        pack_examples(examples, max_tokens=6)


def test_pack_examples_model_inputs_disable_cache(examples):
    (batch, *_) = pack_examples(examples, max_tokens=10)

    inputs = batch.model_inputs()

    assert inputs["use_cache"] is False
    assert "attention_mask" not in inputs


def test_collate_padded_pads_right(examples):
    batch = collate_padded(examples[:2], pad_token_id=PAD_TOKEN_ID)

    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch.labels[1].tolist() == [IGNORE_INDEX, 12, 13] + [IGNORE_INDEX] * 3


def test_collate_padded_empty_raises():
    with pytest.raises(ValueError, match="at least one example"):
        collate_padded([], pad_token_id=PAD_TOKEN_ID)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_packed_logits_match_single_examples(examples, attn_implementation):
    model = _build_tiny_llama(attn_implementation)
    (batch, *_) = pack_examples(examples[:2], max_tokens=16)

    with torch.no_grad():
        packed = model(**batch.model_inputs()).logits[0]
        alone = [
            model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
            for example in examples[:2]
        ]

    first, second = torch.split(packed, batch.seq_lengths)
    torch.testing.assert_close(first, alone[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(second, alone[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_packed_loss_matches_padded_loss(examples, attn_implementation):
    model = _build_tiny_llama(attn_implementation)
    (packed_batch,) = pack_examples(examples, max_tokens=32)
    padded_batch = collate_padded(examples, pad_token_id=PAD_TOKEN_ID)

    with torch.no_grad():
        packed_loss = model(**packed_batch.model_inputs()).loss
        padded_loss = model(**padded_batch.model_inputs()).loss

    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=0)


def test_group_by_length_respects_budget(examples):
    batches = group_by_length(examples, max_tokens=8, pad_token_id=PAD_TOKEN_ID, seed=0)

    for batch in batches:
        assert batch.input_ids.numel() <= 8


def test_group_by_length_keeps_every_example(examples):
    batches = group_by_length(examples, max_tokens=8, pad_token_id=PAD_TOKEN_ID, seed=0)

    rows = sorted(
        tuple(row[mask.bool()].tolist())
        for batch in batches
        for row, mask in zip(batch.input_ids, batch.attention_mask, strict=True)
    )
    assert rows == sorted(tuple(example.input_ids) for example in examples)


def test_group_by_length_groups_similar_lengths(examples):
    # Lengths 6, 3, 7, 2, 4 sort to 2, 3, 4 | 6 | 7 under a budget of 12 tokens.
    batches = group_by_length(examples, max_tokens=12, pad_token_id=PAD_TOKEN_ID, seed=0)

    lengths = sorted(batch.attention_mask.sum(dim=1).tolist() for batch in batches)
    assert lengths == [[2, 3, 4], [6], [7]]


def test_group_by_length_same_seed_same_order(examples):
    first = group_by_length(examples, max_tokens=8, pad_token_id=PAD_TOKEN_ID, seed=0)
    again = group_by_length(examples, max_tokens=8, pad_token_id=PAD_TOKEN_ID, seed=0)

    assert [b.input_ids.tolist() for b in first] == [b.input_ids.tolist() for b in again]


def test_group_by_length_too_long_example_raises(examples):
    with pytest.raises(ValueError, match="example 2 has 7 tokens, more than max_tokens 6"):
        group_by_length(examples, max_tokens=6, pad_token_id=PAD_TOKEN_ID, seed=0)
