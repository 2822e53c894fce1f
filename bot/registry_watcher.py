"""A daemon thread that calls a refresh function every few seconds until stopped.

The dialog model switch and the NLU model holder both poll the model registry this way,
so that `supportbot models activate` and `rollback` reach a running server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Seconds that stop() waits for a refresh in progress to finish.
STOP_TIMEOUT_S = 10


class RegistryWatcher:
    """Calls ``refresh`` every ``interval_s`` seconds in a daemon thread.

    Args:
        refresh: The function to call; an exception is logged and the next call follows.
        name: Thread name, also used in log lines.
    """

    def __init__(self, refresh: Callable[[], object], name: str) -> None:
        self._refresh = refresh
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float) -> None:
        """Start the thread; does nothing for 0 or less, or when it is running already."""
        if interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name=self._name, daemon=True
        )
        self._thread.start()
        logger.info("Started %s: checking the model registry every %.1f s", self._name, interval_s)

    def stop(self) -> None:
        """Stop the thread and wait up to ``STOP_TIMEOUT_S`` seconds for it to end."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self._thread = None
        logger.info("Stopped %s", self._name)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._refresh()
            except Exception:  # noqa: BLE001 - the watcher must survive a database outage
                logger.exception(
                    "%s: checking the model registry failed; retrying in %.1f s",
                    self._name,
                    interval_s,
                )
