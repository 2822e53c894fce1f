"""Concurrent messages to one conversation across ``supportbot serve --workers 2``.

The server runs as a subprocess with the OpenAI-compatible stub as its dialog model, so
no generation model is loaded. Both workers accept connections on the shared socket, so
either process may handle each message, and the turn lock must keep the transcript
strictly customer, bot, customer, bot.

NOTE: The test does not check which worker handled each message, because uvicorn's
access log has no process id. It only waits until both workers have started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bot.config import RetrievalSettings
from retrieval.indexer import KnowledgeIndexer
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.dialog_import import import_dialogs
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIXTURES = Path(__file__).parents[1] / "fixtures"
REPO_ROOT = Path(__file__).parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("supportbot")
HOST = "127.0.0.1"
WORKERS = 2
HEALTH_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 150  # above the server's default turn lock timeout of 120 s
STOP_TIMEOUT_S = 30
# Questions answered by the dialog model from passages, and by a stored FAQ answer.
GENERATED_QUESTION = "How long does express shipping take?"
STORED_QUESTION = "Can I pay with PayPal?"
MESSAGE_COUNT = 10


@dataclass
class ServerProcess:
    """A ``supportbot serve`` subprocess and the file that collects its output."""

    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log_tail(self, max_chars: int = 6000) -> str:
        """Return the end of the server's combined stdout and stderr."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-max_chars:]

    def started_workers(self) -> int:
        """Return how many worker processes uvicorn has logged as started up."""
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        return log.count("Application startup complete")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'supportbot.db'}"
        return

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        admin.dispose()
        if os.environ.get("SUPPORTBOT_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error.orig}")
    # psycopg passes `options` to the server, so every connection of every worker
    # starts with this schema first on its search path.
    yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def prepared_home(tmp_path: Path, database_url: str, packaged_embedder) -> Path:
    """A state directory with the test dialogs imported and the test knowledge base indexed."""
    home = tmp_path / "home"
    engine = create_db_engine(database_url)
    upgrade_schema(engine)
    session_factory = create_session_factory(engine)
    import_dialogs(
        session_factory, [FIXTURES / "dialogs_e2e" / "history.jsonl"], show_progress=False
    )
    indexer = KnowledgeIndexer(session_factory, packaged_embedder, home / "index")
    indexer.index_paths([FIXTURES / "kb"])
    indexer.index_past_answers(min_answer_words=RetrievalSettings().past_answer_min_words)
    engine.dispose()
    return home


@pytest.fixture
def server(
    tmp_path: Path, prepared_home: Path, database_url: str, openai_stub
) -> Iterator[ServerProcess]:
    """``supportbot serve --workers 2`` on a free port of 127.0.0.1, stopped after the test."""
    port = _find_free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPORTBOT_")}
    env.update(
        SUPPORTBOT_HOME=str(prepared_home),
        SUPPORTBOT_DATABASE_URL=database_url,
        SUPPORTBOT_HOST=HOST,
        SUPPORTBOT_GENERATION__BACKEND="openai",
        SUPPORTBOT_GENERATION__BASE_URL=openai_stub.base_url,
        SUPPORTBOT_GENERATION__MODEL="stub-model",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "ui.cli"]
    command += ["serve", "--workers", str(WORKERS), "--port", str(port)]
    log_path = tmp_path / "server.log"

    with log_path.open("w", encoding="utf-8") as log:
        # A session of its own lets teardown end the workers along with their parent.
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = ServerProcess(process, f"http://{HOST}:{port}", log_path)
    try:
        _wait_for_health(running)
        yield running
    finally:
        _stop(process)


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_for_health(server: ServerProcess) -> None:
    """Wait until /v1/health returns 200 and every worker has finished its startup.

    Health alone is not enough, because the first worker responds to it while the
    second still loads its models, and then one process would handle every message.
    """
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"server exited with code {server.process.returncode} before it was healthy:\n"
                f"{server.log_tail()}"
            )
        if _is_healthy(server.base_url) and server.started_workers() == WORKERS:
            return
        time.sleep(0.5)
    pytest.fail(f"server not healthy within {HEALTH_TIMEOUT_S} s:\n{server.log_tail()}")


def _is_healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/v1/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """Stop the server with SIGTERM, then SIGKILL its process group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    # Workers left behind by a parent that died are in the same process group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _send_concurrently(
    base_url: str, conversation_id: int, texts: list[str]
) -> list[httpx.Response]:
    """Post each text from its own thread, with all threads released at once.

    Returns:
        The responses, in the order of ``texts``.
    """
    start = threading.Barrier(len(texts))

    def send(client: httpx.Client, message: str) -> httpx.Response:
        start.wait(timeout=30)
        return client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": message})

    with (
        httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client,
        ThreadPoolExecutor(max_workers=len(texts)) as pool,
    ):
        futures = [pool.submit(send, client, message) for message in texts]
        return [future.result(timeout=REQUEST_TIMEOUT_S + 60) for future in futures]


def test_workers_keep_turns_in_order(server: ServerProcess, openai_stub):
    texts = [
        f"{GENERATED_QUESTION if number % 2 else STORED_QUESTION} (message {number})"
        for number in range(1, MESSAGE_COUNT + 1)
    ]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        created = client.post("/v1/conversations", json={})
    assert created.status_code == 201, server.log_tail()
    conversation_id = created.json()["id"]

    responses = _send_concurrently(server.base_url, conversation_id, texts)
    transcript = httpx.get(f"{server.base_url}/v1/conversations/{conversation_id}", timeout=30)

    statuses = [response.status_code for response in responses]
    assert statuses == [200] * MESSAGE_COUNT, f"{statuses}\n{server.log_tail()}"
    assert transcript.status_code == 200
    messages = transcript.json()["messages"]
    assert [m["role"] for m in messages] == ["customer", "bot"] * MESSAGE_COUNT
    assert [m["seq"] for m in messages] == list(range(1, 2 * MESSAGE_COUNT + 1))
    customer_texts = Counter(m["text"] for m in messages if m["role"] == "customer")
    assert customer_texts == Counter(texts)

    # Every bot message is the reply to the customer message just before it.
    replies = {reply["customer_message_id"]: reply for reply in (r.json() for r in responses)}
    assert len(replies) == MESSAGE_COUNT
    for customer, bot in zip(messages[::2], messages[1::2], strict=True):
        reply = replies[customer["id"]]
        assert reply["message_id"] == bot["id"]
        assert reply["text"] == bot["text"]
        assert reply["path"] == bot["metadata"]["path"]
        if reply["path"] == "generated":
            # The stub echoes the question it was sent.
            assert bot["text"] == f"echo: {customer['text']}"

    # Each reply came back to the thread that sent its question.
    for message, response in zip(texts, responses, strict=True):
        customer = next(m for m in messages if m["id"] == response.json()["customer_message_id"])
        assert customer["text"] == message
    paths = Counter(response.json()["path"] for response in responses)
    assert paths["generated"] >= 1, paths
    assert paths["retrieved"] >= 1, paths
    assert openai_stub.requests, "no request reached the generation stub"

    log = server.log_tail(max_chars=200_000)
    assert server.started_workers() == WORKERS, log
    assert "Traceback" not in log, log
