"""Shared fixtures: databases (SQLite files under tmp paths; PostgreSQL when reachable) and running servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import chat
from harness import ServerThread, TLSFiles, make_tls_files, server_config

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

POSTGRES_URL = os.environ.get("CHAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_postgres_problem: str | None = None
_postgres_checked = False


def pytest_report_header() -> str:
    return f"chat {chat.__version__} from {os.path.dirname(chat.__file__)}"


def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            import psycopg  # noqa: F401

            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as e:  # any failure means: skip, and say why
            _postgres_problem = f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(e).__name__}: {e})"
    return _postgres_problem


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    yield from fresh_postgres_database("chat_test")


@pytest.fixture
def cluster_postgres_db() -> Iterator[str]:
    """As postgres_db, named for the cluster tests (chat_cluster_test_…)."""
    yield from fresh_postgres_database("chat_cluster_test")


def fresh_postgres_database(prefix: str) -> Iterator[str]:
    problem = postgres_unavailable()
    if problem:
        pytest.skip(problem)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Any) -> str:
    return str(tmp_path / "chat.sqlite")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each test using this runs on SQLite, and again on PostgreSQL (skipped when unreachable)."""
    if request.param == "sqlite":
        return str(tmp_path / "chat.sqlite")
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def make_server(sqlite_db: str) -> Iterator[Callable[..., ServerThread]]:
    """Start servers with config overrides; all are stopped at the end of the test."""
    started: list[ServerThread] = []

    def start(db: str | None = None, **overrides: Any) -> ServerThread:
        server = ServerThread(server_config(db or sqlite_db, **overrides))
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


@pytest.fixture
def tls_files(tmp_path: Any) -> TLSFiles:
    """A throwaway CA and a server certificate it issued for 127.0.0.1 and localhost (PEM files)."""
    return make_tls_files(tmp_path / "tls")
