"""The model switch: which dialog model version serves, and how it changes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.generation.base import ChatMessage
from bot.generation.transformers_backend import TransformersGenerator
from bot.model_switch import ModelSwitch
from storage import model_registry
from storage.models import ModelKind, ModelStatus, ModelVersion
from tests.utils.tiny_models import save_tiny_model_folder

WORDS = "hello where is my order it ships today".split()
WATCH_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: save_tiny_model_folder(root / name, WORDS) for name in ("base", "v1", "v2")}


def _register(session_factory, version: str, path: Path | str) -> None:
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=ModelKind.DIALOG, version=version, base_model="tiny"
        )
        model_registry.finish_version(session, version, status=ModelStatus.READY, path=str(path))


def _activate(session_factory, version: str) -> None:
    with session_factory.begin() as session:
        model_registry.activate_version(session, version)


def _rollback(session_factory) -> None:
    with session_factory.begin() as session:
        model_registry.rollback(session, ModelKind.DIALOG)


def _switch(session_factory, model_folders, loads: list[str] | None = None) -> ModelSwitch:
    def load_base():
        if loads is not None:
            loads.append("base")
        return TransformersGenerator(model_folders["base"], model_name="base")

    def load_version(version: ModelVersion):
        if loads is not None:
            loads.append(version.version)
        return TransformersGenerator(Path(version.path), model_name=version.version)

    return ModelSwitch(session_factory, load_base=load_base, load_version=load_version)


def test_base_serves_without_active_version(sqlite_session_factory, model_folders):
    switch = _switch(sqlite_session_factory, model_folders)

    assert switch.current.version is None
    assert switch.current.generator.model_name == "base"


def test_active_version_serves_at_start(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "v1", model_folders["v1"])
    _activate(sqlite_session_factory, "v1")
    loads: list[str] = []

    switch = _switch(sqlite_session_factory, model_folders, loads)

    assert switch.current.version == "v1"
    assert loads == ["v1"]


def test_refresh_follows_activate_and_rollback(sqlite_session_factory, model_folders):
    for version in ("v1", "v2"):
        _register(sqlite_session_factory, version, model_folders[version])
    switch = _switch(sqlite_session_factory, model_folders)

    _activate(sqlite_session_factory, "v1")
    assert switch.refresh().version == "v1"
    _activate(sqlite_session_factory, "v2")
    assert switch.refresh().version == "v2"
    _rollback(sqlite_session_factory)
    assert switch.refresh().version == "v1"
    _rollback(sqlite_session_factory)
    assert switch.refresh().version is None


def test_refresh_without_change_loads_nothing(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "v1", model_folders["v1"])
    _activate(sqlite_session_factory, "v1")
    loads: list[str] = []
    switch = _switch(sqlite_session_factory, model_folders, loads)

    switch.refresh()
    switch.refresh()

    assert loads == ["v1"]


def test_broken_version_keeps_serving_model(sqlite_session_factory, model_folders, tmp_path):
    _register(sqlite_session_factory, "broken", tmp_path / "deleted")
    switch = _switch(sqlite_session_factory, model_folders)
    _activate(sqlite_session_factory, "broken")

    served = switch.refresh()

    assert served.version is None
    assert "broken" in switch.last_error
    assert "not found" in switch.last_error


def test_broken_version_not_retried_until_asked(sqlite_session_factory, model_folders, tmp_path):
    _register(sqlite_session_factory, "broken", tmp_path / "deleted")
    loads: list[str] = []
    switch = _switch(sqlite_session_factory, model_folders, loads)
    _activate(sqlite_session_factory, "broken")

    switch.refresh()
    switch.refresh()
    assert loads.count("broken") == 1

    switch.refresh(retry_failed=True)
    assert loads.count("broken") == 2


def test_broken_active_version_at_start_serves_base(
    sqlite_session_factory, model_folders, tmp_path
):
    _register(sqlite_session_factory, "broken", tmp_path / "deleted")
    _activate(sqlite_session_factory, "broken")

    switch = _switch(sqlite_session_factory, model_folders)

    assert switch.current.version is None
    assert switch.last_error is not None


def test_turn_in_flight_keeps_its_model(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "v1", model_folders["v1"])
    switch = _switch(sqlite_session_factory, model_folders)
    served = switch.current
    generator = served.generator
    finished = threading.Event()
    results = []

    def generate() -> None:
        results.append(
            generator.generate(
                [ChatMessage("user", "where is my order")], max_new_tokens=64, temperature=0.0
            )
        )
        finished.set()

    # Hold the generator's lock so that the turn is still running when the switch swaps.
    with generator._lock:
        thread = threading.Thread(target=generate)
        thread.start()
        _activate(sqlite_session_factory, "v1")
        assert switch.refresh().version == "v1"
    thread.join(timeout=60)

    assert finished.is_set()
    assert results[0].model == "base"
    assert served.version is None
    assert switch.current.version == "v1"


def test_watcher_picks_up_activation(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "v1", model_folders["v1"])
    switch = _switch(sqlite_session_factory, model_folders)
    switch.start_watching(0.1)
    try:
        _activate(sqlite_session_factory, "v1")
        deadline = time.monotonic() + WATCH_TIMEOUT_S
        while switch.current.version != "v1" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        switch.stop_watching()

    assert switch.current.version == "v1"


def test_registry_ignored_when_disabled(sqlite_session_factory, model_folders):
    _register(sqlite_session_factory, "v1", model_folders["v1"])
    _activate(sqlite_session_factory, "v1")

    switch = ModelSwitch(
        sqlite_session_factory,
        load_base=lambda: TransformersGenerator(model_folders["base"], model_name="base"),
        load_version=lambda version: pytest.fail("must not load a version"),
        use_registry=False,
    )

    assert switch.refresh().version is None
