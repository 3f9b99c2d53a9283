"""Fresh PostgreSQL databases for the benches: made per run, dropped after it.

The server is BENCH_POSTGRES_URL, else TEST_POSTGRES_URL, else the local one.
"""

from __future__ import annotations

import os
import secrets

import psycopg

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL",
    os.environ.get(
        "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
)


def url_of(name: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of database ``name`` on the server of ``admin_url``."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


def create_database(
    prefix: str = "radtriage_bench", admin_url: str = ADMIN_URL
) -> tuple[str, str]:
    """Create an empty database with a fresh name; its (name, URL)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, url_of(name, admin_url)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    """Drop database ``name``, disconnecting whoever is still on it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
