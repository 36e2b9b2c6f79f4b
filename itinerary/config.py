"""Configuration: flags > environment (ITINERARY_*, DATABASE_URL, PORT) > config file > defaults.

Every setting is declared once in `SETTINGS`, which drives the command-line
flags, the environment variable names, the config file keys, the README table
and the validation, so the four can never disagree.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from itinerary.db import DSN, ConfigError, parse_dsn
from itinerary.durations import parse_duration
from itinerary.guard import parse_allowed_hosts

LOG_LEVELS = ("debug", "info", "warning", "error")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Setting:
    name: str  # attribute and config-file key (snake_case)
    kind: str  # str | int | float | bool | duration | choice
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # extra environment names besides ITINERARY_<NAME>
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_names(self) -> tuple[str, ...]:
        return ("ITINERARY_" + self.name.upper(), *self.env)


SETTINGS: tuple[Setting, ...] = (
    # database
    Setting(
        "db_driver",
        "choice",
        None,
        "database driver; inferred from the DSN when omitted",
        ("sqlite", "postgres", "mysql"),
    ),
    Setting(
        "db_dsn",
        "str",
        "sqlite:///itinerary.db",
        "database: sqlite:///path.db, postgresql://user@host:5432/db or "
        "mysql://user:pass@host:3306/db",
        env=("DATABASE_URL",),
        secret=True,
    ),
    Setting("db_pool_size", "int", 10, "read-only connections in the pool"),
    Setting(
        "migrations_dir",
        "str",
        str(Path(__file__).resolve().parent.parent / "migrations"),
        "folder of SQL migrations (with sqlite/, postgres/, mysql/ inside)",
    ),
    Setting("skip_migrations", "bool", False, "do not apply migrations at start-up"),
    # HTTP
    Setting("host", "str", "127.0.0.1", "address to listen on"),
    Setting("port", "int", 8080, "port to listen on (0 picks a free one)", env=("PORT",)),
    Setting(
        "insecure_no_auth",
        "bool",
        False,
        "serve the API without authentication on a non-loopback address",
    ),
    Setting(
        "allowed_hosts",
        "str",
        "",
        "host names clients use to reach Itinerary, comma-separated (*.example.com for a domain, "
        "* for any); required off loopback; IP addresses and localhost are always accepted",
    ),
    Setting("ui_session_ttl", "duration", 43200.0, "how long a web UI sign-in lasts"),
    Setting(
        "require_auth",
        "bool",
        False,
        "require API tokens (and UI sign-in) even on loopback, e.g. on a machine shared by users",
    ),
    # logging
    Setting("log_level", "choice", "info", "log level", LOG_LEVELS),
    Setting("log_format", "choice", "text", "log line format", ("text", "json")),
    # scheduler (seed: Configuration Parameters)
    Setting(
        "pre_schedule_interval",
        "duration",
        10.0,
        "how long before its start time a run's orchestrator is launched",
    ),
    Setting(
        "index_rebuild_interval",
        "duration",
        60.0,
        "how often the scheduled-run index is rebuilt (must be below the lookahead window)",
    ),
    Setting("lookahead_window", "duration", 600.0, "how far ahead runs are computed"),
    Setting(
        "grace_period", "duration", 30.0, "how far back the index reaches to catch near-misses"
    ),
    Setting("loop_interval", "duration", 1.0, "how often the scheduler loop runs"),
    Setting(
        "kickoff_depth_limit",
        "int",
        10,
        "longest chain of runs started by kickOffJob actions; a deeper one is refused",
    ),
    Setting(
        "shutdown_timeout",
        "duration",
        30.0,
        "how long shutdown waits for components to finish before stopping them",
    ),
    # leader election (issue 14)
    Setting(
        "leader_election",
        "choice",
        "database",
        "how replicas elect the one that schedules: a lease row in the database, or a "
        "Kubernetes Lease object (in a cluster; the --kube-* client settings apply)",
        ("database", "kubernetes"),
    ),
    Setting(
        "lease_namespace",
        "str",
        "default",
        "namespace of the Kubernetes Lease (with --leader-election=kubernetes)",
    ),
    Setting(
        "lease_name",
        "str",
        "itinerary-scheduler",
        "name of the Kubernetes Lease (with --leader-election=kubernetes)",
    ),
    # executors
    Setting("executor", "choice", "local", "where runs execute", ("local", "kubernetes")),
    Setting("log_dir", "str", "logs", "folder for the local executor's per-attempt log files"),
    Setting(
        "kill_grace_period",
        "duration",
        10.0,
        "time between SIGTERM (or a pod's graceful delete) and a hard kill",
    ),
    Setting(
        "kubeconfig", "str", None, "kubeconfig file (default: in-cluster, then ~/.kube/config)"
    ),
    Setting("kube_context", "str", None, "kubeconfig context to use"),
    Setting("kube_api_url", "str", None, "Kubernetes API URL (with --kube-token; no kubeconfig)"),
    Setting("kube_token", "str", None, "bearer token for --kube-api-url", secret=True),
    Setting("kube_insecure_skip_tls_verify", "bool", False, "do not verify the API server's TLS"),
    Setting("cluster_name", "str", "default", "cluster name shown in notifications"),
    Setting("kube_qps", "float", 20.0, "client-side rate limit on create calls (per second)"),
    Setting("kube_burst", "int", 40, "burst allowed above --kube-qps"),
    Setting(
        "image_pull_timeout",
        "duration",
        300.0,
        "fail a run whose image cannot be pulled for this long",
    ),
    Setting("pending_timeout", "duration", 600.0, "fail a run whose pod stays unschedulable"),
    Setting(
        "kube_backoff_limit",
        "int",
        0,
        "backoffLimit of each Kubernetes Job (0: Itinerary's retry action owns retries)",
    ),
    Setting(
        "kube_ttl_seconds_after_finished",
        "int",
        None,
        "ttlSecondsAfterFinished of each Kubernetes Job (unset: finished Jobs are kept)",
    ),
    # syncer and stats
    Setting(
        "syncer_inbox_size", "int", 10000, "syncer inbox capacity (a full inbox blocks senders)"
    ),
    Setting("syncer_batch_size", "int", 500, "rows per batch before a flush"),
    Setting("syncer_flush_interval", "duration", 0.2, "longest a row waits before a flush"),
    Setting(
        "syncer_thresholds",
        "str",
        "",
        "per-kind batch overrides, kind=size/interval comma-separated (kinds: jobs, claims, "
        "runs, violations, actions, webhooks, stats, anomalies), e.g. runs=1000/500ms,stats=50/5s",
    ),
    Setting("stats_period", "duration", 60.0, "length of a statistics period"),
    Setting(
        "anomaly_check_interval",
        "duration",
        60.0,
        "how often the anomaly detector looks for silent slots (scheduled, never recorded)",
    ),
    # notifications
    Setting(
        "webhook_concurrency", "int", 20, "webhook requests in flight at once (all integrations)"
    ),
    Setting(
        "webhook_deny_private",
        "bool",
        False,
        "refuse custom webhook URLs that resolve to loopback, private or link-local addresses",
    ),
    Setting(
        "public_url",
        "str",
        None,
        "Itinerary's address as users reach it, for links in notifications "
        "(e.g. https://itinerary.example.com)",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    db_driver: str | None
    db_dsn: str
    db_pool_size: int
    migrations_dir: str
    skip_migrations: bool
    host: str
    port: int
    insecure_no_auth: bool
    log_level: str
    log_format: str
    pre_schedule_interval: float
    index_rebuild_interval: float
    lookahead_window: float
    grace_period: float
    loop_interval: float
    shutdown_timeout: float
    executor: str
    log_dir: str
    kill_grace_period: float
    kubeconfig: str | None
    kube_context: str | None
    kube_api_url: str | None
    kube_token: str | None
    kube_insecure_skip_tls_verify: bool
    cluster_name: str
    kube_qps: float
    kube_burst: int
    image_pull_timeout: float
    pending_timeout: float
    kube_backoff_limit: int
    kube_ttl_seconds_after_finished: int | None
    syncer_inbox_size: int
    syncer_batch_size: int
    syncer_flush_interval: float
    stats_period: float
    syncer_thresholds: str = ""
    kickoff_depth_limit: int = 10
    anomaly_check_interval: float = 60.0
    allowed_hosts: str = ""
    webhook_concurrency: int = 20
    webhook_deny_private: bool = False
    public_url: str | None = None
    config_file: str | None = None
    ui_session_ttl: float = 43200.0
    require_auth: bool = False
    leader_election: str = "database"
    lease_namespace: str = "default"
    lease_name: str = "itinerary-scheduler"

    @property
    def dsn(self) -> DSN:
        return parse_dsn(self.db_dsn, self.db_driver)

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        """`--allowed-hosts` parsed (itinerary/guard.py checks every request's Host with it)."""
        return parse_allowed_hosts(self.allowed_hosts)

    def public(self) -> dict[str, Any]:
        """The settings for logs and the API: secrets redacted."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            setting = BY_NAME.get(f.name)
            if f.name == "db_dsn":
                value = self.dsn.redacted()
            elif setting and setting.secret and value:
                value = "***"
            out[f.name] = value
        return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag per setting (default None, so unset flags fall through to env/file)."""
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="TOML or YAML file of settings (keys as below, snake_case)",
    )
    for s in SETTINGS:
        env = ", ".join(s.env_names)
        default = "" if s.default is None else f" (default: {_show(s)})"
        text = f"{s.help}{default} [env: {env}]"
        if s.kind == "bool":
            parser.add_argument(
                s.flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(
                s.flag,
                dest=s.name,
                default=None,
                help=text,
                metavar="DURATION" if s.kind == "duration" else s.kind.upper(),
                choices=None,
            )


def _show(s: Setting) -> str:
    if s.kind == "duration":
        from itinerary.durations import format_duration

        return format_duration(s.default)
    return str(s.default)


def _coerce(s: Setting, value: Any, origin: str) -> Any:
    where = {"flag": s.flag, "env": "/".join(s.env_names), "file": f"{s.name} in the config file"}
    label = where[origin]
    try:
        if value is None:
            return None
        if s.kind == "str":
            return str(value)
        if s.kind == "choice":
            if str(value) not in s.choices:
                raise ValueError(f"{value!r} is not one of {', '.join(s.choices)}")
            return str(value)
        if s.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"{value!r} is not true or false")
        if s.kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            number = int(str(value).strip())
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if s.kind == "float":
            number = float(value)
            if number <= 0:
                raise ValueError("must be greater than zero")
            return number
        if s.kind == "duration":
            return parse_duration(value)
    except ValueError as exc:
        msg = str(exc)
        if s.kind == "int" and "invalid literal" in msg:
            msg = f"{value!r} is not a whole number"
        raise ConfigError(f"{label}: {msg}") from None
    raise AssertionError(s.kind)


def read_file(path: str) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml/anything else) file of settings."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: {path} does not exist")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(p.read_text())
        else:
            data = yaml.safe_load(p.read_text()) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"--config: {path} is not valid: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of settings")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"--config: {path}: unknown settings {', '.join(unknown)}")
    return data


def load(args: argparse.Namespace | None = None, env: dict[str, str] | None = None) -> Config:
    """Resolve every setting by precedence and validate the combination."""
    env = dict(os.environ) if env is None else env
    flags = vars(args) if args is not None else {}
    config_file = flags.get("config_file") or env.get("ITINERARY_CONFIG")
    from_file = read_file(config_file) if config_file else {}
    values: dict[str, Any] = {}
    for s in SETTINGS:
        value = s.default
        if s.name in from_file:
            value = _coerce(s, from_file[s.name], "file")
        for name in s.env_names:  # ITINERARY_* wins over DATABASE_URL/PORT
            if env.get(name) not in (None, ""):
                value = _coerce(s, env[name], "env")
                break
        if flags.get(s.name) is not None:
            value = _coerce(s, flags[s.name], "flag")
        values[s.name] = value
    config = Config(config_file=config_file, **values)
    validate(config)
    return config


def validate(config: Config) -> None:
    config.dsn  # noqa: B018 - raises ConfigError on a malformed DSN or a driver mismatch
    if config.index_rebuild_interval >= config.lookahead_window:
        raise ConfigError(
            "--index-rebuild-interval must be below --lookahead-window "
            f"({config.index_rebuild_interval:g}s >= {config.lookahead_window:g}s)"
        )
    if config.pre_schedule_interval >= config.lookahead_window:
        raise ConfigError("--pre-schedule-interval must be below --lookahead-window")
    for name in (
        "loop_interval",
        "lookahead_window",
        "index_rebuild_interval",
        "anomaly_check_interval",
    ):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{BY_NAME[name].flag} must be longer than zero")
    try:
        allowed = config.allowed_host_list
    except ValueError as exc:
        raise ConfigError(f"--allowed-hosts: {exc}") from None
    if not allowed and not config.loopback:
        raise ConfigError(
            f"--allowed-hosts is required when listening on {config.host} (not loopback): "
            "list the names clients use to reach Itinerary, e.g. itinerary.example.com, "
            "or * to accept any Host (unsafe without a proxy that checks it)"
        )
    if config.require_auth and config.insecure_no_auth:
        raise ConfigError("--require-auth and --insecure-no-auth contradict each other; give one")
    if config.port > 65535:
        raise ConfigError(f"--port: {config.port} is not a port (0-65535)")
    if config.webhook_concurrency < 1:
        raise ConfigError("--webhook-concurrency must be at least 1")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--public-url: {config.public_url!r} is not an http(s) URL")
    kube = config.executor == "kubernetes" or config.leader_election == "kubernetes"
    if kube and config.kube_api_url and not config.kube_token:
        raise ConfigError("--kube-api-url needs --kube-token")
    if config.leader_election == "kubernetes":
        for name in ("lease_namespace", "lease_name"):
            value = getattr(config, name)
            if not DNS_1123.match(value) or len(value) > (63 if name == "lease_namespace" else 253):
                raise ConfigError(
                    f"{BY_NAME[name].flag}: {value!r} is not a Kubernetes name "
                    "(lowercase letters, digits, '-' and '.')"
                )


def settings_table() -> str:
    """The README's configuration table, made from SETTINGS."""
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = "" if s.default is None else f"`{_show(s)}`"
        if s.name == "migrations_dir":
            default = "`./migrations`"
        rows.append(
            f"| `{s.flag}` | {', '.join(f'`{e}`' for e in s.env_names)} | {default} | {s.help} |"
        )
    return "\n".join(rows)
