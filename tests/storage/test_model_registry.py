"""Model versions: registration, activation stack, rollback and their error cases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage import model_registry as registry
from storage.errors import ModelActivationError, NotFoundError
from storage.models import Base, ModelKind, ModelStatus


def _add_ready(session_factory, version: str, status: ModelStatus = ModelStatus.READY) -> None:
    with session_factory.begin() as session:
        registry.register_version(
            session, kind=ModelKind.DIALOG, version=version, base_model="base", run_dir="/runs"
        )
        registry.finish_version(
            session, version, status=status, path=f"/runs/{version}", metrics={"rouge_l": 0.3}
        )


def _active(session_factory) -> str | None:
    with session_factory() as session:
        version = registry.get_active_version(session, ModelKind.DIALOG)
        return version.version if version else None


def test_migrations_match_models(db_engine):
    with db_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert differences == []


def test_new_version_is_training(session_factory):
    with session_factory.begin() as session:
        registry.register_version(
            session,
            kind=ModelKind.DIALOG,
            version="v1",
            base_model="packaged:SmolLM2-135M-Instruct",
            training_config={"method": "lora"},
        )

    with session_factory() as session:
        version = registry.get_version(session, "v1")
        assert version.status == ModelStatus.TRAINING
        assert version.training_config == {"method": "lora"}
        assert version.path is None


def test_duplicate_version_rejected(session_factory):
    _add_ready(session_factory, "v1")

    with pytest.raises(ValueError, match="exists already"), session_factory.begin() as session:
        registry.register_version(session, kind=ModelKind.DIALOG, version="v1", base_model="b")


def test_finish_records_metrics(session_factory):
    _add_ready(session_factory, "v1")

    with session_factory() as session:
        version = registry.get_version(session, "v1")
        assert version.status == ModelStatus.READY
        assert version.metrics == {"rouge_l": 0.3}
        assert version.path == "/runs/v1"
        assert version.finished_at is not None


def test_ready_without_path_rejected(session_factory):
    with session_factory.begin() as session:
        registry.register_version(session, kind=ModelKind.DIALOG, version="v1", base_model="b")
        with pytest.raises(ValueError, match="needs the path"):
            registry.finish_version(session, "v1", status=ModelStatus.READY)


def test_activate_then_rollback_to_base(session_factory):
    _add_ready(session_factory, "v1")

    assert _active(session_factory) is None
    with session_factory.begin() as session:
        registry.activate_version(session, "v1", reason="test")
    assert _active(session_factory) == "v1"

    with session_factory.begin() as session:
        restored = registry.rollback(session, ModelKind.DIALOG)
    assert restored is None
    assert _active(session_factory) is None


def test_rollback_restores_previous_version(session_factory):
    _add_ready(session_factory, "v1")
    _add_ready(session_factory, "v2")
    for version in ("v1", "v2"):
        with session_factory.begin() as session:
            registry.activate_version(session, version)

    with session_factory.begin() as session:
        restored = registry.rollback(session, ModelKind.DIALOG)

    assert restored is not None
    assert restored.version == "v1"
    assert _active(session_factory) == "v1"


def test_rollback_with_nothing_active(session_factory):
    with pytest.raises(ModelActivationError, match="nothing to roll back"):
        with session_factory.begin() as session:
            registry.rollback(session, ModelKind.DIALOG)


@pytest.mark.parametrize("status", [ModelStatus.FAILED, ModelStatus.INTERRUPTED])
def test_unfinished_version_never_activates(session_factory, status):
    with session_factory.begin() as session:
        registry.register_version(session, kind=ModelKind.DIALOG, version="v1", base_model="b")
        registry.finish_version(session, "v1", status=status, error="stopped")

    for force in (False, True):
        with pytest.raises(ModelActivationError, match="cannot be activated"):
            with session_factory.begin() as session:
                registry.activate_version(session, "v1", force=force)
    assert _active(session_factory) is None


def test_rejected_version_needs_force(session_factory):
    _add_ready(session_factory, "v1", status=ModelStatus.REJECTED)

    with pytest.raises(ModelActivationError, match="--force"):
        with session_factory.begin() as session:
            registry.activate_version(session, "v1")
    assert _active(session_factory) is None

    with session_factory.begin() as session:
        activation = registry.activate_version(session, "v1", force=True)
        assert activation.forced is True
    assert _active(session_factory) == "v1"


def test_activating_active_version_fails(session_factory):
    _add_ready(session_factory, "v1")
    with session_factory.begin() as session:
        registry.activate_version(session, "v1")

    with pytest.raises(ModelActivationError, match="already active"):
        with session_factory.begin() as session:
            registry.activate_version(session, "v1")


def test_unknown_version_not_found(session_factory):
    with pytest.raises(NotFoundError, match="models list"), session_factory() as session:
        registry.activate_version(session, "missing")


def test_list_versions_newest_first(session_factory):
    _add_ready(session_factory, "v1")
    _add_ready(session_factory, "v2")

    with session_factory() as session:
        names = [version.version for version in registry.list_versions(session, ModelKind.DIALOG)]
        other = registry.list_versions(session, ModelKind.INTENT)

    assert names == ["v2", "v1"]
    assert other == []


def _add_intent(session_factory, version: str, language: str | None) -> None:
    with session_factory.begin() as session:
        registry.register_version(
            session,
            kind=ModelKind.INTENT,
            version=version,
            base_model="charngram",
            language=language,
        )
        registry.finish_version(session, version, status=ModelStatus.READY, path=f"/m/{version}")


def test_languages_have_separate_activation_stacks(session_factory):
    _add_intent(session_factory, "intent-en-1", "en")
    _add_intent(session_factory, "intent-zh-1", "zh-CN")
    _add_intent(session_factory, "intent-en-2", "en")

    with session_factory.begin() as session:
        for name in ("intent-en-1", "intent-zh-1", "intent-en-2"):
            registry.activate_version(session, name, reason="test")

    with session_factory() as session:
        active = registry.get_active_versions(session, ModelKind.INTENT)
        assert {lang: v.version for lang, v in active.items()} == {
            "en": "intent-en-2",
            "zh-CN": "intent-zh-1",
        }
        assert registry.get_active_version(session, ModelKind.INTENT) is None

    with session_factory.begin() as session:
        restored = registry.rollback(session, ModelKind.INTENT, "en")
        assert restored.version == "intent-en-1"

    with session_factory() as session:
        zh = registry.get_active_version(session, ModelKind.INTENT, "zh-CN")
        assert zh.version == "intent-zh-1"


def test_rollback_of_language_without_activation_names_it(session_factory):
    _add_intent(session_factory, "intent-en-1", "en")
    with session_factory.begin() as session:
        registry.activate_version(session, "intent-en-1")

    with pytest.raises(ModelActivationError, match="language zh-CN"):
        with session_factory.begin() as session:
            registry.rollback(session, ModelKind.INTENT, "zh-CN")
