"""Settings → Integrations pages on all three databases: roles, CSRF, 422, masking, delete, test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from itinerary import tokens
from itinerary.clock import FakeClock
from itinerary.db import Database
from itinerary.messages import Flush, Queues
from itinerary.webhooks import store
from tests.api_fakes import Api, api_fixture, start_api  # noqa: F401 (the api fixture)
from tests.receivers import Receiver
from tests.web_fakes import Browser, form_fields

BASE = "/settings/integrations"
TOKEN = "XXXXsecretTOKENabcd"
SLACK_URL = f"https://hooks.slack.com/services/T000/B000/{TOKEN}"
PD_KEY = "R0UT1NGKEY0123456789abcdefWXYZ99"


@pytest.fixture
def web(api: Api) -> Browser:
    return Browser(api)


@pytest.fixture
def secured(sqlite_database: Database, clock: FakeClock, queues: Queues) -> Iterator[Api]:
    harness = start_api(sqlite_database, clock, queues, host="0.0.0.0", allowed_hosts="*")
    yield harness
    harness.close()


def _sign_in(api: Api, role: str) -> Browser:
    browser = Browser(api)
    token = tokens.create(api.database, f"{role}-user", role, api.clock.now())
    assert browser.open("POST", "/login", data={"token": token}).status_code == 303
    return browser


def _flush(api: Api) -> None:
    msg = Flush(api.clock.now())
    api.ctx.queues.syncer.put(msg)
    msg.reply.get(timeout=5)


def _slack(web: Browser, name: str = "team-slack", url: str = SLACK_URL) -> None:
    form = {"type": "slack", "name": name, "config.url": url}
    assert web.post(BASE, form).status_code == 303


def test_it_creates_a_slack_integration_and_never_shows_its_secret(web: Browser) -> None:
    _slack(web)
    assert web.api.database.read(store.get, "team-slack").config == {"url": SLACK_URL}
    for path in (BASE, f"{BASE}/team-slack/edit"):
        page = web.text(path)
        assert "team-slack" in page and "••••abcd" in page, path
        assert TOKEN not in page, path


def test_it_keeps_a_stored_secret_when_its_field_is_left_empty(web: Browser) -> None:
    form = {"type": "pagerduty", "name": "pd", "config.routingKey": PD_KEY}
    assert web.post(BASE, form).status_code == 303
    fields = form_fields(web.text(f"{BASE}/pd/edit"), f"{BASE}/pd")
    assert fields["config.routingKey"] == ""
    fields.update({"config.severity.failed": "critical", "config.rateLimit": "0.5"})
    assert web.post(f"{BASE}/pd", fields).status_code == 303
    stored = web.api.database.read(store.get, "pd").config
    assert stored == {"routingKey": PD_KEY, "severity": {"failed": "critical"}, "rateLimit": 0.5}


def test_it_rerenders_a_bad_form_with_422_beside_each_field_and_saves_nothing(
    web: Browser,
) -> None:
    bad = {"type": "newrelic", "name": "Bad Name", "config.accountId": "abc"}
    bad |= {"config.apiKey": "NRAK-secretSECRETsecret1", "config.eventType": "Metric_x"}
    resp = web.post(BASE, bad)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="err-name"' in page and 'id="err-config-accountId"' in page
    assert 'id="err-config-eventType"' in page and "NRAK-secret" not in page
    assert web.api.database.read(store.load_all) == []


def test_it_edits_a_custom_webhook_keeping_masked_headers_and_url_query(web: Browser) -> None:
    form = {"type": "custom", "name": "hook", "config.url": "https://x.example/h?token=abcdef123"}
    form |= {"config.headers": "Authorization: Bearer sekr1tsekr1t", "config.method": "PUT"}
    assert web.post(BASE, form).status_code == 303
    page = web.text(f"{BASE}/hook/edit")
    assert "sekr1t" not in page and "abcdef123" not in page
    fields = form_fields(page, f"{BASE}/hook")
    assert web.post(f"{BASE}/hook", fields | {"config.template": '{"j": {{ jobName|tojson }}}'})
    stored = web.api.database.read(store.get, "hook").config
    assert stored["headers"] == {"Authorization": "Bearer sekr1tsekr1t"}
    assert stored["url"].endswith("token=abcdef123") and stored["method"] == "PUT"
    assert stored["template"] == '{"j": {{ jobName|tojson }}}'


def test_it_refuses_a_taken_name_beside_the_name_field(web: Browser) -> None:
    _slack(web)
    resp = web.post(BASE, {"type": "slack", "name": "team-slack", "config.url": SLACK_URL})
    assert resp.status_code == 409 and 'id="err-name"' in resp.get_data(as_text=True)
    assert len(web.api.database.read(store.load_all)) == 1


def test_it_refuses_to_delete_an_integration_jobs_use_and_names_them(web: Browser) -> None:
    _slack(web)
    action = {"type": "webhook", "trigger": "on_failure", "config": {"integration": "team-slack"}}
    web.api.create_job(name="nightly-report", actions=[action])
    resp = web.post(f"{BASE}/team-slack/delete")
    assert resp.status_code == 409 and "nightly-report" in resp.get_data(as_text=True)
    assert web.api.database.read(store.get, "team-slack") is not None
    _slack(web, "spare")
    assert web.post(f"{BASE}/spare/delete").status_code == 303
    assert web.api.database.read(store.get, "spare") is None


def test_it_sends_a_test_and_shows_the_services_answer(web: Browser, slack_rx: Receiver) -> None:
    _slack(web, url=slack_rx.url + "/services/T/B/tok3nVALUEsecret")
    slack_rx.answer(404, "no_service")
    resp = web.post(f"{BASE}/team-slack/test", headers={"HX-Request": "true"})
    fragment = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Test failed" in fragment and "HTTP 404" in fragment
    assert "no_service" in fragment and "tok3nVALUE" not in fragment
    assert slack_rx.seen[0].json()["text"].startswith("Itinerary test message")
    _flush(web.api)
    page = web.text(BASE)
    assert "Broken" in page and "Slack answered 404 no_service" in page


def test_it_shows_the_last_delivery_and_a_green_test_without_javascript(
    web: Browser, slack_rx: Receiver
) -> None:
    _slack(web, url=slack_rx.url + "/services/T/B/tok3nVALUEsecret")
    page = web.post(f"{BASE}/team-slack/test").get_data(as_text=True)
    assert "Test delivered" in page and "HTTP 200" in page
    _flush(web.api)
    assert "delivered" in web.text(BASE).split("<tbody>")[1]
    assert len(slack_rx.seen) == 1


def test_it_shows_settings_only_to_admins_and_refuses_others(secured: Api) -> None:
    admin = _sign_in(secured, "admin")
    assert 'href="/settings/integrations"' in admin.text("/jobs")
    _slack(admin)
    for role in ("viewer", "operator"):
        other = _sign_in(secured, role)
        assert 'href="/settings/integrations"' not in other.text("/jobs")
        assert other.get(BASE).status_code == 403
        assert other.get(f"{BASE}/team-slack/edit").status_code == 403
        assert other.post(f"{BASE}/team-slack/delete").status_code == 403
    assert secured.database.read(store.get, "team-slack") is not None


def test_it_refuses_integration_writes_without_csrf(web: Browser) -> None:
    form = {"type": "slack", "name": "team-slack", "config.url": SLACK_URL}
    assert web.post(BASE, {**form, "_csrf": "forged"}).status_code == 403
    assert web.post(BASE, {**form, "_csrf": ""}).status_code == 403
    assert web.api.database.read(store.load_all) == []
    _slack(web)
    assert web.post(f"{BASE}/team-slack/delete", {"_csrf": "forged"}).status_code == 403
    assert web.api.database.read(store.get, "team-slack") is not None


def test_it_never_echoes_typed_header_values_or_a_url_token_on_a_422(web: Browser) -> None:
    form = {"type": "custom", "name": "hook", "config.url": "https://x.example/h?token=tok9876xyz"}
    form |= {"config.headers": "X-Key: hdr5ecret5ecret", "config.secret": "short"}
    resp = web.post(BASE, form)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="err-config-secret"' in page
    assert "hdr5ecret" not in page and "tok9876xyz" not in page and 'value="short"' not in page
    assert web.api.database.read(store.load_all) == []
