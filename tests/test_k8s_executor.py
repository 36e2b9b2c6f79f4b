"""The Kubernetes executor against the fake API server, through the real `kubernetes` client.

Events travel over real sockets, so tests wait for them with a bounded
`get(timeout=...)`; policy timeouts (image pull, pending, API retries) run on
the fake clock and are moved on with `clock.advance`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import gevent
import pytest
from fakekube import TOKEN, FakeKube

from itinerary import config as config_mod
from itinerary.clock import settle
from itinerary.executors import base, k8s_watch
from itinerary.executors.base import ExecutorError, RunRequest
from itinerary.executors.kubernetes import KubernetesExecutor, RateLimiter
from itinerary.jobs import parse_job

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 5  # seconds a test waits for an event that travels over a socket


@pytest.fixture
def kube():
    server = FakeKube().start()
    yield server
    server.stop()


@pytest.fixture
def config(kube):
    return replace(
        config_mod.load(None, {}),
        executor="kubernetes",
        kube_api_url=kube.url,
        kube_token=TOKEN,
        image_pull_timeout=300.0,
        pending_timeout=600.0,
    )


@pytest.fixture
def executor(config, clock):
    ex = KubernetesExecutor(config, clock)
    yield ex
    ex.close()


def make_request(run_id="rtest000000000001", attempt=1, scheduled_at=AT, **job_fields):
    body = {
        "name": "report",
        "namespace": "batch",
        "images": ["busybox:1.36"],
        "commands": [["sh", "-c", "echo hi"]],
        **job_fields,
    }
    job = parse_job(body).with_id(7)
    return RunRequest(run_id=run_id, job=job, scheduled_at=scheduled_at, attempt=attempt)


def next_event(execution, timeout=WAIT):
    with gevent.Timeout(timeout, AssertionError("no event from the executor")):
        return execution.events.get()


def no_event(execution):
    settle()
    gevent.sleep(0.05)
    assert execution.events.empty(), execution.events.peek()


def timer_armed(clock):
    """Wait until the executor has seen a stuck pod and sleeps on the clock about it."""
    with gevent.Timeout(WAIT, AssertionError("no timer armed")):
        while clock.next_deadline is None:
            gevent.sleep(0.01)


def watching(kube, connections=2):
    """Wait until the executor's watches are open on the fake (so faults hit them)."""
    with gevent.Timeout(WAIT, AssertionError("the watches never connected")):
        while kube.watch_connections < connections:
            gevent.sleep(0.01)


def started(executor, kube, request=None):
    """Start a run and return (execution, the fake's Job) after STARTED."""
    request = request or make_request()
    execution = executor.start(request)
    assert next_event(execution).kind == base.STARTED
    return execution, kube.job_for_run(request.run_id)


def test_it_reports_start_running_and_success(executor, kube):
    execution, job = started(executor, kube)
    assert execution.handle["namespace"] == "batch"
    assert execution.handle["job"] == job["metadata"]["name"]
    pod = kube.run_pod(job)
    running = next_event(execution)
    assert running.kind == base.RUNNING
    assert running.handle["pod"] == pod["metadata"]["name"]
    kube.finish_pod(job, 0)
    done = next_event(execution)
    assert (done.kind, done.exit_code, done.reason) == (base.SUCCEEDED, 0, None)
    assert done.handle["pod"] == pod["metadata"]["name"]


def test_it_creates_the_job_it_built(executor, kube):
    started(executor, kube, make_request(constraints={"maxAllowedRunTime": "30m"}))
    job = kube.jobs("batch")[0]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 1800
    assert job["metadata"]["labels"]["itinerary.dev/run-id"] == "rtest000000000001"


def test_it_reports_the_exit_code_of_a_failure(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    kube.finish_pod(job, 3)
    done = next_event(execution)
    assert (done.kind, done.exit_code) == (base.FAILED, 3)
    assert done.reason == "Error: exit code 3 (container report)"


def test_it_reports_oom_killed(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    kube.oom_kill(job)
    done = next_event(execution)
    assert (done.kind, done.exit_code) == (base.FAILED, 137)
    assert done.reason.startswith("OOMKilled")


def test_it_reports_eviction(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    kube.evict(job)
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason == "Evicted: The node was low on resource: memory."


def test_it_reports_deadline_exceeded(executor, kube):
    execution, job = started(executor, kube, make_request(constraints={"maxAllowedRunTime": "1m"}))
    kube.run_pod(job)
    next_event(execution)
    kube.exceed_deadline(job)
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason.startswith("DeadlineExceeded")


def test_it_fails_an_image_pull_after_the_timeout_and_deletes_the_job(executor, kube, clock):
    execution, job = started(executor, kube)
    kube.wait_pod(job, "ErrImagePull", 'pull access denied for "nope"')
    timer_armed(clock)
    no_event(execution)
    kube.wait_pod(job, "ImagePullBackOff", 'Back-off pulling image "nope"')
    clock.advance(299)
    no_event(execution)
    clock.advance(1)
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason.startswith('ImagePullBackOff: Back-off pulling image "nope"')
    assert kube.jobs("batch") == []


def test_it_does_not_fail_a_pull_that_recovers(executor, kube, clock):
    execution, job = started(executor, kube)
    kube.wait_pod(job, "ErrImagePull")
    timer_armed(clock)
    kube.run_pod(job)
    assert next_event(execution).kind == base.RUNNING
    clock.advance(400)
    no_event(execution)


def test_it_fails_a_missing_secret_after_the_pending_timeout(executor, kube, clock):
    execution, job = started(executor, kube)
    kube.wait_pod(job, "CreateContainerConfigError", 'secret "db" not found')
    timer_armed(clock)
    clock.advance(300)
    no_event(execution)
    clock.advance(300)
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason.startswith('CreateContainerConfigError: secret "db" not found')


def test_it_fails_an_unschedulable_pod_after_the_pending_timeout(executor, kube, clock):
    execution, job = started(executor, kube)
    kube.unschedulable(job)
    timer_armed(clock)
    no_event(execution)
    clock.advance(600)
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason.startswith("Unschedulable: 0/3 nodes are available")


def test_it_fails_an_invalid_image_name_at_once(executor, kube):
    execution, job = started(executor, kube)
    kube.wait_pod(job, "InvalidImageName", "couldn't parse image name")
    done = next_event(execution)
    assert done.kind == base.FAILED
    assert done.reason.startswith("InvalidImageName")


def test_it_survives_a_watch_cut_mid_run(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    watching(kube)
    opened = kube.watches_opened
    kube.cut_watches()
    kube.finish_pod(job, 0)  # while the watches are reconnecting
    done = next_event(execution)
    assert done.kind == base.SUCCEEDED
    assert kube.watches_opened > opened


def test_it_relists_after_410_gone_mid_run(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    watching(kube)
    relists = sum(w.relists for w in executor.watches.values())
    kube.expire()
    kube.finish_pod(job, 2)
    done = next_event(execution)
    assert (done.kind, done.exit_code) == (base.FAILED, 2)
    assert sum(w.relists for w in executor.watches.values()) > relists


def test_it_relists_after_an_http_410_on_watch(executor, kube):
    execution, job = started(executor, kube)
    watching(kube)
    kube.fail_next(410, plural="jobs")  # the relist is answered 410 once, then works
    kube.expire()
    kube.finish_pod(job, 0)
    assert [next_event(execution).kind for _ in range(2)] == [base.RUNNING, base.SUCCEEDED]


def test_it_retries_a_create_answered_500_then_succeeds(executor, kube, clock):
    kube.fail_next(500, times=2, method="POST")
    runner = gevent.spawn(executor.start, make_request())
    for _ in range(2):
        gevent.sleep(0.05)
        clock.advance(5)
    execution = runner.get(timeout=WAIT)
    assert next_event(execution).kind == base.STARTED
    assert kube.calls("POST", "jobs") == 3


def test_it_reports_an_unreachable_api_after_retries(executor, kube, clock):
    kube.go_down()
    runner = gevent.spawn(executor.start, make_request())
    with gevent.Timeout(WAIT):
        while not runner.ready():
            gevent.sleep(0.02)
            clock.advance(30)
    with pytest.raises(ExecutorError) as err:
        runner.get()
    assert err.value.transient
    assert "unreachable" in str(err.value)
    assert executor.runs == {}


def test_it_reports_forbidden_at_once(executor, kube):
    kube.fail_next(403, method="POST")
    with pytest.raises(ExecutorError) as err:
        executor.start(make_request())
    assert not err.value.transient
    assert "403 Forbidden" in str(err.value)
    assert kube.calls("POST", "jobs") == 1


def test_it_refuses_a_job_without_images(executor):
    request = make_request(images=[], commands=[["true"]])
    with pytest.raises(ExecutorError):
        executor.start(request)


def test_it_adopts_on_409_instead_of_running_twice(config, clock, kube):
    first = KubernetesExecutor(config, clock)
    execution, job = started(first, kube)
    first.close()
    second = KubernetesExecutor(config, clock)
    try:
        again = second.start(make_request())
        event = next_event(again)
        assert event.kind == base.STARTED and event.handle["adopted"]
        assert len(kube.jobs("batch")) == 1
        kube.run_pod(job)
        assert next_event(again).kind == base.RUNNING
        kube.finish_pod(job, 0)
        assert next_event(again).kind == base.SUCCEEDED
    finally:
        second.close()


def test_it_adopts_a_running_job_after_a_restart(config, clock, kube):
    first = KubernetesExecutor(config, clock)
    execution, job = started(first, kube)
    kube.run_pod(job)
    assert next_event(execution).kind == base.RUNNING
    handle = dict(execution.handle)
    first.close()
    second = KubernetesExecutor(config, clock)
    try:
        adopted = second.adopt(make_request(), handle)
        assert next_event(adopted).kind == base.RUNNING
        kube.finish_pod(job, 0)
        assert next_event(adopted).kind == base.SUCCEEDED
        assert kube.calls("POST", "jobs") == 1
    finally:
        second.close()


def test_it_reports_a_job_that_finished_while_nobody_watched(config, clock, kube):
    first = KubernetesExecutor(config, clock)
    execution, job = started(first, kube)
    handle = dict(execution.handle)
    first.close()
    kube.run_pod(job)
    kube.finish_pod(job, 4)
    second = KubernetesExecutor(config, clock)
    try:
        adopted = second.adopt(make_request(), handle)
        kinds = [next_event(adopted).kind, next_event(adopted)]
        assert kinds[0] == base.RUNNING
        assert (kinds[1].kind, kinds[1].exit_code) == (base.FAILED, 4)
    finally:
        second.close()


def test_it_refuses_to_adopt_another_runs_job(executor, kube):
    started(executor, kube)
    with pytest.raises(ExecutorError) as err:
        executor.start(make_request(run_id="rother0000000001"))
    assert "not made for this run" in str(err.value)


def test_it_cannot_adopt_a_job_that_is_gone(executor, kube):
    handle = {"namespace": "batch", "job": "report-0123456789"}
    assert executor.adopt(make_request(), handle) is None


def test_it_kills_with_background_propagation(executor, kube):
    execution, job = started(executor, kube)
    kube.run_pod(job)
    next_event(execution)
    executor.kill(execution, "cancelled by alice", grace_seconds=5)
    done = next_event(execution)
    assert (done.kind, done.reason) == (base.KILLED, "cancelled by alice")
    deletes = [p for m, p in kube.requests if m == "DELETE"]
    assert "propagationPolicy=Background" in deletes[0]
    assert "gracePeriodSeconds=5" in deletes[0]
    assert kube.jobs() == [] and kube.pods_of(job) == []
    no_event(execution)


def test_it_reports_a_job_deleted_by_someone_else_as_lost(executor, kube):
    execution, job = started(executor, kube)
    kube.delete_job(job)
    done = next_event(execution)
    assert (done.kind, done.reason) == (base.LOST, "Job deleted outside Itinerary")


def test_it_notices_a_deletion_missed_while_disconnected(executor, kube):
    execution, job = started(executor, kube)
    watching(kube)
    kube.expire()  # the watches relist, and the Job is no longer in the list
    kube.delete_job(job)
    done = next_event(execution)
    assert done.kind == base.LOST


def test_a_list_answered_before_our_create_returned_does_not_lose_the_run(executor, kube):
    # The watch's LIST and our create race on different greenlets: a LIST taken
    # just before the Job existed arrives after STARTED. Its silence is not a deletion.
    listed = k8s_watch.mark()  # the LIST went out before our create returned ...
    execution, job = started(executor, kube)
    executor._on_sync("batch", "jobs", [], listed)  # ... and is answered after STARTED
    no_event(execution)
    kube.run_pod(job)
    kube.finish_pod(job, 0)
    assert [next_event(execution).kind, next_event(execution).kind] == [
        base.RUNNING,
        base.SUCCEEDED,
    ]


def test_such_a_list_still_loses_a_run_whose_job_is_really_gone(executor, kube):
    listed = k8s_watch.mark()
    execution, job = started(executor, kube)
    for watch in executor.watches.values():
        watch.stop()  # so only the LIST's answer can tell
    kube.delete_job(job)
    executor._on_sync("batch", "jobs", [], listed)
    done = next_event(execution)
    assert (done.kind, done.reason) == (base.LOST, "Job deleted outside Itinerary")


def test_it_ignores_pods_of_an_earlier_attempt(executor, kube):
    first, job1 = started(executor, kube, make_request(attempt=1))
    kube.run_pod(job1)
    next_event(first)
    kube.finish_pod(job1, 1)
    assert next_event(first).kind == base.FAILED
    second, job2 = started(executor, kube, make_request(attempt=2))
    assert job2["metadata"]["name"] != job1["metadata"]["name"]
    kube.run_pod(job2)
    kube.finish_pod(job2, 0)
    assert [next_event(second).kind, next_event(second).kind] == [base.RUNNING, base.SUCCEEDED]


def test_it_follows_a_replacement_pod_when_backoff_allows(config, clock, kube):
    executor = KubernetesExecutor(config, clock, backoff_limit=1)
    try:
        execution, job = started(executor, kube)
        first = kube.run_pod(job)
        next_event(execution)
        kube.finish_pod(job, 1)  # the controller makes a second pod
        second = kube.run_pod(job)
        assert next_event(execution).handle["pod"] == second["metadata"]["name"]
        assert second["metadata"]["name"] != first["metadata"]["name"]
        kube.finish_pod(job, 0)
        assert next_event(execution).kind == base.SUCCEEDED
    finally:
        executor.close()


def test_it_uses_one_watch_per_namespace_and_kind(executor, kube):
    executions = []
    for i in range(20):
        namespace = "batch" if i % 2 else "etl"
        at = AT + timedelta(minutes=i)
        request = make_request(run_id=f"rtest{i:012d}", scheduled_at=at, namespace=namespace)
        executions.append(executor.start(request))
    assert len(executor.watches) == 4
    watching(kube, 4)
    for job in kube.jobs():
        kube.run_pod(job)
        kube.finish_pod(job, 0)
    for execution in executions:
        kinds = [next_event(execution).kind for _ in range(3)]
        assert kinds == [base.STARTED, base.RUNNING, base.SUCCEEDED]
    assert kube.watch_connections == 4


def test_it_reads_the_log_tail_of_each_container(executor, kube):
    request = make_request(images=["busybox", "sidecar"], commands=[["sh"]])
    execution, job = started(executor, kube, request)
    assert "waiting to start: ContainerCreating" in executor.logs(execution.handle)
    kube.run_pod(job)
    next_event(execution)
    kube.write_log(job, "one\ntwo\nthree\n")
    kube.write_log(job, "side\n", container="report-1")
    text = executor.logs(next_event_handle(execution, kube, job), tail_lines=2)
    assert text == "==> report <==\ntwo\nthree\n\n==> report-1 <==\nside\n"


def next_event_handle(execution, kube, job):
    return {**execution.handle, "pod": kube.pod_of(job)["metadata"]["name"]}


def test_the_rate_limiter_waits_when_the_burst_is_spent(clock):
    limiter = RateLimiter(qps=2, burst=2, clock=clock)
    limiter.take()
    limiter.take()
    waiter = gevent.spawn(limiter.take)
    settle()
    assert not waiter.ready()
    clock.advance(0.5)
    assert waiter.ready()


# --- through the orchestrator (the scheduler's per-run component) ---------------------------


@pytest.fixture
def orchestrate(executor, kube, clock, queues):
    """Launch an Orchestrator on the real executor; return (syncer, the fake's Job)."""
    from itinerary.orchestrator import Orchestrator, Slot
    from tests.fakes import FakeSyncer

    syncer = FakeSyncer(queues.syncer)

    def launch(**job_fields):
        request = make_request(**job_fields)
        slot = Slot(request.run_id, request.job, clock.now() + timedelta(seconds=5))
        orchestrator = Orchestrator(slot, queues, clock, executor, config_mod.load(None, {}))
        gevent.spawn(orchestrator.run)
        clock.advance(5)
        with gevent.Timeout(WAIT):
            while not kube.jobs():
                gevent.sleep(0.01)
        return kube.job_for_run(request.run_id)

    yield syncer, launch
    syncer.stop()


def final_update(syncer, run_id="rtest000000000001"):
    with gevent.Timeout(WAIT, AssertionError("the run never finished")):
        while syncer.final(run_id) is None:
            gevent.sleep(0.01)
    return syncer.final(run_id)


def test_a_run_succeeds_through_the_orchestrator(orchestrate, kube):
    syncer, launch = orchestrate
    job = launch()
    kube.run_pod(job)
    kube.finish_pod(job, 0)
    final = final_update(syncer)
    assert final.status == "succeeded"
    assert syncer.statuses("rtest000000000001")[-2:] == ["running", "succeeded"]
    handles = [u.handle for u in syncer.updates if u.handle]
    assert handles[-1]["job"] == job["metadata"]["name"]
    assert handles[-1]["pod"] == kube.pod_of(job)["metadata"]["name"]


def test_an_oom_killed_run_fails_through_the_orchestrator(orchestrate, kube):
    syncer, launch = orchestrate
    job = launch()
    kube.run_pod(job)
    kube.oom_kill(job)
    final = final_update(syncer)
    assert (final.status, final.exit_code) == ("failed", 137)
    assert "OOMKilled" in (final.reason or final.error or "")


def test_max_allowed_run_time_deletes_the_job_through_the_orchestrator(orchestrate, kube, clock):
    syncer, launch = orchestrate
    job = launch(constraints={"maxAllowedRunTime": "1m"})
    kube.run_pod(job)
    with gevent.Timeout(WAIT):
        while "running" not in syncer.statuses("rtest000000000001"):
            gevent.sleep(0.01)
    clock.advance(61)
    final = final_update(syncer)
    assert final.status == "failed" and "maxAllowedRunTime" in final.reason
    assert kube.jobs() == []
    deletes = [p for m, p in kube.requests if m == "DELETE"]
    assert "propagationPolicy=Background" in deletes[0]
