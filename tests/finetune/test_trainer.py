"""Tests for the dialog-model trainer: LoRA and full fine-tuning on packed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from finetune.config import TrainingConfig
from finetune.packing import pack_examples
from finetune.tokenization import TokenizedExample
from finetune.trainer import TrainingResult, collate_packed_row, train
from tests.utils.tiny_models import save_tiny_model_folder

WORDS = (
    "system user assistant you help shop customers where is my order it ships today "
    "thanks and the refund takes five days can i pay by card yes"
).split()
QUESTIONS_AND_ANSWERS = [
    ("where is my order", "it ships today"),
    ("can i pay by card", "yes you can pay by card"),
    ("where is the refund", "the refund takes five days"),
    ("is my order shipped", "yes it ships today"),
    ("thanks", "you help and thanks"),
    ("can i pay by card today", "yes by card"),
    ("where is my refund", "it takes five days"),
    ("is it today", "yes it ships today"),
    ("my refund", "the refund takes five days"),
    ("can you help", "yes i help customers"),
]
SUPPORT_EXAMPLES = [
    ("Where is my order?", "Your order ships today and arrives in two days."),
    ("Can I pay by card?", "Yes, we accept all major credit cards."),
    ("How long does a refund take?", "Refunds take five business days."),
    ("Can I change my address?", "Yes, you can change it in your account settings."),
    ("Do you ship abroad?", "Yes, we ship to most countries in Europe and Asia."),
    ("How do I reset my password?", "Click 'Forgot password' on the login page."),
    ("Is there a warranty?", "Every product has a two-year warranty."),
    ("Can I cancel my order?", "Yes, orders can be cancelled before they ship."),
    ("What are your opening hours?", "Our support team is available from 9 to 17."),
    ("Do you have a discount code?", "Sign up for our newsletter to get 10% off."),
    ("My parcel is damaged.", "Sorry about that. Please send a photo and we will replace it."),
    ("How do I return an item?", "Print the return label from your order page."),
    ("Can I pay later?", "Yes, you can pay within 30 days by invoice."),
    ("Where is the invoice?", "The invoice is attached to your confirmation e-mail."),
    ("Is the item in stock?", "Yes, it is in stock and ships today."),
    ("Can I talk to a person?", "Of course, I will connect you with an agent."),
]
SYSTEM_PROMPT = "you help shop customers"


def _write_dataset(folder: Path, pairs: list[tuple[str, str]], *, system: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        for question, answer in pairs
    ]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "validation.jsonl").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    return folder


def _tiny_config(tmp_path: Path, **overrides) -> TrainingConfig:
    values = dict(
        model="tiny-llama",
        dataset_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        learning_rate=1e-2,
        warmup_ratio=0.0,
        max_steps=10,
        per_device_batch_tokens=64,
        max_seq_len=64,
        gradient_accumulation_steps=1,
        eval_every_steps=5,
    )
    values.update(overrides)
    return TrainingConfig(**values)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-model"), WORDS)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_path) -> tuple[TrainingConfig, TrainingResult]:
    tmp_path = tmp_path_factory.mktemp("lora-run")
    _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    config = _tiny_config(tmp_path, method="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0)
    return config, train(config, model_path=tiny_model_path)


def _weights_changed(original_dir: Path, trained_dir: Path) -> bool:
    original = load_file(original_dir / "model.safetensors")
    trained = load_file(trained_dir / "model.safetensors")
    return any(not original[name].equal(trained[name]) for name in original)


def test_train_lora_logs_loss(lora_run):
    _, result = lora_run

    assert len(result.train_loss_history) == 10
    assert result.steps == 10
    assert result.eval_loss_history


def test_train_lora_lowers_loss(lora_run):
    _, result = lora_run

    first_loss = result.train_loss_history[0][1]
    last_loss = result.train_loss_history[-1][1]
    assert last_loss < first_loss


def test_train_lora_counts_tokens(lora_run):
    _, result = lora_run

    assert 0 < result.answer_tokens < result.input_tokens
    assert result.answer_tokens_per_s > 0
    assert result.train_seconds > 0


def test_train_lora_merges_changed_weights(lora_run, tiny_model_path):
    _, result = lora_run

    assert _weights_changed(tiny_model_path, result.model_dir)
    trained = load_file(result.model_dir / "model.safetensors")
    assert not any("lora" in name for name in trained)


def test_train_lora_writes_output_files(lora_run):
    config, result = lora_run

    assert result.model_dir == config.output_dir / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (result.model_dir / name).is_file(), name
    assert TrainingConfig.from_json(config.output_dir / "training_config.json") == config
    report = json.loads((config.output_dir / "train_report.json").read_text(encoding="utf-8"))
    assert report["steps"] == result.steps
    assert report["answer_tokens"] == result.answer_tokens
    assert len(report["train_loss_history"]) == len(result.train_loss_history)


def test_train_full_changes_weights(tmp_path, tiny_model_path):
    _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    config = _tiny_config(tmp_path, method="full", max_steps=3, eval_every_steps=0)

    result = train(config, model_path=tiny_model_path)

    assert result.steps == 3
    assert len(result.train_loss_history) == 3
    assert len(result.eval_loss_history) == 1
    assert _weights_changed(tiny_model_path, result.model_dir)


def test_train_missing_dataset_raises(tmp_path, tiny_model_path):
    config = _tiny_config(tmp_path)

    with pytest.raises(FileNotFoundError, match=r"data/train\.jsonl is missing"):
        train(config, model_path=tiny_model_path)


def test_train_missing_model_folder_raises(tmp_path):
    _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    config = _tiny_config(tmp_path)

    with pytest.raises(FileNotFoundError, match="no-model is missing"):
        train(config, model_path=tmp_path / "no-model")


def test_train_empty_train_split_raises(tmp_path, tiny_model_path):
    dataset_dir = _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    (dataset_dir / "train.jsonl").write_text("", encoding="utf-8")
    config = _tiny_config(tmp_path)

    with pytest.raises(ValueError, match="has no trainable example"):
        train(config, model_path=tiny_model_path)


def test_train_resumes_from_checkpoint(tmp_path, tiny_model_path):
    _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    train(
        _tiny_config(tmp_path, method="full", max_steps=4, eval_every_steps=2),
        model_path=tiny_model_path,
    )
    config = _tiny_config(tmp_path, method="full", max_steps=6, eval_every_steps=2)

    result = train(config, model_path=tiny_model_path)

    assert result.steps == 6
    assert [step for step, _ in result.train_loss_history] == [1, 2, 3, 4, 5, 6]
    assert 0 < result.answer_tokens


def test_collate_packed_row_keeps_positions_without_cache():
    rows = pack_examples([TokenizedExample([5, 6, 7], [-100, 6, 7])] * 2, max_tokens=6)

    inputs = collate_packed_row(rows)

    assert inputs["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2]]
    assert inputs["use_cache"] is False


def test_collate_packed_row_rejects_two_rows():
    rows = pack_examples([TokenizedExample([5, 6, 7], [-100, 6, 7])] * 2, max_tokens=3)

    with pytest.raises(ValueError, match="exactly 1 packed row, got 2"):
        collate_packed_row(rows)


@pytest.mark.slow
def test_train_smollm2_lora_lowers_loss(tmp_path, packaged_generator_path: Path):
    _write_dataset(tmp_path / "data", SUPPORT_EXAMPLES, system="You are a helpful shop assistant.")
    config = TrainingConfig(
        model="packaged:SmolLM2-135M-Instruct",
        dataset_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        method="lora",
        lora_r=8,
        lora_alpha=16,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        max_steps=6,
        max_seq_len=256,
        per_device_batch_tokens=256,
        gradient_accumulation_steps=1,
        eval_every_steps=0,
    )

    result = train(config, model_path=packaged_generator_path)

    assert len(result.train_loss_history) == 6
    assert result.train_loss_history[-1][1] < result.train_loss_history[0][1]
    assert (result.model_dir / "model.safetensors").is_file()


def test_train_length_grouped_lowers_loss(tmp_path, tiny_model_path):
    _write_dataset(tmp_path / "data", QUESTIONS_AND_ANSWERS, system=SYSTEM_PROMPT)
    config = _tiny_config(
        tmp_path, method="full", batching="length_grouped", max_steps=8, eval_every_steps=0
    )

    result = train(config, model_path=tiny_model_path)

    losses = [loss for _, loss in result.train_loss_history]
    assert result.steps == 8
    assert losses[-1] < losses[0]
    assert result.answer_tokens > 0
    assert _weights_changed(tiny_model_path, result.model_dir)


def test_train_logs_answer_tokens_per_second(lora_run):
    config, _ = lora_run
    [state_path, *_] = sorted(config.output_dir.glob("checkpoint-*/trainer_state.json"))

    history = json.loads(state_path.read_text(encoding="utf-8"))["log_history"]
    training_lines = [entry for entry in history if "loss" in entry]

    assert training_lines
    assert all(entry["answer_tokens_per_s"] > 0 for entry in training_lines)
