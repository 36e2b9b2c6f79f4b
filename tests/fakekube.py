"""A fake Kubernetes API server, over real HTTP on 127.0.0.1, for the executor's tests.

It speaks what Itinerary's executor uses, with the JSON shapes of a real
apiserver (../shared/reference/protocols.md, part A), so the official
`kubernetes` client talks to it unmodified:

- batch/v1 Jobs: create (POST), get, list, watch, delete (Background, Foreground
  or orphaning, with the Warning header for a delete without a policy);
- v1 Pods: get, list, watch, delete, and `/log` (container, tailLines, follow);
- coordination.k8s.io/v1 Leases, for leader election: create (POST: 409
  AlreadyExists when present), get (404 when absent), replace (PUT: the body's
  `metadata.resourceVersion` must be the stored one, else 409 Conflict; without
  one 422 Invalid, as a Lease allows no unconditional update); MicroTimes with
  anything but exactly six fractional digits are a 400 BadRequest, as the real
  decoder answers;
- `resourceVersion` on every object and list, label selectors (`k=v`, `k!=v`,
  `k in (..)`, `k notin (..)`, `k`, `!k`), watches from a version (replaying
  history) or from now (synthetic ADDED events), `allowWatchBookmarks`,
  `timeoutSeconds`;
- Status bodies for 401, 404, 409 AlreadyExists, 410 Expired and 422 Invalid
  exactly as a real apiserver sends them; creates are checked against the
  Kubernetes OpenAPI schema with kubernetes-validate.

It plays the Job controller and the kubelet too, but only when a test says so,
so every scenario is deterministic and nothing sleeps: creating a Job creates
one Pending pod (`ContainerCreating`) before the create is answered, or, with
`pods_at_create=False`, only when the test calls `add_pod` (a real Job
controller creates it a moment after the answer); the test moves it on with
`run_pod`, `finish_pod`, `oom_kill`, `wait_pod` (image pull or config errors),
`unschedulable`, `evict` or `exceed_deadline`; Job status and conditions
follow the real controller (`SuccessCriteriaMet`/`FailureTarget` first, then
`Complete`/`Failed`; a failed pod is replaced until `backoffLimit`).

Faults: `fail_next` answers the next N matching requests with 500, 429 (with
Retry-After), 403 or 410; `cut_watches` drops every watch connection;
`expire` sends the in-stream ERROR 410 `Expired` event and forgets history, so
watching from an older version fails the same way; `go_down`/`come_back`
closes and reopens the listening socket (connection refused in between).
`requests` records every call, and `watch_connections` counts open watches.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import gevent
import kubernetes_validate
import pytest
from gevent import pywsgi
from gevent.event import Event
from gevent.queue import Queue

K8S_VERSION = "1.37.0"
TOKEN = "fake-token"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
UID_LABEL = "batch.kubernetes.io/controller-uid"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ROUTE = re.compile(
    r"^/(?P<group>apis/batch/v1|api/v1|apis/coordination\.k8s\.io/v1)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>jobs|pods|leases)"
    r"(?:/(?P<name>[^/]+)(?P<log>/log)?)?$"
)
# What each resource is called in Status bodies and lists.
KINDS = {
    "jobs": {"apiVersion": "batch/v1", "kind": "Job", "group": "batch", "qualified": "jobs.batch"},
    "pods": {"apiVersion": "v1", "kind": "Pod", "group": "", "qualified": "pods"},
    "leases": {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "group": "coordination.k8s.io",
        "qualified": "leases.coordination.k8s.io",
    },
}
GROUPS = {"jobs": "apis/batch/v1", "pods": "api/v1", "leases": "apis/coordination.k8s.io/v1"}
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_LEASES = KINDS["leases"]["qualified"]
_CUT, _EXPIRE, _BOOKMARK = object(), object(), object()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A `Status` failure body with the key order of a real apiserver."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    def __init__(self, body: dict, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(body["message"])
        self.body = body
        self.headers = headers or []


def parse_selector(text: str | None) -> Callable[[dict[str, str]], bool]:
    """A label selector (`k=v,k!=v,k in (a,b),k notin (a),k,!k`) as a predicate on labels."""
    terms = [t.strip() for t in re.split(r",(?![^(]*\))", text or "") if t.strip()]
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in terms:
        m = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
        elif "=" in term:
            key, value = (part.strip() for part in re.split(r"==?", term, maxsplit=1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            checks.append(lambda lb, k=absent: k not in lb)
        else:
            checks.append(lambda lb, k=term: k in lb)
    return lambda labels: all(check(labels) for check in checks)


@dataclass
class _Watcher:
    plural: str
    namespace: str | None
    matches: Callable[[dict[str, str]], bool]
    bookmarks: bool
    queue: Queue = field(default_factory=Queue)
    sock: Any = None


@dataclass
class _Fault:
    status: int
    times: int
    method: str | None
    plural: str | None
    retry_after: int | None


class _Handler(pywsgi.WSGIHandler):
    """Hands the connection's socket to the app, so a test can drop a watch mid-stream."""

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env["fakekube.socket"] = self.socket
        return env


class FakeKube:
    """The fake apiserver. `start()` it, point a client at `url` with `TOKEN`, `stop()` it."""

    def __init__(
        self, *, validate: bool = True, token: str = TOKEN, pods_at_create: bool = True
    ) -> None:
        self.validate = validate
        self.token = token
        self.pods_at_create = pods_at_create
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.resource_version = 1000
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.oldest_kept = 0  # watches from a version below this get 410 Expired
        self.watchers: list[_Watcher] = []
        self.faults: list[_Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.watches_opened = 0
        self.logs: dict[tuple[str, str, str], str] = {}
        self.log_changed = Event()
        self.on_job_created: Callable[[dict[str, Any]], None] | None = None
        self.on_event: Callable[[str, str, dict[str, Any]], None] | None = None
        self.port = 0
        self._server: pywsgi.WSGIServer | None = None

    # --- server lifecycle -------------------------------------------------------------

    def start(self) -> FakeKube:
        self._server = pywsgi.WSGIServer(
            ("127.0.0.1", self.port), self.app, handler_class=_Handler, log=None
        )
        self._server.start()
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        self.cut_watches()
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def go_down(self) -> None:
        """Close the listening socket and every watch: clients get connection refused."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.start()

    # --- faults and history -------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        method: str | None = None,
        plural: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` matching non-watch requests with `status`."""
        self.faults.append(_Fault(status, times, method, plural, retry_after))

    def cut_watches(self) -> None:
        """Drop every open watch connection, as a broken network would."""
        for w in list(self.watchers):
            w.queue.put(_CUT)

    def expire(self) -> None:
        """Forget history: open watches get ERROR 410 Expired, and so do watches from old RVs."""
        self.oldest_kept = self.resource_version + 1
        for w in list(self.watchers):
            w.queue.put(_EXPIRE)

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to watches that asked for them."""
        for w in list(self.watchers):
            if w.bookmarks:
                w.queue.put(_BOOKMARK)

    @property
    def watch_connections(self) -> int:
        return len(self.watchers)

    def calls(self, method: str, plural: str) -> int:
        """How many non-watch requests of `method` reached `plural`."""
        return sum(
            1 for m, p in self.requests if m == method and f"/{plural}" in p and "watch=" not in p
        )

    # --- the store --------------------------------------------------------------------

    def _bump(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _emit(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = self._bump()
        snapshot = copy.deepcopy(obj)
        self.history.append((self.resource_version, plural, kind, snapshot))
        ns = snapshot["metadata"].get("namespace")
        for w in self.watchers:
            if w.plural == plural and w.namespace in (None, ns):
                if w.matches(snapshot["metadata"].get("labels") or {}):
                    w.queue.put((kind, snapshot))
        if self.on_event is not None:
            self.on_event(plural, kind, snapshot)

    def _put(self, plural: str, obj: dict[str, Any], kind: str = "MODIFIED") -> None:
        meta = obj["metadata"]
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        self._emit(plural, kind, obj)

    def _remove(self, plural: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects.pop((plural, meta["namespace"], meta["name"]), None)
        self._emit(plural, "DELETED", obj)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            o for (p, ns, _), o in self.objects.items() if p == "jobs" and namespace in (None, ns)
        ]

    def job_for_run(self, run_id: str) -> dict[str, Any]:
        """The (latest) Job carrying the run-id label."""
        found = [
            j for j in self.jobs() if j["metadata"]["labels"].get("itinerary.dev/run-id") == run_id
        ]
        if not found:
            raise KeyError(run_id)
        return found[-1]

    def pods_of(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        name, ns = job["metadata"]["name"], job["metadata"]["namespace"]
        return [
            o
            for (p, pns, _), o in self.objects.items()
            if p == "pods" and pns == ns and o["metadata"]["labels"].get(JOB_NAME_LABEL) == name
        ]

    def pod_of(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.pods_of(job)[-1]

    # --- HTTP -------------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: Callable) -> Iterator[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        self.requests.append((method, path + ("?" + environ["QUERY_STRING"] if query else "")))
        try:
            if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
                raise ApiError(status_body(401, "Unauthorized", "Unauthorized"))
            route = ROUTE.match(path)
            if route is None or GROUPS[route["plural"]] != route["group"]:
                raise ApiError(
                    status_body(404, "NotFound", "the server could not find the requested resource")
                )
            plural, ns, name = route["plural"], route["ns"], route["name"]
            watching = query.get("watch") in ("true", "1")
            if not watching:
                self._maybe_fail(method, plural)
            if method == "GET" and route["log"]:
                return self._logs(ns, name, query, environ, start_response)
            if method == "GET" and watching:
                start_response("200 OK", [("Content-Type", "application/json")])
                return self._watch(plural, ns, query, environ)
            if method == "GET" and name:
                return _json(start_response, 200, self._read(plural, ns, name))
            if method == "GET":
                return _json(start_response, 200, self._list(plural, ns, query))
            if method == "POST" and plural == "jobs" and not name:
                return _json(start_response, 201, self.create_job(ns, _body(environ)))
            if method == "POST" and plural == "leases" and not name:
                return _json(start_response, 201, self.create_lease(ns, _body(environ)))
            if method == "PUT" and plural == "leases" and name:
                return _json(start_response, 200, self.replace_lease(ns, name, _body(environ)))
            if method == "DELETE" and name:
                body, headers = self._delete(plural, ns, name, query, _body(environ))
                return _json(start_response, 200, body, headers)
            raise ApiError(status_body(405, "MethodNotAllowed", f"{method} is not supported"))
        except ApiError as err:
            return _json(start_response, err.body["code"], err.body, err.headers)

    def _maybe_fail(self, method: str, plural: str) -> None:
        for fault in self.faults:
            if fault.method not in (None, method) or fault.plural not in (None, plural):
                continue
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            reasons = {
                500: ("InternalError", "Internal error occurred: etcdserver: request timed out"),
                429: ("TooManyRequests", "the server has received too many requests"),
                403: ("Forbidden", f'{KINDS[plural]["qualified"]} is forbidden: User "x" cannot'),
                410: ("Expired", "The provided continue parameter is too old"),
                503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
            }
            reason, message = reasons[fault.status]
            headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after else []
            raise ApiError(status_body(fault.status, reason, message, {}), headers)

    def _not_found(self, plural: str, name: str) -> ApiError:
        info = KINDS[plural]
        details = {"name": name, "kind": plural}
        if info["group"]:
            details = {"name": name, "group": info["group"], "kind": plural}
        return ApiError(
            status_body(404, "NotFound", f'{info["qualified"]} "{name}" not found', details)
        )

    def _read(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.get(plural, ns, name)
        if obj is None:
            raise self._not_found(plural, name)
        return obj

    def _list(self, plural: str, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        matches = parse_selector(query.get("labelSelector"))
        items = []
        for (p, ons, _), obj in sorted(self.objects.items()):
            if p == plural and ns in (None, ons) and matches(obj["metadata"].get("labels") or {}):
                item = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
                items.append(item)
        info = KINDS[plural]
        return {
            "kind": info["kind"] + "List",
            "apiVersion": info["apiVersion"],
            "metadata": {"resourceVersion": str(self.resource_version)},
            "items": items,
        }

    def _watch(
        self, plural: str, ns: str | None, query: dict[str, str], environ: dict[str, Any]
    ) -> Iterator[bytes]:
        watcher = _Watcher(
            plural,
            ns,
            parse_selector(query.get("labelSelector")),
            query.get("allowWatchBookmarks") == "true",
            sock=environ.get("fakekube.socket"),
        )
        rv = query.get("resourceVersion") or "0"
        timeout = float(query.get("timeoutSeconds") or 1800)
        # Registered before the backlog is computed, with no switch in between, so no
        # event is lost or repeated between the replay and the live stream.
        self.watchers.append(watcher)
        self.watches_opened += 1
        try:
            if rv != "0" and int(rv) < self.oldest_kept - 1:
                yield _line("ERROR", self._expired(rv))
                return
            if rv == "0":
                for obj in self._list(plural, ns, query)["items"]:
                    yield _line("ADDED", {**self._type_meta(plural), **obj})
            else:
                for version, p, kind, obj in self.history:
                    if (
                        version > int(rv)
                        and p == plural
                        and ns in (None, obj["metadata"]["namespace"])
                    ):
                        if watcher.matches(obj["metadata"].get("labels") or {}):
                            yield _line(kind, obj)
            with gevent.Timeout(timeout, False):
                while True:
                    item = watcher.queue.get()
                    if item is _CUT:
                        _drop(watcher.sock)
                        return
                    if item is _EXPIRE:
                        yield _line("ERROR", self._expired(rv))
                        return
                    if item is _BOOKMARK:
                        yield _line("BOOKMARK", self._bookmark(plural))
                        continue
                    yield _line(*item)
            if watcher.bookmarks:
                yield _line("BOOKMARK", self._bookmark(plural))
        finally:
            self.watchers.remove(watcher)

    def _type_meta(self, plural: str) -> dict[str, str]:
        return {"apiVersion": KINDS[plural]["apiVersion"], "kind": KINDS[plural]["kind"]}

    def _bookmark(self, plural: str) -> dict[str, Any]:
        return {
            **self._type_meta(plural),
            "metadata": {"resourceVersion": str(self.resource_version)},
        }

    def _expired(self, rv: str) -> dict[str, Any]:
        message = f"too old resource version: {rv} ({self.oldest_kept})"
        return status_body(410, "Expired", message)

    # --- leases -------------------------------------------------------------------------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("leases", namespace, name)

    def create_lease(self, ns: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """POST a Lease: 409 AlreadyExists when one of that name is there."""
        body = body or {}
        name = self._check_lease(body)
        if self.lease(ns, name) is not None:
            raise self._lease_error(
                409, "AlreadyExists", f'{_LEASES} "{name}" already exists', name
            )
        lease = {**self._type_meta("leases"), **copy.deepcopy(body)}
        lease["metadata"].pop("resourceVersion", None)
        lease["metadata"].update(namespace=ns, uid=_uid(), creationTimestamp=now_iso())
        self._put("leases", lease, "ADDED")
        return copy.deepcopy(lease)

    def replace_lease(self, ns: str, name: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """PUT a Lease: optimistic concurrency on `metadata.resourceVersion`."""
        body = body or {}
        if self._check_lease(body) != name:
            message = f"the name of the object ({body['metadata'].get('name')}) does not match"
            raise ApiError(
                status_body(400, "BadRequest", f"{message} the name on the URL ({name})")
            )
        stored = self._read("leases", ns, name)
        sent = body["metadata"].get("resourceVersion")
        if not sent:
            cause = {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 0x0: must be specified for an update",
                "field": "metadata.resourceVersion",
            }
            details = {"name": name, "group": KINDS["leases"]["group"], "kind": "Lease"}
            message = f'Lease.coordination.k8s.io "{name}" is invalid: metadata.resourceVersion: '
            raise ApiError(
                status_body(
                    422, "Invalid", message + cause["message"], {**details, "causes": [cause]}
                )
            )
        if sent != stored["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {_LEASES} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )
            raise self._lease_error(409, "Conflict", message, name)
        lease = {**self._type_meta("leases"), **copy.deepcopy(body)}
        kept = ("namespace", "uid", "creationTimestamp")
        lease["metadata"].update({k: stored["metadata"][k] for k in kept})
        self._put("leases", lease)
        return copy.deepcopy(lease)

    def _check_lease(self, body: dict[str, Any]) -> str:
        for key in ("acquireTime", "renewTime"):
            value = (body.get("spec") or {}).get(key)
            if value is not None and not MICRO_TIME.match(str(value)):
                raise ApiError(
                    status_body(
                        400,
                        "BadRequest",
                        f'Lease in version "v1" cannot be handled as a Lease: parsing time '
                        f'"{value}" as "2006-01-02T15:04:05.000000Z07:00": '
                        'cannot parse as ".000000"',
                    )
                )
        name = (body.get("metadata") or {}).get("name", "")
        if self.validate:  # type meta defaults to the URL's, as the apiserver's decoder does
            typed = {**self._type_meta("leases"), **body}
            try:
                kubernetes_validate.validate(typed, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "<root>"
                raise ApiError(
                    status_body(
                        422, "Invalid", f'Lease "{name}" is invalid: {where}: {exc.message}'
                    )
                ) from None
        return name

    def _lease_error(self, code: int, reason: str, message: str, name: str) -> ApiError:
        details = {"name": name, "group": KINDS["leases"]["group"], "kind": "leases"}
        return ApiError(status_body(code, reason, message, details))

    # --- jobs ---------------------------------------------------------------------------

    def create_job(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a Job: validate, store, and (as the Job controller) create its first pod."""
        name = (body.get("metadata") or {}).get("name", "")
        self._check_job(ns, name, body)
        if self.get("jobs", ns, name) is not None:
            raise ApiError(
                status_body(
                    409,
                    "AlreadyExists",
                    f'jobs.batch "{name}" already exists',
                    {"name": name, "group": "batch", "kind": "jobs"},
                )
            )
        job = copy.deepcopy(body)
        uid = _uid()
        meta = job["metadata"]
        meta.update(namespace=ns, uid=uid, generation=1, creationTimestamp=now_iso())
        spec = job["spec"]
        for key, default in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6)):
            spec.setdefault(key, default)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec["selector"] = {"matchLabels": {UID_LABEL: uid}}
        template_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
        template_labels.update(
            {UID_LABEL: uid, JOB_NAME_LABEL: name, "controller-uid": uid, "job-name": name}
        )
        job["status"] = {}
        self._put("jobs", job, "ADDED")
        created = copy.deepcopy(job)  # the answer is the object as stored, before the controller
        job["status"] = {"active": 1, "ready": 0, "terminating": 0, "startTime": now_iso()}
        self._put("jobs", job)
        if self.pods_at_create:
            self._new_pod(job)
        if self.on_job_created is not None:
            self.on_job_created(job)
        return created

    def _check_job(self, ns: str, name: str, body: dict[str, Any]) -> None:
        causes = []
        if not name or len(name) > 63 or not DNS_1123.match(name):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "{name}": must be no more than 63 characters '
                    "and a lowercase RFC 1123 subdomain",
                    "field": "metadata.name",
                }
            )
        if self.validate:
            try:
                kubernetes_validate.validate(body, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "<root>"
                causes.append(
                    {"reason": "FieldValueInvalid", "message": exc.message, "field": where}
                )
        if causes:
            summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
            raise ApiError(
                status_body(
                    422,
                    "Invalid",
                    f'Job.batch "{name}" is invalid: {summary}',
                    {"name": name, "group": "batch", "kind": "Job", "causes": causes},
                )
            )

    def _delete(
        self, plural: str, ns: str, name: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        obj = self._read(plural, ns, name)
        policy = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
        if plural == "pods":
            self._delete_pod(obj)
            return obj, []
        return self.delete_job(obj, policy)

    def delete_job(
        self, job: dict[str, Any], policy: str | None = "Background"
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Delete a Job as the apiserver and garbage collector would, by `policy`."""
        meta = job["metadata"]
        meta["deletionTimestamp"] = now_iso()
        if policy == "Foreground":
            meta["finalizers"] = ["foregroundDeletion"]
            self._put("jobs", job)
            answer = copy.deepcopy(job)
            for pod in self.pods_of(job):
                self._delete_pod(pod)
            self._remove("jobs", job)
            return answer, []
        self._remove("jobs", job)
        headers = []
        if policy == "Background":
            for pod in self.pods_of(job):
                self._delete_pod(pod)
        else:
            for pod in self.pods_of(job):
                pod["metadata"].pop("ownerReferences", None)
                self._put("pods", pod)
            if policy is None:
                headers = [
                    (
                        "Warning",
                        '299 - "child pods are preserved by default when jobs are deleted; '
                        "set propagationPolicy=Background to remove them or set "
                        'propagationPolicy=Orphan to suppress this warning"',
                    )
                ]
        details = {"name": meta["name"], "group": "batch", "kind": "jobs", "uid": meta["uid"]}
        success = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
        return success, headers

    # --- pods (the kubelet's side) ----------------------------------------------------

    def _new_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(job["spec"]["template"])
        name = f"{job['metadata']['name']}-{secrets.token_hex(3)[:5]}"
        containers = template["spec"]["containers"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": job["metadata"]["namespace"],
                "uid": _uid(),
                "creationTimestamp": now_iso(),
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"].get("annotations", {}),
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job["metadata"]["name"],
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template["spec"], "nodeName": "node-1"},
            "status": {
                "phase": "Pending",
                "conditions": [_condition("PodScheduled")],
                "containerStatuses": [
                    _container(c, {"waiting": {"reason": "ContainerCreating"}}) for c in containers
                ],
            },
        }
        self._put("pods", pod, "ADDED")
        return pod

    def add_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        """The Job controller creates the Job's pod (Pending, `ContainerCreating`)."""
        return self._new_pod(job)

    def run_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        """The latest pod's containers start: phase Running, Job ready."""
        pod = self.pod_of(job)
        started = now_iso()
        pod["status"].update(
            phase="Running",
            startTime=started,
            podIP="10.0.0.7",
            conditions=[_condition("PodScheduled"), _condition("Ready")],
            containerStatuses=[
                _container(c, {"running": {"startedAt": started}}, ready=True)
                for c in pod["spec"]["containers"]
            ],
        )
        self._put("pods", pod)
        job["status"]["ready"] = 1
        self._put("jobs", job)
        return pod

    def finish_pod(
        self, job: dict[str, Any], exit_code: int = 0, reason: str | None = None
    ) -> dict[str, Any]:
        """The latest pod's first container exits with `exit_code` (others exit 0)."""
        reason = reason or ("Completed" if exit_code == 0 else "Error")
        pod = self.pod_of(job)
        finished = now_iso()
        statuses = []
        for i, c in enumerate(pod["spec"]["containers"]):
            code, why = (exit_code, reason) if i == 0 else (0, "Completed")
            state = {"exitCode": code, "reason": why, "startedAt": finished, "finishedAt": finished}
            statuses.append(_container(c, {"terminated": state}))
        pod["status"].update(
            phase="Succeeded" if exit_code == 0 else "Failed",
            conditions=[_condition("PodScheduled"), _condition("Ready", "False")],
            containerStatuses=statuses,
        )
        self._put("pods", pod)
        self._pod_done(job, succeeded=exit_code == 0)
        return pod

    def oom_kill(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.finish_pod(job, 137, "OOMKilled")

    def wait_pod(self, job: dict[str, Any], reason: str, message: str = "") -> dict[str, Any]:
        """The latest pod's first container waits: ErrImagePull, CreateContainerConfigError..."""
        pod = self.pod_of(job)
        first = pod["spec"]["containers"][0]
        pod["status"]["containerStatuses"][0] = _container(
            first, {"waiting": {"reason": reason, "message": message}}
        )
        self._put("pods", pod)
        return pod

    def unschedulable(self, job: dict[str, Any], message: str = "") -> dict[str, Any]:
        """The scheduler cannot place the latest pod."""
        pod = self.pod_of(job)
        message = message or "0/3 nodes are available: 3 Insufficient memory."
        pod["spec"].pop("nodeName", None)
        pod["status"] = {
            "phase": "Pending",
            "conditions": [_condition("PodScheduled", "False", "Unschedulable", message)],
        }
        self._put("pods", pod)
        return pod

    def evict(self, job: dict[str, Any], message: str = "") -> dict[str, Any]:
        """The kubelet evicts the latest pod under node pressure."""
        pod = self.pod_of(job)
        pod["status"].update(
            phase="Failed",
            reason="Evicted",
            message=message or "The node was low on resource: memory.",
            conditions=[
                _condition("DisruptionTarget", "True", "TerminationByKubelet", "memory pressure")
            ],
        )
        self._put("pods", pod)
        self._pod_done(job, succeeded=False)
        return pod

    def exceed_deadline(self, job: dict[str, Any]) -> None:
        """activeDeadlineSeconds passed: the controller fails the Job and deletes its pods."""
        reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
        job["status"].update(active=0, ready=0, failed=job["status"].get("failed", 0) + 1)
        job["status"]["conditions"] = [_condition("FailureTarget", "True", reason, message)]
        self._put("jobs", job)
        for pod in self.pods_of(job):
            self._delete_pod(pod)
        job["status"]["conditions"].append(_condition("Failed", "True", reason, message))
        self._put("jobs", job)

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        pod["metadata"]["deletionTimestamp"] = now_iso()
        if pod["status"].get("phase") in ("Pending", "Running"):
            pod["status"]["phase"] = "Failed"
            for status in pod["status"].get("containerStatuses", []):
                status["state"] = {"terminated": {"exitCode": 143, "reason": "Error"}}
        self._put("pods", pod)
        self._remove("pods", pod)

    def _pod_done(self, job: dict[str, Any], *, succeeded: bool) -> None:
        """The Job controller's reaction to a finished pod."""
        status = job["status"]
        if succeeded:
            status.update(active=0, ready=0, succeeded=status.get("succeeded", 0) + 1)
            reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
            status["conditions"] = [_condition("SuccessCriteriaMet", "True", reason, message)]
            self._put("jobs", job)
            status["conditions"].append(_condition("Complete", "True", reason, message))
            status["completionTime"] = now_iso()
            self._put("jobs", job)
            return
        status.update(failed=status.get("failed", 0) + 1, ready=0)
        if status["failed"] <= job["spec"]["backoffLimit"]:
            self._put("jobs", job)
            self._new_pod(job)
            return
        status["active"] = 0
        reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        status["conditions"] = [_condition("FailureTarget", "True", reason, message)]
        self._put("jobs", job)
        status["conditions"].append(_condition("Failed", "True", reason, message))
        self._put("jobs", job)

    # --- logs ---------------------------------------------------------------------------

    def write_log(self, job: dict[str, Any], text: str, container: str | None = None) -> None:
        """Append output to a container of the Job's latest pod."""
        pod = self.pod_of(job)
        name = container or pod["spec"]["containers"][0]["name"]
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"], name)
        self.logs[key] = self.logs.get(key, "") + text
        self.log_changed.set()
        self.log_changed = Event()

    def _logs(
        self,
        ns: str,
        name: str,
        query: dict[str, str],
        environ: dict[str, Any],
        start_response: Callable,
    ) -> Iterator[bytes]:
        pod = self._read("pods", ns, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if container is None and len(names) > 1:
            message = f"a container name must be specified for pod {name}, choose one of: "
            raise ApiError(status_body(400, "BadRequest", message + f"[{' '.join(names)}]"))
        container = container or names[0]
        if container not in names:
            message = f"container {container} is not valid for pod {name}"
            raise ApiError(status_body(400, "BadRequest", message))
        state = _state(pod, container)
        if "waiting" in state:
            waiting = state["waiting"].get("reason", "ContainerCreating")
            message = f'container "{container}" in pod "{name}" is waiting to start: {waiting}'
            raise ApiError(status_body(400, "BadRequest", message))
        text = self.logs.get((ns, name, container), "")
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else ""
        start_response("200 OK", [("Content-Type", "text/plain")])
        if query.get("follow") != "true":
            return iter([text.encode()])
        return self._follow(ns, name, container, text)

    def _follow(self, ns: str, name: str, container: str, text: str) -> Iterator[bytes]:
        yield text.encode()
        sent = len(self.logs.get((ns, name, container), ""))
        while True:
            pod = self.get("pods", ns, name)
            if pod is None or "terminated" in _state(pod, container):
                yield self.logs.get((ns, name, container), "")[sent:].encode()
                return
            self.log_changed.wait(1.0)
            current = self.logs.get((ns, name, container), "")
            if len(current) > sent:
                yield current[sent:].encode()
                sent = len(current)


def _state(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for status in pod["status"].get("containerStatuses", []):
        if status["name"] == container:
            return status["state"]
    return {"waiting": {"reason": "ContainerCreating"}}


def _container(spec: dict[str, Any], state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _condition(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    cond = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now_iso()}
    if reason:
        cond.update(reason=reason, message=message)
    return cond


def _uid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()


def _drop(sock: Any) -> None:
    """Shut the connection down under the response, so the client sees it break."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _body(environ: dict[str, Any]) -> dict[str, Any] | None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    return json.loads(raw) if raw else None


def _json(
    start_response: Callable,
    code: int,
    body: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> Iterator[bytes]:
    data = json.dumps(body).encode()
    phrase = HTTPStatus(code).phrase
    start_response(
        f"{code} {phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *(headers or []),
        ],
    )
    return iter([data])


@pytest.fixture(name="kube")
def kube_fixture() -> Iterator[FakeKube]:
    """A started fake API server, stopped after the test (import it to use it)."""
    server = FakeKube().start()
    yield server
    server.stop()
