"""What an orchestrator tells the webhook handler: alerts, failed attempts, recoveries."""

from __future__ import annotations

from datetime import timedelta

import gevent
import pytest

from itinerary import config as configmod
from itinerary.clock import settle
from itinerary.jobs import Action, JobSpec
from itinerary.messages import DeliverWebhook
from itinerary.orchestrator import Orchestrator, Slot
from tests.fakes import FakeExecutor, FakeSyncer

RUN = "rwebhookaction1"


@pytest.fixture
def env(clock, queues):  # type: ignore[no-untyped-def]
    executor, syncer = FakeExecutor(clock), FakeSyncer(queues.syncer)
    yield executor, syncer
    syncer.stop()


def run_job(clock, queues, executor, webhook: dict, codes: tuple[int, ...]) -> list[DeliverWebhook]:  # type: ignore[no-untyped-def]
    actions = (
        Action("retry", "on_failure", {"maxRetries": len(codes) - 1}) if len(codes) > 1 else None,
        Action("webhook", "on_failure", webhook),
    )
    job = JobSpec(name="etl", id=3, commands=(("true",),), actions=tuple(a for a in actions if a))
    config = configmod.load(None, {"ITINERARY_PUBLIC_URL": "https://it.example.com/"})
    orch = Orchestrator(
        Slot(RUN, job, clock.now() + timedelta(seconds=5)), queues, clock, executor, config
    )
    gevent.spawn(orch.run)
    clock.advance(5)
    for attempt, code in enumerate(codes, start=1):
        executor.running(RUN, clock.now(), attempt=attempt)
        settle()
        clock.advance(2)
        executor.exit(RUN, clock.now(), code=code, attempt=attempt)
        settle()
        clock.advance(1)  # the retry's backoff
    return [m for m in queues.webhooks.queue if isinstance(m, DeliverWebhook)]


def test_it_sends_the_run_figures_with_an_alert(clock, queues, env) -> None:
    executor, _ = env
    (msg,) = run_job(clock, queues, executor, {"integration": "pd"}, (4,))
    assert (msg.integration, msg.kind, msg.trigger, msg.job_id) == ("pd", "alert", "on_failure", 3)
    v = msg.variables
    assert (v["status"], v["error"], v["exitCode"], v["attempt"]) == ("failed", "exit code 4", 4, 1)
    assert v["runURL"] == f"https://it.example.com/runs/{RUN}" and v["duration"] == 2.0
    assert v["slot"] == "2026-03-01T12:00:05+00:00"


def test_it_tells_of_a_failed_attempt_only_when_the_policy_asks(clock, queues, env) -> None:
    executor, _ = env
    early = run_job(clock, queues, executor, {"integration": "pd", "afterLastRetry": False}, (2, 3))
    assert [(m.kind, m.variables["error"]) for m in early] == [
        ("attempt", "exit code 2"),
        ("alert", "exit code 3"),
    ]
    assert early[0].policy == {"afterLastRetry": False}


def test_it_offers_a_recovery_when_the_job_succeeds(clock, queues, env) -> None:
    executor, _ = env
    (msg,) = run_job(clock, queues, executor, {"integration": "pd", "recovery": False}, (0,))
    assert (msg.kind, msg.trigger, msg.policy) == ("recovery", "on_failure", {"recovery": False})
    assert (msg.variables["trigger"], msg.variables["kind"]) == ("on_success", "recovery")
