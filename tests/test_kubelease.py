"""Leader election through a Kubernetes Lease (client-go's algorithm), on the fake API server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import gevent
import pytest
import requests
from fakekube import TOKEN, FakeKube, kube_fixture  # noqa: F401 - the `kube` fixture
from gevent.event import Event
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from itinerary import lease as leasemod
from itinerary.app import App
from itinerary.clock import FakeClock
from itinerary.config import load
from itinerary.errors import ConfigError
from itinerary.kubelease import LOST_RACE, KubeLease, MicroTimeClient, kube_lease
from itinerary.lease import Lease, NoCluster, make_elector
from tests.replicas import start, stop, wait_for

TTL = leasemod.TTL.total_seconds()


@pytest.fixture
def api(kube: FakeKube) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = kube.url
    cfg.api_key = {"authorization": "Bearer " + TOKEN}
    with MicroTimeClient(cfg) as api_client:
        yield api_client


def elector(api: client.ApiClient, clock: FakeClock, name: str) -> KubeLease:
    return KubeLease(api, "itinerary", "scheduler", clock, name)


def asleep(clock: FakeClock) -> None:
    """Wait (real time: the elector talks HTTP) until a greenlet sleeps on the fake clock."""
    with gevent.Timeout(5):
        while clock.next_deadline is None:
            gevent.sleep(0.01)


def spec(kube: FakeKube) -> dict:
    lease = kube.lease("itinerary", "scheduler")
    assert lease is not None
    return lease["spec"]


def test_it_creates_the_lease_and_the_other_stands_by(kube, api, clock) -> None:
    first, second = elector(api, clock, "first"), elector(api, clock, "second")
    assert first.take() is None and first.valid()
    held = second.take()
    assert held is not None and held.name == "first" and not second.valid()
    assert spec(kube)["holderIdentity"] == "first"
    assert spec(kube)["leaseDurationSeconds"] == TTL and spec(kube)["leaseTransitions"] == 0
    assert spec(kube)["renewTime"] == clock.now().strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    clock.advance(leasemod.RENEW_EVERY)
    assert first.take() is None  # renewed: the fast path, a PUT of the cached record
    assert kube.calls("PUT", "leases") == 1 and kube.calls("GET", "leases") == 2


def test_it_takes_over_only_after_the_lease_duration_and_fences_the_old_one_first(
    kube, api, clock
) -> None:
    first, second = elector(api, clock, "first"), elector(api, clock, "second")
    assert first.take() is None
    assert second.take() is not None  # observed now: live for TTL from here
    clock.advance(TTL - leasemod.MARGIN + 0.01)  # the leader stopped renewing
    assert not first.valid()  # fenced well before anyone may take over
    clock.advance(leasemod.MARGIN - 0.02)
    assert second.take() is not None  # still within the duration it observed
    clock.advance(0.02)
    assert second.take() is None and second.valid()
    assert spec(kube)["holderIdentity"] == "second" and spec(kube)["leaseTransitions"] == 1
    assert first.take() is not None and not first.valid()


def test_it_judges_expiry_by_its_own_clock_not_by_the_renew_time(kube, api, clock) -> None:
    first = elector(api, clock, "first")
    assert first.take() is None
    clock.advance(TTL * 5)  # the leader died long ago, by renewTime...
    late = elector(api, clock, "late")
    assert late.take() is not None  # ...but a newcomer first waits a whole duration
    clock.advance(TTL + 0.01)
    assert late.take() is None


def test_it_counts_a_conflict_on_update_as_a_lost_race(kube, api, clock) -> None:
    first, second, third = (elector(api, clock, n) for n in ("first", "second", "third"))
    assert first.take() is None and second.take() and third.take()
    clock.advance(TTL + 1)
    read = third.api.read_namespaced_lease

    def read_then_lose(*args, **kwargs):
        current = read(*args, **kwargs)
        assert second.take() is None  # second writes between third's GET and PUT
        return current

    third.api.read_namespaced_lease = read_then_lose
    lost = third.take()
    assert lost is not None and lost.name == LOST_RACE and not third.valid()
    assert spec(kube)["holderIdentity"] == "second" and spec(kube)["leaseTransitions"] == 1


def test_it_hands_over_at_once_on_a_clean_release(kube, api, clock) -> None:
    first, second = elector(api, clock, "first"), elector(api, clock, "second")
    assert first.take() is None and second.take() is not None
    first.release()
    assert not first.valid()
    assert spec(kube)["holderIdentity"] == "" and spec(kube)["leaseDurationSeconds"] == 1
    assert second.take() is None  # an empty holder is free at once
    assert spec(kube)["leaseTransitions"] == 1
    second.release()
    second.release()  # not the holder any more: nothing is written
    assert kube.calls("PUT", "leases") == 3


def test_it_steps_down_when_it_cannot_renew_before_the_deadline(kube, api, clock) -> None:
    first = elector(api, clock, "first")
    assert first.take() is None
    lost: list[str] = []
    keeping = gevent.spawn(first.keep, lost.append)
    kube.fail_next(500, times=100, plural="leases")
    for _ in range(int(TTL / leasemod.RENEW_EVERY)):
        clock.advance(leasemod.RENEW_EVERY)
        keeping.join(timeout=0.5)
    assert len(lost) == 1 and "could not renew the scheduling lease in time" in lost[0]
    assert not first.valid()


def test_it_writes_micro_times_the_apiserver_accepts(kube, api, clock) -> None:
    clock.set(clock.now().replace(microsecond=0) + timedelta(seconds=1))
    first = elector(api, clock, "first")
    assert first.take() is None  # zero microseconds: isoformat() alone would drop them
    assert spec(kube)["acquireTime"].endswith(":01.000000Z")
    plain = client.CoordinationV1Api(client.ApiClient(api.configuration))
    with pytest.raises(ApiException) as err:
        plain.create_namespaced_lease("other", {"metadata": {"name": "x"}, "spec": spec(kube)})
    assert err.value.status == 400 and "parsing time" in json.loads(err.value.body)["message"]


def test_it_waits_as_a_standby_until_the_leader_releases(kube, api, clock) -> None:
    first, second = elector(api, clock, "first"), elector(api, clock, "second")
    assert first.take() is None
    waiting = gevent.spawn(second.wait, Event())
    asleep(clock)  # asked once over HTTP, told first holds it
    clock.advance(leasemod.RETRY_EVERY)
    asleep(clock)
    assert not waiting.ready()
    first.release()
    clock.advance(leasemod.RETRY_EVERY)
    assert waiting.get(timeout=5) is True


def test_it_elects_through_the_setting_and_refuses_without_a_cluster(kube, sqlite_database, clock):
    assert isinstance(make_elector(load(env={}), sqlite_database, clock), Lease)
    env = {"ITINERARY_LEADER_ELECTION": "kubernetes", "ITINERARY_KUBE_API_URL": kube.url}
    env.update(ITINERARY_KUBE_TOKEN=TOKEN, ITINERARY_LEASE_NAMESPACE="prod")
    chosen = make_elector(load(env=env), sqlite_database, clock)
    assert isinstance(chosen, KubeLease) and chosen.take() is None
    assert kube.lease("prod", "itinerary-scheduler") is not None
    alone = {"ITINERARY_LEADER_ELECTION": "kubernetes", "KUBECONFIG": "/nonexistent"}
    with pytest.raises(NoCluster, match="--leader-election=kubernetes needs a Kubernetes API"):
        kube_lease(load(env={**alone, "ITINERARY_KUBECONFIG": "/nonexistent"}), clock)
    with pytest.raises(ConfigError, match="--lease-name: 'Bad_Name' is not a Kubernetes name"):
        load(env={**alone, "ITINERARY_LEASE_NAME": "Bad_Name"})


def test_it_leads_an_app_through_the_lease_and_releases_it_on_stop(kube, tmp_path) -> None:
    env = {"ITINERARY_LEADER_ELECTION": "kubernetes", "ITINERARY_KUBE_API_URL": kube.url}
    env.update(ITINERARY_KUBE_TOKEN=TOKEN, ITINERARY_DB_DSN=f"sqlite:///{tmp_path}/it.db")
    app = App(replace(load(env=env), port=0, log_dir=str(tmp_path / "logs")))
    app.start()
    try:
        with gevent.Timeout(10):
            while requests.get(f"{app.url}/leaderz", timeout=5).status_code != 200:
                gevent.sleep(0.05)
        ready = requests.get(f"{app.url}/readyz", timeout=5).json()
        lease = kube.lease("default", "itinerary-scheduler")
        assert ready["role"] == "leader" and lease["spec"]["holderIdentity"] == ready["name"]
    finally:
        app.stop()
    assert kube.lease("default", "itinerary-scheduler")["spec"]["holderIdentity"] == ""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_it_fails_over_between_processes_through_the_lease(kube, tmp_path) -> None:
    env = {"ITINERARY_LEADER_ELECTION": "kubernetes", "ITINERARY_KUBE_API_URL": kube.url}
    env.update(ITINERARY_KUBE_TOKEN=TOKEN)
    dsn = f"sqlite:///{tmp_path}/it.db"
    a, b = replicas = start(["a", "b"], dsn, tmp_path, **env)
    try:
        holder = lambda: kube.lease("default", "itinerary-scheduler")["spec"]  # noqa: E731
        assert holder()["holderIdentity"] == a.get("/readyz").json()["name"] and not b.leads()
        a.kill()
        killed = time.monotonic()
        wait_for(b.leads, 30, "b to take over")
        assert time.monotonic() - killed > TTL - leasemod.RENEW_EVERY - 0.5  # not before expiry
        assert holder()["holderIdentity"] == b.get("/readyz").json()["name"]
        assert holder()["leaseTransitions"] == 1
        replicas.append(c := start(["c"], dsn, tmp_path, lead=False, **env)[0])
        b.term()  # a clean stop releases the lease: c takes over at its next poll
        handed = time.monotonic()
        wait_for(c.leads, 10, "c to take over")
        assert time.monotonic() - handed < 5 and holder()["leaseTransitions"] == 2
    finally:
        stop(replicas)
