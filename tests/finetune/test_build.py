from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finetune.build import DatasetConfig, NoConversationsError, build_dataset
from finetune.pairs import ConversationFilter
from storage.dialog_import import import_dialogs

FIXTURE = Path(__file__).parents[1] / "fixtures" / "finetune" / "dialogs_pii.jsonl"


@pytest.fixture
def imported(session_factory):
    import_dialogs(session_factory, [FIXTURE], show_progress=False)
    return session_factory


def _read_examples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_build_dataset_redacts_and_writes_splits(imported, tmp_path):
    config = DatasetConfig(out_dir=tmp_path / "dataset", validation=0.0, test=0.0)

    stats = build_dataset(imported, config)

    examples = _read_examples(tmp_path / "dataset" / "train.jsonl")
    written = json.dumps(examples, ensure_ascii=False)
    assert stats.pairs == {"train": 3, "validation": 0, "test": 0}
    assert stats.redactions == {"CARD": 1, "EMAIL": 1, "PHONE": 1}
    assert "4111" not in written
    assert "jane.doe@example.com" not in written
    assert "13812345678" not in written
    assert "[CARD]" in written
    assert "[EMAIL]" in written
    assert "[PHONE]" in written
    assert written.count("2019123456789") == 2
    assert "10023" in written
    assert "$49.90" in written
    assert json.loads((tmp_path / "dataset" / "stats.json").read_text())["redactions"]["CARD"] == 1


def test_build_dataset_chat_format(imported, tmp_path):
    config = DatasetConfig(out_dir=tmp_path / "dataset", validation=0.0, test=0.0)

    build_dataset(imported, config)

    for example in _read_examples(tmp_path / "dataset" / "train.jsonl"):
        roles = [message["role"] for message in example["messages"]]
        assert roles[0] == "system"
        assert roles[-2:] == ["user", "assistant"]


def test_build_dataset_drops_greetings_and_holding_replies(imported, tmp_path):
    config = DatasetConfig(out_dir=tmp_path / "dataset", validation=0.0, test=0.0)

    stats = build_dataset(imported, config)

    answers = [
        example["messages"][-1]["content"]
        for example in _read_examples(tmp_path / "dataset" / "train.jsonl")
    ]
    assert "请稍等" not in answers
    assert "Ok" not in answers
    assert stats.dropped["holding_message"] == 1
    assert stats.dropped["greeting_message"] == 1


def test_build_dataset_filters_by_date(imported, tmp_path):
    config = DatasetConfig(
        out_dir=tmp_path / "dataset",
        conversation_filter=ConversationFilter(created_from=datetime(2024, 6, 1, tzinfo=UTC)),
        validation=0.0,
        test=0.0,
    )

    stats = build_dataset(imported, config)

    assert stats.pairs["train"] == 1


def test_build_dataset_without_matches(imported, tmp_path):
    config = DatasetConfig(
        out_dir=tmp_path / "dataset",
        conversation_filter=ConversationFilter(channels=("phone",)),
    )

    with pytest.raises(NoConversationsError, match="no stored conversation matches"):
        build_dataset(imported, config)

    assert not (tmp_path / "dataset").exists()


def test_finetune_dataset_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ui.cli import app

    for key in [key for key in os.environ if key.startswith("SUPPORTBOT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SUPPORTBOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    runner.invoke(app, ["import-dialogs", str(FIXTURE)])

    result = runner.invoke(
        app,
        ["finetune", "dataset", "--out", str(tmp_path / "out"), "--duplicate-similarity", "1"],
    )
    empty = runner.invoke(app, ["finetune", "dataset", "--channel", "phone"])

    assert result.exit_code == 0, result.output
    assert "redacted {'CARD': 1" in result.output
    assert (tmp_path / "out" / "train.jsonl").is_file()
    assert empty.exit_code == 1
    assert "no stored conversation matches" in empty.output


def test_dataset_command_reads_dialog_files(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ui.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("SUPPORTBOT_HOME", str(home))
    monkeypatch.delenv("SUPPORTBOT_DATABASE_URL", raising=False)
    dialogs_dir = Path(__file__).parents[1] / "fixtures" / "dialogs"
    files = [dialogs_dir / "support_en.jsonl", dialogs_dir / "support_zh.jsonl", FIXTURE]

    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "dataset",
            "--out",
            str(tmp_path / "data"),
            "--duplicate-similarity",
            "1",
            "--test",
            "0.3",
            *[argument for path in files for argument in ("--dialogs", str(path))],
        ],
    )

    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "data" / "stats.json").read_text(encoding="utf-8"))
    assert sum(stats["pairs"].values()) > 0
    assert not (home / "supportbot.db").exists()


def test_dataset_command_missing_dialog_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ui.cli import app

    monkeypatch.setenv("SUPPORTBOT_HOME", str(tmp_path / "home"))
    missing = tmp_path / "nope.jsonl"

    result = CliRunner().invoke(app, ["finetune", "dataset", "--dialogs", str(missing)])

    assert result.exit_code != 0
    assert "nope.jsonl" in result.output
