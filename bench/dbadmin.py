"""Benchmarks' own databases on the shared servers: create one, drop it (no gevent patching
here, so threaded and gevent benchmarks alike can use it)."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from itinerary.db import parse_dsn  # noqa: E402


def admin(dsn: str, sql: str) -> None:
    d = parse_dsn(dsn)
    if d.driver == "postgres":
        import psycopg2

        conn = psycopg2.connect(
            host=d.host, port=d.port or 5432, user=d.user, password=d.password, dbname=d.database
        )
        conn.autocommit = True
    else:
        import pymysql

        conn = pymysql.connect(
            host=d.host, port=d.port or 3306, user=d.user, password=d.password or ""
        )
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def create_database(dsn: str) -> tuple[str, str]:
    """A new empty database on the DSN's server: (its DSN, its name)."""
    d = parse_dsn(dsn)
    if d.driver == "sqlite":
        path = Path(tempfile.mkdtemp()) / "bench.db"
        return f"sqlite:///{path}", str(path)
    name = f"itinerary_bench_{secrets.token_hex(4)}"
    admin(dsn, f"CREATE DATABASE {name}")
    auth = (d.user or "") + (f":{d.password}" if d.password else "")
    scheme = "postgresql" if d.driver == "postgres" else "mysql"
    return (
        f"{scheme}://{auth}@{d.host}:{d.port or (5432 if scheme == 'postgresql' else 3306)}/{name}",
        name,
    )


def drop_database(dsn: str, name: str) -> None:
    d = parse_dsn(dsn)
    if d.driver == "sqlite":
        Path(name).unlink(missing_ok=True)
    elif d.driver == "postgres":
        admin(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        admin(dsn, f"DROP DATABASE IF EXISTS {name}")
