from __future__ import annotations

import threading
import time

import pytest

from bot.turn_lock import FileTurnLock, PostgresTurnLock, TurnLockTimeoutError, build_turn_lock


def _lock_for(db_engine, tmp_path):
    return build_turn_lock(db_engine, tmp_path / "locks")


def test_build_turn_lock_picks_backend(db_engine, tmp_path):
    lock = _lock_for(db_engine, tmp_path)

    expected = PostgresTurnLock if db_engine.dialect.name == "postgresql" else FileTurnLock
    assert isinstance(lock, expected)


def test_turn_lock_serialises_one_conversation(db_engine, tmp_path):
    lock = _lock_for(db_engine, tmp_path)
    events: list[tuple[str, int]] = []

    def turn(worker: int) -> None:
        with lock.hold(7, timeout_s=10):
            events.append(("start", worker))
            time.sleep(0.05)
            events.append(("end", worker))

    threads = [threading.Thread(target=turn, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert len(events) == 8
    for position in range(0, 8, 2):
        assert events[position][0] == "start"
        assert events[position + 1] == ("end", events[position][1])


def test_turn_lock_other_conversation_not_blocked(db_engine, tmp_path):
    lock = _lock_for(db_engine, tmp_path)

    with lock.hold(1, timeout_s=1), lock.hold(2, timeout_s=1):
        acquired_both = True

    assert acquired_both


def test_turn_lock_times_out(db_engine, tmp_path):
    lock = _lock_for(db_engine, tmp_path)
    holding = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with lock.hold(3, timeout_s=5):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    holding.wait(5)

    with pytest.raises(TurnLockTimeoutError, match="conversation 3 is busy"):
        with lock.hold(3, timeout_s=0.2):
            pass

    release.set()
    holder.join(5)
