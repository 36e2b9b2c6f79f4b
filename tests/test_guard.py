"""Host allow-list and Origin checks (DNS rebinding, cross-site writes): itinerary/guard.py."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from itinerary import config as cfg
from itinerary import messages, tokens
from itinerary.errors import ConfigError
from itinerary.guard import Guard, host_allowed, host_name, parse_allowed_hosts
from tests.api_fakes import start_api

ROOT = Path(__file__).resolve().parent.parent
JOB = {"name": "pwn", "schedule": None, "commands": [["sh", "-c", "echo pwned"]]}
ATTACKER = {"Host": "attacker.example:18123", "Origin": "http://attacker.example:18123"}


@pytest.fixture
def loopback_api(sqlite_database, clock, queues):
    api = start_api(sqlite_database, clock, queues)
    yield api
    api.close()


def test_it_refuses_a_rebound_host_and_creates_nothing(loopback_api):
    resp = loopback_api.post("/jobs", json=JOB, headers=ATTACKER)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_host"
    assert loopback_api.get("/jobs").get_json()["items"] == []


def test_it_refuses_a_rebound_run_now_without_an_origin(loopback_api):
    job = loopback_api.create_job()
    resp = loopback_api.post(f"/runs/{job['id']}", json={}, headers={"Host": "attacker.example"})
    assert resp.status_code == 400
    assert not any(isinstance(m, messages.RunNow) for m in loopback_api.scheduler.seen)


@pytest.mark.parametrize("host", ["localhost:18123", "127.0.0.1:18123", "[::1]:18123"])
def test_it_serves_the_loopback_names(loopback_api, host):
    resp = loopback_api.post("/jobs", json=JOB, headers={"Host": host})
    assert resp.status_code == 201, resp.get_json()


def test_it_refuses_a_write_from_a_foreign_origin_on_loopback(loopback_api):
    headers = {"Host": "127.0.0.1:8080", "Origin": "http://localhost:3000"}
    resp = loopback_api.post("/jobs", json=JOB, headers=headers)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "cross_site"
    assert loopback_api.get("/jobs").get_json()["items"] == []


def test_it_refuses_a_cross_site_fetch_even_without_an_origin(loopback_api):
    resp = loopback_api.post("/jobs", json=JOB, headers={"Sec-Fetch-Site": "same-site"})
    assert resp.status_code == 403


def test_it_accepts_a_write_from_its_own_origin(loopback_api):
    headers = {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"}
    headers["Sec-Fetch-Site"] = "same-origin"
    assert loopback_api.post("/jobs", json=JOB, headers=headers).status_code == 201


def test_reads_need_the_host_check_only(loopback_api):
    resp = loopback_api.get("/jobs", headers={"Origin": "http://elsewhere.example"})
    assert resp.status_code == 200
    assert loopback_api.get("/jobs", headers={"Host": "elsewhere.example"}).status_code == 400


def test_it_refuses_a_foreign_origin_with_a_valid_token_off_loopback(
    sqlite_database, clock, queues
):
    api = start_api(
        sqlite_database, clock, queues, host="0.0.0.0", allowed_hosts="itinerary.example.com"
    )
    try:
        token = tokens.create(sqlite_database, "ci", "admin", clock.now())
        auth = {"Authorization": f"Bearer {token}", "Host": "itinerary.example.com"}
        evil = {**auth, "Origin": "https://evil.example"}
        assert api.post("/jobs", json=JOB, headers=evil).status_code == 403
        assert api.post("/jobs", json=JOB, headers=auth).status_code == 201
    finally:
        api.close()


def test_probes_stay_open_whatever_the_host(loopback_api):
    resp = loopback_api.client.get("/healthz", headers={"Host": "10.1.2.3:8080"})
    assert resp.status_code == 200
    resp = loopback_api.client.get("/healthz", headers={"Host": "anything.example"})
    assert resp.status_code == 200


def test_it_answers_a_browser_in_html(loopback_api):
    headers = {"Host": "attacker.example", "Accept": "text/html,application/xhtml+xml"}
    resp = loopback_api.client.get("/", headers=headers)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert "attacker.example" in resp.get_data(as_text=True)


def test_it_logs_a_refused_host_once_a_minute(caplog):
    now = [0.0]
    guard = Guard(lambda e, s: [b""], (), monotonic=lambda: now[0])
    environ = {"HTTP_HOST": "evil.example", "PATH_INFO": "/", "REQUEST_METHOD": "GET"}
    for t in (0.0, 30.0, 61.0):
        now[0] = t
        guard(environ, lambda *a: None)
    assert sum("evil.example" in r.getMessage() for r in caplog.records) == 2


def test_it_matches_names_wildcards_and_star():
    allowed = parse_allowed_hosts("Itinerary.example.com, *.corp.example")
    assert host_allowed("itinerary.example.com", allowed)
    assert host_allowed("ci.corp.example", allowed)
    assert not host_allowed("corp.example.evil", allowed)
    assert not host_allowed("evil.example", allowed)
    assert host_allowed("evil.example", parse_allowed_hosts("*"))
    assert host_allowed("10.0.0.5", ()) and host_allowed("[::1]", ())


def test_it_takes_the_name_out_of_a_host_header():
    assert host_name("Attacker.Example:18123") == "attacker.example"
    assert host_name("[::1]:8080") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    "value, reason",
    [
        ("http://itinerary.example.com", "not a host name"),
        ("itinerary.example.com:8080", "not a host name"),
        ("a,,b", "empty entry"),
        ("bad_name.example", "not a host name"),
        ("-x.example", "not a host name"),
    ],
)
def test_it_names_a_bad_allowed_hosts_value(value, reason):
    with pytest.raises(ConfigError, match=f"--allowed-hosts: .*{reason}"):
        cfg.load(None, {"ITINERARY_ALLOWED_HOSTS": value})


def test_it_needs_allowed_hosts_off_loopback():
    with pytest.raises(ConfigError, match="--allowed-hosts is required when listening on 0.0.0.0"):
        cfg.load(None, {"ITINERARY_HOST": "0.0.0.0"})
    config = cfg.load(None, {"ITINERARY_HOST": "0.0.0.0", "ITINERARY_ALLOWED_HOSTS": "*"})
    assert config.allowed_host_list == ("*",)


def test_a_bad_allowed_hosts_flag_stops_the_server_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "itinerary.py"), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")},
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--allowed-hosts is required" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_real_server_refuses_the_rebinding_requests(tmp_path):
    # The two requests of issue 16, against a real process: 400, and no workload ran.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
    env.update(ITINERARY_DB_DSN=f"sqlite:///{tmp_path}/it.db", ITINERARY_PORT="0")
    env["ITINERARY_LOG_DIR"] = str(tmp_path / "logs")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "itinerary.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = proc.stdout.readline().split("running at ", 1)[1].split()[0]
        marker = tmp_path / "pwned"
        job = {**JOB, "commands": [["sh", "-c", f"id > {marker}"]]}
        created = requests.post(f"{url}/api/v1/jobs", json=job, headers=ATTACKER, timeout=5)
        assert created.status_code == 400, created.text
        ours = requests.post(f"{url}/api/v1/jobs", json=job, timeout=5)  # Host: 127.0.0.1:port
        assert ours.status_code == 201
        job_id = ours.json()["id"]
        headers = {"Host": "attacker.example:18123"}
        run = requests.post(f"{url}/api/v1/runs/{job_id}", json={}, headers=headers, timeout=5)
        assert run.status_code == 400
        assert requests.get(f"{url}/api/v1/runs", timeout=5).json()["items"] == []
        assert not marker.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
