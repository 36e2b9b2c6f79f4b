"""Integration routes on all three databases: create, read (secrets masked), update, delete."""

from __future__ import annotations

from itinerary.messages import Flush, IntegrationsChanged
from itinerary.webhooks import store
from tests.api_fakes import JOB, Api, api_fixture  # noqa: F401 - the `api` fixture
from tests.receivers import Receiver

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretTOKENabcd"
PD_KEY = "R0UT1NGKEY0123456789abcdefWXYZ99"


def flush(api: Api) -> None:
    msg = Flush(api.clock.now())
    api.ctx.queues.syncer.put(msg)
    msg.reply.get(timeout=5)


def slack(name: str = "team-slack", url: str = SLACK_URL) -> dict:
    return {"name": name, "type": "slack", "config": {"url": url}}


def test_it_creates_an_integration_and_never_returns_its_secret(api: Api) -> None:
    resp = api.post("/integrations", json=slack())
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["config"]["url"] == "••••abcd" and body["broken"] is False
    assert "XXXXsecret" not in resp.get_data(as_text=True)
    listed = api.get("/integrations").get_data(as_text=True)
    assert "team-slack" in listed and "XXXXsecret" not in listed
    assert isinstance(api.ctx.queues.webhooks.get_nowait(), IntegrationsChanged)


def test_it_names_each_bad_field(api: Api) -> None:
    bad = {"name": "Bad Name", "type": "pagerduty", "config": {"routingKey": "short", "x": 1}}
    resp = api.post("/integrations", json=bad)
    assert resp.status_code == 400
    fields = resp.get_json()["error"]["fields"]
    assert set(fields) == {"name", "config.routingKey", "config.x"}
    assert "32-character" in fields["config.routingKey"]


def test_it_keeps_a_secret_sent_back_masked(api: Api) -> None:
    api.post(
        "/integrations", json={"name": "pd", "type": "pagerduty", "config": {"routingKey": PD_KEY}}
    )
    shown = api.get("/integrations/pd").get_json()
    shown["config"]["severity"] = "critical"
    edit = {k: shown[k] for k in ("name", "type", "config")}
    resp = api.put("/integrations/pd", json=edit)
    assert resp.status_code == 200, resp.get_json()
    stored = api.database.read(store.get, "pd")
    assert stored.config == {"routingKey": PD_KEY, "severity": "critical"}


def test_it_refuses_a_duplicate_and_an_unknown_name(api: Api) -> None:
    api.post("/integrations", json=slack())
    assert api.post("/integrations", json=slack()).status_code == 409
    assert api.get("/integrations/nope").status_code == 404
    assert api.put("/integrations/nope", json=slack("nope")).status_code == 404


def test_it_refuses_to_delete_an_integration_jobs_use(api: Api) -> None:
    api.post("/integrations", json=slack())
    action = {"type": "webhook", "trigger": "on_failure", "config": {"integration": "team-slack"}}
    api.create_job(actions=[action])
    resp = api.delete("/integrations/team-slack")
    assert resp.status_code == 409 and "report" in resp.get_json()["error"]["message"]
    api.post("/integrations", json=slack("spare"))
    assert api.delete("/integrations/spare").status_code == 204
    assert api.get("/integrations/spare").status_code == 404


def test_it_tests_an_integration_with_the_services_answer(api: Api, slack_rx: Receiver) -> None:
    api.post("/integrations", json=slack(url=slack_rx.url + "/services/T/B/tok3nVALUE"))
    slack_rx.answer(404, "no_service")
    resp = api.post("/integrations/team-slack/test")
    assert resp.status_code == 200
    assert resp.get_json() | {"durationMs": 0} == {
        "ok": False,
        "statusCode": 404,
        "response": "no_service",
        "error": "HTTP 404: no_service",
        "durationMs": 0,
    }
    assert slack_rx.seen[0].json()["text"].startswith("Itinerary test message")
    flush(api)  # the broken mark is written by the syncer, nobody waits for it
    assert (
        api.get("/integrations/team-slack").get_json()["brokenReason"]
        == "Slack answered 404 no_service"
    )
    assert api.post("/integrations/team-slack/test").get_json()["ok"] is True
    flush(api)
    assert api.get("/integrations/team-slack").get_json()["broken"] is False


def test_it_names_a_bad_alert_policy_on_the_job(api: Api) -> None:
    config = {"integration": "team-slack", "afterFailures": 0}
    resp = api.post(
        "/jobs",
        json={**JOB, "actions": [{"type": "webhook", "trigger": "on_failure", "config": config}]},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["fields"] == {
        "actions[0].config": "afterFailures must be a whole number from 1 to 1000"
    }


def test_it_masks_a_custom_urls_query_and_keeps_it_on_update(api: Api) -> None:
    url = "https://hooks.example.com/in?key=querySECRET123"
    api.post("/integrations", json={"name": "c", "type": "custom", "config": {"url": url}})
    shown = api.get("/integrations/c").get_json()
    assert shown["config"]["url"] == "https://hooks.example.com/in?••••"
    assert (
        api.put(
            "/integrations/c", json={k: shown[k] for k in ("name", "type", "config")}
        ).status_code
        == 200
    )
    assert api.database.read(store.get, "c").config["url"] == url


def test_it_shows_a_template_error_when_testing(api: Api, custom_rx: Receiver) -> None:
    body = {
        "name": "c",
        "type": "custom",
        "config": {"url": custom_rx.url, "template": "{{ nope.x }}"},
    }
    assert api.post("/integrations", json=body).status_code == 201
    answer = api.post("/integrations/c/test").get_json()
    assert answer["ok"] is False and answer["error"].startswith("template error: template failed")
    assert "nope" in answer["error"] and custom_rx.seen == []


def test_it_resolves_the_pagerduty_test_incident_at_once(api: Api, pagerduty_rx: Receiver) -> None:
    config = {"routingKey": PD_KEY, "endpoint": pagerduty_rx.url + "/v2/enqueue"}
    api.post("/integrations", json={"name": "pd", "type": "pagerduty", "config": config})
    answer = api.post("/integrations/pd/test").get_json()
    assert answer["ok"] is True and answer["statusCode"] == 202
    sent = [s.json() for s in pagerduty_rx.seen]
    assert [(b["event_action"], b["dedup_key"]) for b in sent] == [
        ("trigger", "itinerary-test"),
        ("resolve", "itinerary-test"),
    ]
    assert sent[0]["payload"]["severity"] == "info"
