"""Reading many raw rows without holding the gevent hub.

A job's 30-day window is 43,200 rows. The drivers wait for the network cooperatively
(psycopg2's wait callback, PyMySQL's patched sockets), but turning rows into Python
objects is CPU work on the hub's thread: psycopg2 converts them in `fetchall`, and
PyMySQL's default cursor parses the whole result inside `execute`, tens of milliseconds
to a second in which no scheduler tick and no request runs. Here rows are converted
`CHUNK` at a time and the hub gets a turn between chunks; MySQL streams with an
unbuffered cursor so that its parsing is chunked as well. SQLite reads already run in
a worker thread (`Database.call`), so they fetch in one go.
"""

from __future__ import annotations

from typing import Any

import gevent
import peewee as pw

from itinerary.db import ThreadedSqliteDatabase

CHUNK = 2000  # rows psycopg2 converts per turn: a few ms of the hub's time
MYSQL_CHUNK = 250  # PyMySQL parses rows in Python, ~10x slower
TURN_S = 0.0005  # a timer, not 0: see `_turn`


def _turn() -> None:
    """Let the hub run one full loop: due timers (the scheduler loop's tick), sockets
    (requests) and ready greenlets. `sleep(0)` would only run the ready greenlets: under
    it a 43,200-row MySQL read still held timers and sockets for its whole 3 s."""
    gevent.sleep(TURN_S)


def fetch(query: Any) -> list[tuple[Any, ...]]:
    """The rows of `query` as the driver returns them (no model instances, no converters)."""
    database = query.model._meta.database
    database = getattr(database, "obj", database)  # the proxy's target
    if isinstance(database, ThreadedSqliteDatabase):
        return database.execute(query).fetchall()
    sql, params = database.get_sql_context().sql(query).query()
    if isinstance(database, pw.MySQLDatabase):
        import pymysql.cursors

        cursor = database.connection().cursor(pymysql.cursors.SSCursor)
        chunk_size = min(CHUNK, MYSQL_CHUNK)
    else:
        cursor = database.cursor()
        chunk_size = CHUNK
    rows: list[tuple[Any, ...]] = []
    try:
        cursor.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(chunk_size)
            if not chunk:
                return rows
            rows.extend(chunk)
            _turn()
    finally:
        cursor.close()
