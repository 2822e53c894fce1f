"""Health check."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from sqlalchemy import text

from storage import repository
from ui.api.deps import RuntimeDep
from ui.api.schemas import HealthPublic

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=HealthPublic)
def read_health(runtime: RuntimeDep) -> HealthPublic:
    """Check the database and report the loaded models."""
    served = runtime.models.current
    with runtime.session_factory() as session:
        session.execute(text("SELECT 1"))
        chunks = repository.count_chunks(session)
    return HealthPublic(
        status="ok",
        version=_package_version(),
        database=runtime.engine.dialect.name,
        chunks=chunks,
        embedding_model=runtime.embedder.name,
        generator_model=served.generator.model_name,
        dialog_model_version=served.version or "base",
        model_error=runtime.models.last_error,
    )


def _package_version() -> str:
    try:
        return version("supportbot")
    except PackageNotFoundError:
        return "unknown"
