"""Model versions and which one serves: register, finish, list, activate, roll back.

Each kind (dialog, intent, ner) has a stack of activations per language. ``activate``
pushes a version, ``rollback`` pops the current one, and the active version is the top of
the stack. With an empty stack the configured base model serves (for intent and entity
models: none, and only the rules run). Dialog versions serve every language
(``language`` None); an intent or entity version serves the language it was trained for.

Example:
    >>> with session_factory.begin() as session:
    ...     register_version(session, kind=ModelKind.DIALOG, version="dialog-20261204T2300Z",
    ...                      base_model="packaged:SmolLM2-135M-Instruct", run_dir="/runs/a")
    >>> with session_factory.begin() as session:
    ...     activate_version(session, "dialog-20261204T2300Z", reason="cli")
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.errors import ModelActivationError, NotFoundError
from storage.models import ModelActivation, ModelKind, ModelStatus, ModelVersion, utc_now

logger = logging.getLogger(__name__)

# Statuses whose model folder is complete and can be served.
SERVABLE_STATUSES = (ModelStatus.READY, ModelStatus.REJECTED)


def register_version(
    session: Session,
    *,
    kind: ModelKind,
    version: str,
    base_model: str,
    language: str | None = None,
    run_dir: str | None = None,
    training_config: Mapping[str, Any] | None = None,
    data_stats: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Add a version in status TRAINING and return it.

    Raises:
        ValueError: If a version with this name exists already.
    """
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if existing is not None:
        raise ValueError(
            f"model version {version!r} exists already (status {existing.status.value}): "
            "choose another version name"
        )
    model_version = ModelVersion(
        kind=kind,
        version=version,
        status=ModelStatus.TRAINING,
        base_model=base_model,
        language=language,
        run_dir=run_dir,
        training_config=dict(training_config or {}),
        data_stats=dict(data_stats or {}),
        metrics={},
    )
    session.add(model_version)
    session.flush()
    logger.info("Registered model version %s kind=%s id=%s", version, kind.value, model_version.id)
    return model_version


def finish_version(
    session: Session,
    version: str,
    *,
    status: ModelStatus,
    path: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    data_stats: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> ModelVersion:
    """Record the outcome of a training run; ``metrics`` and ``data_stats`` replace earlier ones.

    Raises:
        NotFoundError: If the version is not registered.
        ValueError: If ``status`` is TRAINING, or READY/REJECTED without ``path``.
    """
    if status == ModelStatus.TRAINING:
        raise ValueError("status TRAINING is set by register_version; finish with another status")
    if status in SERVABLE_STATUSES and not path:
        raise ValueError(f"status {status.value} needs the path of the saved model")

    model_version = get_version(session, version)
    model_version.status = status
    model_version.finished_at = utc_now()
    if path is not None:
        model_version.path = path
    if metrics is not None:
        model_version.metrics = dict(metrics)
    if data_stats is not None:
        model_version.data_stats = dict(data_stats)
    model_version.error = error
    logger.info("Model version %s finished with status %s", version, status.value)
    return model_version


def get_version(session: Session, version: str) -> ModelVersion:
    """Return the version called ``version``.

    Raises:
        NotFoundError: If no such version is registered.
    """
    model_version = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if model_version is None:
        raise NotFoundError(
            f"model version {version!r} not found: run 'supportbot models list' to see versions"
        )
    return model_version


def list_versions(session: Session, kind: ModelKind | None = None) -> list[ModelVersion]:
    """Return versions, newest first, of one kind or of all kinds."""
    query = select(ModelVersion).order_by(ModelVersion.id.desc())
    if kind is not None:
        query = query.where(ModelVersion.kind == kind)
    return list(session.scalars(query))


def get_active_activation(
    session: Session, kind: ModelKind, language: str | None = None
) -> ModelActivation | None:
    """Return the current activation of ``kind`` for ``language``, or None when none is active.

    ``language`` None means the stack of versions that serve every language; it does not
    match versions of one language.
    """
    language_clause = (
        ModelActivation.language.is_(None)
        if language is None
        else ModelActivation.language == language
    )
    return session.scalar(
        select(ModelActivation)
        .where(
            ModelActivation.kind == kind,
            language_clause,
            ModelActivation.rolled_back_at.is_(None),
        )
        .order_by(ModelActivation.id.desc())
        .limit(1)
    )


def get_active_version(
    session: Session, kind: ModelKind, language: str | None = None
) -> ModelVersion | None:
    """Return the version that serves ``kind`` in ``language``, or None when none is active."""
    activation = get_active_activation(session, kind, language)
    return activation.model_version if activation is not None else None


def get_active_versions(session: Session, kind: ModelKind) -> dict[str | None, ModelVersion]:
    """Return the active version of ``kind`` per language (None: every language)."""
    languages = session.scalars(
        select(ModelActivation.language)
        .where(ModelActivation.kind == kind, ModelActivation.rolled_back_at.is_(None))
        .distinct()
    )
    active: dict[str | None, ModelVersion] = {}
    for language in languages:
        version = get_active_version(session, kind, language)
        if version is not None:
            active[language] = version
    return active


def activate_version(
    session: Session, version: str, *, force: bool = False, reason: str = ""
) -> ModelActivation:
    """Make ``version`` the active model of its kind.

    Args:
        session: An open session; the caller commits.
        version: Name of a registered version.
        force: Also activate a REJECTED version, one that scored worse than the model it
            would have replaced. Versions without a complete model are never activated.
        reason: Why, for the activation history (for example "cli" or "promotion").

    Raises:
        NotFoundError: If the version is not registered.
        ModelActivationError: If it has no complete model, was rejected and ``force`` is
            False, or is already active.
    """
    model_version = get_version(session, version)
    if model_version.status not in SERVABLE_STATUSES:
        raise ModelActivationError(
            f"model version {version!r} has status {model_version.status.value} and no "
            "complete model, so it cannot be activated: train it again"
        )
    if model_version.status == ModelStatus.REJECTED and not force:
        raise ModelActivationError(
            f"model version {version!r} was rejected because it did not beat the model it "
            "would replace on the held-out test pairs: pass --force to activate it anyway"
        )
    current = get_active_version(session, model_version.kind, model_version.language)
    if current is not None and current.id == model_version.id:
        raise ModelActivationError(f"model version {version!r} is already active")

    activation = ModelActivation(
        kind=model_version.kind,
        language=model_version.language,
        model_version=model_version,
        forced=force and model_version.status == ModelStatus.REJECTED,
        reason=reason,
    )
    session.add(activation)
    session.flush()
    logger.info(
        "Activated model version %s kind=%s language=%s forced=%s reason=%s previous=%s",
        version,
        model_version.kind.value,
        model_version.language or "all",
        activation.forced,
        reason,
        current.version if current else "base",
    )
    return activation


def rollback(session: Session, kind: ModelKind, language: str | None = None) -> ModelVersion | None:
    """Undo the current activation of ``kind`` in ``language`` and return what serves now.

    Returns:
        The version active after the rollback, or None when the base model serves again.

    Raises:
        ModelActivationError: If no version of ``kind`` is active, so the base model
            serves already.
    """
    activation = get_active_activation(session, kind, language)
    if activation is None:
        scope = f" for language {language}" if language else ""
        raise ModelActivationError(
            f"no {kind.value} model version is active{scope}, so the base model serves "
            "already: nothing to roll back"
        )
    activation.rolled_back_at = utc_now()
    session.flush()
    restored = get_active_version(session, kind, language)
    logger.info(
        "Rolled back model version %s kind=%s; now serving %s",
        activation.model_version.version,
        kind.value,
        restored.version if restored else "base",
    )
    return restored


def restart_version(session: Session, version: str) -> ModelVersion:
    """Set an interrupted or failed version back to TRAINING for a resumed run.

    Raises:
        NotFoundError: If the version is not registered.
        ModelActivationError: If its status is not INTERRUPTED or FAILED.
    """
    model_version = get_version(session, version)
    if model_version.status not in (ModelStatus.INTERRUPTED, ModelStatus.FAILED):
        raise ModelActivationError(
            f"model version {version!r} has status {model_version.status.value}; only an "
            "interrupted or failed run can be resumed"
        )
    model_version.status = ModelStatus.TRAINING
    model_version.error = None
    model_version.finished_at = None
    logger.info("Restarted model version %s", version)
    return model_version
