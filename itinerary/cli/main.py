"""The command line: `serve` (the default), `migrate [--status]`, and the tools' subcommands.

Bad input never shows a stack trace: it is one line on stderr naming the flag
(or file) and the reason, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

import gevent

from itinerary import config as cfg
from itinerary.app import App, StartupError, connect
from itinerary.cli import apply, integrations, tokens
from itinerary.errors import ConfigError
from itinerary.logs import setup as setup_logging
from itinerary.migrate import MigrationError, migrate, status

log = logging.getLogger("itinerary")
EXIT_USAGE = 2
EXIT_FAIL = 1

Handler = Callable[[argparse.Namespace, cfg.Config], int]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a hint), not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _settings_parent(suppress: bool) -> Parser:
    parent = Parser(add_help=False)
    group = parent.add_argument_group(
        "settings (flags > ITINERARY_* environment > --config > defaults)"
    )
    cfg.add_arguments(group)  # type: ignore[arg-type]
    if suppress:
        # On subcommands, an absent flag must not overwrite one given before the subcommand.
        for action in group._group_actions:
            action.default = argparse.SUPPRESS
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="itinerary.py",
        description="Itinerary: a cron scheduler for Kubernetes Jobs (and local processes) "
        "with constraints, actions, history and a web UI.",
        parents=[_settings_parent(False)],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parent = _settings_parent(True)
    serve = sub.add_parser("serve", parents=[parent], help="run Itinerary (the default)")
    serve.set_defaults(handler=run_serve)
    migrate = sub.add_parser("migrate", parents=[parent], help="apply database migrations")
    migrate.add_argument(
        "--status",
        action="store_true",
        help="list applied and pending migrations instead of applying",
    )
    migrate.set_defaults(handler=run_migrate)
    for add_cli in (tokens.add_cli, apply.add_cli, integrations.add_cli):
        add_cli(sub, parent)
    parser.set_defaults(handler=run_serve)
    return parser


def run_serve(args: argparse.Namespace, config: cfg.Config) -> int:
    app = App(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, app.stopping.set)
    try:
        serving = app.start()
    except StartupError as exc:
        app.stop()
        print(f"itinerary: {exc}", file=sys.stderr)  # noqa: T201 - the one line the user sees
        return EXIT_FAIL
    if serving:
        print(f"Itinerary is running at {app.url}  (Ctrl-C to stop)", flush=True)  # noqa: T201
        gevent.wait([app.stopping, app.crashed], count=1)
    app.stop()
    return EXIT_FAIL if app.crashed.is_set() else 0


def run_migrate(args: argparse.Namespace, config: cfg.Config) -> int:
    try:
        database = connect(config)
    except StartupError as exc:
        print(f"itinerary: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_FAIL
    try:
        if args.status:
            for s in status(database, config.migrations_dir):
                when = f"  {s.applied_at}" if s.applied_at else ""
                print(f"{s.version:04d}  {s.state:8}  {s.name}{when}")  # noqa: T201
            return 0
        version = migrate(database, config.migrations_dir)
        print(f"database schema at version {version}")  # noqa: T201
        return 0
    except MigrationError as exc:
        print(f"itinerary: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_FAIL
    finally:
        database.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = cfg.load(args)
    except ConfigError as exc:
        print(f"itinerary: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    setup_logging(config.log_level, config.log_format)
    handler: Handler = args.handler
    return handler(args, config)
