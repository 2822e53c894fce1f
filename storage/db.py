"""Engines, sessions and schema migrations.

Example:
    >>> engine = create_db_engine("sqlite:///supportbot.db")
    >>> upgrade_schema(engine)
    >>> SessionLocal = create_session_factory(engine)
    >>> with SessionLocal.begin() as session:
    ...     ...
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url``, creating the folder of a SQLite file if needed.

    SQLite connections get foreign keys, WAL journaling and a 30 s busy timeout, so that
    several server workers can share one file.

    Raises:
        DatabaseUnavailableError: If the URL cannot be parsed or its driver is missing.
    """
    try:
        engine = create_engine(url, echo=echo, pool_pre_ping=True)
    except Exception as error:  # sqlalchemy raises ArgumentError or ImportError here
        raise DatabaseUnavailableError(
            f"invalid database URL {_redact_url(url)!r}: {error}. Use a SQLAlchemy URL such as "
            "sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/db"
        ) from error

    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def upgrade_schema(engine: Engine) -> None:
    """Apply every pending alembic migration to the database behind ``engine``.

    Raises:
        DatabaseUnavailableError: If the database cannot be reached.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    logger.info("Upgrading database schema url=%s", _redact_url(str(engine.url)))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as error:
        raise DatabaseUnavailableError(
            f"cannot reach database {_redact_url(str(engine.url))!r}: {error.orig}. Check "
            "SUPPORTBOT_DATABASE_URL and that the server is running"
        ) from error


def _redact_url(url: str) -> str:
    """Hide the password of a database URL for logs and messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown without its credentials part
        return url.split("@")[-1]
