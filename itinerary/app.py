"""Builds the queues and components, starts them in the seed's order, stops them in reverse.

Start-up (seed, "Application Startup Sequence"): configuration is parsed by the
CLI; here the database is opened and pinged, migrations run, the stats
collector, webhook handler and syncer start, then the HTTP server: every
replica serves from here on, leader or not (issue 14). Then a greenlet campaigns
for the scheduling lease (itinerary/leader.py); once it is won the scheduler
starts (job definitions loaded, unfinished runs adopted, index built, loop
started) with the command reader that applies what standbys were asked
(itinerary/commands.py). Seed order moves the scheduler before the HTTP server;
a standby must answer probes and the API without it.

Shutdown: the HTTP server stops accepting, the scheduler loop stops (its
orchestrators are cancelled or finish within the timeout), the webhook handler
completes in-flight deliveries, the stats collector hands its last period to
the syncer, the anomaly detector scores what it was passed, the syncer flushes
everything, the lease is released (a standby takes over at once), then the
database closes. A leader that loses its lease, or cannot renew it in time, steps
down by shutting down the same way. The seed lists the syncer before the stats
collector; we stop stats first because its rows are written through the syncer
and must not be lost.

Every component greenlet is linked: if one crashes, the crash is logged and
the whole process shuts down cleanly rather than limping on without it.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group
from gevent.pywsgi import WSGIServer
from gevent.queue import Queue

from itinerary import db as dbmod
from itinerary.clock import Clock, RealClock
from itinerary.commands import CommandBus, CommandReader
from itinerary.config import Config
from itinerary.context import Context
from itinerary.executors.base import ExecutorError
from itinerary.http import make_root
from itinerary.leader import FencedExecutor, Leadership
from itinerary.lease import Elector, NoCluster, make_elector
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


class _Discard:
    """A write-only inbox that drops what it is given."""

    def put(self, item: Any, *args: Any, **kwargs: Any) -> None:
        pass

    put_nowait = put


class App:
    """One Itinerary process: `start()` returns once serving, `stop()` shuts down in order."""

    def __init__(self, config: Config, clock: Clock | None = None, executor: Any = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self.executor = executor
        self.group = Group()
        self.crashed = Event()
        self.stopping = Event()  # set by a signal: also ends a standby start-up
        self.lease: Elector | None = None
        self.leadership: Leadership | None = None
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
        """Start and serve at once (leader or standby); scheduling starts once the lease is won."""
        from itinerary.stats import StatsCollector
        from itinerary.syncer import Syncer
        from itinerary.webhooks import store as integration_store
        from itinerary.webhooks.handler import WebhookHandler

        config, clock = self.config, self.clock
        self.database = database = connect(config)
        version = prepare_schema(config, database)
        dbmod.bind(database)
        self.queues = queues = Queues(
            scheduler=Queue(),
            syncer=Queue(maxsize=config.syncer_inbox_size),
            stats=Queue(),
            webhooks=Queue(),
            anomaly=Queue(maxsize=ANOMALY_INBOX_SIZE),
        )
        # A standby's statistics would overwrite the leader's rows (one row per period):
        # they reach the syncer only once this process leads.
        self.stats = StatsCollector(queues.stats, _Discard(), clock, config)
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
        for name in ("syncer", "stats", "webhooks"):
            self.stats.watch_inbox(name, getattr(queues, name).qsize)
        if self.executor is None:
            self.executor = make_executor(config, clock)
        try:
            self.lease = make_elector(config, database, clock)
        except NoCluster as exc:
            raise StartupError(str(exc)) from None
        self.leadership = leadership = Leadership(self.lease)
        leadership.try_first()  # requests for the loop then queue for it from the first one

        self.context = ctx = Context(
            config=config,
            database=database,
            queues=queues,
            clock=clock,
            executor=self.executor,
            metrics=self.stats.registry,
            leadership=leadership,
            commands=CommandBus(database, clock, queues, leadership),
        )
        ctx.readiness.update(
            database=self._database_ready,
            schema=lambda: is_current(database, config.migrations_dir),
            syncer=self.syncer.ready,
            scheduler=leadership.ready,
        )
        self.server = self._serve(ctx)
        log.info(
            "itinerary started: database %s (schema version %s), %s executor, listening on %s; "
            "scheduling once the lease is won (%s)",
            config.dsn.redacted(),
            version or "unchecked",
            config.executor,
            self.url,
            leadership.name,
        )
        self._spawn(
            "leadership",
            partial(leadership.campaign, self.stopping, self._elected, self._lease_lost),
        )
        return True

    def _elected(self) -> None:
        """The lease is won: recover, then start the scheduler loop and the command reader."""
        from itinerary.anomaly.detector import Detector
        from itinerary.scheduler import Scheduler

        config, clock, queues = self.config, self.clock, self.queues
        assert self.database is not None
        leadership = self.leadership
        executor = FencedExecutor(
            self.executor, leadership.may_start, self._fenced, leadership.lease.wait_renewed
        )
        self.scheduler = Scheduler(config, queues, clock, executor, self.database)
        try:
            self.scheduler.start_up()
        except ExecutorError as exc:  # e.g. the Kubernetes API unreachable while adopting runs
            raise StartupError(
                f"cannot recover runs through the {config.executor} executor: {exc}"
            ) from None
        self.stats.syncer_inbox = queues.syncer
        # The detector's silence checks would raise every anomaly once per replica: it runs
        # where the runs are, on the leader.
        self.detector = Detector(
            queues.anomaly, queues, self.database, clock, config, self.stats.metrics
        )
        self.stats.anomaly_inbox = queues.anomaly
        self._spawn("anomaly", self.detector.run)
        self._spawn("scheduler", self.scheduler.run)
        for name in ("scheduler", "anomaly"):
            self.stats.watch_inbox(name, getattr(queues, name).qsize)
        reader = CommandReader(self.database, clock, queues, leadership.name)
        self._spawn("commands", reader.run)
        leadership.scheduling = self.scheduler.ready
        log.info("this process schedules now (%s)", leadership.name)

    def _fenced(self) -> None:
        """A start was refused: the lease may be another's. Step down at once."""
        if not self.leadership.fenced.is_set():
            self.leadership.on_fenced()
            self._step_down("the scheduling lease could not be renewed in time")

    def _lease_lost(self, why: str) -> None:
        self.leadership.on_fenced()
        if "another Itinerary took" in why:
            self.lease = None  # not ours to release any more
        self._step_down(why)

    def _step_down(self, why: str) -> None:
        log.error("%s; stepping down: this process stops (a restarted one serves as standby)", why)
        if "scheduler" in self._greenlets:
            self.scheduler.stop(release=True)
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
        campaign = self._greenlets.get("leadership")
        leading = self.leadership is not None and self.leadership.leading
        if campaign is not None and not leading:
            campaign.kill()  # standing by: nothing to hand over
        for name in ("commands",):
            if name in self._greenlets:
                self._greenlets[name].kill()
        if "scheduler" in self._greenlets:
            self.scheduler.stop()
            self._greenlets["scheduler"].join(timeout)
        stopping = ("webhooks", "stats", "anomaly", "syncer")
        for name, inbox in ((n, n) for n in stopping):
            greenlet = self._greenlets.get(name)
            if greenlet is not None and not greenlet.dead:
                getattr(self.queues, inbox).put(ShutDown(self.clock.now()))
                greenlet.join(timeout)
        if campaign is not None:  # held to here: no standby takes over while runs are released
            campaign.kill()
        alive = [g.name for g in self._greenlets.values() if not g.dead]
        if alive:
            log.error("still running after %gs, stopping them: %s", timeout, ", ".join(alive))
        self.group.kill(timeout=5)
        if self.executor is not None:
            self.executor.close()
        if self.lease is not None and leading:
            self.lease.release()
        if self.database is not None:
            self.database.close()
        log.info("stopped")
