"""Dialog import throughput on real SGD files, into SQLite and PostgreSQL.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/datasets python bench/bench_import.py --files 10
    python bench/bench_import.py --backends sqlite postgresql \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

For each backend the script imports the first ``--files`` SGD train files into an empty,
migrated database: a SQLite file in a temporary folder, or a fresh PostgreSQL schema that
is dropped afterwards. It then imports them again to time the already-present path, and
also times reading the same files without a database. Figures are single runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.dialog_import import import_dialogs
from storage.importers import DialogRecord, read_dialogs, resolve_inputs

logger = logging.getLogger(__name__)


def main() -> None:
    args = _parse_args()
    paths = sorted((args.data_dir / "sgd" / "train").glob("dialogues_*.json*"))[: args.files]
    if not paths:
        raise SystemExit(f"no SGD train files under {args.data_dir / 'sgd' / 'train'}")
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"files: {len(paths)} SGD train files ({paths[0].name} .. {paths[-1].name})")

    _bench_read(paths)
    for backend in args.backends:
        with _database(backend, args.postgres_url) as engine:
            _bench_import(backend, engine, paths, args.batch_size)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ["SUPPORTBOT_DATA_DIR"])
        if "SUPPORTBOT_DATA_DIR" in os.environ
        else None,
        required="SUPPORTBOT_DATA_DIR" not in os.environ,
        help="Folder of the public datasets; defaults to SUPPORTBOT_DATA_DIR.",
    )
    parser.add_argument("--files", type=int, default=10, help="SGD train files to import")
    parser.add_argument("--batch-size", type=int, default=200, help="conversations per commit")
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    return parser.parse_args()


def _bench_read(paths: list[Path]) -> None:
    started = time.perf_counter()
    messages = 0
    for source in resolve_inputs(paths, "sgd"):
        for record in read_dialogs(source):
            if isinstance(record, DialogRecord):
                messages += len(record.turns)
    seconds = time.perf_counter() - started
    print(f"read only: {messages} messages in {seconds:.2f} s = {messages / seconds:,.0f} msg/s")


def _bench_import(backend: str, engine: Engine, paths: list[Path], batch_size: int) -> None:
    session_factory = create_session_factory(engine)
    first = import_dialogs(session_factory, paths, batch_size=batch_size, show_progress=False)
    again = import_dialogs(session_factory, paths, batch_size=batch_size, show_progress=False)
    print(
        f"{backend}: {first.conversations_added} conversations, {first.messages_added} messages "
        f"in {first.seconds:.2f} s = {first.messages_added / first.seconds:,.0f} msg/s; "
        f"re-import (all present) {again.seconds:.2f} s"
    )


@contextmanager
def _database(backend: str, postgres_url: str) -> Iterator[Engine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = create_db_engine(f"sqlite:///{folder}/bench.db")
            upgrade_schema(engine)
            yield engine
            engine.dispose()
        return

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_db_engine(postgres_url)

    @event.listens_for(engine, "connect")
    def _set_search_path(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    try:
        upgrade_schema(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
