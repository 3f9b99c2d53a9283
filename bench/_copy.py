"""Bulk loading for the benches: rows into PostgreSQL by COPY, in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg


def copy_rows(
    conn: psycopg.Connection[Any],
    table: str,
    names: Sequence[str],
    rows: Iterable[Iterable[str]],
    *,
    batch: int = 20000,
) -> None:
    """COPY ``rows`` (text, ``\\N`` for NULL) into ``names`` of ``table``.

    Written in batches of ``batch`` lines: one write per row is slow, one write
    of a whole table holds all of it in memory at once.
    """
    with conn.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        lines: list[str] = []
        for row in rows:
            lines.append("\t".join(row) + "\n")
            if len(lines) >= batch:
                copy.write("".join(lines))
                lines.clear()
        if lines:
            copy.write("".join(lines))
