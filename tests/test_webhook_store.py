"""The integration's last delivery (shown in every integration listing) is read from its index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itinerary.db import Database
from itinerary.models import WebhookDelivery
from itinerary.webhooks import store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed(database: Database, rows: int = 5000) -> None:
    def write() -> None:
        batch = [
            {
                "id": n + 1,
                "webhook_type": "slack",
                "trigger": "on_failure",
                "url": "https://hooks.slack.com/••••",
                "created_at": T0 + timedelta(seconds=n),
                "integration": f"i{n % 25}",
                "outcome": "delivered",
            }
            for n in range(rows)
        ]
        batch[0]["integration"] = "rare"  # one old delivery: a backward scan would read all
        for i in range(0, rows, 500):
            WebhookDelivery.insert_many(batch[i : i + 500]).execute(database.writer)
        analyze = {"sqlite": "ANALYZE", "postgres": "ANALYZE webhook_deliveries"}
        sql = analyze.get(database.driver, "ANALYZE TABLE webhook_deliveries")
        cursor = database.writer.execute_sql(sql)
        if database.driver == "mysql":
            cursor.fetchall()

    database.write(write)


def plan(database: Database, name: str) -> str:
    sql, params = store.last_delivery_query(name).sql()

    def explain() -> str:
        r = database.reader
        prefix = "EXPLAIN QUERY PLAN " if database.driver == "sqlite" else "EXPLAIN "
        if database.driver == "postgres":
            r.execute_sql("SET enable_seqscan = off")
        return "\n".join(str(row) for row in r.execute_sql(prefix + sql, params))

    return database.read(explain)


def test_it_reads_the_last_delivery_from_its_index(database: Database) -> None:
    seed(database)
    assert "idx_webhook_deliveries_integration" in plan(database, "rare")
    last = database.read(store.last_delivery, "i7")
    assert last == {
        "at": "2026-01-01T01:23:02Z",
        "outcome": "delivered",
        "statusCode": None,
        "error": None,
    }
