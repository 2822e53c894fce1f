"""Serve the active dialog model version and swap it when ops activate another one.

The registry in storage records which version of the dialog model is active. A
``ModelSwitch`` keeps the generator of that version, and ``refresh`` compares it with
the registry and loads the new version when they differ. A turn takes ``current`` once at its
start and keeps that generator to the end, so a request in flight finishes on the model
it started with while the next request gets the new one.

Example:
    >>> switch = ModelSwitch(session_factory, load_base=lambda: base, load_version=load)
    >>> switch.refresh()          # after 'supportbot models activate v2'
    >>> switch.current.version
    'dialog-20261204T230000Z'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.generation.base import Generator
from bot.generation.errors import GenerationError
from bot.registry_watcher import RegistryWatcher
from storage import model_registry
from storage.models import ModelKind, ModelVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A loaded dialog model and the registry version it comes from.

    Attributes:
        generator: The loaded model.
        version: Name of the registry version, or None for the configured base model.
        version_id: Row id of the version, or None for the base model.
    """

    generator: Generator
    version: str | None = None
    version_id: int | None = None


class ModelSwitch:
    """Keeps the generator of the active dialog model version and swaps it on change.

    Args:
        session_factory: Sessions of the database that contains the model registry.
        load_base: Returns the generator of the configured base model; called when no
            version is active.
        load_version: Loads the generator of a registered version.
        use_registry: False keeps the base model whichever version the registry marks active, for
            backends whose model lives on another server.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        load_base: Callable[[], Generator],
        load_version: Callable[[ModelVersion], Generator],
        use_registry: bool = True,
    ) -> None:
        self._session_factory = session_factory
        self._load_base = load_base
        self._load_version = load_version
        self._use_registry = use_registry
        self._refresh_lock = threading.Lock()
        self._watcher = RegistryWatcher(self.refresh, "model-switch")
        self.last_error: str | None = None
        # Version id, or "base", whose last load failed; None when no load failed.
        self._failed_target: int | str | None = None
        self._served: ServedModel | None = None
        if use_registry:
            self.refresh()
        if self._served is None:
            self._served = ServedModel(generator=load_base())

    @property
    def current(self) -> ServedModel:
        """The model that new turns use."""
        assert self._served is not None, "set in __init__"
        return self._served

    def refresh(self, *, retry_failed: bool = False) -> ServedModel:
        """Load the active version if it is not the one served, and return what serves now.

        When the new version cannot be loaded, the current model keeps serving and the
        error is logged and kept in ``last_error``. Later refreshes skip that version,
        so the watcher does not reload it every few seconds, unless ``retry_failed``.
        """
        if not self._use_registry:
            return self.current

        with self._refresh_lock:
            with self._session_factory() as session:
                active = model_registry.get_active_version(session, ModelKind.DIALOG)
                if active is not None:
                    session.expunge(active)

            active_id = active.id if active is not None else None
            previous = self._served
            if previous is not None and active_id == previous.version_id:
                return previous
            target_key = active_id if active_id is not None else "base"
            if previous is not None and target_key == self._failed_target and not retry_failed:
                return previous

            target = active.version if active is not None else "base"
            logger.info(
                "Loading dialog model %s (serving %s)",
                target,
                (previous.version or "base") if previous else "nothing yet",
            )
            try:
                if active is None:
                    served = ServedModel(generator=self._load_base())
                else:
                    served = ServedModel(
                        generator=self._load_version(active),
                        version=active.version,
                        version_id=active.id,
                    )
            except (GenerationError, OSError, ValueError) as error:
                self.last_error = f"loading dialog model {target} failed: {error}"
                self._failed_target = target_key
                if previous is None:
                    # At start-up no model serves yet, so the base model takes over.
                    logger.error(
                        "Loading dialog model %s failed; serving the base model: %s", target, error
                    )
                    self._served = ServedModel(generator=self._load_base())
                    return self._served
                logger.error("Keeping dialog model %s: %s", previous.version or "base", error)
                return previous

            # Turns in flight hold the old ServedModel, so it is not closed here; it is
            # freed once the last of them finishes.
            self._served = served
            self.last_error = None
            self._failed_target = None
            logger.info("Serving dialog model %s", target)
            return served

    def start_watching(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds in a daemon thread; 0 or less does nothing."""
        if self._use_registry:
            self._watcher.start(interval_s)

    def stop_watching(self) -> None:
        """Stop the watcher thread and wait for it to end."""
        self._watcher.stop()
