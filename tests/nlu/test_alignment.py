from __future__ import annotations

import os

import numpy as np
import pytest

from nlu.alignment import (
    IGNORE_INDEX,
    align_labels,
    first_token_positions,
    read_word_predictions,
)

OUTSIDE_ID = 0


def test_align_labels_first_sub_token_only():
    # [CLS] w0 w1 w1 w1 w2 [SEP] [PAD]
    word_ids = [None, 0, 1, 1, 1, 2, None, None]

    labels = align_labels(word_ids, [4, 5, 6])

    assert labels == [IGNORE_INDEX, 4, 5, IGNORE_INDEX, IGNORE_INDEX, 6, IGNORE_INDEX, IGNORE_INDEX]


def test_align_labels_dropped_word_gets_no_label():
    # Word 1 produced no token.
    labels = align_labels([None, 0, 2, None], [4, 5, 6])

    assert labels == [IGNORE_INDEX, 4, 6, IGNORE_INDEX]


def test_first_token_positions_rejects_foreign_word_id():
    with pytest.raises(ValueError, match="belongs to word 3, but the text has 2 words"):
        first_token_positions([None, 0, 3, None], 2)


def test_read_word_predictions_uses_first_sub_token():
    word_ids = [None, 0, 0, 1, None]
    scores = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.1, 0.8, 0.1],  # word 0, first sub-token: label 1
            [0.0, 0.0, 1.0],  # word 0, second sub-token: ignored
            [0.2, 0.1, 0.7],  # word 1: label 2
            [1.0, 0.0, 0.0],
        ]
    )

    read = read_word_predictions(scores, word_ids, 2, OUTSIDE_ID)

    assert read.label_ids == [1, 2]
    assert read.probabilities == pytest.approx([0.8, 0.7])
    assert read.is_covered == [True, True]


def test_read_word_predictions_uncovered_words_are_outside():
    # Word 1 was dropped by the tokenizer, words 3 and 4 cut off by truncation.
    word_ids = [None, 0, 2, None]
    scores = np.full((4, 3), 0.1)
    scores[:, 2] = 0.8

    read = read_word_predictions(scores, word_ids, 5, OUTSIDE_ID)

    assert read.label_ids == [2, OUTSIDE_ID, 2, OUTSIDE_ID, OUTSIDE_ID]
    assert read.is_covered == [True, False, True, False, False]
    assert read.probabilities[1] == 1.0


def test_read_word_predictions_rejects_short_scores():
    with pytest.raises(ValueError, match="do not cover 4 tokens"):
        read_word_predictions(np.zeros((3, 2)), [None, 0, 1, None], 2, OUTSIDE_ID)


@pytest.fixture(scope="module")
def packaged_tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from nlu.taggers.transformer import resolve_base_model

    location, _ = resolve_base_model("packaged:all-MiniLM-L6-v2")
    return AutoTokenizer.from_pretrained(location, local_files_only=True)


@pytest.mark.slow
def test_align_labels_real_tokenizer_splits_words(packaged_tokenizer):
    words = ["check", "Pneumonoultramicroscopic", "ORD-2024-0001", "naïve", "now"]
    labels = [0, 1, 2, 3, 0]

    encoding = packaged_tokenizer(words, is_split_into_words=True)
    word_ids = encoding.word_ids()
    token_labels = align_labels(word_ids, labels)

    # The long word and the order number become several sub-tokens each. The uncased
    # tokenizer strips the accent of "naïve", which stays one token.
    assert word_ids.count(1) > 1
    assert word_ids.count(2) > 1
    assert word_ids.count(3) == 1
    assert len(word_ids) > len(words) + 2
    assert [label for label in token_labels if label != IGNORE_INDEX] == labels
    for position, label in enumerate(token_labels):
        if label != IGNORE_INDEX:
            assert word_ids[position] is not None
            assert word_ids.index(word_ids[position]) == position


@pytest.mark.slow
def test_read_word_predictions_real_tokenizer_dropped_word(packaged_tokenizer):
    words = ["order", "\u200b", "ORD-2024-0001"]
    encoding = packaged_tokenizer(words, is_split_into_words=True)
    word_ids = encoding.word_ids()
    scores = np.zeros((len(word_ids), 3))
    scores[:, 2] = 1.0

    read = read_word_predictions(scores, word_ids, len(words), OUTSIDE_ID)

    assert 1 not in word_ids
    assert read.label_ids == [2, OUTSIDE_ID, 2]
    assert read.is_covered == [True, False, True]


@pytest.mark.slow
def test_read_word_predictions_real_tokenizer_truncation(packaged_tokenizer):
    words = ["Pneumonoultramicroscopic"] + ["word"] * 20
    encoding = packaged_tokenizer(words, is_split_into_words=True, truncation=True, max_length=16)
    word_ids = encoding.word_ids()
    scores = np.zeros((len(word_ids), 3))
    scores[:, 1] = 1.0

    read = read_word_predictions(scores, word_ids, len(words), OUTSIDE_ID)

    assert len(word_ids) == 16
    assert read.is_covered[0]
    assert not read.is_covered[-1]
    assert read.label_ids[-1] == OUTSIDE_ID
    assert sum(read.is_covered) == len({w for w in word_ids if w is not None})
