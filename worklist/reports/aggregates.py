"""Database expressions for the reports: durations and a percentile aggregate.

PostgreSQL computes percentiles with its ordered-set aggregate ``percentile_cont``;
SQLite (the embedded mode) has none, so each SQLite connection gets an aggregate
function built on :class:`worklist.tat.PercentileAccumulator`, as Django itself
registers STDDEV and VARIANCE there. Both follow :func:`worklist.tat.percentile`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Aggregate, Case, Expression, F, FloatField, Func, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.db.models.sql.compiler import SQLCompiler

from worklist.tat import PercentileAccumulator

SQLITE_PERCENTILE = "radtriage_percentile_cont"

_SqlParams = tuple[str, tuple[str | int, ...]]


class Seconds(Func):
    """Seconds (a float) from one datetime expression to another."""

    output_field = FloatField()
    arity = 2

    def __init__(self, start: Expression | F, end: Expression | F) -> None:
        # Rendered as end - start.
        super().__init__(end, start)

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _SqlParams:
        # date_part gives double precision, which percentile_cont needs.
        return self.as_sql(
            compiler,
            connection,
            template="date_part('epoch', %(expressions)s)",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _SqlParams:
        # Django stores SQLite datetimes as ISO text; julianday() parses them.
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def stage_duration(starts: Sequence[str], end: str) -> Case:
    """Seconds from the first non-NULL of the ``starts`` fields to field ``end``.

    NULL when the study lacks either end or the end precedes the start, as
    :func:`worklist.tat.stage_seconds` defines it.
    """
    start: Any = (
        F(starts[0]) if len(starts) == 1 else Coalesce(*(F(name) for name in starts))
    )
    return Case(
        When(GreaterThanOrEqual(F(end), start), then=Seconds(start, F(end))),
        default=None,
        output_field=FloatField(),
    )


class PercentileCont(Aggregate):
    """The continuous percentile (0 to 1) of an expression; NULLs are ignored.

    Implemented for PostgreSQL and SQLite, the two databases RadTriage runs on.
    """

    function = "percentile_cont"
    name = "PercentileCont"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        self.fraction = float(fraction)
        super().__init__(expression, **extra)

    def _as_sql_with(
        self, template: str, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> _SqlParams:
        # Aggregate.as_sql wraps self.template in its FILTER clause; a template
        # passed as an argument would clash with the one it passes on.
        clone = self.copy()
        clone.template = template
        return super(PercentileCont, clone).as_sql(compiler, connection)

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _SqlParams:
        template = (
            f"percentile_cont({self.fraction!r}) WITHIN GROUP "
            "(ORDER BY %(expressions)s)"
        )
        return self._as_sql_with(template, compiler, connection)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _SqlParams:
        template = f"{SQLITE_PERCENTILE}(%(expressions)s, {self.fraction!r})"
        return self._as_sql_with(template, compiler, connection)


def prepare_connection(connection: BaseDatabaseWrapper) -> None:
    """Give a SQLite connection the percentile aggregate; a no-op elsewhere."""
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    connection.connection.create_aggregate(SQLITE_PERCENTILE, 2, PercentileAccumulator)
