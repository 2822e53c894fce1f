"""ensure_demo_files against a local HTTP server. No request leaves 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
from pathlib import Path

import pytest

from ui.demo.fetch import DemoDataError, ensure_demo_files
from ui.demo.sources import DemoFile

FAQ_BYTES = b'{"root": {"qapair": []}}\n'
DIALOG_BYTES = b'[{"dialogue_id": "1_00000", "turns": []}]\n' * 200


def _demo_file(dataset: str, path: str, content: bytes, *, gzip_accepted: bool = False) -> DemoFile:
    return DemoFile(
        dataset=dataset,
        path=path,
        repository="example/repository",
        commit="0" * 40,
        repository_path=path,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        license="test data",
        gzip_accepted=gzip_accepted,
    )


FAQ = _demo_file("faq", "faq.json", FAQ_BYTES)
DIALOGS = _demo_file("sgd", "train/dialogues_001.json", DIALOG_BYTES, gzip_accepted=True)
FILES = (FAQ, DIALOGS)


def _serve(root: Path, relative_path: str, content: bytes) -> None:
    path = root / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _fetch(cache_dir: Path, base_url: str, data_dir: Path | None = None, **kwargs) -> Path:
    options = {"files": FILES, "retry_delay_s": 0.01, "show_progress": False} | kwargs
    return ensure_demo_files(data_dir, cache_dir, base_urls=[base_url], **options)


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.name.startswith(".part-"))


def test_complete_data_dir_used_without_network(tmp_path):
    data_dir = tmp_path / "data"
    _serve(data_dir, "faq/faq.json", FAQ_BYTES)
    _serve(data_dir, "sgd/train/dialogues_001.json.gz", gzip.compress(DIALOG_BYTES))

    root = _fetch(tmp_path / "cache", _closed_port_url(), data_dir=data_dir)

    assert root == data_dir
    assert not (tmp_path / "cache").exists()


@pytest.mark.integration
def test_download_into_cache(file_server, tmp_path, caplog):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES)
    _serve(file_server.root, "sgd/train/dialogues_001.json", DIALOG_BYTES)
    cache_dir = tmp_path / "cache"

    with caplog.at_level(logging.INFO, logger="ui.demo.fetch"):
        root = _fetch(cache_dir, file_server.base_url)

    assert root == cache_dir
    assert (cache_dir / "faq" / "faq.json").read_bytes() == FAQ_BYTES
    assert (cache_dir / "sgd" / "train" / "dialogues_001.json").read_bytes() == DIALOG_BYTES
    assert f"Downloading faq.json from {file_server.base_url}/faq/faq.json" in caplog.text
    assert _leftovers(cache_dir) == []


@pytest.mark.integration
def test_second_call_downloads_nothing(file_server, tmp_path):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES)
    _serve(file_server.root, "sgd/train/dialogues_001.json", DIALOG_BYTES)
    _fetch(tmp_path / "cache", file_server.base_url)
    requests_after_first_call = len(file_server.requests)

    _fetch(tmp_path / "cache", file_server.base_url)

    assert requests_after_first_call == 2
    assert len(file_server.requests) == 2


@pytest.mark.integration
def test_gzip_copy_on_mirror(file_server, tmp_path):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES)
    _serve(file_server.root, "sgd/train/dialogues_001.json.gz", gzip.compress(DIALOG_BYTES))
    cache_dir = tmp_path / "cache"

    _fetch(cache_dir, file_server.base_url)

    saved = cache_dir / "sgd" / "train" / "dialogues_001.json.gz"
    assert gzip.decompress(saved.read_bytes()) == DIALOG_BYTES
    assert "/sgd/train/dialogues_001.json" in file_server.requests
    assert "/sgd/train/dialogues_001.json.gz" in file_server.requests


@pytest.mark.integration
def test_missing_file_on_mirror(file_server, tmp_path):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES)
    cache_dir = tmp_path / "cache"

    with pytest.raises(DemoDataError) as info:
        _fetch(cache_dir, file_server.base_url)

    message = str(info.value)
    assert "failed to download sgd/train/dialogues_001.json: not found at" in message
    assert f"{file_server.base_url}/sgd/train/dialogues_001.json (HTTP 404)" in message
    assert "SUPPORTBOT_DATA_DIR" in message
    assert not (cache_dir / "sgd" / "train" / "dialogues_001.json").exists()
    # A 404 is final: each candidate URL is requested once.
    assert file_server.requests.count("/sgd/train/dialogues_001.json") == 1


@pytest.mark.integration
def test_truncated_file_rejected(file_server, tmp_path):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES[:-5])
    cache_dir = tmp_path / "cache"

    with pytest.raises(DemoDataError, match="does not match the expected file: 20 bytes"):
        _fetch(cache_dir, file_server.base_url)

    assert not (cache_dir / "faq" / "faq.json").exists()
    assert _leftovers(cache_dir) == []


@pytest.mark.integration
def test_interrupted_transfer_retried(file_server, tmp_path, caplog):
    _serve(file_server.root, "faq/faq.json", FAQ_BYTES)
    _serve(file_server.root, "sgd/train/dialogues_001.json", DIALOG_BYTES)
    file_server.truncate_once.add("/sgd/train/dialogues_001.json")
    cache_dir = tmp_path / "cache"

    with caplog.at_level(logging.WARNING, logger="ui.demo.fetch"):
        _fetch(cache_dir, file_server.base_url)

    assert (cache_dir / "sgd" / "train" / "dialogues_001.json").read_bytes() == DIALOG_BYTES
    assert file_server.requests.count("/sgd/train/dialogues_001.json") == 2
    assert "attempt=1/3" in caplog.text
    assert "retrying in" in caplog.text
    assert _leftovers(cache_dir) == []


@pytest.mark.integration
def test_partial_data_dir_copied_to_cache(file_server, tmp_path):
    data_dir = tmp_path / "data"
    _serve(data_dir, "faq/faq.json", FAQ_BYTES)
    _serve(file_server.root, "sgd/train/dialogues_001.json", DIALOG_BYTES)
    cache_dir = tmp_path / "cache"

    root = _fetch(cache_dir, file_server.base_url, data_dir=data_dir)

    assert root == cache_dir
    assert (cache_dir / "faq" / "faq.json").read_bytes() == FAQ_BYTES
    assert file_server.requests == ["/sgd/train/dialogues_001.json"]


def test_offline_error_names_url_and_setting(tmp_path, caplog):
    base_url = _closed_port_url()

    with pytest.raises(DemoDataError) as info:
        _fetch(tmp_path / "cache", base_url, attempts=2, timeout_s=2.0)

    message = str(info.value)
    assert f"from {base_url}/faq/faq.json" in message
    assert "ConnectError" in message
    assert "set SUPPORTBOT_DATA_DIR to a local copy" in message
    assert "attempt=1/2" in caplog.text


def test_attempts_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="attempts must be at least 1, got 0"):
        _fetch(tmp_path / "cache", _closed_port_url(), attempts=0)
