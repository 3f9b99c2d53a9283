"""Database helpers the apps share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def recoverable_transaction() -> Iterator[None]:
    """A transaction whose commit need not wait for the disk.

    For state that the system recovers by itself when a crash loses it (a
    claim that a sweeper retries): committing without flushing the log saves
    one disk flush on the hot path. Atomicity and consistency are unchanged;
    only the last such commits can be lost in a power failure or OS crash,
    never in a process crash. PostgreSQL: ``synchronous_commit`` off for this
    transaction. SQLite (WAL): ``synchronous=NORMAL`` while it commits; the
    next full commit flushes it too. Inside an outer transaction it is a plain
    savepoint.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    if connection.vendor == "sqlite":
        # SQLite refuses to change the safety level inside a transaction.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            with transaction.atomic():
                yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA synchronous=FULL")
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield
