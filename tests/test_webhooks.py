import json

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from gevent.queue import Queue

from itinerary import config as cfg
from itinerary.clock import settle
from itinerary.messages import DeliverWebhook, ShutDown, WebhookDelivered, WebhookDeliveryRecord
from itinerary.webhooks.handler import WebhookHandler, safe_url


@pytest.fixture
def receiver():
    """A real HTTP endpoint on loopback that answers with the scripted statuses in turn."""
    script: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(json.loads(environ["wsgi.input"].read()))
        status, headers = script.pop(0) if script else (200, {})
        start_response(f"{status} X", list(headers.items()))
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}/hook?token=s3cret", script, seen
    server.stop()


def handler_for(clock):
    queues = (Queue(), Queue(), Queue())
    handler = WebhookHandler(*queues, clock, cfg.load(None, {}))
    return handler, queues


def message(url):
    return DeliverWebhook(
        integration=None,
        url=url,
        trigger="on_failure",
        run_id="rabc",
        job_id=1,
        variables={"status": "failed"},
        at=None,
    )


def wait_for(queue, clock):
    with gevent.Timeout(5):
        while queue.empty():
            clock.advance(1)
            gevent.sleep(0.01)
    return queue.get()


def test_it_retries_server_errors_honouring_retry_after(receiver, clock):
    url, script, seen = receiver
    script.extend([(503, {"Retry-After": "2"}), (500, {})])
    handler, (inbox, syncer, stats) = handler_for(clock)
    worker = gevent.spawn(handler.run)
    inbox.put(message(url))
    record = wait_for(syncer, clock)
    assert isinstance(record, WebhookDeliveryRecord)
    assert (record.success, record.attempt_count, record.status_code) == (True, 3, 200)
    assert seen[0] == {"event": "on_failure", "runId": "rabc", "jobId": 1, "status": "failed"}
    assert isinstance(stats.get(timeout=1), WebhookDelivered)
    inbox.put(ShutDown())
    worker.join(timeout=5)


def test_it_gives_up_at_once_on_a_client_error(receiver, clock):
    url, script, _ = receiver
    script.append((400, {}))
    handler, (_, syncer, _) = handler_for(clock)
    handler.deliver(message(url))
    settle()
    record = syncer.get(timeout=1)
    assert (record.success, record.attempt_count, record.status_code) == (False, 1, 400)
    # It should never store the token in the URL.
    assert "s3cret" not in record.url


def test_it_records_an_unknown_integration_as_failed(clock):
    handler, (_, syncer, _) = handler_for(clock)
    handler.deliver(
        DeliverWebhook(
            integration="slack-oncall",
            url=None,
            trigger="on_failure",
            run_id=None,
            job_id=None,
            variables={},
            at=None,
        )
    )
    record = syncer.get(timeout=1)
    assert not record.success and "slack-oncall" in record.error


def test_safe_url_drops_credentials_and_query():
    assert safe_url("https://u:p@h.example:8443/x?token=1") == "https://h.example:8443/x"
