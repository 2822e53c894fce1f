"""``supportbot finetune intent``: training runs, their registry entries and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

import finetune.nlu_pipeline
from storage import model_registry
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.models import ModelKind, ModelStatus
from ui.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlu"
EN_TRAIN = FIXTURES / "intents_en_train.csv"
EN_VALIDATION = FIXTURES / "intents_en_validation.csv"
EN_TEST = FIXTURES / "intents_en_test.csv"
ZH_TRAIN = FIXTURES / "intents_zh_train.jsonl"
ZH_VALIDATION = FIXTURES / "intents_zh_validation.jsonl"
CHARNGRAM = ("--backend", "charngram")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    for name in ("SUPPORTBOT_DATABASE_URL", "SUPPORTBOT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPPORTBOT_HOME", str(home))
    return home


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _train_english(*extra: str):
    result = _invoke(
        "finetune", "intent", "--train", EN_TRAIN, "--validation", EN_VALIDATION,
        "--eval", EN_TEST, *CHARNGRAM, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def _intent_versions(home: Path) -> list[dict]:
    """Return name, status, language, path and active language of each intent version."""
    engine = create_db_engine(f"sqlite:///{home / 'supportbot.db'}")
    upgrade_schema(engine)
    try:
        with create_session_factory(engine)() as session:
            active = model_registry.get_active_versions(session, ModelKind.INTENT)
            active_ids = {version.id: language for language, version in active.items()}
            return [
                {
                    "version": version.version,
                    "status": version.status,
                    "language": version.language,
                    "path": version.path,
                    "active_for": active_ids.get(version.id, "none"),
                }
                for version in model_registry.list_versions(session, ModelKind.INTENT)
            ]
    finally:
        engine.dispose()


def _listing() -> dict:
    result = _invoke("models", "list", "--kind", "intent", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_train_csv_registers_and_activates(home):
    result = _train_english()

    versions = _intent_versions(home)
    assert len(versions) == 1
    version = versions[0]
    assert version["status"] is ModelStatus.READY
    assert version["language"] == "en"
    assert version["active_for"] == "en"
    assert f"Version {version['version']}: ready, activated" in result.output
    model_dir = Path(version["path"])
    assert (model_dir / "nlu_model.json").is_file()
    assert (model_dir / "model.joblib").is_file()
    assert (model_dir.parent / "eval_report.md").is_file()
    assert str(model_dir.parent / "eval_report.md") in result.output


def test_models_list_shows_intent_version(home):
    _train_english()
    version = _intent_versions(home)[0]["version"]

    table = _invoke("models", "list", "--kind", "intent")

    assert table.exit_code == 0, table.output
    assert version in table.output
    assert [row["version"] for row in _listing()["versions"]] == [version]
    assert _listing()["versions"][0]["status"] == "ready"


def test_models_list_marks_active_intent_version(home):
    _train_english()

    listing = _listing()

    assert listing["versions"][0]["active"] is True


def test_version_name_names_detected_language(home):
    _train_english()

    version = _intent_versions(home)[0]

    assert version["language"] == "en"
    assert version["version"].startswith("intent-en-")


def test_chinese_jsonl_activated_beside_english(home):
    _train_english()

    # The language is given so that the version name differs from the English run's even
    # when both start in the same second.
    result = _invoke(
        "finetune", "intent", "--train", ZH_TRAIN, "--validation", ZH_VALIDATION,
        "--language", "zh-CN", *CHARNGRAM,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    by_language = {row["language"]: row for row in _intent_versions(home)}
    assert set(by_language) == {"en", "zh-CN"}
    assert by_language["en"]["active_for"] == "en"
    assert by_language["zh-CN"]["active_for"] == "zh-CN"


def test_no_activate_leaves_version_inactive(home):
    result = _train_english("--no-activate")

    version = _intent_versions(home)[0]
    assert version["status"] is ModelStatus.READY
    assert version["active_for"] == "none"
    assert "not activated" in result.output


def test_models_activate_accepts_intent_version(home):
    _train_english("--no-activate")
    version = _intent_versions(home)[0]["version"]

    result = _invoke("models", "activate", version)

    assert result.exit_code == 0, result.output
    assert _intent_versions(home)[0]["active_for"] == "en"


def test_models_rollback_intent_of_one_language(home):
    _train_english()

    result = _invoke("models", "rollback", "--kind", "intent", "--language", "en")

    assert result.exit_code == 0, result.output
    assert _intent_versions(home)[0]["active_for"] == "none"


class _FrozenClock(datetime):
    """A datetime whose now() is fixed, so two runs start in the same second."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 12, 5, 1, 30, tzinfo=UTC)


def test_runs_in_same_second_get_distinct_versions(home, monkeypatch):
    monkeypatch.setattr(finetune.nlu_pipeline, "datetime", _FrozenClock)

    first = _invoke("finetune", "intent", "--train", EN_TRAIN, *CHARNGRAM, "--language", "en")
    second = _invoke("finetune", "intent", "--train", EN_TRAIN, *CHARNGRAM, "--language", "en")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert len({row["version"] for row in _intent_versions(home)}) == 2


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _assert_data_error(result, expected: list[str], home: Path) -> None:
    assert result.exit_code == 2, result.output
    for fragment in expected:
        assert fragment in result.output
    assert "Cannot read the intent data" in result.output
    assert _intent_versions(home) == []


def test_eval_file_with_unknown_intent(home, tmp_path):
    eval_file = _write(
        tmp_path / "eval.csv",
        "text,intent\nwhere is my parcel,track_order\none pizza please,order_pizza\n",
    )

    result = _invoke("finetune", "intent", "--train", EN_TRAIN, "--eval", eval_file, *CHARNGRAM)

    _assert_data_error(result, [f"{eval_file}:3", "'order_pizza'"], home)


def test_validation_file_with_unknown_intent(home, tmp_path):
    validation = _write(tmp_path / "validation.jsonl", '{"text": "hi", "intent": "greet"}\n')

    result = _invoke(
        "finetune", "intent", "--train", EN_TRAIN, "--validation", validation, *CHARNGRAM
    )

    _assert_data_error(result, [f"{validation}:1", "'greet'"], home)


PARCEL_ROW = "where is my parcel,track_order\n"
# Case id -> (file content, line named in the error or None, part of the error message).
BAD_TRAINING_CSV = {
    "empty": ("", None, "no utterances"),
    "header_only": ("text,intent\n", None, "no utterances"),
    "single_intent": (
        "text,intent\n" + PARCEL_ROW + "where is it,track_order\n",
        None,
        "only the intent 'track_order'",
    ),
    "no_text_column": ("question,answer\n" + PARCEL_ROW, 1, "no text column"),
    "no_intent_column": ("text,notes\nwhere is my parcel,late\n", 1, "no intent column"),
    "extra_field": (
        "text,intent\n" + PARCEL_ROW + "refund, please,request_refund\n",
        3,
        "3 fields but the header has 2",
    ),
    "empty_text": ("text,intent\n" + PARCEL_ROW + ",request_refund\n", 3, "the text is empty"),
    "unclosed_quote": (
        "text,intent\n" + PARCEL_ROW + '"refund please,request_refund\n',
        3,
        "invalid CSV",
    ),
    "not_utf8": (
        ("text,intent\n" + PARCEL_ROW).encode()
        + "我的快递到哪里了,track_order\n".encode("gb18030"),
        3,
        "not valid UTF-8",
    ),
}


@pytest.mark.parametrize("case", BAD_TRAINING_CSV)
def test_bad_training_csv(home, tmp_path, case):
    content, line, message = BAD_TRAINING_CSV[case]
    train = _write(tmp_path / "train.csv", content)

    result = _invoke("finetune", "intent", "--train", train, *CHARNGRAM)

    location = f"{train}:" if line is None else f"{train}:{line}:"
    _assert_data_error(result, [location, message], home)


def test_bad_training_jsonl_line(home, tmp_path):
    train = _write(
        tmp_path / "train.jsonl",
        '{"text": "where is my parcel", "intent": "track_order"}\n{"text": "refund me"\n',
    )

    result = _invoke("finetune", "intent", "--train", train, *CHARNGRAM)

    _assert_data_error(result, [f"{train}:2:", "invalid JSON"], home)


def test_training_file_without_known_suffix(home, tmp_path):
    train = _write(tmp_path / "train.txt", "text,intent\nwhere is my parcel,track_order\n")

    result = _invoke("finetune", "intent", "--train", train, *CHARNGRAM)

    _assert_data_error(result, [str(train), "'.txt'"], home)


def test_neither_train_nor_dataset(home):
    result = _invoke("finetune", "intent", *CHARNGRAM)

    assert result.exit_code == 2
    assert "Give either --train FILE or --dataset NAME" in result.output


def test_both_train_and_dataset(home):
    result = _invoke("finetune", "intent", "--train", EN_TRAIN, "--dataset", "banking77")

    assert result.exit_code == 2
    assert "Give either --train FILE or --dataset NAME" in result.output


def test_missing_training_file(home, tmp_path):
    missing = tmp_path / "missing.csv"

    result = _invoke("finetune", "intent", "--train", missing, *CHARNGRAM)

    assert result.exit_code != 0
    assert f"not found: {missing}" in result.output
    assert _intent_versions(home) == []


def test_unknown_language(home):
    result = _invoke("finetune", "intent", "--train", EN_TRAIN, "--language", "fr", *CHARNGRAM)

    assert result.exit_code == 2
    assert "Unknown --language 'fr'" in result.output
    assert _intent_versions(home) == []


def test_unknown_backend_rejected_before_registering(home):
    result = _invoke("finetune", "intent", "--train", EN_TRAIN, "--backend", "fasttext")

    assert result.exit_code == 2, result.output
    assert "'fasttext'" in result.output
    assert _intent_versions(home) == []


def test_too_few_turns_without_validation(home, tmp_path):
    train = _write(
        tmp_path / "train.csv",
        "text,intent\nwhere is my parcel,track_order\ncancel it,cancel_order\n",
    )

    result = _invoke("finetune", "intent", "--train", train, *CHARNGRAM)

    assert result.exit_code != 0
    assert "too few" in result.output
    assert "--validation" in result.output


def test_dataset_folder_missing(home):
    result = _invoke("finetune", "intent", "--dataset", "banking77", *CHARNGRAM)

    assert result.exit_code == 2
    assert "SUPPORTBOT_DATA_DIR" in result.output


def test_unknown_dataset_name(home, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path))

    result = _invoke("finetune", "intent", "--dataset", "banking78", *CHARNGRAM)

    assert result.exit_code == 2
    assert "'banking78'" in result.output
    assert "banking77" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "language", "min_accuracy"), [("banking77", "en", 0.8), ("cais", "zh-CN", 0.8)]
)
def test_public_dataset_run(home, shared_data_dir, monkeypatch, dataset, language, min_accuracy):
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(shared_data_dir))

    result = _invoke("finetune", "intent", "--dataset", dataset, *CHARNGRAM)

    assert result.exit_code == 0, result.output
    version = _intent_versions(home)[0]
    assert version["version"].startswith(f"intent-{language}-")
    assert version["language"] == language
    assert version["active_for"] == language
    report = json.loads((Path(version["path"]).parent / "eval_report.json").read_text("utf-8"))
    assert report["test"]["accuracy"] >= min_accuracy
