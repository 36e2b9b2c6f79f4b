"""Reads on the servers' pools: a pooled connection is handed out without a round trip, and
a read whose connection the server closed is made again on a new one."""

from __future__ import annotations

from collections.abc import Iterator

import peewee as pw
import pytest

from itinerary import db as dbmod
from tests.dbfaults import kill_connections


@pytest.fixture(params=["postgres", "mysql"])
def server(request: pytest.FixtureRequest, _migrated) -> Iterator[dbmod.Database]:  # type: ignore[no-untyped-def]
    database = dbmod.Database(dbmod.parse_dsn(_migrated(request.param)))
    yield database
    database.close()


def scalar(database: dbmod.Database, sql: str) -> object:
    return database.read(lambda: database.reader.execute_sql(sql).fetchone()[0])


def last_statement(database: dbmod.Database, session: object) -> str:
    sql = "SELECT query FROM pg_stat_activity WHERE pid = %s"
    return database.write(lambda: database.writer.execute_sql(sql, (session,)).fetchone()[0])


def test_it_hands_out_a_pooled_read_connection_without_a_round_trip(server) -> None:
    if server.driver == "mysql":  # a ping is counted among the session's admin commands
        pings = "SHOW SESSION STATUS LIKE 'Com_admin_commands'"
        server.reader.max_connections = 1
        before = server.read(lambda: server.reader.execute_sql(pings).fetchone()[1])
        server.read(lambda: None)
        server.read(lambda: None)
        after = server.read(lambda: server.reader.execute_sql(pings).fetchone()[1])
        assert before == after
        return
    session = scalar(server, "SELECT pg_backend_pid()")
    server.read(lambda: None)  # the same pooled connection, handed out again
    assert last_statement(server, session) == "SELECT pg_backend_pid()"


def test_it_makes_a_read_again_when_the_server_killed_its_connection(server) -> None:
    first = scalar(server, "SELECT 41 + 1")
    assert kill_connections(server) >= 1
    assert (first, scalar(server, "SELECT 40 + 2")) == (42, 42)


def test_it_does_not_repeat_a_read_that_failed_on_its_own(server) -> None:
    with pytest.raises(pw.ProgrammingError):
        scalar(server, "SELECT * FROM no_such_table")
    assert scalar(server, "SELECT 1") == 1
