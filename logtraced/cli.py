"""The `logtraced` command line; the only place where errors become exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from logtraced import __version__
from logtraced.config import Config, load_config
from logtraced.errors import LogtracedError

if TYPE_CHECKING:
    from logtraced.auth.keys import KeyStore

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# Flags of `serve` and the config keys they set.
SERVE_FLAGS: dict[str, tuple[str, type]] = {
    "--data-dir": ("data_dir", str),
    "--tcp-host": ("tcp.host", str),
    "--tcp-port": ("tcp.port", int),
    "--udp-host": ("udp.host", str),
    "--udp-port": ("udp.port", int),
    "--http-host": ("http.host", str),
    "--http-port": ("http.port", int),
    "--org": ("tcp.org", str),
    "--environment": ("tcp.environment", str),
    "--retention-days": ("index.retention_days", int),
    "--log-level": ("log.level", str),
    "--log-format": ("log.format", str),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.run(args)
        return result
    except LogtracedError as exc:
        print(f"logtraced: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logtraced", description="Self-hosted log receiver and search daemon.")
    parser.add_argument("--version", action="version", version=f"logtraced {__version__}")
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    _add_serve_flags(serve)
    serve.set_defaults(run=_serve)
    check = commands.add_parser(
        "check-config", help="load and validate the configuration (same flags as serve), print it as JSON"
    )
    _add_serve_flags(check)
    check.set_defaults(run=_check_config)
    _add_keys_commands(commands)
    _add_query_command(commands)
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the ClickHouse schema ([clickhouse] section); stop the daemon first when embedded",
    )
    _add_serve_flags(migrate)
    migrate.add_argument(
        "--copy-tantivy", action="store_true", help="also copy the Tantivy partitions of data_dir into ClickHouse"
    )
    migrate.set_defaults(run=_migrate)
    return parser


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    for flag, (key, kind) in SERVE_FLAGS.items():
        parser.add_argument(flag, dest=key, type=kind, default=None, help=f"sets {key}")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set index.commit_interval_ms=500",
    )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=None, help="TOML config file (default: $LOGTRACED_CONFIG, else embedded defaults)"
    )


def config_from_args(args: argparse.Namespace) -> tuple[Config, str | None]:
    """Flags win over the environment, which wins over the file, which wins over the defaults."""
    path = config_path(args)
    return load_config(path, overrides=flag_overrides(args)), path


def config_path(args: argparse.Namespace) -> str | None:
    import os

    return args.config or os.environ.get("LOGTRACED_CONFIG")


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set by flags; SIGHUP re-applies them over the re-read file."""
    overrides: dict[str, Any] = {key: getattr(args, key, None) for key, _ in SERVE_FLAGS.values()}
    if getattr(args, "tcp.org", None) is not None:
        overrides["udp.org"] = getattr(args, "tcp.org")
    if getattr(args, "tcp.environment", None) is not None:
        overrides["udp.environment"] = getattr(args, "tcp.environment")
    for assignment in getattr(args, "assignments", []):
        key, sep, value = assignment.partition("=")
        if not sep:
            raise LogtracedError(f"--set expects KEY=VALUE, got {assignment!r}")
        overrides[key.strip()] = _parse_value(value)
    return overrides


def _parse_value(text: str) -> Any:
    """`--set` values are TOML literals when they parse as one (numbers, booleans, arrays), else strings."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _serve(args: argparse.Namespace) -> int:
    from logtraced.daemon import run

    config, path = config_from_args(args)
    run(config, path, flag_overrides(args))
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    import msgspec

    config, _ = config_from_args(args)
    print(msgspec.json.format(msgspec.json.encode(config)).decode())
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from logtraced.storage.clickhouse.migrate import Progress, migrate

    config, _ = config_from_args(args)

    def report(progress: Progress) -> None:
        share = progress.events_done / progress.events if progress.events else 1.0
        bar = "#" * int(share * 30)
        print(
            f"\rcopying [{bar:<30}] {share:6.1%}  {progress.events_done}/{progress.events} events, "
            f"{progress.partitions_done}/{progress.partitions} partitions",
            end="",
            file=sys.stderr,
            flush=True,
        )

    before, after = migrate(config, copy_tantivy=args.copy_tantivy, report=report)
    if args.copy_tantivy:
        print(file=sys.stderr)
    if before == after:
        print(f"schema version {after} is current")
    else:
        print(f"schema {'created' if before is None else f'upgraded from version {before}'}: version {after}")
    return EXIT_OK


def _add_keys_commands(commands: Any) -> None:
    """`logtraced keys create|list|revoke`: the operator's way to manage API keys of any organisation."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys (works while the daemon runs)")
    actions = keys.add_subparsers(title="actions", required=True)
    create = actions.add_parser("create", help="mint a key; its secret is printed once, then its id")
    create.add_argument("--org", dest="key_org", required=True, metavar="ORG", help="organisation slug")
    create.add_argument(
        "--environment", dest="key_environment", required=True, metavar="ENV", help="production, staging or development"
    )
    create.add_argument(
        "--scope",
        dest="key_scopes",
        action="append",
        required=True,
        metavar="SCOPE",
        help="write:logs, read:logs or admin (repeatable)",
    )
    create.add_argument(
        "--tier", dest="key_tier", default=None, metavar="TIER", help="rate-limit tier (default: auth.default_tier)"
    )
    create.add_argument("--name", dest="key_name", default="", metavar="NAME", help="a label for listings")
    create.set_defaults(run=_keys_create)
    listing = actions.add_parser("list", help="list keys (never their secrets), revoked ones included")
    listing.add_argument("--org", dest="key_org", default=None, metavar="ORG", help="only this organisation")
    listing.set_defaults(run=_keys_list)
    revoke = actions.add_parser("revoke", help="revoke a key and every access token minted from it")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_keys_revoke)
    for action in (create, listing, revoke):
        _add_config_flags(action)
        action.add_argument("--data-dir", dest="data_dir", default=None, help="sets data_dir")
        action.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")


def _keys_create(args: argparse.Namespace) -> int:
    config, _ = config_from_args(args)
    tier = args.key_tier or config.auth.default_tier
    if tier not in config.auth.tiers:
        raise LogtracedError(f"tier {tier!r} is not one of {', '.join(sorted(config.auth.tiers))} (auth.tiers)")
    with _key_store(config) as keys:
        record, secret = keys.create(args.key_org, args.key_environment, args.key_scopes, tier, args.key_name)
    if args.as_json:
        from logtraced.api.keys import key_json

        _print_json({**key_json(record), "secret": secret})
    else:
        print(secret)
        print(record.id)
        print("Store the secret now: it is not kept and cannot be shown again.", file=sys.stderr)
    return EXIT_OK


def _keys_list(args: argparse.Namespace) -> int:
    from logtraced.api.keys import key_json

    config, _ = config_from_args(args)
    with _key_store(config) as keys:
        rows = [key_json(record) for record in keys.list(args.key_org)]
    if args.as_json:
        _print_json(rows)
        return EXIT_OK
    columns = ("id", "display_prefix", "org", "environment", "scopes", "tier", "active", "created_at", "name")
    table = [[" ".join(row[c]) if c == "scopes" else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in table)) for i, c in enumerate(columns)]
    for line in [list(columns), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def _keys_revoke(args: argparse.Namespace) -> int:
    config, _ = config_from_args(args)
    with _key_store(config) as keys:
        if not keys.revoke(args.key_id, None):
            raise LogtracedError(f"no active key {args.key_id}")
    if args.as_json:
        _print_json({"id": args.key_id, "revoked": True})
    else:
        print(f"revoked {args.key_id}")
    return EXIT_OK


def _add_query_command(commands: Any) -> None:
    """`logtraced query KQL`: search the data directory directly, newest first, one JSON event per line."""
    search = commands.add_parser("query", help="search stored events with KQL (reads the indexes directly)")
    search.add_argument("filter", nargs="?", default="", help="KQL, e.g. 'service:api and level:error'")
    search.add_argument("--from", dest="since", default="-1h", help="start: -15m, -24h, ISO-8601, epoch (default -1h)")
    search.add_argument("--to", dest="until", default="now", help="end, inclusive (default now)")
    search.add_argument("--limit", "-n", type=int, default=20, help="newest N events (default 20)")
    search.add_argument("--org", dest="query_org", default="default", help="organisation (default: default)")
    search.add_argument(
        "--environment", dest="query_environment", default="production", help="environment (default: production)"
    )
    _add_config_flags(search)
    search.add_argument("--data-dir", dest="data_dir", default=None, help="sets data_dir")
    search.set_defaults(run=_query)


def _query(args: argparse.Namespace) -> int:
    import time

    import msgspec

    from logtraced.events import event_to_json
    from logtraced.model import Tenant
    from logtraced.query.kql import parse_kql
    from logtraced.query.pipeline import Filter, Pipeline
    from logtraced.query.timerange import resolve_range
    from logtraced.storage.backend import SearchRequest
    from logtraced.storage.backends import open_store

    config, _ = config_from_args(args)
    window = resolve_range(args.since, args.until, now_ns=time.time_ns(), default_lookback_ns=3600 * 10**9)
    request = SearchRequest(
        start_ns=window.start_ns,
        end_ns=window.end_ns + 1,
        pipeline=Pipeline((Filter(parse_kql(args.filter)),)),
        limit=max(args.limit, 1),
    )
    page = open_store(config).for_tenant(Tenant(args.query_org, args.query_environment)).search(request)
    encode = msgspec.json.encode
    for row in page.rows:
        sys.stdout.write(encode(event_to_json(row.event)).decode() + "\n")
    return EXIT_OK


@contextmanager
def _key_store(config: Config) -> Iterator[KeyStore]:
    """The key store over the daemon's state database; safe while the daemon runs (SQLite WAL mode)."""
    from logtraced.auth.db import Database
    from logtraced.auth.keys import KeyStore

    with Database.open(config.data_path) as db:
        yield KeyStore(db)


def _print_json(value: object) -> None:
    import msgspec

    print(msgspec.json.format(msgspec.json.encode(value)).decode())
