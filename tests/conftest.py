"""Shared fixtures: databases, settings and the packaged models."""

from __future__ import annotations

import os

# Model hubs are unreachable here: make Hugging Face libraries fail fast, not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.generation.model_cache import ensure_packaged_model
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from tests.utils.openai_stub import OpenAIStubServer

PACKAGED_DIALOG_MODEL = "SmolLM2-135M-Instruct"
PACKAGED_EMBEDDING_MODEL = "packaged:all-MiniLM-L6-v2"

POSTGRES_ADMIN_URL = os.environ.get(
    "SUPPORTBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder of the public datasets, from SUPPORTBOT_DATA_DIR."""
    value = os.environ.get("SUPPORTBOT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("SUPPORTBOT_DATA_DIR is not set to a folder of the public datasets")
    return Path(value)


def _create_postgres_schema_engine() -> tuple[Engine, str]:
    """Create an engine bound to a fresh schema on the test PostgreSQL server.

    Skips the test when the server is unreachable, unless SUPPORTBOT_REQUIRE_POSTGRES=1
    (set by CI), where it fails.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        if os.environ.get("SUPPORTBOT_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error.orig}")
    finally:
        admin.dispose()
    engine = create_db_engine(POSTGRES_ADMIN_URL)

    @event.listens_for(engine, "connect")
    def _set_search_path(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    return engine, schema


def _drop_postgres_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'test.db'}")
        upgrade_schema(engine)
        yield engine
        engine.dispose()
        return

    engine, schema = _create_postgres_schema_engine()
    upgrade_schema(engine)
    yield engine
    engine.dispose()
    _drop_postgres_schema(schema)


@pytest.fixture
def session_factory(db_engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``db_engine``."""
    return create_session_factory(db_engine)


@pytest.fixture
def sqlite_session_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Session factory on a migrated SQLite file, for tests that need one backend only."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade_schema(engine)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def packaged_model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model cache folder shared by the whole test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def packaged_generator_path(packaged_model_cache_dir: Path) -> Path:
    """Folder of SmolLM2-135M-Instruct converted to safetensors, once per session.

    The first use costs about 20 s and 540 MB of disk. Mark tests that use it as slow.
    """
    return ensure_packaged_model(PACKAGED_DIALOG_MODEL, packaged_model_cache_dir)


@pytest.fixture(scope="session")
def packaged_generator(packaged_generator_path: Path):
    """A CPU ``TransformersGenerator`` of the packaged model, shared by the session.

    Tests must not change its attributes; build a separate generator from
    ``packaged_generator_path`` instead, which loads in under a second.
    """
    from bot.generation.transformers_backend import TransformersGenerator

    return TransformersGenerator(packaged_generator_path, device="cpu")


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStubServer]:
    """An OpenAI-compatible stub server on 127.0.0.1, stopped after the test."""
    with OpenAIStubServer() as server:
        yield server


@pytest.fixture(scope="session")
def packaged_embedder():
    """The packaged all-MiniLM-L6-v2 embedder, loaded once per session."""
    from retrieval.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(PACKAGED_EMBEDDING_MODEL)
