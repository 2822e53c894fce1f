"""``supportbot models`` and the error exits of ``supportbot finetune run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage import model_registry
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.models import ModelKind, ModelStatus
from tests.utils.tiny_models import save_tiny_model_folder
from ui.cli import app

WORDS = "where is my order it ships today".split()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    for name in ("SUPPORTBOT_DATABASE_URL", "SUPPORTBOT_GENERATION__BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPPORTBOT_HOME", str(home))
    return home


@pytest.fixture
def registered(home, tmp_path) -> dict[str, Path]:
    """Versions v1 (ready), v2 (rejected) and v3 (failed) in the home's database."""
    home.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(f"sqlite:///{home / 'supportbot.db'}")
    upgrade_schema(engine)
    folders = {name: save_tiny_model_folder(tmp_path / name, WORDS) for name in ("v1", "v2")}
    with create_session_factory(engine).begin() as session:
        for name, status in (("v1", ModelStatus.READY), ("v2", ModelStatus.REJECTED)):
            model_registry.register_version(
                session, kind=ModelKind.DIALOG, version=name, base_model="tiny"
            )
            model_registry.finish_version(
                session, name, status=status, path=str(folders[name]), metrics={"rouge_l": 0.25}
            )
        model_registry.register_version(
            session, kind=ModelKind.DIALOG, version="v3", base_model="tiny"
        )
        model_registry.finish_version(session, "v3", status=ModelStatus.FAILED, error="boom")
    engine.dispose()
    return folders


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _listing() -> dict:
    result = _invoke("models", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_list_without_versions(home):
    result = _invoke("models", "list")

    assert result.exit_code == 0, result.output
    assert "Active dialog model: base" in result.output
    assert "No versions registered yet" in result.output


def test_list_shows_versions_newest_first(registered):
    listing = _listing()

    assert listing["active"] == "base"
    assert [row["version"] for row in listing["versions"]] == ["v3", "v2", "v1"]
    assert listing["versions"][2]["rouge_l"] == 0.25
    assert listing["versions"][0]["error"] == "boom"


def test_activate_then_rollback(registered):
    result = _invoke("models", "activate", "v1")
    assert result.exit_code == 0, result.output
    assert _listing()["active"] == "v1"

    table = _invoke("models", "list").output
    assert "* v1" in table

    result = _invoke("models", "rollback")
    assert result.exit_code == 0, result.output
    assert "now base" in result.output
    assert _listing()["active"] == "base"


def test_activate_rejected_needs_force(registered):
    result = _invoke("models", "activate", "v2")
    assert result.exit_code == 1
    assert "--force" in result.output
    assert _listing()["active"] == "base"

    result = _invoke("models", "activate", "v2", "--force")
    assert result.exit_code == 0, result.output
    assert _listing()["active"] == "v2"


def test_activate_failed_version_refused(registered):
    result = _invoke("models", "activate", "v3", "--force")

    assert result.exit_code == 1
    assert "status failed" in result.output
    assert _listing()["active"] == "base"


def test_activate_unknown_version(registered):
    result = _invoke("models", "activate", "missing")

    assert result.exit_code == 1
    assert "'missing' not found" in result.output


def test_activate_deleted_folder_refused(registered):
    (registered["v1"] / "config.json").unlink()

    result = _invoke("models", "activate", "v1")

    assert result.exit_code == 1
    assert "missing or incomplete" in result.output
    assert _listing()["active"] == "base"


def test_rollback_with_nothing_active(registered):
    result = _invoke("models", "rollback")

    assert result.exit_code == 1
    assert "nothing to roll back" in result.output


def test_invalid_kind(home):
    result = _invoke("models", "list", "--kind", "sentiment")

    assert result.exit_code == 2
    assert "use one of dialog, intent, ner" in result.output


def test_finetune_run_without_conversations(home):
    result = _invoke("finetune", "run")

    assert result.exit_code == 1
    assert "no stored conversation matches" in result.output
    assert "serving model is unchanged" in result.output


def test_finetune_train_several_processes_needs_out(home, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")

    result = _invoke("finetune", "train", str(tmp_path))

    assert result.exit_code == 2
    assert "needs --out" in result.output


def test_finetune_run_future_date_explained(home):
    result = _invoke("finetune", "run", "--from", "2030-01-01")

    assert result.exit_code == 1
    assert "created at or after 2030-01-01T00:00:00+00:00" in result.output
    assert list((home / "models" / "dialog").glob("*")) == []


def test_finetune_run_invalid_method_fails_first(home):
    result = _invoke("finetune", "run", "--method", "qlora")

    assert result.exit_code == 1
    assert "invalid method 'qlora'" in result.output
