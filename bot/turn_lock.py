"""Serialise the turns of one conversation across threads and server processes.

Two messages for the same conversation are answered one after the other: the second
waits until the first reply is stored, so no turn is lost or interleaved. PostgreSQL
deployments use a session-level advisory lock, which also covers workers on several
hosts. SQLite deployments use one lock file per conversation, which covers every
process on the machine that shares the database file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)

# Namespace for advisory lock keys, so that other applications sharing the database
# with their own advisory locks do not collide with conversation ids.
_ADVISORY_NAMESPACE = 0x5B07


class TurnLockTimeoutError(TimeoutError):
    """An earlier turn of the conversation held the lock for longer than the timeout."""


class TurnLock(Protocol):
    """Exclusive lock per conversation id."""

    def hold(self, conversation_id: int, *, timeout_s: float) -> contextlib.AbstractContextManager:
        """Return a context manager that holds the lock of ``conversation_id``."""
        ...


class FileTurnLock:
    """Lock files under ``lock_dir``, one per conversation."""

    def __init__(self, lock_dir: Path) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)

        self.lock_dir = lock_dir

    @contextlib.contextmanager
    def hold(self, conversation_id: int, *, timeout_s: float) -> Iterator[None]:
        """Hold the lock file of ``conversation_id``.

        Raises:
            TurnLockTimeoutError: If it is not free within ``timeout_s`` seconds.
        """
        # A fresh FileLock per call: a shared instance would be re-entrant and let two
        # threads of this process in at once.
        lock = FileLock(self.lock_dir / f"conversation-{conversation_id}.lock", thread_local=False)
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout as error:
            raise TurnLockTimeoutError(
                f"conversation {conversation_id} is busy with an earlier message for over "
                f"{timeout_s:.0f} s; retry later"
            ) from error
        try:
            yield
        finally:
            lock.release()


class PostgresTurnLock:
    """PostgreSQL advisory locks on a dedicated connection per held lock."""

    def __init__(self, engine: Engine, *, poll_interval_s: float = 0.05) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(
                f"PostgresTurnLock needs a PostgreSQL engine, got dialect {engine.dialect.name!r}: "
                "use FileTurnLock for SQLite"
            )

        self.engine = engine
        self.poll_interval_s = poll_interval_s

    @contextlib.contextmanager
    def hold(self, conversation_id: int, *, timeout_s: float) -> Iterator[None]:
        """Hold the advisory lock of ``conversation_id``.

        Raises:
            TurnLockTimeoutError: If it is not free within ``timeout_s`` seconds.
        """
        params = {"namespace": _ADVISORY_NAMESPACE, "key": conversation_id}
        with self.engine.connect() as connection:
            deadline = time.monotonic() + timeout_s
            while not connection.scalar(
                text("SELECT pg_try_advisory_lock(:namespace, :key)"), params
            ):
                connection.rollback()
                if time.monotonic() > deadline:
                    raise TurnLockTimeoutError(
                        f"conversation {conversation_id} is busy with an earlier message for "
                        f"over {timeout_s:.0f} s; retry later"
                    )
                time.sleep(self.poll_interval_s)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:namespace, :key)"), params)
                connection.commit()


def build_turn_lock(engine: Engine, lock_dir: Path) -> TurnLock:
    """Return the turn lock that fits the database behind ``engine``."""
    if engine.dialect.name == "postgresql":
        logger.info("Turn lock: PostgreSQL advisory locks")
        return PostgresTurnLock(engine)
    logger.info("Turn lock: lock files in %s", lock_dir)
    return FileTurnLock(lock_dir)
