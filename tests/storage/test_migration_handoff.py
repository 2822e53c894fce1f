"""Upgrading a database from before the handoff states keeps its conversations."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from storage.db import MIGRATIONS_DIR


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)
    engine.dispose()


def test_open_conversations_become_bot_conversations(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _migrate(url, "0003")
    engine = create_engine(url)
    with engine.begin() as connection:
        for external_id, status in (("live", "open"), ("imported", "closed")):
            connection.execute(
                text(
                    "INSERT INTO conversations (external_id, channel, status, created_at, "
                    "updated_at) VALUES (:id, 'chat', :status, '2026-01-01', '2026-01-01')"
                ),
                {"id": external_id, "status": status},
            )

    _migrate(url, "head")

    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT external_id, status FROM conversations")).all())
        counts = connection.execute(
            text("SELECT fallback_count, negative_feedback_count FROM conversations")
        ).all()
    assert rows == {"live": "bot", "imported": "closed"}
    assert counts == [(0, 0), (0, 0)]

    _migrate(url, "0003", down=True)

    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT external_id, status FROM conversations")).all())
    engine.dispose()
    assert rows == {"live": "open", "imported": "closed"}
