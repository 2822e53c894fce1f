"""A real server with the chat and the console on 127.0.0.1, and headless Chromium."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.runtime import BotRuntime
from tests.ui.conftest import build_indexed_runtime
from ui.api.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--window-size=1280,1400",
)
SERVER_START_TIMEOUT_S = 60
REPO_ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for screenshots: SUPPORTBOT_TEST_ARTIFACTS, else test-artifacts/ in the repo."""
    root = Path(os.environ.get("SUPPORTBOT_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder = root / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser_runtime(
    tmp_path_factory: pytest.TempPathFactory, packaged_embedder, packaged_generator
) -> Iterator[BotRuntime]:
    runtime = build_indexed_runtime(
        tmp_path_factory.mktemp("browser-home"),
        packaged_embedder,
        packaged_generator,
        policy={"chat_poll_interval_s": 1.0},
    )
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def server_url(browser_runtime: BotRuntime) -> Iterator[str]:
    """Serve the app under uvicorn in a background thread on a free port of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(runtime=browser_runtime), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="browser-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the test server on 127.0.0.1:{port} did not start")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver():
    """Headless Chromium; a missing browser skips locally and fails when CI is set."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        reason = (
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: install the Debian packages chromium "
            "and chromium-driver"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield browser
    browser.quit()
