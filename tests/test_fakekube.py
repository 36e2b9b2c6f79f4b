"""The fake API server answers the real `kubernetes` client the way a real apiserver does."""

from __future__ import annotations

import json

import pytest
from fakekube import TOKEN, FakeKube, parse_selector
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines


@pytest.fixture
def kube():
    server = FakeKube().start()
    yield server
    server.stop()


@pytest.fixture
def api(kube):
    cfg = client.Configuration()
    cfg.host = kube.url
    cfg.api_key = {"authorization": "Bearer " + TOKEN}
    with client.ApiClient(cfg) as api_client:
        yield client.BatchV1Api(api_client), client.CoreV1Api(api_client)


def job_body(name="demo", labels=None):
    labels = labels or {"app.kubernetes.io/managed-by": "itinerary"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]},
            },
        },
    }


def status_of(err):
    return json.loads(err.value.body)


def test_it_answers_409_already_exists_exactly(api):
    batch, _ = api
    batch.create_namespaced_job("ns", job_body())
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job("ns", job_body())
    assert err.value.status == 409
    assert status_of(err) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "demo" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "demo", "group": "batch", "kind": "jobs"},
        "code": 409,
    }


def test_it_answers_404_not_found(api):
    batch, _ = api
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_job("nope", "ns")
    assert err.value.status == 404
    assert status_of(err)["message"] == 'jobs.batch "nope" not found'


def test_it_answers_422_with_causes_for_an_invalid_job(kube):
    body = job_body()
    body["spec"]["template"]["spec"]["containers"][0]["imagex"] = "typo"
    with pytest.raises(Exception) as err:
        kube.create_job("ns", body)
    status = err.value.body
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.containers.0"


def test_it_refuses_a_wrong_token(kube):
    cfg = client.Configuration()
    cfg.host = kube.url
    cfg.api_key = {"authorization": "Bearer wrong"}
    with client.ApiClient(cfg) as api_client, pytest.raises(ApiException) as err:
        client.BatchV1Api(api_client).list_namespaced_job("ns")
    assert err.value.status == 401


def test_it_selects_by_label():
    labels = {"a": "1", "b": "x"}
    assert parse_selector("a=1,b in (x, y)")(labels)
    assert parse_selector("a,!c,b notin (z)")(labels)
    assert not parse_selector("a!=1")(labels)
    assert not parse_selector("c")(labels)


def test_it_lists_with_a_resource_version_and_selector(api, kube):
    batch, _ = api
    batch.create_namespaced_job("ns", job_body("one"))
    batch.create_namespaced_job("ns", job_body("two", {"other": "x"}))
    listed = batch.list_namespaced_job("ns", label_selector="app.kubernetes.io/managed-by")
    assert [j.metadata.name for j in listed.items] == ["one"]
    assert listed.metadata.resource_version == str(kube.resource_version)


def test_it_creates_a_pending_pod_for_a_job_with_the_job_labels(api, kube):
    _, core = api
    job = kube.create_job("ns", job_body())
    [pod] = core.list_namespaced_pod("ns", label_selector="batch.kubernetes.io/job-name=demo").items
    assert pod.status.phase == "Pending"
    assert pod.metadata.labels["app.kubernetes.io/managed-by"] == "itinerary"
    assert pod.metadata.owner_references[0].uid == job["metadata"]["uid"]


def watch_lines(batch, **params):
    resp = batch.list_namespaced_job(
        "ns", watch=True, _preload_content=False, timeout_seconds=1, **params
    )
    return [json.loads(line) for line in iter_resp_lines(resp) if line]


def test_it_replays_history_after_a_resource_version(api, kube):
    batch, _ = api
    kube.create_job("ns", job_body())
    version = kube.resource_version
    job = kube.get("jobs", "ns", "demo")
    kube.run_pod(job)
    kube.finish_pod(job, 0)
    events = watch_lines(batch, resource_version=str(version))
    conditions = [c["type"] for c in events[-1]["object"]["status"]["conditions"]]
    assert conditions == ["SuccessCriteriaMet", "Complete"]
    assert all(e["type"] == "MODIFIED" for e in events)


def test_it_sends_expired_in_stream_for_a_forgotten_version(api, kube):
    batch, _ = api
    kube.create_job("ns", job_body())
    version = kube.resource_version
    kube.create_job("ns", job_body("later"))
    kube.expire()
    [event] = watch_lines(batch, resource_version=str(version))
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


def test_it_ends_a_watch_at_its_timeout_with_a_bookmark(api, kube):
    batch, _ = api
    kube.create_job("ns", job_body())
    events = watch_lines(batch, allow_watch_bookmarks=True)
    assert events[0]["type"] == "ADDED"
    assert events[-1] == {
        "type": "BOOKMARK",
        "object": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"resourceVersion": str(kube.resource_version)},
        },
    }


def test_it_orphans_pods_and_warns_when_no_policy_is_given(api, kube):
    batch, _ = api
    job = kube.create_job("ns", job_body())
    _, _, headers = batch.delete_namespaced_job_with_http_info("demo", "ns")
    assert "set propagationPolicy=Background" in headers["Warning"]
    assert kube.get("jobs", "ns", "demo") is None
    [pod] = kube.pods_of(job)
    assert "ownerReferences" not in pod["metadata"]


def test_it_answers_injected_faults_then_recovers(api, kube):
    batch, _ = api
    kube.fail_next(429, times=2, method="POST", retry_after=3)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            batch.create_namespaced_job("ns", job_body())
        assert err.value.status == 429
        assert err.value.headers["Retry-After"] == "3"
    assert batch.create_namespaced_job("ns", job_body()).metadata.name == "demo"


def test_it_says_a_container_is_waiting_when_logs_are_asked_too_early(api, kube):
    _, core = api
    job = kube.create_job("ns", job_body())
    pod = kube.pod_of(job)["metadata"]["name"]
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, "ns")
    assert err.value.status == 400
    assert status_of(err)["message"].endswith("is waiting to start: ContainerCreating")


def test_it_keeps_leases_with_optimistic_concurrency(kube):
    cfg = client.Configuration()
    cfg.host, cfg.api_key = kube.url, {"authorization": "Bearer " + TOKEN}
    leases = client.CoordinationV1Api(client.ApiClient(cfg))
    with pytest.raises(ApiException) as err:
        leases.read_namespaced_lease("l", "ns")
    assert err.value.status == 404
    assert status_of(err)["message"] == 'leases.coordination.k8s.io "l" not found'
    created = leases.create_namespaced_lease("ns", {"metadata": {"name": "l"}, "spec": {}})
    body = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    with pytest.raises(ApiException) as err:  # no resourceVersion: no unconditional update
        leases.replace_namespaced_lease("l", "ns", body)
    assert err.value.status == 422
    body["metadata"]["resourceVersion"] = created.metadata.resource_version
    assert leases.replace_namespaced_lease("l", "ns", body).spec.holder_identity == "a"
    with pytest.raises(ApiException) as err:  # the same version again: stale now
        leases.replace_namespaced_lease("l", "ns", body)
    assert err.value.status == 409 and status_of(err)["reason"] == "Conflict"
