"""NluModels: which intent and entity versions serve each language, and how they change."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from bot.nlu_models import NluModels
from bot.runtime import build_nlu_models
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier
from finetune.ner.train import train_tagger
from finetune.nlu_data.intent_readers import read_intent_file
from finetune.nlu_data.tagging_readers import read_tagging_file
from nlu.intent.classifier import load_intent_classifier
from nlu.manifest import MANIFEST_NAME
from storage import model_registry
from storage.models import ModelKind, ModelStatus, ModelVersion

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlu"
WATCH_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Character n-gram intent models (English, Chinese) and a Chinese CRF tagger."""
    root = tmp_path_factory.mktemp("nlu-models")
    folders = {}
    for language, suffix in (("en", "csv"), ("zh", "jsonl")):
        result = train_intent_classifier(
            read_intent_file(FIXTURES / f"intents_{language}_train.{suffix}"),
            read_intent_file(FIXTURES / f"intents_{language}_validation.{suffix}"),
            [],
            root / f"intent-{language}",
            IntentTrainingOptions(backend="charngram"),
        )
        folders[f"intent-{language}"] = result.model_dir
    sentences = read_tagging_file(FIXTURES / "entities_zh_train.jsonl", language="zh")
    train_tagger(sentences, None, root / "ner-zh", "crf", language="zh")
    folders["ner-zh"] = root / "ner-zh"
    return folders


def _register(
    session_factory, version: str, path: Path, *, kind=ModelKind.INTENT, language=None
) -> None:
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=kind, version=version, base_model="charngram", language=language
        )
        model_registry.finish_version(session, version, status=ModelStatus.READY, path=str(path))


def _activate(session_factory, version: str) -> None:
    with session_factory.begin() as session:
        model_registry.activate_version(session, version, reason="test")


def _rollback(session_factory, language: str | None, kind=ModelKind.INTENT) -> None:
    with session_factory.begin() as session:
        model_registry.rollback(session, kind, language)


def _served_version(models: NluModels, language: str | None, kind=ModelKind.INTENT) -> str | None:
    loaded = models.get(kind, language)
    return loaded.version if loaded is not None else None


def test_nothing_active_serves_nothing(session_factory):
    models = build_nlu_models(session_factory)

    assert models.get(ModelKind.INTENT, "en") is None
    assert models.get(ModelKind.NER, "zh-CN") is None
    assert models.served() == {}
    assert models.errors == []


def test_active_versions_loaded_per_language(session_factory, model_folders):
    _register(session_factory, "intent-en-1", model_folders["intent-en"], language="en")
    _register(session_factory, "intent-zh-1", model_folders["intent-zh"], language="zh-CN")
    _activate(session_factory, "intent-en-1")
    _activate(session_factory, "intent-zh-1")

    models = build_nlu_models(session_factory)
    english = models.get(ModelKind.INTENT, "en")
    chinese = models.get(ModelKind.INTENT, "zh-CN")

    assert english is not None
    assert english.version == "intent-en-1"
    assert english.language == "en"
    assert english.model.version == "intent-en-1"
    assert english.model.classify("Where is my parcel right now?").intent == "track_order"
    assert chinese is not None
    assert chinese.version == "intent-zh-1"
    assert chinese.model.classify("我的快递到哪里了").intent == "track_order"
    assert models.get(ModelKind.INTENT, "fr") is None
    assert models.served() == {"intent": {"en": "intent-en-1", "zh-CN": "intent-zh-1"}}
    assert models.errors == []


def test_entity_tagger_loaded_for_its_language(session_factory, model_folders):
    _register(
        session_factory, "ner-zh-1", model_folders["ner-zh"], kind=ModelKind.NER, language="zh-CN"
    )
    _activate(session_factory, "ner-zh-1")

    models = build_nlu_models(session_factory)
    tagger = models.get(ModelKind.NER, "zh-CN")

    assert tagger is not None
    entities = tagger.model.predict("明天能送到杭州吗")
    assert ("city", "杭州") in [(entity.type, entity.text) for entity in entities]
    assert {entity.source for entity in entities} == {"model:ner-zh-1"}
    assert models.get(ModelKind.NER, "en") is None
    assert models.get(ModelKind.INTENT, "zh-CN") is None
    assert models.served() == {"ner": {"zh-CN": "ner-zh-1"}}


def test_get_falls_back_to_all_languages(session_factory, model_folders):
    _register(session_factory, "intent-all-1", model_folders["intent-en"], language=None)
    _register(session_factory, "intent-zh-1", model_folders["intent-zh"], language="zh-CN")
    _activate(session_factory, "intent-all-1")
    _activate(session_factory, "intent-zh-1")

    models = build_nlu_models(session_factory)

    assert _served_version(models, "zh-CN") == "intent-zh-1"
    assert _served_version(models, "en") == "intent-all-1"
    assert _served_version(models, "fr") == "intent-all-1"
    assert _served_version(models, None) == "intent-all-1"
    assert models.served() == {"intent": {"all": "intent-all-1", "zh-CN": "intent-zh-1"}}


def test_refresh_follows_activate_and_rollback(session_factory, model_folders):
    for version in ("intent-en-1", "intent-en-2"):
        _register(session_factory, version, model_folders["intent-en"], language="en")
    _register(session_factory, "intent-zh-1", model_folders["intent-zh"], language="zh-CN")
    models = build_nlu_models(session_factory)

    _activate(session_factory, "intent-en-1")
    _activate(session_factory, "intent-zh-1")
    models.refresh()
    assert _served_version(models, "en") == "intent-en-1"
    assert _served_version(models, "zh-CN") == "intent-zh-1"

    _activate(session_factory, "intent-en-2")
    models.refresh()
    assert _served_version(models, "en") == "intent-en-2"

    _rollback(session_factory, "en")
    models.refresh()
    assert _served_version(models, "en") == "intent-en-1"

    _rollback(session_factory, "en")
    models.refresh()
    assert _served_version(models, "en") is None
    assert _served_version(models, "zh-CN") == "intent-zh-1"
    assert models.served() == {"intent": {"zh-CN": "intent-zh-1"}}


def test_refresh_without_change_loads_nothing(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "intent-en-1", model_folders["intent-en"], language="en")
    _activate(sqlite_session_factory, "intent-en-1")
    loads: list[str] = []

    def load_intent(version: ModelVersion):
        loads.append(version.version)
        return load_intent_classifier(version.path, version.version)

    models = NluModels(sqlite_session_factory, {ModelKind.INTENT: load_intent})
    models.refresh()
    models.refresh(retry_failed=True)

    assert loads == ["intent-en-1"]


def _break_missing_folder(folder: Path) -> None:
    shutil.rmtree(folder)


def _break_manifest_kind(folder: Path) -> None:
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["kind"] = "ner"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


def _break_manifest_json(folder: Path) -> None:
    (folder / MANIFEST_NAME).write_text('{"kind": "intent", ', encoding="utf-8")


def _break_missing_model_file(folder: Path) -> None:
    (folder / "model.joblib").unlink()


def _break_empty_model_file(folder: Path) -> None:
    # A disk that fills up while the model is saved leaves an empty file.
    (folder / "model.joblib").write_bytes(b"")


def _break_garbage_model_file(folder: Path) -> None:
    (folder / "model.joblib").write_bytes(b"this is not a joblib file")


BREAKAGES = [
    _break_missing_folder,
    _break_manifest_kind,
    _break_manifest_json,
    _break_missing_model_file,
    _break_empty_model_file,
    _break_garbage_model_file,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda breakage: breakage.__name__[7:])
def test_broken_version_keeps_previous_model(
    sqlite_session_factory, model_folders, tmp_path, breakage
):
    broken_folder = tmp_path / "broken"
    shutil.copytree(model_folders["intent-en"], broken_folder)
    breakage(broken_folder)
    _register(sqlite_session_factory, "intent-en-1", model_folders["intent-en"], language="en")
    _register(sqlite_session_factory, "intent-en-broken", broken_folder, language="en")
    _activate(sqlite_session_factory, "intent-en-1")
    models = build_nlu_models(sqlite_session_factory)

    _activate(sqlite_session_factory, "intent-en-broken")
    models.refresh()

    assert _served_version(models, "en") == "intent-en-1"
    assert len(models.errors) == 1
    assert "intent-en-broken" in models.errors[0]
    assert models.served() == {"intent": {"en": "intent-en-1"}}


def test_broken_version_at_start_serves_nothing(sqlite_session_factory, tmp_path):
    _register(sqlite_session_factory, "intent-en-gone", tmp_path / "gone", language="en")
    _activate(sqlite_session_factory, "intent-en-gone")

    models = build_nlu_models(sqlite_session_factory)

    assert models.get(ModelKind.INTENT, "en") is None
    assert len(models.errors) == 1
    assert "intent-en-gone" in models.errors[0]
    assert str(tmp_path / "gone") in models.errors[0]


def test_broken_version_retried_only_when_asked(sqlite_session_factory, model_folders, tmp_path):
    restored_folder = tmp_path / "restored"
    _register(sqlite_session_factory, "intent-en-1", restored_folder, language="en")
    _activate(sqlite_session_factory, "intent-en-1")
    models = build_nlu_models(sqlite_session_factory)
    shutil.copytree(model_folders["intent-en"], restored_folder)

    models.refresh()
    assert _served_version(models, "en") is None
    assert len(models.errors) == 1

    models.refresh(retry_failed=True)
    assert _served_version(models, "en") == "intent-en-1"
    assert models.errors == []


def test_rollback_at_start_clears_error(sqlite_session_factory, model_folders, tmp_path):
    _register(sqlite_session_factory, "intent-en-1", model_folders["intent-en"], language="en")
    _register(sqlite_session_factory, "intent-en-gone", tmp_path / "gone", language="en")
    _activate(sqlite_session_factory, "intent-en-1")
    _activate(sqlite_session_factory, "intent-en-gone")
    models = build_nlu_models(sqlite_session_factory)
    assert len(models.errors) == 1

    _rollback(sqlite_session_factory, "en")
    models.refresh()

    assert models.errors == []
    assert _served_version(models, "en") == "intent-en-1"


def test_rollback_to_kept_version_clears_error(sqlite_session_factory, model_folders, tmp_path):
    _register(sqlite_session_factory, "intent-en-1", model_folders["intent-en"], language="en")
    _register(sqlite_session_factory, "intent-en-gone", tmp_path / "gone", language="en")
    _activate(sqlite_session_factory, "intent-en-1")
    models = build_nlu_models(sqlite_session_factory)
    _activate(sqlite_session_factory, "intent-en-gone")
    models.refresh()
    assert len(models.errors) == 1

    # intent-en-1 kept serving, so after the rollback nothing needs loading.
    _rollback(sqlite_session_factory, "en")
    models.refresh()

    assert _served_version(models, "en") == "intent-en-1"
    assert models.errors == []


def test_watcher_picks_up_activation(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "intent-zh-1", model_folders["intent-zh"], language="zh-CN")
    models = build_nlu_models(sqlite_session_factory)
    models.start_watching(0.05)
    try:
        _activate(sqlite_session_factory, "intent-zh-1")
        deadline = time.monotonic() + WATCH_TIMEOUT_S
        while _served_version(models, "zh-CN") is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        models.stop_watching()

    assert _served_version(models, "zh-CN") == "intent-zh-1"
