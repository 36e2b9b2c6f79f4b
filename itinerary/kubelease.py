"""The scheduling lease as a Kubernetes `Lease` object (`--leader-election=kubernetes`).

In a cluster, replicas can elect their leader the way Kubernetes controllers do,
without a row in Itinerary's database: a coordination.k8s.io/v1 `Lease` in
`--lease-namespace` named `--lease-name`, kept with client-go's leaderelection
algorithm (../shared/reference/protocols.md A5), which the Python client does not
ship. One attempt (`_attempt`):

1. A leader whose fence still holds PUTs its cached record with a new `renewTime`
   (the fast path); if that fails it goes on like the others.
2. GET the Lease; absent (404): CREATE it with this process as holder.
3. When the record differs from the one last seen, note the *local* monotonic time:
   another holder's lease counts as live until that time + `leaseDurationSeconds`.
   Expiry is judged by this process's clock only, never by comparing `renewTime`
   with it, so skewed clocks do not matter. Live and held by another: stand by.
4. PUT the record with this process as holder and the `resourceVersion` read:
   optimistic concurrency, so of two standbys racing for it one gets 409 Conflict
   and has lost. A takeover sets `acquireTime` and increments `leaseTransitions`.

Fencing is the database lease's (itinerary/lease.py `Elector`): `valid()` holds until
the start of the latest successful write + `TTL` - `MARGIN`. A standby counts the
TTL from when it *saw* that write, necessarily after it began, so the fence falls at
least `MARGIN` before anyone may take over. `leaseDurationSeconds` is `TTL` (10 s),
renewals come every `RENEW_EVERY` (2 s), and a leader that could not renew for
`TTL - MARGIN` (client-go's RenewDeadline, 7 s) steps down: a killed leader is
replaced within about 10 s + a standby's poll, as with the database lease (client-go's
own defaults, 15 s, would not meet issue 14's failover target of 15 s). Release on
a clean shutdown is client-go's ReleaseOnCancel: holder emptied, duration 1 s, so a
standby takes over at its next poll.

MicroTimes must carry exactly six fractional digits (the apiserver answers 400
otherwise), but the client writes datetimes with `isoformat()`, which drops zero
microseconds: `MicroTimeClient` writes them itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.models import V1Lease, V1LeaseSpec, V1ObjectMeta

from itinerary.clock import Clock
from itinerary.config import Config
from itinerary.executors.base import ExecutorError
from itinerary.lease import TTL, Elector, Holder, NoCluster

log = logging.getLogger(__name__)

TIMEOUT = (2.0, 3.0)  # connect, read: a renewal must fail well within the fence
API_VERSION = "coordination.k8s.io/v1"
LOST_RACE = "another replica (it won the race for the lease)"


def kube_lease(config: Config, clock: Clock) -> KubeLease:
    """The Kubernetes lease the settings describe; NoCluster when no API can be reached."""
    from itinerary.executors.kubernetes import api_client

    try:
        configured = api_client(config)
    except ExecutorError as exc:
        raise NoCluster(f"--leader-election=kubernetes needs a Kubernetes API: {exc}") from None
    configured.close()
    api = MicroTimeClient(configured.configuration)
    return KubeLease(api, config.lease_namespace, config.lease_name, clock)


def micro_time(when: datetime) -> str:
    """A Kubernetes MicroTime: UTC, exactly six fractional digits."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MicroTimeClient(client.ApiClient):
    """The official ApiClient, writing datetimes as MicroTimes (see the module docstring)."""

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, datetime):
            return micro_time(obj)
        return super().sanitize_for_serialization(obj)


def _record(lease: V1Lease) -> tuple[Any, ...]:
    """What client-go compares to tell that the record changed."""
    spec = lease.spec or V1LeaseSpec()
    return (
        spec.holder_identity,
        spec.lease_duration_seconds,
        spec.acquire_time,
        spec.renew_time,
        spec.lease_transitions,
    )


class KubeLease(Elector):
    """The lease as a Kubernetes `Lease` (see the module docstring)."""

    transient = (ApiException, urllib3.exceptions.HTTPError, OSError)

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        lease_name: str,
        clock: Clock,
        name: str | None = None,
    ) -> None:
        super().__init__(clock, name)
        self.api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.lease_name = lease_name
        self._lease: V1Lease | None = None  # as last read or written
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = float("-inf")  # monotonic: when `_observed` was first seen

    def _attempt(self) -> Holder | None:
        now = self.clock.now()
        if self._lease is not None and self._leads() and self.valid():
            try:
                return self._write(self._lease, now)
            except self.transient as exc:
                log.info("cannot renew the Kubernetes lease from its cached record: %s", exc)
        try:
            current = self.api.read_namespaced_lease(
                self.lease_name, self.namespace, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        self._observe(current)
        spec = current.spec or V1LeaseSpec()
        holder, duration = spec.holder_identity, spec.lease_duration_seconds or 0
        if holder and holder != self.name and self._live_for(duration) > 0:
            self.holder = Holder(holder, now + timedelta(seconds=self._live_for(duration)))
            return self.holder
        return self._write(current, now)

    def _leads(self) -> bool:
        spec = self._lease.spec if self._lease is not None else None
        return spec is not None and spec.holder_identity == self.name

    def _live_for(self, duration: float) -> float:
        """Seconds left of the observed record's lease, by this process's clock."""
        return self._observed_at + duration - self.clock.monotonic()

    def _observe(self, lease: V1Lease) -> None:
        record = _record(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock.monotonic()
        self._lease = lease

    def _spec(self, now: datetime, previous: V1LeaseSpec | None) -> V1LeaseSpec:
        previous = previous or V1LeaseSpec()
        renewing = previous.holder_identity == self.name
        return V1LeaseSpec(
            holder_identity=self.name,
            lease_duration_seconds=int(TTL.total_seconds()),
            acquire_time=previous.acquire_time if renewing else now,
            renew_time=now,
            lease_transitions=(previous.lease_transitions or 0) + (0 if renewing else 1),
        )

    def _won(self, answer: V1Lease, now: datetime) -> None:
        self._observe(answer)
        self.holder = Holder(self.name, now + TTL)

    def _create(self, now: datetime) -> Holder | None:
        spec = self._spec(now, None)
        spec.lease_transitions = 0
        meta = V1ObjectMeta(name=self.lease_name)
        body = V1Lease(api_version=API_VERSION, kind="Lease", metadata=meta, spec=spec)
        try:
            answer = self.api.create_namespaced_lease(
                self.namespace, body, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.holder = Holder(LOST_RACE, now + TTL)  # another created it first
            return self.holder
        self._won(answer, now)
        return None

    def _write(self, current: V1Lease, now: datetime) -> Holder | None:
        """PUT this process as holder over `current` (its resourceVersion: 409 if stale)."""
        spec = self._spec(now, current.spec)
        body = V1Lease(api_version=API_VERSION, kind="Lease", metadata=current.metadata, spec=spec)
        try:
            answer = self.api.replace_namespaced_lease(
                self.lease_name, self.namespace, body, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 409 or self._leads():
                raise  # a leader's conflict on the fast path: the caller reads the Lease
            self.holder = Holder(LOST_RACE, now + TTL)
            return self.holder
        self._won(answer, now)
        return None

    def release(self) -> None:
        """Hand over at once (client-go's ReleaseOnCancel); expiry frees it anyway."""
        self._valid_until = float("-inf")
        if not self._leads():
            return
        assert self._lease is not None and self._lease.spec is not None
        now = self.clock.now()
        spec = V1LeaseSpec(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            lease_transitions=self._lease.spec.lease_transitions,
        )
        body = V1Lease(
            api_version=API_VERSION, kind="Lease", metadata=self._lease.metadata, spec=spec
        )
        try:
            self.api.replace_namespaced_lease(
                self.lease_name, self.namespace, body, _request_timeout=TIMEOUT
            )
        except self.transient as exc:
            log.warning("cannot release the Kubernetes lease (it expires by itself): %s", exc)
        self._lease = None
