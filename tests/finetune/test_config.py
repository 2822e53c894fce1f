from __future__ import annotations

import dataclasses
import json

import pytest

from finetune.config import TrainingConfig


def _config(tmp_path, **overrides) -> TrainingConfig:
    values = {
        "model": "packaged:SmolLM2-135M-Instruct",
        "dataset_dir": tmp_path / "data",
        "output_dir": tmp_path / "out",
    }
    return TrainingConfig(**{**values, **overrides})


def test_every_field_has_help():
    missing = [
        field.name for field in dataclasses.fields(TrainingConfig) if not field.metadata.get("help")
    ]

    assert missing == []


def test_config_json_round_trip(tmp_path):
    config = _config(tmp_path, method="full", lora_r=8, max_steps=20)
    path = tmp_path / "training_config.json"

    config.to_json(path)
    loaded = TrainingConfig.from_json(path)

    assert loaded == config
    assert json.loads(path.read_text())["method"] == "full"


def test_from_json_rejects_unknown_field(tmp_path):
    path = tmp_path / "training_config.json"
    _config(tmp_path).to_json(path)
    data = json.loads(path.read_text())
    data["learning_rat"] = 0.1
    path.write_text(json.dumps(data))

    with pytest.raises((ValueError, TypeError), match="learning_rat"):
        TrainingConfig.from_json(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "qlora"}, "method"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"bf16": "maybe"}, "bf16"),
        ({"model": ""}, "model"),
        ({"per_device_batch_tokens": 128, "max_seq_len": 1024}, "per_device_batch_tokens"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **overrides)
