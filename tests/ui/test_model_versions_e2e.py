"""A real fine-tune of the packaged SmolLM2 on demo dialogs, switched in a running server.

The run trains LoRA adapters for a few steps on pairs from real SGD dialogs, registers
the version, and then ``supportbot models activate`` and ``rollback`` change what a
``supportbot serve`` subprocess answers with, seen over HTTP in /v1/health and in the
explanation of each reply.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from finetune.build import DatasetConfig, build_dataset
from finetune.config import TrainingConfig
from finetune.pipeline import Baseline, PipelineOptions, run_finetune
from storage import model_registry
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.dialog_import import import_dialogs
from storage.models import ModelKind
from ui.demo.sources import SGD_FILES

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO_ROOT = Path(__file__).parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("supportbot")
HOST = "127.0.0.1"
CONVERSATIONS = 40
STEPS = 8
HEALTH_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, shared_data_dir, packaged_generator_path, packaged_embedder):
    """A supportbot home with demo dialogs and one fine-tuned, registered, inactive version."""
    sgd_file = SGD_FILES[0].find_in(shared_data_dir)
    if sgd_file is None:
        pytest.skip(f"{SGD_FILES[0].relative_path} is missing under {shared_data_dir}")
    home = tmp_path_factory.mktemp("home")
    # The server finds the converted packaged model here instead of converting it again.
    (home / "models").mkdir()
    (home / "models" / packaged_generator_path.name).symlink_to(packaged_generator_path)
    engine = create_db_engine(f"sqlite:///{home / 'supportbot.db'}")
    upgrade_schema(engine)
    session_factory = create_session_factory(engine)
    import_dialogs(
        session_factory, [sgd_file], format="sgd", limit=CONVERSATIONS, show_progress=False
    )
    dataset_dir = home / "dataset"
    build_dataset(
        session_factory,
        DatasetConfig(out_dir=dataset_dir, test=0.2, validation=0.1),
        embedder=packaged_embedder,
    )
    config = TrainingConfig(
        model="packaged:SmolLM2-135M-Instruct",
        dataset_dir=dataset_dir,
        output_dir=home / "models" / "dialog" / "dialog-test",
        learning_rate=1e-3,
        warmup_ratio=0.0,
        max_steps=STEPS,
        max_seq_len=256,
        per_device_batch_tokens=1024,
        gradient_accumulation_steps=1,
        eval_every_steps=0,
    )
    outcome = run_finetune(
        session_factory,
        config,
        version="dialog-test",
        model_path=packaged_generator_path,
        baseline=Baseline("base", packaged_generator_path),
        embedder=packaged_embedder,
        options=PipelineOptions(eval_limit=4, eval_batch_size=4, max_new_tokens=24, activate=False),
    )
    engine.dispose()
    return home, outcome


def test_real_run_lowers_loss(trained_home):
    _, outcome = trained_home
    losses = [loss for _, loss in outcome.training.train_loss_history]

    assert len(losses) == STEPS
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_real_run_registers_version(trained_home):
    home, outcome = trained_home
    engine = create_db_engine(f"sqlite:///{home / 'supportbot.db'}")
    with create_session_factory(engine)() as session:
        version = model_registry.get_version(session, "dialog-test")
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
    engine.dispose()

    assert version.status == outcome.status
    assert version.metrics["test_pairs"] == 4
    assert 0.0 <= version.metrics["rouge_l"] <= 1.0
    assert version.metrics["perplexity"] > 1.0
    assert active is None
    assert outcome.report.markdown.is_file()


@pytest.fixture
def server(trained_home, tmp_path) -> Iterator[tuple]:
    home, _ = trained_home
    port = _find_free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPORTBOT_")}
    env.update(
        SUPPORTBOT_HOME=str(home),
        SUPPORTBOT_GENERATION__RELOAD_INTERVAL_S="0.5",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    log_path = tmp_path / "server.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [*_command(), "serve", "--host", HOST, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://{HOST}:{port}"
    try:
        _wait_until(lambda: _health(base_url) is not None, process, log_path)
        yield base_url, env, process, log_path
    finally:
        _stop(process)


def test_activate_and_rollback_switch_served_model(server):
    base_url, env, process, log_path = server
    assert _health(base_url)["dialog_model_version"] == "base"

    _run_cli(env, "models", "activate", "dialog-test", "--force")
    _wait_until(
        lambda: _health(base_url)["dialog_model_version"] == "dialog-test", process, log_path
    )
    explanation = _ask(base_url, "Hi, can you find me a restaurant?")
    assert explanation["models"]["dialog_version"] == "dialog-test"

    listing = httpx.get(f"{base_url}/v1/models", timeout=10).json()
    assert listing["active"] == "dialog-test"
    assert listing["serving"] == "dialog-test"

    _run_cli(env, "models", "rollback")
    reloaded = httpx.post(f"{base_url}/v1/models/reload", timeout=60).json()
    assert reloaded["serving"] == "base"
    explanation = _ask(base_url, "Hi, can you find me a restaurant?")
    assert explanation["models"]["dialog_version"] == "base"


def _ask(base_url: str, text: str) -> dict:
    conversation = httpx.post(f"{base_url}/v1/conversations", json={}, timeout=10).json()
    response = httpx.post(
        f"{base_url}/v1/conversations/{conversation['id']}/messages",
        json={"text": text},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()["explanation"]


def _run_cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [*_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"


def _command() -> list[str]:
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "ui.cli"]


def _health(base_url: str) -> dict | None:
    try:
        response = httpx.get(f"{base_url}/v1/health", timeout=5)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def _wait_until(condition, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"condition not met within {HEALTH_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
