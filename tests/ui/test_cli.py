"""The ``supportbot`` command line as a user runs it.

Happy paths run the installed console script in a subprocess with its own state
directory. Error messages are checked in process with typer's ``CliRunner``, which
costs no interpreter start-up per case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from storage.models import Conversation, Message
from ui.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures"
DIALOGS = FIXTURES / "dialogs"
REPO_ROOT = Path(__file__).parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("supportbot")
COMMAND_TIMEOUT_S = 180
INDEX_SUMMARY = re.compile(
    r"Indexed documents: (?P<added>\d+) added, (?P<changed>\d+) changed, "
    r"(?P<unchanged>\d+) unchanged, (?P<removed>\d+) removed; "
    r"(?P<embedded>\d+) chunks embedded"
)


def _supportbot_env(home: Path, **extra: str) -> dict[str, str]:
    """Return the environment of a user with only ``home`` and ``extra`` configured."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


def run_supportbot(
    *args: str, home: Path, cwd: Path, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run the ``supportbot`` console script and return its exit code and output."""
    if CONSOLE_SCRIPT.exists():
        command = [str(CONSOLE_SCRIPT), *args]
    else:
        command = [sys.executable, "-m", "ui.cli", *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=_supportbot_env(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def stored_conversations(home: Path) -> dict[str, int]:
    """Return the message count of every stored conversation by external id."""
    engine = create_engine(f"sqlite:///{home / 'supportbot.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Conversation.external_id, func.count(Message.id))
                .join(Message, Message.conversation_id == Conversation.id, isouter=True)
                .group_by(Conversation.external_id)
            )
            return dict(rows.all())
    finally:
        engine.dispose()


def parse_index_summary(output: str) -> dict[str, int]:
    """Return the counts of the first index summary line in ``output``."""
    match = INDEX_SUMMARY.search(output)
    assert match is not None, f"no index summary in output:\n{output}"
    return {key: int(value) for key, value in match.groupdict().items()}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> CliRunner:
    """A CliRunner with the environment of a user who set only SUPPORTBOT_HOME."""
    for key in list(os.environ):
        if key.startswith("SUPPORTBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SUPPORTBOT_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Settings read a .env file from the working directory, and the tmp folder has none.
    monkeypatch.chdir(tmp_path)
    return CliRunner()


class TestImportDialogs:
    @pytest.mark.parametrize(
        ("file_name", "conversations", "messages"),
        [("support_en.jsonl", 3, 10), ("support_en.csv", 2, 7)],
    )
    def test_reimport_adds_nothing(self, tmp_path, home, file_name, conversations, messages):
        first = run_supportbot("import-dialogs", str(DIALOGS / file_name), home=home, cwd=tmp_path)
        second = run_supportbot("import-dialogs", str(DIALOGS / file_name), home=home, cwd=tmp_path)

        assert first.returncode == 0, first.stderr
        assert f"Imported conversations: {conversations} ({messages} messages)" in first.stdout
        assert "files read: 1; already stored: 0." in first.stdout
        assert second.returncode == 0, second.stderr
        assert "Imported conversations: 0 (0 messages)" in second.stdout
        assert f"already stored: {conversations}." in second.stdout
        assert len(stored_conversations(home)) == conversations

    def test_import_stops_at_malformed_line(self, tmp_path, home):
        dialogs = tmp_path / "export.jsonl"
        dialogs.write_text(
            '{"id": "good", "turns": [{"role": "customer", "text": "Where is my order?"}]}\n'
            '{"id": "half", "turns": [{"role": "customer", "text": "Hello"}, '
            '{"role": "manager", "text": "Hi"}]}\n'
            '{"id": "after", "turns": [{"role": "agent", "text": "Never reached."}]}\n',
            encoding="utf-8",
        )

        result = run_supportbot("import-dialogs", str(dialogs), home=home, cwd=tmp_path)

        assert result.returncode == 1
        assert f"{dialogs}, line 2: unknown turns[2].role 'manager'" in result.stderr
        assert "--skip-invalid" in result.stderr
        assert "Traceback" not in result.stderr
        assert stored_conversations(home) == {"good": 1}

    def test_import_error_names_file_and_line(self, tmp_path, home):
        result = run_supportbot(
            "import-dialogs", str(DIALOGS / "malformed.jsonl"), home=home, cwd=tmp_path
        )

        assert result.returncode == 1
        assert f"Import failed: {DIALOGS / 'malformed.jsonl'}, line 2: invalid JSON" in (
            result.stderr
        )
        assert set(stored_conversations(home)) == {"ok-1"}

    def test_import_skip_invalid_reports_reasons(self, tmp_path, home):
        result = run_supportbot(
            "import-dialogs",
            "--skip-invalid",
            str(DIALOGS / "malformed.jsonl"),
            home=home,
            cwd=tmp_path,
        )

        assert result.returncode == 0, result.stderr
        assert "Imported conversations: 2 (2 messages)" in result.stdout
        assert (
            "Skipped 4 invalid records (invalid_json: 1, missing_field: 1, unknown_role: 1, "
            "empty_text: 1)" in result.stdout
        )
        assert "line 3: missing id" in result.stdout
        assert "line 5: turns[1].text is empty" in result.stdout
        assert stored_conversations(home) == {"ok-1": 1, "ok-2": 1}


class TestImportDialogsErrors:
    @pytest.mark.parametrize(
        ("file_name", "content", "reason"),
        [
            ("export.jsonl", b'\xff\xfe{"id": 1}\n', "line 1: line is not valid UTF-8"),
            (
                "export.csv",
                "conversation_id,timestamp,role,text\n"
                "c-1,2024-05-01T10:00:00Z,customer,故宫的门票多少钱\n".encode("gbk"),
                "line 2 (conversation c-1): text is not valid UTF-8",
            ),
            ("export.jsonl", b"", "file: file contains no conversations"),
            ("export.csv", b"", "file: file is empty"),
        ],
        ids=["jsonl-bytes", "csv-gbk", "jsonl-empty", "csv-empty"],
    )
    def test_import_unreadable_file_names_file(
        self, cli_env, tmp_path, home, file_name, content, reason
    ):
        path = tmp_path / file_name
        path.write_bytes(content)

        result = cli_env.invoke(app, ["import-dialogs", str(path)])

        assert result.exit_code == 1
        assert f"Import failed: {path}, {reason}" in result.stderr
        assert isinstance(result.exception, SystemExit)
        assert stored_conversations(home) == {}

    def test_import_missing_path(self, cli_env, tmp_path, home):
        missing = tmp_path / "no-such-export.jsonl"

        result = cli_env.invoke(app, ["import-dialogs", str(missing)])

        assert result.exit_code == 1
        assert f"Dialog file or folder not found: {missing}" in result.stderr
        assert not (home / "supportbot.db").exists()
        assert isinstance(result.exception, SystemExit)


class TestConfig:
    def test_config_hides_api_key(self, tmp_path, home):
        result = run_supportbot(
            "config", home=home, cwd=tmp_path, SUPPORTBOT_GENERATION__API_KEY="secret"
        )

        assert result.returncode == 0, result.stderr
        settings = json.loads(result.stdout)
        assert settings["home"] == str(home)
        assert settings["generation"]["api_key"] == "***"
        assert "secret" not in result.stdout
        assert "secret" not in result.stderr

    def test_config_hides_agent_token(self, tmp_path, home):
        result = run_supportbot(
            "config", home=home, cwd=tmp_path, SUPPORTBOT_POLICY__AGENT_TOKEN="tok-123"
        )

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["policy"]["agent_token"] == "***"
        assert "tok-123" not in result.stdout

    def test_config_without_api_key(self, cli_env, home):
        result = cli_env.invoke(app, ["config"])

        assert result.exit_code == 0, result.stderr
        settings = json.loads(result.stdout)
        assert settings["generation"]["api_key"] is None
        assert settings["home"] == str(home)

    @pytest.mark.parametrize(
        ("environment", "expected"),
        [
            (
                {"SUPPORTBOT_PORT": "notanumber"},
                "port (SUPPORTBOT_PORT): Input should be a valid integer",
            ),
            (
                {"SUPPORTBOT_RETRIEVAL__TOP_K": "0"},
                "retrieval.top_k (SUPPORTBOT_RETRIEVAL__TOP_K): Input should be greater than "
                "or equal to 1 (got '0')",
            ),
            (
                {"SUPPORTBOT_GENERATION__BACKEND": "openai"},
                "generation.base_url is unset: set SUPPORTBOT_GENERATION__BASE_URL",
            ),
        ],
        ids=["port", "top-k", "openai-without-url"],
    )
    def test_invalid_setting_exits_2(self, cli_env, monkeypatch, environment, expected):
        for key, value in environment.items():
            monkeypatch.setenv(key, value)

        result = cli_env.invoke(app, ["config"])

        assert result.exit_code == 2
        assert result.stderr.startswith("Invalid configuration:")
        assert expected in result.stderr
        assert result.stdout == ""

    def test_invalid_setting_hides_api_key(self, cli_env, monkeypatch):
        # Without a home the settings input is short enough for pydantic to print whole.
        monkeypatch.delenv("SUPPORTBOT_HOME")
        monkeypatch.setenv("SUPPORTBOT_GENERATION__BACKEND", "openai")
        monkeypatch.setenv("SUPPORTBOT_GENERATION__API_KEY", "secret")

        result = cli_env.invoke(app, ["config"])

        assert result.exit_code == 2
        assert "SUPPORTBOT_GENERATION__BASE_URL" in result.stderr
        assert "secret" not in result.stderr
        # Pydantic's input dump shows part of the key, depending on the variables' order.
        assert "input_value" not in result.stderr

    def test_invalid_setting_in_subprocess(self, tmp_path, home):
        result = run_supportbot("config", home=home, cwd=tmp_path, SUPPORTBOT_PORT="notanumber")

        assert result.returncode == 2
        assert "SUPPORTBOT_PORT" in result.stderr
        assert "Traceback" not in result.stderr


def test_help_lists_subcommands(tmp_path, home):
    result = run_supportbot("--help", home=home, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for command in ("serve", "import-dialogs", "index", "demo", "config"):
        assert command in result.stdout


@pytest.mark.slow
def test_index_reruns_incrementally(tmp_path, home):
    knowledge = tmp_path / "kb"
    shutil.copytree(FIXTURES / "kb", knowledge)
    file_count = sum(1 for path in knowledge.rglob("*") if path.is_file())

    first = run_supportbot("index", str(knowledge), home=home, cwd=tmp_path)
    second = run_supportbot("index", str(knowledge), home=home, cwd=tmp_path)
    (knowledge / "en" / "refunds.md").unlink()
    third = run_supportbot("index", str(knowledge), home=home, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    first_counts = parse_index_summary(first.stdout)
    assert first_counts["added"] == file_count
    assert first_counts["embedded"] > 0
    assert second.returncode == 0, second.stderr
    second_counts = parse_index_summary(second.stdout)
    assert second_counts["unchanged"] == file_count
    assert second_counts["embedded"] == 0
    assert third.returncode == 0, third.stderr
    third_counts = parse_index_summary(third.stdout)
    assert third_counts["removed"] == 1
    assert third_counts["unchanged"] == file_count - 1
    assert third_counts["embedded"] == 0


@pytest.mark.slow
def test_index_missing_path(cli_env, tmp_path):
    missing = tmp_path / "no-such-folder"

    result = cli_env.invoke(app, ["index", "--no-past-answers", str(missing)])

    assert result.exit_code == 1
    assert f"Knowledge file or folder not found: {missing}" in result.stderr
