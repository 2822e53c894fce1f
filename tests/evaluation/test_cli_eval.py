"""``supportbot eval`` as a user runs it: errors before any model loads, and one full run."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from bot.config import Settings
from bot.runtime import open_database
from storage.dialog_import import import_dialogs
from tests.evaluation.conftest import EVAL_DIALOGS, prepare_eval_home, register_dialog_copy
from ui.cli import app


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def runner(monkeypatch, tmp_path, home) -> CliRunner:
    """A CliRunner with the environment of a user who set only SUPPORTBOT_HOME."""
    for key in list(os.environ):
        if key.startswith("SUPPORTBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SUPPORTBOT_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Settings read a .env file from the working directory, and the tmp folder has none.
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def imported_home(home):
    engine, session_factory = open_database(Settings(home=home))
    import_dialogs(session_factory, [EVAL_DIALOGS], format="sgd", show_progress=False)
    engine.dispose()
    return home


def test_no_held_out_dialogs(runner, home, tmp_path):
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "out")])

    assert result.exit_code == 1
    assert "Nothing to evaluate: no held-out dialogs found" in result.output
    assert "supportbot import-dialogs" in result.output


def test_language_without_dialogs(runner, imported_home, tmp_path):
    result = runner.invoke(app, ["eval", "--language", "zh-CN", "--out", str(tmp_path / "out")])

    assert result.exit_code == 1
    assert "language zh-CN" in result.output


def test_unknown_version(runner, imported_home, tmp_path):
    result = runner.invoke(app, ["eval", "--version", "nope", "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "model version 'nope' not found" in result.output
    assert "supportbot models list" in result.output


def test_version_given_twice(runner, imported_home, tmp_path):
    out = str(tmp_path / "out")
    result = runner.invoke(app, ["eval", "--version", "base", "--version", "base", "--out", out])

    assert result.exit_code == 2
    assert "version 'base' is given twice" in result.output


def test_version_with_missing_folder(runner, imported_home, tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    engine, session_factory = open_database(Settings(home=imported_home))
    register_dialog_copy(session_factory, "dialog-gone", source, tmp_path / "copy")
    engine.dispose()
    (tmp_path / "copy").rename(tmp_path / "moved")

    result = runner.invoke(
        app, ["eval", "--version", "dialog-gone", "--out", str(tmp_path / "out")]
    )

    assert result.exit_code == 2
    assert "model folder" in result.output
    assert "of version 'dialog-gone' is missing" in result.output


def test_output_folder_is_file(runner, imported_home, tmp_path):
    out = tmp_path / "report.txt"
    out.write_text("keep me", encoding="utf-8")

    result = runner.invoke(app, ["eval", "--out", str(out)])

    assert result.exit_code == 2
    assert f"output folder {out} is an existing file" in result.output
    assert out.read_text(encoding="utf-8") == "keep me"


def test_output_folder_cannot_be_created(runner, imported_home, tmp_path):
    parent = tmp_path / "notes.txt"
    parent.write_text("a file, not a folder", encoding="utf-8")

    result = runner.invoke(app, ["eval", "--out", str(parent / "out")])

    assert result.exit_code == 2
    assert f"cannot write into the output folder {parent / 'out'}" in result.output
    assert "choose another folder with --out" in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--language", "fr"], "Invalid selection: invalid language 'fr': use en or zh-CN"),
        (["--test", "1.5"], "Invalid selection: test must be a fraction in [0, 1)"),
        (["--validation", "0.5", "--test", "0.5"], "must be below 1"),
    ],
)
def test_invalid_selection(runner, tmp_path, options, message):
    result = runner.invoke(app, ["eval", *options, "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.slow
def test_eval_writes_report(runner, home, tmp_path, packaged_embedder, packaged_generator_path):
    prepare_eval_home(home, packaged_embedder, packaged_generator_path)
    out = tmp_path / "out"

    result = runner.invoke(app, ["eval", "--limit", "1", "--version", "base", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "Replayed 1 dialogs (2 customer turns)." in result.output
    assert "base: dialogs without handoff" in result.output
    assert f"Report: {out / 'report.md'}" in result.output
    figures = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert figures["dialogs"] == 1
    assert list(figures["versions"]) == ["base"]
