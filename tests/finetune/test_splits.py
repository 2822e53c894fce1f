from __future__ import annotations

import pytest

from finetune.pairs import TrainingPair
from finetune.splits import split_by_conversation


def _pairs(conversations: int, per_conversation: int = 3) -> list[TrainingPair]:
    return [
        TrainingPair(
            conversation_id=n,
            external_id=f"conv-{n}",
            context=(),
            question=f"question {n}.{turn}",
            answer=f"answer {n}.{turn}",
            channel="chat",
            status="closed",
            source=None,
            created_at=None,
            answer_seq=turn * 2,
        )
        for n in range(conversations)
        for turn in range(per_conversation)
    ]


def _conversations(pairs: list[TrainingPair]) -> set[str]:
    return {pair.external_id for pair in pairs}


def test_split_shares_no_conversation():
    splits = split_by_conversation(_pairs(300), validation=0.1, test=0.1)

    train, validation, test = (_conversations(pairs) for _, pairs in splits.items())
    assert not train & validation
    assert not train & test
    assert not validation & test
    assert len(train | validation | test) == 300


def test_split_keeps_every_pair():
    pairs = _pairs(50)

    splits = split_by_conversation(pairs)

    assert sum(len(split) for _, split in splits.items()) == len(pairs)


def test_split_is_deterministic_for_seed():
    pairs = _pairs(200)

    first = split_by_conversation(pairs, seed=7)
    second = split_by_conversation(list(reversed(pairs)), seed=7)
    other_seed = split_by_conversation(pairs, seed=8)

    assert _conversations(first.test) == _conversations(second.test)
    assert _conversations(first.validation) == _conversations(second.validation)
    assert _conversations(first.test) != _conversations(other_seed.test)


def test_split_stable_when_conversations_added():
    before = split_by_conversation(_pairs(100))

    after = split_by_conversation(_pairs(200))

    assert _conversations(before.test) <= _conversations(after.test)
    assert _conversations(before.validation) <= _conversations(after.validation)


def test_split_fractions_approximate():
    splits = split_by_conversation(_pairs(2000, per_conversation=1), validation=0.2, test=0.1)

    assert 0.17 < len(splits.validation) / 2000 < 0.23
    assert 0.08 < len(splits.test) / 2000 < 0.12


def test_split_zero_fractions_keep_all_in_train():
    splits = split_by_conversation(_pairs(20), validation=0.0, test=0.0)

    assert len(splits.train) == 60
    assert splits.validation == []
    assert splits.test == []


@pytest.mark.parametrize(
    ("validation", "test", "message"),
    [
        (-0.1, 0.1, r"validation must be a fraction in \[0, 1\), got -0.1"),
        (0.1, 1.0, r"test must be a fraction in \[0, 1\), got 1.0"),
        (0.6, 0.4, r"validation \(0.6\) \+ test \(0.4\) must be below 1"),
    ],
)
def test_split_bad_fractions_rejected(validation, test, message):
    with pytest.raises(ValueError, match=message):
        split_by_conversation(_pairs(5), validation=validation, test=test)
