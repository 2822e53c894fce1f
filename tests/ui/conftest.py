"""A served bot on a temporary home, with the test knowledge base and dialogs indexed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.runtime import BotRuntime, build_runtime
from retrieval.indexer import KnowledgeIndexer
from storage.dialog_import import import_dialogs
from ui.api.app import create_app

FIXTURES = Path(__file__).parents[1] / "fixtures"


def build_indexed_runtime(home: Path, embedder, generator, **settings_values) -> BotRuntime:
    """Import the test dialogs, index the test knowledge base and build a runtime."""
    settings = Settings(home=home, **settings_values)
    runtime = build_runtime(settings, embedder=embedder, generator=generator)
    import_dialogs(
        runtime.session_factory, [FIXTURES / "dialogs_e2e" / "history.jsonl"], show_progress=False
    )
    indexer = KnowledgeIndexer(runtime.session_factory, embedder, settings.index_dir)
    indexer.index_paths([FIXTURES / "kb"])
    indexer.index_past_answers(min_answer_words=settings.retrieval.past_answer_min_words)
    runtime.retriever.reload()
    return runtime


@pytest.fixture(scope="module")
def api_runtime(
    tmp_path_factory: pytest.TempPathFactory, packaged_embedder, packaged_generator
) -> Iterator[BotRuntime]:
    runtime = build_indexed_runtime(
        tmp_path_factory.mktemp("home"), packaged_embedder, packaged_generator
    )
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def client(api_runtime: BotRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=api_runtime)) as test_client:
        yield test_client


@pytest.fixture
def conversation_id(client: TestClient) -> int:
    response = client.post("/v1/conversations", json={})
    assert response.status_code == 201
    return response.json()["id"]
