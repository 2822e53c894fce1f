"""Intent and entity understanding served over the HTTP API, stored on each customer message.

The server starts with an English intent version active and checks the registry only when
asked (``nlu.reload_interval_s`` 0), so the reload tests see what ``POST /v1/models/reload``
does and nothing else.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime import BotRuntime
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier
from finetune.nlu_data.intent_readers import read_intent_file
from storage import model_registry
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.models import Message, ModelKind, ModelStatus, Role
from tests.ui.conftest import build_indexed_runtime

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlu"
NLU_SETTINGS = {"reload_interval_s": 0, "timezone": "UTC"}


def _train_fixture_intents(language: str, suffix: str, out_dir: Path) -> Path:
    result = train_intent_classifier(
        read_intent_file(FIXTURES / f"intents_{language}_train.{suffix}"),
        read_intent_file(FIXTURES / f"intents_{language}_validation.{suffix}"),
        [],
        out_dir,
        IntentTrainingOptions(backend="charngram"),
    )
    return result.model_dir


def _register_active(session_factory, version: str, path: Path, language: str) -> None:
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=ModelKind.INTENT, version=version, base_model="test", language=language
        )
        model_registry.finish_version(session, version, status=ModelStatus.READY, path=str(path))
        model_registry.activate_version(session, version, reason="test")


@pytest.fixture(scope="module")
def intent_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("intent-models")
    return {
        "en": _train_fixture_intents("en", "csv", root / "en"),
        "zh-CN": _train_fixture_intents("zh", "jsonl", root / "zh"),
    }


@pytest.fixture(scope="module")
def api_runtime(
    tmp_path_factory, packaged_embedder, packaged_generator, intent_folders
) -> Iterator[BotRuntime]:
    """A served bot whose database has the English intent version active before it starts."""
    home = tmp_path_factory.mktemp("home")
    engine = create_db_engine(Settings(home=home).resolved_database_url)
    upgrade_schema(engine)
    _register_active(create_session_factory(engine), "intent-en-1", intent_folders["en"], "en")
    engine.dispose()

    runtime = build_indexed_runtime(home, packaged_embedder, packaged_generator, nlu=NLU_SETTINGS)
    yield runtime
    runtime.close()


def _ask(client, conversation_id: int, text: str) -> dict:
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def _stored_message(runtime: BotRuntime, message_id: int) -> Message:
    with runtime.session_factory() as session:
        message = session.get(Message, message_id)
        session.expunge(message)
    return message


def _version_row(listing: dict, version: str) -> dict:
    rows = [row for row in listing["versions"] if row["version"] == version]
    assert len(rows) == 1, listing["versions"]
    return rows[0]


def test_reply_explains_understanding(client, conversation_id):
    text = "Please refund $25.50 for order A12345678 to jane.doe@example.com"

    reply = _ask(client, conversation_id, text)

    nlu = reply["explanation"]["nlu"]
    assert nlu["intent"] == "request_refund"
    assert nlu["out_of_scope"] is False
    assert 0.0 < nlu["confidence"] <= 1.0
    assert nlu["reason"] is None
    assert nlu["language"] == "en"
    assert [(e["type"], e["text"]) for e in nlu["entities"]] == [
        ("money", "$25.50"),
        ("order_id", "A12345678"),
        ("email", "jane.doe@example.com"),
    ]
    for entity in nlu["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    assert nlu["slots"] == {
        "money": "25.50 USD",
        "order_id": "A12345678",
        "email": "jane.doe@example.com",
    }
    assert reply["explanation"]["models"]["intent_version"] == "intent-en-1"
    assert reply["explanation"]["models"]["ner_version"] is None
    assert "nlu" in reply["timings_ms"]


def test_customer_message_stores_understanding(client, conversation_id, api_runtime):
    reply = _ask(client, conversation_id, "Cancel my order A12345678 please")

    customer = _stored_message(api_runtime, reply["customer_message_id"])
    bot = _stored_message(api_runtime, reply["message_id"])

    nlu = reply["explanation"]["nlu"]
    assert customer.role is Role.CUSTOMER
    assert customer.intent == "cancel_order"
    assert customer.intent_confidence == pytest.approx(nlu["confidence"], abs=1e-4)
    assert customer.out_of_scope is False
    assert customer.entities == nlu["entities"]
    assert customer.entities[0]["value"] == "A12345678"
    assert customer.entities[0]["source"] == "rule:id"
    assert bot.intent is None
    assert bot.out_of_scope is None
    assert bot.entities is None


def test_gibberish_stored_out_of_scope(client, conversation_id, api_runtime):
    reply = _ask(client, conversation_id, "asdkj qwpoe zxmn")

    customer = _stored_message(api_runtime, reply["customer_message_id"])

    assert reply["explanation"]["nlu"]["reason"] == "below_threshold"
    assert customer.intent is None
    assert customer.out_of_scope is True
    assert customer.entities == []


def test_emoji_only_turn_stored_out_of_scope(client, conversation_id, api_runtime):
    reply = _ask(client, conversation_id, "😀🎉👍")

    customer = _stored_message(api_runtime, reply["customer_message_id"])

    assert reply["explanation"]["reason"] == "no_content"
    assert reply["explanation"]["nlu"]["reason"] == "no_content"
    assert customer.intent is None
    assert customer.intent_confidence == 0.0
    assert customer.out_of_scope is True
    assert customer.entities == []


def test_list_models_shows_intent_versions(client):
    response = client.get("/v1/models")

    assert response.status_code == 200
    listing = response.json()
    row = _version_row(listing, "intent-en-1")
    assert row["kind"] == "intent"
    assert row["language"] == "en"
    assert row["is_active"] is True
    assert row["status"] == "ready"
    assert listing["nlu_serving"]["intent"]["en"] == "intent-en-1"
    assert listing["nlu_errors"] == []
    assert listing["serving"] == "base"


def test_reload_picks_up_new_intent_version(client, conversation_id, api_runtime, intent_folders):
    _register_active(api_runtime.session_factory, "intent-zh-1", intent_folders["zh-CN"], "zh-CN")
    before = client.get("/v1/models").json()

    response = client.post("/v1/models/reload")
    reply = _ask(client, conversation_id, "我的快递到哪里了")

    assert _version_row(before, "intent-zh-1")["is_active"] is True
    assert "zh-CN" not in before["nlu_serving"].get("intent", {})
    assert response.status_code == 200
    assert response.json()["nlu_serving"]["intent"] == {"en": "intent-en-1", "zh-CN": "intent-zh-1"}
    assert reply["language"] == "zh-CN"
    assert reply["explanation"]["models"]["intent_version"] == "intent-zh-1"
    assert reply["explanation"]["nlu"]["intent"] == "track_order"


@contextmanager
def _active_for_a_while(runtime: BotRuntime, version: str, folder: Path) -> Iterator[None]:
    """Activate an English intent version, and roll it back when the block ends."""
    _register_active(runtime.session_factory, version, folder, "en")
    try:
        yield
    finally:
        with runtime.session_factory.begin() as session:
            model_registry.rollback(session, ModelKind.INTENT, "en")


def test_reload_reports_broken_version(client, conversation_id, api_runtime, tmp_path):
    broken_folder = tmp_path / "deleted"

    with _active_for_a_while(api_runtime, "intent-en-broken", broken_folder):
        response = client.post("/v1/models/reload")
        reply = _ask(client, conversation_id, "Where is my parcel right now?")

    assert response.status_code == 200
    listing = response.json()
    assert len(listing["nlu_errors"]) == 1
    assert "intent-en-broken" in listing["nlu_errors"][0]
    assert str(broken_folder) in listing["nlu_errors"][0]
    assert listing["nlu_serving"]["intent"]["en"] == "intent-en-1"
    assert reply["explanation"]["models"]["intent_version"] == "intent-en-1"
    assert reply["explanation"]["nlu"]["intent"] == "track_order"


def test_reload_after_rollback_clears_error(client, api_runtime, tmp_path):
    with _active_for_a_while(api_runtime, "intent-en-missing", tmp_path / "deleted"):
        failed = client.post("/v1/models/reload").json()

    response = client.post("/v1/models/reload")

    assert "intent-en-missing" in failed["nlu_errors"][0]
    assert response.json()["nlu_serving"]["intent"]["en"] == "intent-en-1"
    assert response.json()["nlu_errors"] == []


def test_corrupt_model_file_reported_on_reload(client, api_runtime, intent_folders, tmp_path):
    corrupt_folder = tmp_path / "corrupt"
    shutil.copytree(intent_folders["en"], corrupt_folder)
    (corrupt_folder / "model.joblib").write_bytes(b"")

    with _active_for_a_while(api_runtime, "intent-en-corrupt", corrupt_folder):
        response = client.post("/v1/models/reload")

    assert response.status_code == 200
    assert "intent-en-corrupt" in response.json()["nlu_errors"][0]
    assert response.json()["nlu_serving"]["intent"]["en"] == "intent-en-1"
