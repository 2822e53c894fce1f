"""Model versions: list them and make this process load the active ones now."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from storage import model_registry
from storage.models import ModelKind, ModelVersion
from ui.api.deps import RuntimeDep
from ui.api.schemas import ModelsPublic, ModelVersionPublic

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelsPublic)
def list_models(runtime: RuntimeDep) -> ModelsPublic:
    """List model versions of every kind, newest first, with the active and served ones."""
    return _describe(runtime)


@router.post("/reload", response_model=ModelsPublic)
def reload_models(runtime: RuntimeDep) -> ModelsPublic:
    """Load the active dialog, intent and entity versions now, not at the next check.

    Turns already running finish on the models they started with. A version that failed
    to load before is tried again.
    """
    logger.info("Model reload requested")
    runtime.models.refresh(retry_failed=True)
    if runtime.nlu_models is not None:
        runtime.nlu_models.refresh(retry_failed=True)
    return _describe(runtime)


def _describe(runtime: RuntimeDep) -> ModelsPublic:
    served = runtime.models.current
    with runtime.session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
        active_ids = {active.id} if active else set()
        for kind in (ModelKind.INTENT, ModelKind.NER):
            active_ids |= {
                version.id for version in model_registry.get_active_versions(session, kind).values()
            }
        versions = model_registry.list_versions(session)
        rows = [_version_public(version, active_ids) for version in versions]
    nlu_models = runtime.nlu_models
    return ModelsPublic(
        serving=served.version or "base",
        active=active.version if active else "base",
        model_error=runtime.models.last_error,
        versions=rows,
        nlu_serving=nlu_models.served() if nlu_models else {},
        nlu_errors=nlu_models.errors if nlu_models else [],
    )


def _version_public(version: ModelVersion, active_ids: set[int]) -> ModelVersionPublic:
    return ModelVersionPublic(
        version=version.version,
        kind=version.kind.value,
        status=version.status.value,
        base_model=version.base_model,
        path=version.path,
        metrics=version.metrics,
        is_active=version.id in active_ids,
        language=version.language,
        created_at=version.created_at,
        finished_at=version.finished_at,
    )
