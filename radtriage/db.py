"""Database helpers the apps share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from django.db import connection, transaction
from django.db.models import Model


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


def insert_rows(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts: bool = False,
) -> list[int]:
    """INSERT rows of ``model`` in one statement; return the new primary keys.

    For hot paths: ``objects.create()`` builds a model object and compiles its
    statement anew each time, which on the scoring path cost more than the
    database's own work. Values go through each field's own preparation (JSON,
    dates, foreign keys), fields not given take their defaults; no signals
    are sent and no model is validated.

    Args:
        model: The model whose table gets the rows.
        rows: Field name (or attribute name, such as ``study_id``) to value.
        skip_conflicts: Leave out a row that clashes with a unique constraint
            (ON CONFLICT DO NOTHING); its key is then missing from the result.

    Returns:
        The keys of the rows inserted, in the order given (PostgreSQL and
        SQLite return a multi-row VALUES in its order).
    """
    if not rows:
        return []
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    known = {f.name for f in fields} | {f.attname for f in fields}
    params: list[Any] = []
    for row in rows:
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
        for f in fields:
            if f.attname in row:
                value = row[f.attname]
            elif f.name in row:
                value = row[f.name]
            else:
                value = f.get_default()
            if isinstance(value, Model):  # a related object given by field name
                value = value.pk
            params.append(f.get_db_prep_save(value, connection))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns})"  # noqa: S608
        f" VALUES {', '.join([one_row] * len(rows))}"
        f"{' ON CONFLICT DO NOTHING' if skip_conflicts else ''}"
        f" RETURNING {quote(str(model._meta.pk.column))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [int(key) for (key,) in cursor.fetchall()]


_Gathered = TypeVar("_Gathered")


class OnCommitBatch(Generic[_Gathered]):
    """What one transaction gathers, acted on once after it commits.

    ``current()`` gives this thread's transaction its own ``make()``; the
    first call registers ``act(gathered)`` to run on commit. A rolled-back
    transaction drops the callback, and with it what was gathered; the next
    transaction starts afresh.
    """

    def __init__(
        self, make: Callable[[], _Gathered], act: Callable[[_Gathered], None]
    ) -> None:
        self._make, self._act = make, act
        self._local = threading.local()

    def current(self) -> _Gathered | None:
        """This transaction's gathering, or None outside a transaction."""
        connection = transaction.get_connection()
        if not connection.in_atomic_block:
            return None
        run: _Run[_Gathered] | None = getattr(self._local, "run", None)
        pending = run is not None and any(
            func is run for _, func, _ in connection.run_on_commit
        )
        # Acted on already: a test's captured callbacks stay listed after they ran.
        if run is None or run.done or not pending:
            run = _Run(self._make(), self._act)
            self._local.run = run
            transaction.on_commit(run)
        return run.gathered


class _Run(Generic[_Gathered]):
    """One transaction's on-commit callback with what it gathered."""

    def __init__(self, gathered: _Gathered, act: Callable[[_Gathered], None]) -> None:
        self.gathered, self._act = gathered, act
        self.done = False

    def __call__(self) -> None:
        self.done = True
        self._act(self.gathered)
