"""The anomaly detector as a component on all three databases: baselines from the job's
history, anomalies written through the syncer, counted, acted on; silent slots; the API."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import gevent
import pytest
from gevent.queue import Queue
from prometheus_client import CollectorRegistry

from itinerary import config as configmod
from itinerary import jobstore, messages
from itinerary.anomaly import actions
from itinerary.anomaly.detector import Detector
from itinerary.clock import FakeClock, settle
from itinerary.db import Database
from itinerary.history import Anomaly
from itinerary.jobs import parse_job
from itinerary.metrics import Metrics
from itinerary.models import ActionRun, JobRun
from itinerary.stats import StatsCollector
from itinerary.syncer import Syncer
from tests.api_fakes import Api, api_fixture  # noqa: F401 - the `api` fixture

HOOK = {"type": "webhook", "trigger": "on_anomaly", "config": {"url": "http://127.0.0.1:9/x"}}


@pytest.fixture
def rig(database: Database, clock: FakeClock):
    """A syncer and a detector on the database, with their queues and metrics."""
    queues = messages.Queues(Queue(), Queue(maxsize=1000), Queue(), Queue(), Queue())
    config = configmod.load(None, {})
    syncer = Syncer(queues.syncer, database, clock, queues.stats, config)
    metrics = Metrics(CollectorRegistry())
    detector = Detector(queues.anomaly, queues, database, clock, config, metrics)
    greenlets = [gevent.spawn(syncer.run), gevent.spawn(detector.run)]
    yield queues, detector, metrics
    for q in (queues.anomaly, queues.syncer):
        q.put(messages.ShutDown())
    gevent.joinall(greenlets, timeout=10)


def add_job(database, clock, **fields):
    spec = parse_job({"name": "backup", "commands": [["true"]], **fields})
    return database.write(lambda: jobstore.save_job(database.writer, spec, clock.now()))


def add_runs(database, job_id, start, count, seconds=60.0, every=timedelta(hours=1), skip=()):
    rows = [
        dict(
            job_id=job_id,
            scheduled_at=start + n * every,
            run_id=f"r{job_id:04d}{n:011d}",
            status="succeeded",
            started_at=start + n * every,
            completed_at=start + n * every + timedelta(seconds=seconds + n % 3),
            created_at=start,
            updated_at=start,
        )
        for n in range(count)
        if n not in skip
    ]
    database.write(lambda: JobRun.insert_many(rows).execute(database.writer))


def written(database, queues, clock, detector, handled=0):
    """The anomalies stored, once the detector has dealt with `handled` messages."""
    with gevent.Timeout(10):
        while detector.handled < handled:
            gevent.sleep(0.01)
    settle()
    done = messages.Flush(clock.now())
    queues.syncer.put(done)
    done.reply.get(timeout=10)
    rows = Anomaly.select().order_by(Anomaly.slot_at, Anomaly.detected_at)
    return database.read(lambda: list(rows))


@pytest.mark.covers("on_anomaly")
def test_it_finds_a_slow_run_against_the_job_history_and_acts(database, clock, rig):
    queues, detector, metrics = rig
    job = add_job(database, clock, actions=[HOOK])
    add_runs(database, job.id, clock.now() - timedelta(days=2), 30)
    run = "rslowslowslow001"
    queues.anomaly.put(
        messages.RunCompleted(run, job.id, "backup", "succeeded", clock.now(), 600.0, 0, 0)
    )
    [found] = written(database, queues, clock, detector, 1)
    assert (found.kind, found.run_id, found.job_id) == ("duration", run, job.id)
    assert found.explanation.startswith("took 10m; the last 30 successful runs took 1m1s median")
    hook = queues.webhooks.get(timeout=5)
    assert hook.trigger == "on_anomaly" and hook.variables["explanation"] == found.explanation
    assert metrics.anomalies.labels("duration")._value.get() == 1
    assert database.read(lambda: ActionRun.get(ActionRun.run_id == run).trigger) == "on_anomaly"


def test_it_leaves_the_run_at_hand_out_of_the_baseline(database, clock, rig):
    queues, detector, metrics = rig
    job = add_job(database, clock)
    add_runs(database, job.id, clock.now() - timedelta(days=1), 9)  # nine: below the minimum
    slow = dict(job_id=job.id, scheduled_at=clock.now(), run_id="rslowslowslow002")
    add = dict(status="succeeded", created_at=clock.now(), updated_at=clock.now())
    database.write(lambda: JobRun.insert(**slow, **add).execute(database.writer))
    queues.anomaly.put(
        messages.RunCompleted(slow["run_id"], job.id, "b", "succeeded", clock.now(), 900.0, 0, 0)
    )
    assert written(database, queues, clock, detector, 1) == []
    assert len(detector.states[job.id].durations.flat) == 10  # nine from history, then it


def test_it_finds_slots_with_no_run_once(database, clock, rig):
    queues, detector, metrics = rig
    base, every = clock.now() - timedelta(hours=1), timedelta(minutes=10)
    job = add_job(database, clock, schedule="*/10 * * * *")
    created = base - timedelta(minutes=5)
    database.write(
        lambda: (
            jobstore.Job.update(created_at=created, updated_at=created)
            .where(jobstore.Job.id == job.id)
            .execute(database.writer)
        )
    )
    add_runs(database, job.id, base, 7, every=every, skip=(2, 4))  # 11:00 to 12:00
    detector.check_silence(clock.now())  # looks at the last hour, up to a minute ago
    detector.check_silence(clock.now() + timedelta(minutes=1))  # only 12:00, which ran
    found = written(database, queues, clock, detector)
    assert [a.slot_at for a in found] == [base + 2 * every, base + 4 * every]
    assert found[0].kind == "silence" and found[0].run_id is None
    assert found[0].explanation == (
        "no run for the slot at 2026-03-01T11:20:00Z; its schedule '*/10 * * * *' (UTC) "
        "should have started one"
    )


def test_it_is_fed_by_the_stats_collector(clock):
    stats_inbox, anomaly_inbox = Queue(), Queue(maxsize=1)
    collector = StatsCollector(stats_inbox, Queue(), clock, configmod.load(None, {}))
    collector.anomaly_inbox = anomaly_inbox
    done = messages.RunCompleted("rdone00000000001", 1, "j", "failed", clock.now(), 2.0, 0, 0)
    late = messages.RunStartLateness("rlate00000000001", 1, clock.now(), 0.2)
    collector.handle(done)
    collector.handle(late)  # the inbox is full: dropped, never waited for
    assert anomaly_inbox.get_nowait() is done and anomaly_inbox.empty()


def test_it_shows_anomalies_on_the_job_and_the_run(api: Api):
    job = api.create_job()
    t = api.clock.now() - timedelta(minutes=20)
    run_id = api.add_run(job["id"], t, started_at=t, completed_at=t + timedelta(minutes=14))
    record = messages.AnomalyRecord(
        42, job["id"], run_id, None, "duration", t, 5.3, {"runs": 50}, "took 14m0s; ..."
    )
    api.ctx.queues.syncer.put(record)
    flush = messages.Flush(api.clock.now())
    api.ctx.queues.syncer.put(flush)
    flush.reply.get(timeout=10)
    listed = api.get(f"/jobs/{job['id']}/anomalies").get_json()["items"]
    assert [(a["id"], a["kind"], a["runId"], a["score"]) for a in listed] == [
        ("42", "duration", run_id, 5.3)
    ]
    assert api.get(f"/runs/{run_id}").get_json()["anomaly"]["explanation"] == "took 14m0s; ..."
    stats = api.get(f"/jobs/{job['id']}/stats?window=24h").get_json()
    assert stats["anomalies"] == {"duration": 1}


def test_an_on_anomaly_webhook_renders_its_template_and_sends_its_headers(database, clock, rig):
    queues, detector, _ = rig
    config = {"url": "http://127.0.0.1:9/x", "headers": {"X-Team": "data"}}
    config["template"] = (
        '{"text": {{ (jobName ~ ": " ~ explanation)|tojson }}, "c": "{{ cluster }}"}'
    )
    job = add_job(database, clock, actions=[{**HOOK, "config": config}])
    add_runs(database, job.id, clock.now() - timedelta(days=2), 30)
    run = "rslowslowslow002"
    queues.anomaly.put(
        messages.RunCompleted(run, job.id, "backup", "succeeded", clock.now(), 600.0, 0, 0)
    )
    [found] = written(database, queues, clock, detector, 1)
    hook = queues.webhooks.get(timeout=5)
    assert hook.body == '{"text": "backup: ' + found.explanation + '", "c": "default"}'
    assert hook.headers == {"X-Team": "data"} and hook.action_run_id is not None
    row = database.read(lambda: ActionRun.get(ActionRun.id == hook.action_run_id))
    assert (row.trigger, row.success) == ("on_anomaly", False)  # pending until delivered


def test_it_refuses_an_on_anomaly_action_it_cannot_take(api: Api):
    retry = {"type": "retry", "trigger": "on_anomaly", "config": {}}
    resp = api.post("/jobs", json={"name": "x", "commands": [["true"]], "actions": [retry]})
    assert resp.status_code in (400, 422)
    assert "on_anomaly" in resp.get_json()["error"]["fields"]["actions[0].type"]
    ok = api.post("/jobs", json={"name": "y", "commands": [["true"]], "actions": [HOOK]})
    assert ok.status_code == 201


def test_it_follows_jobs_created_and_archived_between_checks(database, clock, rig):
    queues, detector, metrics = rig
    detector.check_silence(clock.now())  # no job yet: reads them all (none)
    job = add_job(database, clock, schedule="*/10 * * * *")  # created now, at 12:00
    clock.advance(31 * 60)
    detector.check_silence(clock.now())  # up to 12:30: 12:10, 12:20 and 12:30 never ran
    database.write(lambda: jobstore.archive_job(database.writer, job.id, clock.now()))
    clock.advance(30 * 60)
    detector.check_silence(clock.now())  # archived: its later slots are not silent
    found = written(database, queues, clock, detector)
    start = clock.now() - timedelta(minutes=61)
    assert [a.slot_at - start for a in found] == [timedelta(minutes=m) for m in (10, 20, 30)]


@pytest.mark.covers("on_anomaly")
def test_it_skips_and_kills_on_an_anomaly_as_the_job_asks(clock):
    queues = messages.Queues(Queue(), Queue(), Queue(), Queue(), Queue())
    skip = {"type": "skipNextInstance", "trigger": "on_anomaly"}
    kill = {"type": "killLatestInstance", "trigger": "on_anomaly"}
    other = {"type": "killAllInstances", "trigger": "on_failure"}
    job = dataclasses.replace(
        parse_job({"name": "j", "commands": [["true"]], "actions": [skip, kill, other]}), id=5
    )
    found = messages.AnomalyRecord(
        1, 5, "rrun000000000001", None, "lateness", clock.now(), 9.0, {}, "late"
    )
    assert actions.fire(queues, clock, job, found) == 2
    first, second = queues.scheduler.get_nowait(), queues.scheduler.get_nowait()
    assert isinstance(first, messages.SkipNext) and first.job_id == 5 and "late" in first.reason
    assert isinstance(second, messages.KillInstances) and second.latest_only
    recorded = [queues.syncer.get_nowait().action for _ in range(2)]
    assert recorded == ["skipNextInstance", "killLatestInstance"] and queues.scheduler.empty()


def test_it_pages_a_job_anomalies_newest_first(api: Api):
    job = api.create_job()
    t = api.clock.now() - timedelta(minutes=5)
    for n, at in enumerate((t, t, t, t - timedelta(minutes=1)), 1):
        record = messages.AnomalyRecord(n, job["id"], None, at, "silence", at, 1.0, {}, f"#{n}")
        api.ctx.queues.syncer.put(record)
    flush = messages.Flush(api.clock.now())
    api.ctx.queues.syncer.put(flush)
    flush.reply.get(timeout=10)
    first = api.get(f"/jobs/{job['id']}/anomalies?limit=2").get_json()
    second = api.get(f"/jobs/{job['id']}/anomalies?cursor={first['nextCursor']}").get_json()
    assert [a["id"] for a in first["items"] + second["items"]] == ["3", "2", "1", "4"]
    assert second["nextCursor"] is None
    bad = api.get(f"/jobs/{job['id']}/anomalies?cursor=nope")
    assert bad.status_code == 400 and "cursor" in bad.get_json()["error"]["fields"]


def test_it_refuses_a_check_interval_of_zero():
    with pytest.raises(configmod.ConfigError, match="--anomaly-check-interval must be longer"):
        configmod.load(None, {"ITINERARY_ANOMALY_CHECK_INTERVAL": "0s"})
    assert (
        configmod.load(None, {"ITINERARY_ANOMALY_CHECK_INTERVAL": "5m"}).anomaly_check_interval
        == 300
    )
