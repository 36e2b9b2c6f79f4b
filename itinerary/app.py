"""Builds the queues and components, starts them in the seed's order, stops them in reverse.

Start-up (seed, "Application Startup Sequence"): configuration is parsed by the
CLI; here the database is opened and pinged, migrations run, the scheduling
lease is taken (a second process on the same database stands by here until the
first one stops: itinerary/lease.py), the stats collector, webhook handler and
syncer start, then the scheduler (job definitions loaded, index built, loop
started), then the HTTP server.

Shutdown: the HTTP server stops accepting, the scheduler loop stops (its
orchestrators are cancelled or finish within the timeout), the webhook handler
completes in-flight deliveries, the stats collector hands its last period to
the syncer, the anomaly detector scores what it was passed, the syncer flushes
everything, the lease is released, then the database closes. The seed lists the
syncer before the stats collector; we stop stats first because its rows are
written through the syncer and must not be lost.

Every component greenlet is linked: if one crashes, the crash is logged and
the whole process shuts down cleanly rather than limping on without it.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

import gevent
import peewee as pw
from gevent.event import Event
from gevent.pool import Group
from gevent.pywsgi import WSGIServer
from gevent.queue import Queue

from itinerary import db as dbmod
from itinerary.clock import Clock, RealClock
from itinerary.config import Config
from itinerary.context import Context
from itinerary.executors.base import ExecutorError
from itinerary.http import make_root
from itinerary.lease import Holder, Lease
from itinerary.messages import Queues, ShutDown
from itinerary.migrate import MigrationError, is_current, migrate

log = logging.getLogger(__name__)
ANOMALY_INBOX_SIZE = 10000  # run starts and ends waiting to be scored; beyond, dropped


class StartupError(RuntimeError):
    """Itinerary cannot start; the message is the one line the user sees."""


def connect(config: Config) -> dbmod.Database:
    """Open the database and prove it answers; StartupError with the reason otherwise."""
    dsn = config.dsn
    database = dbmod.Database(dsn, pool_size=config.db_pool_size)
    try:
        with gevent.Timeout(30, StartupError(f"database {dsn.redacted()} did not answer in 30s")):
            database.ping()
    except StartupError:
        database.close()
        raise
    except Exception as exc:
        database.close()
        raise StartupError(
            f"cannot connect to database {dsn.redacted()}: {_first_line(exc)}"
        ) from None
    return database


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc.args, tuple) and len(exc.args) == 2 and isinstance(exc.args[0], int):
        text = str(exc.args[1])  # PyMySQL: (code, message)
    return text.splitlines()[0] if text else type(exc).__name__


def prepare_schema(config: Config, database: dbmod.Database) -> int | None:
    """Apply migrations (or check them when skipped); StartupError when the schema is unusable."""
    try:
        if config.skip_migrations:
            current, reason = is_current(database, config.migrations_dir)
            if not current:
                log.warning("migrations skipped and the schema is not current: %s", reason)
            return None
        return migrate(database, config.migrations_dir)
    except MigrationError as exc:
        raise StartupError(str(exc)) from None


def make_executor(config: Config, clock: Clock) -> Any:
    """The configured executor; StartupError when the Kubernetes client cannot be configured."""
    if config.executor == "kubernetes":
        from itinerary.executors.kubernetes import KubernetesExecutor

        try:
            return KubernetesExecutor(
                config,
                clock,
                backoff_limit=config.kube_backoff_limit,
                ttl_seconds_after_finished=config.kube_ttl_seconds_after_finished,
            )
        except ExecutorError as exc:
            raise StartupError(str(exc)) from None
    from itinerary.executors.local import LocalExecutor

    return LocalExecutor(config, clock)


class App:
    """One Itinerary process: `start()` returns once serving, `stop()` shuts down in order."""

    def __init__(self, config: Config, clock: Clock | None = None, executor: Any = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self.executor = executor
        self.group = Group()
        self.crashed = Event()
        self.stopping = Event()  # set by a signal: also ends a standby start-up
        self.lease: Lease | None = None
        self.database: dbmod.Database | None = None
        self.server: WSGIServer | None = None
        self.url = ""
        self._greenlets: dict[str, gevent.Greenlet] = {}

    def _spawn(self, name: str, fn: Any) -> None:
        greenlet = self.group.spawn(fn)
        greenlet.name = name
        greenlet.link_exception(self._on_crash)
        self._greenlets[name] = greenlet

    def _on_crash(self, greenlet: gevent.Greenlet) -> None:
        log.error(
            "component %s crashed: %r; shutting down",
            greenlet.name,
            greenlet.exception,
            exc_info=greenlet.exc_info,
        )
        self.crashed.set()

    def start(self) -> bool:
        """Start and serve; False if `stopping` was set while standing by for the lease."""
        from itinerary.anomaly.detector import Detector
        from itinerary.scheduler import Scheduler
        from itinerary.stats import StatsCollector
        from itinerary.syncer import Syncer
        from itinerary.webhooks import store as integration_store
        from itinerary.webhooks.handler import WebhookHandler

        config, clock = self.config, self.clock
        self.database = database = connect(config)
        version = prepare_schema(config, database)
        dbmod.bind(database)
        if not self._take_lease(database):
            return False
        self.queues = queues = Queues(
            scheduler=Queue(),
            syncer=Queue(maxsize=config.syncer_inbox_size),
            stats=Queue(),
            webhooks=Queue(),
            anomaly=Queue(maxsize=ANOMALY_INBOX_SIZE),
        )
        self.stats = StatsCollector(queues.stats, queues.syncer, clock, config)
        self.webhooks = WebhookHandler(
            queues.webhooks,
            queues.syncer,
            queues.stats,
            clock,
            config,
            lookup=partial(database.read, integration_store.get),
        )
        self.syncer = Syncer(queues.syncer, database, clock, queues.stats, config)
        self._spawn("stats", self.stats.run)
        self._spawn("webhooks", self.webhooks.run)
        self._spawn("syncer", self.syncer.run)
        self.detector = Detector(
            queues.anomaly, queues, database, clock, config, self.stats.metrics
        )
        self.stats.anomaly_inbox = queues.anomaly
        self._spawn("anomaly", self.detector.run)

        if self.executor is None:
            self.executor = make_executor(config, clock)
        self.scheduler = Scheduler(config, queues, clock, self.executor, database)
        try:
            self.scheduler.start_up()
        except ExecutorError as exc:  # e.g. the Kubernetes API unreachable while adopting runs
            raise StartupError(
                f"cannot recover runs through the {config.executor} executor: {exc}"
            ) from None
        self._spawn("scheduler", self.scheduler.run)
        for name in ("scheduler", "syncer", "stats", "webhooks", "anomaly"):
            self.stats.watch_inbox(name, getattr(queues, name).qsize)

        self.context = ctx = Context(
            config=config,
            database=database,
            queues=queues,
            clock=clock,
            executor=self.executor,
            metrics=self.stats.registry,
        )
        ctx.readiness.update(
            database=self._database_ready,
            schema=lambda: is_current(database, config.migrations_dir),
            syncer=self.syncer.ready,
            scheduler=self.scheduler.ready,
        )
        self.server = self._serve(ctx)
        log.info(
            "itinerary started: database %s (schema version %s), %s executor, listening on %s",
            config.dsn.redacted(),
            version or "unchecked",
            config.executor,
            self.url,
        )
        return True

    def _take_lease(self, database: dbmod.Database) -> bool:
        lease = Lease(database, self.clock)
        try:
            if not lease.wait(self.stopping):
                return False
        except (pw.PeeweeException, OSError) as exc:
            raise StartupError(f"cannot take the scheduling lease: {_first_line(exc)}") from None
        self.lease = lease
        self._spawn("lease", partial(lease.keep, self._lease_lost))
        return True

    def _lease_lost(self, holder: Holder) -> None:
        log.error("another Itinerary took the scheduling lease (%s); shutting down", holder)
        self.lease = None  # not ours to release any more
        self.crashed.set()

    def _database_ready(self) -> tuple[bool, str]:
        assert self.database is not None
        try:
            self.database.read(lambda: self.database.reader.execute_sql("SELECT 1").fetchone())
            return True, ""
        except Exception as exc:
            return False, f"database unreachable: {_first_line(exc)}"

    def _serve(self, ctx: Context) -> WSGIServer:
        from itinerary.api import auth_mode, make_api

        log.info("API authentication: %s", auth_mode(self.config))
        root = make_root(ctx, make_api(ctx))
        server = WSGIServer(
            (self.config.host, self.config.port),
            root,
            log=None,
            error_log=logging.getLogger("itinerary.http"),
        )
        try:
            server.init_socket()
            # pywsgi writes headers and body separately: without TCP_NODELAY a client reusing
            # a keep-alive connection waits for the delayed ACK (~40 ms) on every request.
            # Accepted connections inherit the option from the listening socket.
            server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}"
            ) from None
        host, port = server.address[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        return server

    def stop(self) -> None:
        """Stop everything in order, flushing what each component holds."""
        timeout = self.config.shutdown_timeout
        log.info("shutting down (timeout %gs)", timeout)
        if self.server is not None:
            self.server.stop(timeout=min(5.0, timeout))
        if "scheduler" in self._greenlets:
            self.scheduler.stop()
            self._greenlets["scheduler"].join(timeout)
        stopping = ("webhooks", "stats", "anomaly", "syncer")
        for name, inbox in ((n, n) for n in stopping):
            greenlet = self._greenlets.get(name)
            if greenlet is not None and not greenlet.dead:
                getattr(self.queues, inbox).put(ShutDown(self.clock.now()))
                greenlet.join(timeout)
        renewing = self._greenlets.get("lease")
        if renewing is not None:  # held to here: no standby takes over while runs are released
            renewing.kill()
        alive = [g.name for g in self._greenlets.values() if not g.dead]
        if alive:
            log.error("still running after %gs, stopping them: %s", timeout, ", ".join(alive))
        self.group.kill(timeout=5)
        if self.executor is not None:
            self.executor.close()
        if self.lease is not None:
            self.lease.release()
        if self.database is not None:
            self.database.close()
        log.info("stopped")
