"""Load a named dialog model version for a replay, without changing the active version.

"base" is the configured base model (``generation.model``); any other name is a dialog
version in the model registry. The live server keeps serving whatever the registry marks
active, because a replay's :class:`PinnedModelSwitch` never reads or writes activations.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.generation.base import Generator, build_generator
from bot.model_switch import ModelSwitch, ServedModel
from evaluation.errors import UnknownVersionError
from storage import model_registry
from storage.errors import NotFoundError
from storage.models import ModelKind

logger = logging.getLogger(__name__)

BASE_VERSION = "base"


class PinnedModelSwitch(ModelSwitch):
    """A model switch that serves one loaded model, whichever version the registry marks active.

    Args:
        session_factory: Sessions of the database with the model registry.
        served: The model and the version name that every turn uses.
    """

    def __init__(self, session_factory: sessionmaker[Session], served: ServedModel) -> None:
        super().__init__(
            session_factory,
            load_base=lambda: served.generator,
            load_version=lambda _version: served.generator,
            use_registry=False,
        )
        self._pinned = served

    @property
    def current(self) -> ServedModel:
        """The pinned model."""
        return self._pinned


def check_versions(session_factory: sessionmaker[Session], names: list[str]) -> None:
    """Check that every name is "base" or a servable dialog version with a model folder.

    Raises:
        UnknownVersionError: If a name is repeated, not registered, not a dialog version,
            has no complete model or its folder is missing.
    """
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UnknownVersionError(f"version {repeated[0]!r} is given twice: give each once")
    for name in names:
        if name != BASE_VERSION:
            _servable_path(session_factory, name)


def load_served_model(
    settings: Settings,
    session_factory: sessionmaker[Session],
    name: str,
    *,
    base_generator: Generator | None = None,
) -> ServedModel:
    """Load the dialog model called ``name`` ("base" or a registry version).

    Args:
        settings: The ``generation`` group chooses the base model and how versions load.
        session_factory: Sessions of the database with the model registry.
        name: "base" or a dialog version name.
        base_generator: An already loaded base model to reuse for "base".

    Raises:
        UnknownVersionError: If the version cannot be served (see :func:`check_versions`),
            or a registry version is asked for while ``generation.backend`` is not
            "transformers".
        bot.generation.base.ModelUnavailableError: If the model cannot be loaded.
    """
    if name == BASE_VERSION:
        generator = base_generator or build_generator(settings.generation, settings.model_cache_dir)
        return ServedModel(generator=generator)

    if settings.generation.backend != "transformers":
        raise UnknownVersionError(
            f"version {name!r} needs the 'transformers' backend, but generation.backend is "
            f"{settings.generation.backend!r}: evaluate only 'base' or change the backend"
        )
    path, version_id = _servable_path(session_factory, name)
    from bot.generation.transformers_backend import TransformersGenerator

    logger.info("Loading dialog model version %s from %s", name, path)
    generator = TransformersGenerator(
        path,
        model_name=name,
        timeout_s=settings.generation.timeout_s,
        repetition_penalty=settings.generation.repetition_penalty,
    )
    return ServedModel(generator=generator, version=name, version_id=version_id)


def active_version_name(session_factory: sessionmaker[Session]) -> str:
    """Return the name of the active dialog version, or "base" when none is active."""
    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
    return active.version if active is not None else BASE_VERSION


def _servable_path(session_factory: sessionmaker[Session], name: str) -> tuple[Path, int]:
    with session_factory() as session:
        try:
            version = model_registry.get_version(session, name)
        except NotFoundError as error:
            raise UnknownVersionError(str(error)) from error
        kind, status, path, version_id = version.kind, version.status, version.path, version.id
    if kind is not ModelKind.DIALOG:
        raise UnknownVersionError(
            f"version {name!r} is a {kind.value} model, not a dialog model: run "
            "'supportbot models list --kind dialog' to see dialog versions"
        )
    if status not in model_registry.SERVABLE_STATUSES or not path:
        raise UnknownVersionError(
            f"version {name!r} has status {status.value} and no complete model: choose a "
            "ready or rejected version"
        )
    if not Path(path).is_dir():
        raise UnknownVersionError(
            f"the model folder {path} of version {name!r} is missing: restore it or choose "
            "another version"
        )
    return Path(path), version_id
