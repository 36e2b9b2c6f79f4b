import dataclasses
import socket

import requests

from itinerary import config as cfg
from itinerary.app import App


def test_it_starts_serves_and_stops_in_process(tmp_path):
    config = dataclasses.replace(
        cfg.load(None, {}),
        db_dsn=f"sqlite:///{tmp_path}/it.db",
        port=0,
        log_dir=str(tmp_path / "logs"),
    )
    app = App(config)
    app.start()
    try:
        # It should answer small requests without waiting for delayed ACKs.
        assert app.server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with requests.Session() as session:
            assert session.get(f"{app.url}/healthz", timeout=5).status_code == 200
            assert session.get(f"{app.url}/api/v1/jobs", timeout=5).json()["items"] == []
    finally:
        app.stop()
    assert all(g.dead for g in app.group)
