"""Real database faults for tests: a server that goes away, connections that get killed.

The shared PostgreSQL and MariaDB servers cannot be stopped (others use them), so
"the database is down" is a TCP proxy on 127.0.0.1 in front of the server that the
test can cut (every connection closed, new ones refused) and restore. "Connections
killed" is `pg_terminate_backend` / `KILL` from a separate admin connection. SQLite
has no server: its outage is another connection holding an exclusive lock while the
writer's busy timeout is short, which fails writes with "database is locked".
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import gevent
from gevent import socket
from gevent.server import StreamServer

from itinerary.db import Database


class Proxy:
    """A TCP proxy to `target` that can be cut and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server: StreamServer | None = None
        self.port = 0
        self.pipes: set[socket.socket] = set()

    def start(self) -> None:
        self.server = StreamServer(("127.0.0.1", self.port), self._serve)
        self.server.start()
        self.port = self.server.server_port

    def cut(self) -> None:
        """Refuse new connections and close every open one, like a stopped server."""
        assert self.server is not None
        self.server.close()
        self.server = None
        for sock in list(self.pipes):
            sock.close()
        self.pipes.clear()

    def restore(self) -> None:
        self.start()

    def _serve(self, client: socket.socket, _address: Any) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self.pipes.update((client, upstream))
        pumps = [gevent.spawn(_pump, client, upstream), gevent.spawn(_pump, upstream, client)]
        gevent.joinall(pumps, count=1)
        for sock in (client, upstream):
            self.pipes.discard(sock)
            sock.close()
        gevent.killall(pumps)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        return


class Outage:
    """A `database` for the code under test whose server the test can stop and start."""

    def __init__(self, database: Database) -> None:
        self.direct = database
        self.driver = database.driver
        self.lock: sqlite3.Connection | None = None
        if self.driver == "sqlite":
            database.write(lambda: database.writer.execute_sql("PRAGMA busy_timeout = 20"))
            self.database = database
            return
        self.proxy = Proxy(
            (database.dsn.host or "127.0.0.1", database.dsn.port or _PORTS[self.driver])
        )
        self.proxy.start()
        dsn = dataclasses.replace(database.dsn, host="127.0.0.1", port=self.proxy.port)
        self.database = Database(dsn)

    def cut(self) -> None:
        if self.driver == "sqlite":
            # timeout=0: never block the hub; wait for the writer's commit cooperatively.
            self.lock = sqlite3.connect(self.direct.dsn.database, isolation_level=None, timeout=0)
            with gevent.Timeout(5):
                while True:
                    try:
                        self.lock.execute("BEGIN EXCLUSIVE")
                        break
                    except sqlite3.OperationalError:
                        gevent.sleep(0.001)
        else:
            self.proxy.cut()

    def restore(self) -> None:
        if self.driver == "sqlite":
            assert self.lock is not None
            self.lock.execute("COMMIT")
            self.lock.close()
        else:
            self.proxy.restore()

    def close(self) -> None:
        if self.driver != "sqlite":
            self.database.close()
            if self.proxy.server is not None:
                self.proxy.server.close()


_PORTS = {"postgres": 5432, "mysql": 3306}


def kill_connections(database: Database) -> int:
    """Kill every other session on `database`'s server database; return how many."""
    d = database.dsn
    if d.driver == "postgres":
        import psycopg2

        conn = psycopg2.connect(
            host=d.host, port=d.port or 5432, user=d.user, password=d.password, dbname=d.database
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            killed = cur.rowcount
        conn.close()
        return killed
    import pymysql

    conn = pymysql.connect(
        host=d.host, port=d.port or 3306, user=d.user, password=d.password or "", autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            (d.database,),
        )
        ids = [row[0] for row in cur.fetchall()]
        for session in ids:
            try:
                cur.execute(f"KILL {int(session)}")
            except pymysql.err.OperationalError:  # it ended on its own meanwhile
                pass
    conn.close()
    return len(ids)
