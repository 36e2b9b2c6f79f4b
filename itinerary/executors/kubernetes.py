"""The Kubernetes executor: one batch/v1 Job per attempt, followed through shared watches.

`start` builds the Job (k8s_manifest), creates it under a client-side rate
limit (QPS and burst, like client-go), retrying transient API errors (5xx, 429,
connection errors) with backoff and reporting the others (403, 422) at once;
409 AlreadyExists means the Job exists from an earlier try or process, and it
is adopted, never created twice. Every run is then followed by the two
`ResourceWatch`es of its namespace (Jobs and Pods with the managed-by label,
k8s_watch), which dispatch by the run-id label into the run's
`Execution.events` queue (base.py): `started`, `running`, then one of
`succeeded`, `failed` (with the reason read by k8s_status), `killed` or `lost`.
Pods stuck pulling an image, on a config error or unschedulable are failed
after `image_pull_timeout`/`pending_timeout` on the injected clock, and their
Job deleted. A kill deletes the Job (Background propagation); when the API
cannot take the delete, it is retried in the background and the run ends
`killed` once it goes through. Only this module and the other `k8s_*` modules
import the client.

Why one long module: the executor's calls, retries and watch callbacks share one
client and one state of the runs it follows; the pure parts are apart (k8s_manifest,
k8s_status, k8s_watch).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import gevent
import gevent.pool
import urllib3
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.executors import base
from itinerary.executors.base import ExecEvent, Execution, ExecutorError, RunRequest
from itinerary.executors.k8s_manifest import (
    ATTEMPT,
    JOB_ID,
    MANAGED_BY,
    MANAGER,
    RUN_ID,
    SELECTOR,
    ManifestError,
    build_job,
)
from itinerary.executors.k8s_status import (
    IMAGE,
    Outcome,
    Stuck,
    job_outcome,
    pod_failure,
    pod_running,
    pod_stuck,
)
from itinerary.executors.k8s_watch import ResourceWatch, mark, retry_after

log = logging.getLogger(__name__)
DELETED_OUTSIDE = "Job deleted outside Itinerary"

CREATE_ATTEMPTS = 5
RETRY_FIRST, RETRY_MAX = 1.0, 16.0
TIMEOUT = (10, 30)  # connect, read: for every call that is not a watch
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def api_client(config: Config) -> client.ApiClient:
    """An ApiClient from an explicit URL + token, a kubeconfig, or the in-cluster account."""
    cfg = client.Configuration()
    if config.kube_api_url:
        cfg.host = config.kube_api_url.rstrip("/")
        # The whole "Bearer ..." string goes in the value (api_key_prefix is ignored).
        cfg.api_key = {"authorization": f"Bearer {config.kube_token}"}  # checked: config.py
    elif config.kubeconfig or config.kube_context:
        where = f"kubeconfig {config.kubeconfig or '~/.kube/config'}"
        if config.kube_context:
            where += f", context {config.kube_context}"
        _configure(where, kube_config.load_kube_config, config.kubeconfig, config.kube_context, cfg)
    else:
        try:
            kube_config.load_incluster_config(client_configuration=cfg)
        except ConfigException:
            where = "not in a cluster, and ~/.kube/config"
            _configure(where, kube_config.load_kube_config, None, None, cfg)
    if config.kube_insecure_skip_tls_verify:
        cfg.verify_ssl = False
    # Two watches per namespace hold connections for minutes; leave room for calls.
    cfg.connection_pool_maxsize = 64
    return client.ApiClient(cfg)


def _configure(where: str, load: Any, path: str | None, context: str | None, cfg: Any) -> None:
    """Load a kubeconfig; ExecutorError naming what was tried, so start-up stops with one line."""
    try:
        load(config_file=path, context=context, client_configuration=cfg)
    except (ConfigException, OSError) as exc:
        raise ExecutorError(f"cannot configure the Kubernetes client ({where}): {exc}") from None


class RateLimiter:
    """A token bucket on the injected clock: `qps` tokens a second, at most `burst` saved."""

    def __init__(self, qps: float, burst: int, clock: Clock) -> None:
        self.qps, self.burst, self.clock = qps, max(1, burst), clock
        self.tokens = float(self.burst)
        self.stamp = clock.monotonic()

    def take(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
        self.stamp = now
        self.tokens -= 1
        if self.tokens < 0:
            # The debt is paid by waiting; later callers queue behind it.
            self.clock.sleep(-self.tokens / self.qps)


@dataclass
class _Run:
    """What the executor knows about one attempt it follows."""

    execution: Execution
    namespace: str
    job: str
    # k8s_watch.mark() when STARTED was sent (0: not yet); events before it wait in `backlog`
    announced: int = 0
    backlog: list[ExecEvent] = field(default_factory=list)
    running: bool = False
    final: bool = False
    killing: str | None = None
    failure: Outcome | None = None  # why the latest pod failed
    stuck: Stuck | None = None
    stuck_since: float = 0.0


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        api: client.ApiClient | None = None,
        backoff_limit: int = 0,
        ttl_seconds_after_finished: int | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.api = api or api_client(config)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.limiter = RateLimiter(config.kube_qps, config.kube_burst, clock)
        self.backoff_limit = backoff_limit
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self.runs: dict[str, _Run] = {}  # by run id
        self.watches: dict[tuple[str, str], ResourceWatch] = {}  # by (namespace, kind)
        self.timers = gevent.pool.Group()

    # --- the executor interface ---------------------------------------------------------

    def start(self, request: RunRequest) -> Execution:
        try:
            manifest = build_job(
                request,
                backoff_limit=self.backoff_limit,
                ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            )
        except ManifestError as exc:
            raise ExecutorError(str(exc)) from None
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        run = self._follow(request, ns, name)
        try:
            self._create_or_take_over(run, request, manifest)
        except ApiException as exc:
            self.runs.pop(request.run_id, None)
            raise ExecutorError(_describe(exc), transient=_transient(exc)) from None
        except ExecutorError:
            self.runs.pop(request.run_id, None)
            raise
        self._announce(run)
        return run.execution

    def _create_or_take_over(self, run: _Run, request: RunRequest, manifest: dict) -> None:
        """Create the Job; on 409 AlreadyExists adopt it once its labels say it is ours."""
        where = f"{run.namespace}/{run.job}"
        try:
            self._with_retries(f"create Job {where}", self._create, run.namespace, manifest)
        except ApiException as exc:
            if exc.status != 409 or _reason(exc) != "AlreadyExists":
                raise
            job = self._with_retries(f"read Job {where}", self._read_job, run.namespace, run.job)
            labels = job["metadata"].get("labels") or {}
            ours = {MANAGED_BY: MANAGER, JOB_ID: str(request.job.id), RUN_ID: request.run_id}
            if any(labels.get(k) != v for k, v in ours.items()):
                raise ExecutorError(f"Job {where} exists and was not made for this run") from None
            run.execution.handle["adopted"] = True
            self._catch_up(run, job)

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        ns = handle.get("namespace") or request.job.namespace
        try:
            job = self._find_job(ns, handle.get("job"), request)
        except ApiException as exc:
            raise ExecutorError(_describe(exc), transient=_transient(exc)) from None
        if job is None:
            return None
        run = self._follow(request, ns, job["metadata"]["name"], handle)
        run.announced = mark()  # STARTED was recorded by the process that created it
        self._catch_up(run, job)
        return run.execution

    def _find_job(self, ns: str, name: str | None, request: RunRequest) -> dict[str, Any] | None:
        """The attempt's Job: by the name recorded in its handle, or by its run's labels.

        A process that died between creating the Job and recording its handle left
        no name; the run-id and attempt labels find the Job even if the job
        definition was renamed since (which changes the name's prefix).
        """
        if name:
            try:
                return self._with_retries(f"read Job {ns}/{name}", self._read_job, ns, name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        selector = f"{SELECTOR},{RUN_ID}={request.run_id},{ATTEMPT}={request.attempt}"
        items = self._list_jobs(ns, selector, f"list Jobs of run {request.run_id} in {ns}")
        return items[0] if items else None

    def kill(self, execution: Execution, reason: str, grace_seconds: float = 10.0) -> None:
        run = self.runs.get(execution.run_id)
        if run is None or run.final:
            return
        run.killing = reason
        try:
            self._with_retries(f"delete Job {run.job}", self._delete, run, grace_seconds)
        except ApiException as exc:
            if exc.status != 404:
                if _transient(exc):
                    self._keep_killing(run, grace_seconds, _describe(exc))
                    return
                run.killing = None
                raise ExecutorError(_describe(exc)) from None
        except ExecutorError as exc:  # the API stayed unreachable through the retries
            self._keep_killing(run, grace_seconds, str(exc))
            return
        self._finish(run, base.KILLED, None, reason)

    def _keep_killing(self, run: _Run, grace_seconds: float, why: str) -> None:
        """The API cannot take the delete now: keep trying, and end the run once it does.

        The run stays `running` meanwhile (its pod may well be), rather than ending
        as if killed; activeDeadlineSeconds stops the pod in the cluster regardless.
        """
        log.warning("cannot delete Job %s yet, retrying every %gs: %s", run.job, RETRY_MAX, why)
        self.timers.spawn(self._kill_later, run, grace_seconds)

    def _kill_later(self, run: _Run, grace_seconds: float) -> None:
        while True:
            self.clock.sleep(RETRY_MAX)
            if run.final:  # the Job ended (or was found gone) while we waited
                return
            try:
                self._delete(run, grace_seconds)
            except ApiException as exc:
                if exc.status != 404 and _transient(exc):
                    continue
                if exc.status != 404:
                    log.error("cannot delete Job %s: %s", run.job, _describe(exc))
                    return
            except (urllib3.exceptions.HTTPError, OSError):
                continue
            self._finish(run, base.KILLED, None, run.killing)
            return

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        """Each container's log of the attempt's pod, headed by the container's name."""
        ns, pod = cast(str, handle.get("namespace")), handle.get("pod")
        try:
            if pod is None:
                pods = self._pods_of(ns, handle["job"])
                if not pods:
                    return ""
                pod = pods[-1]["metadata"]["name"]
            containers = self._containers(ns, pod)
            parts = []
            for container in containers:
                text = self._log_text(ns, pod, container, tail_lines)
                parts.append(f"==> {container} <==\n{text}" if len(containers) > 1 else text)
            return "\n".join(parts)
        except ApiException as exc:
            if exc.status == 404:
                return ""
            raise ExecutorError(_describe(exc), transient=_transient(exc)) from None

    def close(self) -> None:
        for watch in self.watches.values():
            watch.stop()
        self.watches.clear()
        self.timers.kill(block=False)
        self.api.close()

    # --- following runs -----------------------------------------------------------------

    def _follow(
        self, request: RunRequest, ns: str, name: str, handle: dict[str, Any] | None = None
    ) -> _Run:
        handle = {**(handle or {}), "namespace": ns, "job": name}
        run = _Run(Execution(request.run_id, request.attempt, handle), ns, name)
        # Registered before the Job exists, so no event about it can go unrouted.
        self.runs[request.run_id] = run
        for kind, list_fn, on_event in (
            ("jobs", self.batch.list_namespaced_job, self._on_job),
            ("pods", self.core.list_namespaced_pod, self._on_pod),
        ):
            if (ns, kind) not in self.watches:
                watch = ResourceWatch(
                    list_fn,
                    ns,
                    SELECTOR,
                    on_event,
                    partial(self._on_sync, ns, kind),
                )
                self.watches[(ns, kind)] = watch.start()
        return run

    def _catch_up(self, run: _Run, job: dict[str, Any]) -> None:
        """Bring a run up to date from a Job read outside the watch (adoption)."""
        for pod in self._pods_of(run.namespace, run.job):
            self._on_pod("ADDED", pod)
        self._on_job("MODIFIED", job)

    def _route(self, obj: dict[str, Any]) -> _Run | None:
        labels = obj["metadata"].get("labels") or {}
        run = self.runs.get(labels.get(RUN_ID, ""))
        if run is None or run.final or labels.get(ATTEMPT) != str(run.execution.attempt):
            return None
        return run

    def _on_sync(self, ns: str, kind: str, items: list[dict[str, Any]], listed: int) -> None:
        """A fresh LIST: replay it, and lose the runs whose Job vanished unseen.

        A run announced before the LIST was sent (`listed`) and missing from it is
        gone. One announced since may be missing only because the LIST was answered
        before its create returned (they race on different greenlets): a GET, made
        in its own greenlet so this watch goes on, decides.
        """
        for item in items:
            (self._on_job if kind == "jobs" else self._on_pod)("MODIFIED", item)
        if kind != "jobs":
            return
        present = {item["metadata"]["name"] for item in items}
        for run in list(self.runs.values()):
            # A run being killed is ended by `kill`, which deleted (or deletes) the Job.
            absent = run.announced and run.killing is None and run.job not in present
            if run.namespace != ns or not absent:
                continue
            if run.announced < listed:
                self._finish(run, base.LOST, None, DELETED_OUTSIDE)
            else:
                self.timers.spawn(self._lose_if_gone, run)

    def _lose_if_gone(self, run: _Run) -> None:
        """Lose the run if its Job is really gone (a read made now comes after its create)."""
        where = f"{run.namespace}/{run.job}"
        try:
            self._with_retries(f"read Job {where}", self._read_job, run.namespace, run.job)
        except ApiException as exc:
            if exc.status == 404 and not run.final and run.killing is None:
                self._finish(run, base.LOST, None, DELETED_OUTSIDE)
            elif exc.status != 404:
                log.warning("cannot tell whether Job %s is gone: %s", where, _describe(exc))
        except ExecutorError as exc:
            log.warning("cannot tell whether Job %s is gone: %s", where, exc)

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        run = self._route(job)
        if run is None or job["metadata"]["name"] != run.job:
            return
        if kind == "DELETED":
            if run.killing is None:
                self._finish(run, base.LOST, None, DELETED_OUTSIDE)
            return
        outcome = job_outcome(job)
        if outcome is None:
            return
        condition, text = outcome
        if "pod" not in run.execution.handle or (condition == "Failed" and run.failure is None):
            # The Pod stream is not ordered with the Job stream: read what it has not said yet.
            self._read_pods(run)
        if run.final:
            return
        if condition == "Complete":
            self._finish(run, base.SUCCEEDED, 0, None)
        elif run.failure is None or text.startswith("DeadlineExceeded"):
            self._finish(run, base.FAILED, None, text)
        else:
            self._finish(run, base.FAILED, run.failure.exit_code, run.failure.reason)

    def _read_pods(self, run: _Run) -> None:
        try:
            for pod in self._pods_of(run.namespace, run.job):
                self._on_pod("MODIFIED", pod)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("cannot read the pods of %s: %s", run.job, exc)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self._route(pod)
        if run is None or kind == "DELETED":
            return
        name = pod["metadata"]["name"]
        if run.execution.handle.get("pod") != name:
            run.execution.handle["pod"] = name
            run.running = False  # a replacement pod (backoffLimit > 0) starts afresh
        failure = pod_failure(pod)
        if failure is not None:
            run.failure = failure
        if pod_running(pod):
            run.stuck = None
            if not run.running:
                run.running = True
                self._emit(run, ExecEvent(base.RUNNING, self.clock.now(), handle=self._handle(run)))
            return
        trouble = pod_stuck(pod)
        if isinstance(trouble, Outcome):
            self._give_up(run, trouble.reason or "")
        elif trouble is None:
            run.stuck = None
        elif run.stuck is None or run.stuck.timeout != trouble.timeout:
            run.stuck, run.stuck_since = trouble, self.clock.monotonic()
            self.timers.spawn(self._expire_stuck, run, trouble.timeout, run.stuck_since)
        else:
            run.stuck = trouble  # same trouble, newer words (ErrImagePull -> ImagePullBackOff)

    def _expire_stuck(self, run: _Run, timeout: str, since: float) -> None:
        limit = self.config.image_pull_timeout if timeout == IMAGE else self.config.pending_timeout
        self.clock.sleep(limit)
        stuck = run.stuck
        if not run.final and stuck and stuck.timeout == timeout and run.stuck_since == since:
            self._give_up(run, f"{stuck.reason} (pending for {limit:g}s)")

    def _give_up(self, run: _Run, reason: str) -> None:
        """Fail a run whose pod will not start, and delete its Job so it does not linger."""
        self._finish(run, base.FAILED, None, reason)
        try:
            self._delete(run, self.config.kill_grace_period)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("cannot delete the stuck Job %s: %s", run.job, exc)

    # --- events -------------------------------------------------------------------------

    def _handle(self, run: _Run) -> dict[str, Any]:
        return dict(run.execution.handle)

    def _announce(self, run: _Run) -> None:
        run.announced = mark()
        run.execution.events.put(
            ExecEvent(base.STARTED, self.clock.now(), handle=self._handle(run))
        )
        for event in run.backlog:
            run.execution.events.put(event)
        run.backlog.clear()

    def _emit(self, run: _Run, event: ExecEvent) -> None:
        (run.execution.events.put if run.announced else run.backlog.append)(event)

    def _finish(self, run: _Run, kind: str, exit_code: int | None, reason: str | None) -> None:
        if run.final:
            return
        if exit_code is not None and not run.running:
            # An exit code means the container ran, even if the pod watch has not said so
            # yet (the Job and Pod streams are not ordered with each other).
            run.running = True
            self._emit(run, ExecEvent(base.RUNNING, self.clock.now(), handle=self._handle(run)))
        run.final = True
        self.runs.pop(run.execution.run_id, None)
        event = ExecEvent(kind, self.clock.now(), exit_code, reason, self._handle(run))
        self._emit(run, event)

    # --- API calls ----------------------------------------------------------------------

    def _create(self, ns: str, manifest: dict[str, Any]) -> None:
        self.limiter.take()
        # The client takes a plain dict as the body (its stubs say V1Job).
        self.batch.create_namespaced_job(ns, manifest, _request_timeout=TIMEOUT)  # type: ignore[arg-type]

    def _list_jobs(self, ns: str, selector: str, what: str) -> list[dict[str, Any]]:
        """The Jobs in `ns` matching `selector`, transient failures retried."""
        resp = self._with_retries(
            what,
            self.batch.list_namespaced_job,
            ns,
            label_selector=selector,
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )
        return _body(resp)["items"]

    def _read_job(self, ns: str, name: str) -> dict[str, Any]:
        resp = self.batch.read_namespaced_job(
            name, ns, _preload_content=False, _request_timeout=TIMEOUT
        )
        return _body(resp)

    def _pods_of(self, ns: str, job: str) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(
            ns,
            label_selector=f"{JOB_NAME_LABEL}={job}",
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )
        pods = _body(resp)["items"]
        return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    def _containers(self, ns: str, pod: str) -> list[str]:
        resp = self.core.read_namespaced_pod(
            pod, ns, _preload_content=False, _request_timeout=TIMEOUT
        )
        return [c["name"] for c in _body(resp)["spec"]["containers"]]

    def _log_text(self, ns: str, pod: str, container: str, tail_lines: int | None) -> str:
        try:
            return self.core.read_namespaced_pod_log(
                pod, ns, container=container, tail_lines=tail_lines, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 400:  # waiting to start: say so instead of failing the page
                return f"({_message(exc)})"
            raise

    def _delete(self, run: _Run, grace_seconds: float) -> None:
        # Background: pods are deleted too; the default for Jobs would orphan them.
        self.batch.delete_namespaced_job(
            run.job,
            run.namespace,
            propagation_policy="Background",
            grace_period_seconds=int(grace_seconds),
            body=client.V1DeleteOptions(
                propagation_policy="Background", grace_period_seconds=int(grace_seconds)
            ),
            _request_timeout=TIMEOUT,
        )

    def _with_retries(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call `fn`, retrying transient failures with backoff on the clock; raise the rest."""
        delay, attempt = RETRY_FIRST, 0
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                if not _transient(exc) or attempt == CREATE_ATTEMPTS:
                    raise
                log.warning("%s: %s (attempt %d)", what, _describe(exc), attempt)
                wait = max(delay, retry_after(exc))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt == CREATE_ATTEMPTS:
                    raise ExecutorError(
                        f"{what}: Kubernetes API unreachable after {attempt} attempts: {exc}",
                        transient=True,
                    ) from None
                log.warning("%s: %s (attempt %d)", what, exc, attempt)
                wait = delay
            self.clock.sleep(wait)
            delay = min(RETRY_MAX, delay * 2)


def _transient(exc: ApiException) -> bool:
    return exc.status in (0, 429) or (exc.status or 0) >= 500


def _status(exc: ApiException) -> dict[str, Any]:
    try:
        return json.loads(exc.body or "{}")
    except ValueError:
        return {}


def _reason(exc: ApiException) -> str | None:
    return _status(exc).get("reason")


def _message(exc: ApiException) -> str:
    return _status(exc).get("message") or str(exc.reason)


def _describe(exc: ApiException) -> str:
    return f"Kubernetes API {exc.status} {_reason(exc) or exc.reason}: {_message(exc)}"


def _body(resp: Any) -> Any:
    """The JSON of a call made with `_preload_content=False` (the raw urllib3 response)."""
    return json.loads(resp.data)
