"""Secrets never appear in an API response, a log line or a delivery record (grepped)."""

from __future__ import annotations

import logging
import socket

from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.receivers import Receiver
from tests.webhook_hub import Hub

SLACK_TOKEN = "xoxSLACKtok3nSECRET"
PD_KEY = "PDsecretROUTINGkey0123456789abcd"
NR_KEY = "NRAKsecretLICENSEkey987"
SIGNING = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4OTA="
HEADER = "Bearer hdrSECRETvalue42"
SECRETS = (SLACK_TOKEN, PD_KEY, NR_KEY, SIGNING, HEADER, "hdrSECRET")


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configs(rx: Receiver) -> list[dict]:
    down = f"http://127.0.0.1:{dead_port()}"
    return [
        {"name": "s", "type": "slack", "config": {"url": f"{down}/services/T/B/{SLACK_TOKEN}"}},
        {"name": "p", "type": "pagerduty", "config": {"routingKey": PD_KEY, "endpoint": rx.url}},
        {
            "name": "n",
            "type": "newrelic",
            "config": {"accountId": 1, "apiKey": NR_KEY, "endpoint": rx.url},
        },
        {
            "name": "c",
            "type": "custom",
            "config": {
                "url": f"{rx.url}/x?key={SLACK_TOKEN}",
                "secret": SIGNING,
                "headers": {"Authorization": HEADER},
            },
        },
    ]


def test_it_never_shows_a_secret_anywhere(api: Api, hub: Hub, custom_rx: Receiver, caplog):
    caplog.set_level(logging.DEBUG)
    for noisy in ("peewee", "urllib3"):  # as logs.setup keeps them at every --log-level
        caplog.set_level(logging.WARNING, logger=noisy)
    seen = []
    bodies = configs(custom_rx)
    for body in bodies:
        if body["name"] == "c":  # a receiver echoing the secret it was sent back
            custom_rx.answer(500, f"echo of a header: {HEADER}")
        seen.append(api.post("/integrations", json=body).get_data(as_text=True))
        seen.append(api.post(f"/integrations/{body['name']}/test").get_data(as_text=True))
    for body in bodies:
        hub.add(body["name"], body["type"], **body["config"])
        hub.send(body["name"], run_id=f"r-{body['name']}")
    seen.append(api.get("/integrations").get_data(as_text=True))
    seen.append(
        api.post(
            "/integrations",
            json={"name": "x", "type": "pagerduty", "config": {"routingKey": PD_KEY + "z"}},
        ).get_data(as_text=True)
    )
    records = hub.finals(4, advance=30, timeout=30)
    assert {r.integration for r in records} == {"s", "p", "n", "c"}
    assert any("ConnectionError" in (r.error or "") for r in records)  # the URL was in it
    text = "\n".join(seen + [repr(r) for r in hub.records] + [caplog.text])
    for secret in SECRETS:
        assert secret not in text, secret
