"""Serve the active intent and entity model versions of each language, and swap them.

Intent and entity versions are activated per language (``supportbot models activate``),
so a server may serve an English encoder intent model, a Chinese character n-gram one and a
CRF entity tagger at once. ``NluModels.refresh`` compares the loaded models with the
registry and loads, swaps or drops models. A version that fails to load is logged, kept out
of service and reported in ``errors``. The other models keep serving, and so does a loaded
version that the failed one was to replace. A turn looks its models up once, so a swap
during the turn does not change them halfway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.registry_watcher import RegistryWatcher
from storage import model_registry
from storage.models import ModelKind, ModelVersion

logger = logging.getLogger(__name__)

NLU_KINDS = (ModelKind.INTENT, ModelKind.NER)


@dataclass(frozen=True)
class LoadedNluModel:
    """A loaded model with the version it comes from.

    Attributes:
        model: The loaded intent classifier or entity tagger.
        version: Registry version name.
        version_id: Row id of the version.
        language: The language it serves, or None for every language.
    """

    model: Any
    version: str
    version_id: int
    language: str | None


Loader = Callable[[ModelVersion], Any]


class NluModels:
    """Cache of the loaded active intent and entity models per language.

    Args:
        session_factory: Sessions of the database with the model registry.
        loaders: A loader per kind that turns a registered version into a model.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], loaders: dict[ModelKind, Loader]
    ) -> None:
        self._session_factory = session_factory
        self._loaders = loaders
        self._lock = threading.Lock()
        self._watcher = RegistryWatcher(self.refresh, "nlu-models")
        self._models: dict[tuple[ModelKind, str | None], LoadedNluModel] = {}
        # (kind, language) -> (version id that failed, error message)
        self._failed: dict[tuple[ModelKind, str | None], tuple[int, str]] = {}
        self.refresh()

    def get(self, kind: ModelKind, language: str | None) -> LoadedNluModel | None:
        """Return the model of ``kind`` for ``language``, else the one for every language."""
        models = self._models
        return models.get((kind, language)) or models.get((kind, None))

    def served(self) -> dict[str, dict[str, str]]:
        """Return ``{kind: {language or 'all': version}}`` of the models in service."""
        result: dict[str, dict[str, str]] = {}
        for (kind, language), loaded in sorted(
            self._models.items(), key=lambda item: (item[0][0].value, item[0][1] or "")
        ):
            result.setdefault(kind.value, {})[language or "all"] = loaded.version
        return result

    def known_intents(self) -> set[str] | None:
        """Return the labels of every loaded intent model, or None when none is loaded."""
        labels: set[str] = set()
        loaded = [m for (kind, _), m in self._models.items() if kind is ModelKind.INTENT]
        if not loaded:
            return None
        for model in loaded:
            labels.update(getattr(model.model, "labels", []))
        return labels

    @property
    def errors(self) -> list[str]:
        """Messages of the versions that failed to load and are not served."""
        return [message for _, message in self._failed.values()]

    def refresh(self, *, retry_failed: bool = False) -> None:
        """Load newly activated versions and drop the ones that are no longer active.

        A version that failed to load is not loaded again while it stays active, unless
        ``retry_failed`` is True.
        """
        with self._lock:
            with self._session_factory() as session:
                active: dict[tuple[ModelKind, str | None], ModelVersion] = {}
                for kind in NLU_KINDS:
                    for language, version in model_registry.get_active_versions(
                        session, kind
                    ).items():
                        session.expunge(version)
                        active[(kind, language)] = version

            models = dict(self._models)
            for key in [key for key in models if key not in active]:
                logger.info(
                    "Dropping %s model %s (no longer active)", key[0].value, models[key].version
                )
                del models[key]
            for key in [key for key in self._failed if key not in active]:
                del self._failed[key]

            for key, version in active.items():
                current = models.get(key)
                if current is not None and current.version_id == version.id:
                    # The loaded version is active again, for example after a rollback from
                    # a broken one, so an earlier failure no longer applies.
                    self._failed.pop(key, None)
                    continue
                failed = self._failed.get(key)
                if failed is not None and failed[0] == version.id and not retry_failed:
                    continue
                loaded = self._load(key, version)
                if loaded is not None:
                    models[key] = loaded
                elif current is not None:
                    logger.error(
                        "Keeping %s model %s in service because the new active version failed "
                        "to load",
                        key[0].value,
                        current.version,
                    )
            self._models = models

    def _load(self, key, version: ModelVersion) -> LoadedNluModel | None:
        kind, language = key
        logger.info("Loading %s model %s for %s", kind.value, version.version, language or "all")
        try:
            model = self._loaders[kind](version)
        except Exception as error:  # noqa: BLE001 - a damaged pickle can raise any error
            message = f"loading {kind.value} model {version.version} failed: {error}"
            logger.error("%s", message)
            self._failed[key] = (version.id, message)
            return None
        self._failed.pop(key, None)
        return LoadedNluModel(model, version.version, version.id, language)

    def start_watching(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds in a daemon thread; 0 or less does nothing."""
        self._watcher.start(interval_s)

    def stop_watching(self) -> None:
        """Stop the watcher thread and wait for it to end."""
        self._watcher.stop()
