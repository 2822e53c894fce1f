"""Model versions: list them and make this process load the active one now."""

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
    """List dialog model versions, newest first, with the active and the served one."""
    return _describe(runtime)


@router.post("/reload", response_model=ModelsPublic)
def reload_models(runtime: RuntimeDep) -> ModelsPublic:
    """Load the active dialog model version now instead of at the next periodic check.

    Turns already running finish on the model they started with. A version that failed
    to load before is tried again.
    """
    logger.info("Model reload requested")
    runtime.models.refresh(retry_failed=True)
    return _describe(runtime)


def _describe(runtime: RuntimeDep) -> ModelsPublic:
    served = runtime.models.current
    with runtime.session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
        versions = model_registry.list_versions(session, ModelKind.DIALOG)
        rows = [_version_public(version, active) for version in versions]
    return ModelsPublic(
        serving=served.version or "base",
        active=active.version if active else "base",
        model_error=runtime.models.last_error,
        versions=rows,
    )


def _version_public(version: ModelVersion, active: ModelVersion | None) -> ModelVersionPublic:
    return ModelVersionPublic(
        version=version.version,
        kind=version.kind.value,
        status=version.status.value,
        base_model=version.base_model,
        path=version.path,
        metrics=version.metrics,
        is_active=active is not None and active.id == version.id,
        created_at=version.created_at,
        finished_at=version.finished_at,
    )
