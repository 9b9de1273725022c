"""The `logtraced` command line; the only place where errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logtraced import __version__
from logtraced.config import ENVIRONMENTS, Config, load_config
from logtraced.errors import LogtracedError

if TYPE_CHECKING:
    from logtraced.auth.keys import KeyStore
    from logtraced.storage.backend import LogStore

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
# The installed service's config (README, "Running under systemd"): the CLI's default when present.
SYSTEM_CONFIG = Path("/etc/logtraced/logtraced.toml")
# What `keys create` grants when no --scope is given: what a shipper and a reader need, not admin.
DEFAULT_KEY_SCOPES = ("write:logs", "read:logs")
# What `check-config` prints in place of a secret.
REDACTED = "<redacted>"


class UsageError(LogtracedError):
    """The command line itself is wrong (exit 2, as argparse's own usage errors)."""


_FLAG_HELP = {
    "listeners.org": "sets the org of every listener (tcp.org, udp.org and each protocol's)",
    "listeners.environment": "sets the environment of every listener",
}
# The API key `logtraced tail` sends when --key is not given (not LOGTRACED_*: those are settings).
TAIL_KEY_VARIABLE = "LOGTRACE_API_KEY"

# Flags of `serve` and the config keys they set.
SERVE_FLAGS: dict[str, tuple[str, type]] = {
    "--data-dir": ("data_dir", str),
    "--tcp-host": ("tcp.host", str),
    "--tcp-port": ("tcp.port", int),
    "--udp-host": ("udp.host", str),
    "--udp-port": ("udp.port", int),
    "--http-host": ("http.host", str),
    "--http-port": ("http.port", int),
    "--org": ("listeners.org", str),
    "--environment": ("listeners.environment", str),
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
    except UsageError as exc:
        print(f"logtraced: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LogtracedError as exc:
        print(f"logtraced: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`check-config | head -1`): nothing more to say, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
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
    _add_patterns_command(commands)
    _add_tail_command(commands)
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
        parser.add_argument(flag, dest=key, type=kind, default=None, help=_FLAG_HELP.get(key, f"sets {key}"))
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
    """--config, else $LOGTRACED_CONFIG, else the installed service's file when there is one, else none."""
    if args.config or os.environ.get("LOGTRACED_CONFIG"):
        return str(args.config or os.environ["LOGTRACED_CONFIG"])
    return str(SYSTEM_CONFIG) if SYSTEM_CONFIG.is_file() else None


def existing_data_dir(config: Config) -> Config:
    """Commands that read or write an existing store must not create a new one where the operator mistyped."""
    if not config.data_path.is_dir():
        raise LogtracedError(
            f"no data directory at {config.data_path}; point to the daemon's with --data-dir DIR or "
            f"--config FILE (an installed service reads {SYSTEM_CONFIG})"
        )
    return config


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set by flags; SIGHUP re-applies them over the re-read file."""
    from logtraced.config import default_config, listener_sections

    overrides: dict[str, Any] = {
        key: getattr(args, key, None) for key, _ in SERVE_FLAGS.values() if not key.startswith("listeners.")
    }
    for field in ("org", "environment"):
        value = getattr(args, f"listeners.{field}", None)
        for section in listener_sections(default_config()):
            overrides[f"{section}.{field}"] = value
    for assignment in getattr(args, "assignments", []):
        key, sep, value = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {assignment!r}")
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
    print(msgspec.json.format(msgspec.json.encode(_redacted(msgspec.to_builtins(config)))).decode())
    return EXIT_OK


def _redacted(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with its secrets replaced: what `check-config` prints ends up in tickets and chat logs."""
    for shared in config["forward"]["shared_keys"]:
        shared["key"] = REDACTED
    if config["clickhouse"]["password"]:
        config["clickhouse"]["password"] = REDACTED
    return config


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
    create.add_argument(
        "--org", dest="key_org", default="default", metavar="ORG", help="organisation (default: default)"
    )
    create.add_argument(
        "--environment",
        dest="key_environment",
        default="production",
        metavar="ENV",
        help="production, staging or development (default: production)",
    )
    create.add_argument(
        "--scope",
        dest="key_scopes",
        action="append",
        default=None,
        metavar="SCOPE",
        help="write:logs, read:logs or admin (repeatable; default: write:logs and read:logs)",
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
    config = existing_data_dir(config_from_args(args)[0])
    tier = args.key_tier or config.auth.default_tier
    if tier not in config.auth.tiers:
        raise LogtracedError(f"tier {tier!r} is not one of {', '.join(sorted(config.auth.tiers))} (auth.tiers)")
    scopes = args.key_scopes or list(DEFAULT_KEY_SCOPES)
    with _key_store(config) as keys:
        record, secret = keys.create(args.key_org, args.key_environment, scopes, tier, args.key_name)
    if args.as_json:
        from logtraced.api.keys import key_json

        _print_json({**key_json(record), "secret": secret})
    else:
        print(secret)
        print(record.id)
        print(
            f"A key of organisation {record.org}, environment {record.environment}, scopes {' '.join(scopes)}, "
            f"tier {tier}. Store the secret now: it is not kept and cannot be shown again.",
            file=sys.stderr,
        )
    return EXIT_OK


def _keys_list(args: argparse.Namespace) -> int:
    from logtraced.api.keys import key_json

    config = existing_data_dir(config_from_args(args)[0])
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
    config = existing_data_dir(config_from_args(args)[0])
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
    search.add_argument(
        "--tz",
        dest="time_zone",
        default=None,
        help="show timestamps in this IANA zone, e.g. Europe/Moscow (default UTC)",
    )
    _add_store_flags(search)
    search.set_defaults(run=_query)


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    """Which tenant and data directory a command reading the store looks at."""
    parser.add_argument("--org", dest="query_org", default="default", help="organisation (default: default)")
    parser.add_argument(
        "--environment", dest="query_environment", default="production", help="environment (default: production)"
    )
    _add_config_flags(parser)
    parser.add_argument("--data-dir", dest="data_dir", default=None, help="sets data_dir")


def _query(args: argparse.Namespace) -> int:
    import time

    import msgspec

    from logtraced.events import event_to_json
    from logtraced.model import Tenant
    from logtraced.query.kql import parse_kql
    from logtraced.query.localtime import local_rfc3339, time_zone
    from logtraced.query.pipeline import Filter, Pipeline
    from logtraced.query.timerange import resolve_range
    from logtraced.storage.backend import SearchRequest
    from logtraced.storage.backends import open_store

    if args.limit < 1:
        raise UsageError(f"-n/--limit must be at least 1, got {args.limit}")
    if args.query_environment not in ENVIRONMENTS:
        raise UsageError(f"--environment must be one of {', '.join(ENVIRONMENTS)}, got {args.query_environment!r}")
    config = existing_data_dir(config_from_args(args)[0])
    zone = time_zone(args.time_zone) if args.time_zone else None
    window = resolve_range(args.since, args.until, now_ns=time.time_ns(), default_lookback_ns=3600 * 10**9)
    request = SearchRequest(
        start_ns=window.start_ns,
        end_ns=window.end_ns + 1,
        pipeline=Pipeline((Filter(parse_kql(args.filter)),)),
        limit=args.limit,
    )
    store = open_store(config)
    page = store.for_tenant(Tenant(args.query_org, args.query_environment)).search(request)
    encode = msgspec.json.encode
    for row in page.rows:
        shape = event_to_json(row.event)
        if zone is not None:
            shape["timestamp"] = local_rfc3339(row.event.timestamp, zone)
        sys.stdout.write(encode(shape).decode() + "\n")
    if not page.rows:
        _explain_nothing(store, args.query_org, args.query_environment, window.start_ns, window.end_ns + 1)
    return EXIT_OK


def _add_patterns_command(commands: Any) -> None:
    """`logtraced patterns [KQL]`: the message templates of the matching events, commonest first."""
    mine = commands.add_parser("patterns", help="cluster matching messages into patterns (reads the indexes directly)")
    mine.add_argument("filter", nargs="?", default="", help="KQL selecting the events, e.g. 'service:api'")
    mine.add_argument("--from", dest="since", default="-1h", help="start: -15m, -24h, ISO-8601, epoch (default -1h)")
    mine.add_argument("--to", dest="until", default="now", help="end, inclusive (default now)")
    mine.add_argument("--limit", "-n", type=int, default=20, help="commonest N patterns (default 20)")
    mine.add_argument("--json", dest="as_json", action="store_true", help="print the API's JSON document")
    _add_store_flags(mine)
    mine.set_defaults(run=_patterns)


def _patterns(args: argparse.Namespace) -> int:
    import time

    from logtraced.analysis.reports import patterns_report
    from logtraced.api.analysis import pattern_json
    from logtraced.model import Tenant
    from logtraced.query.kql import parse_kql
    from logtraced.query.pipeline import Filter, Pipeline
    from logtraced.query.timerange import resolve_range
    from logtraced.storage.backends import open_store

    config = existing_data_dir(config_from_args(args)[0])
    window = resolve_range(args.since, args.until, now_ns=time.time_ns(), default_lookback_ns=3600 * 10**9)
    view = open_store(config).for_tenant(Tenant(args.query_org, args.query_environment))
    pipeline = Pipeline((Filter(parse_kql(args.filter)),))
    report = patterns_report(
        view,
        pipeline,
        window.start_ns,
        window.end_ns + 1,
        limit=max(args.limit, 1),
        max_events=config.patterns.max_events,
    )
    if args.as_json:
        patterns = [pattern_json(pattern) for pattern in report.patterns]
        _print_json({"patterns": patterns, "events_considered": report.events_considered, "sampled": report.sampled})
        return EXIT_OK
    for pattern in report.patterns:
        print(f"{pattern.count:>8}  {pattern.level or '-':<5}  {pattern.pattern}")
    note = f"{report.events_considered} events considered" + (" (the newest; more matched)" if report.sampled else "")
    print(note, file=sys.stderr)
    return EXIT_OK


def _explain_nothing(store: LogStore, org: str, environment: str, start_ns: int, end_ns: int) -> None:
    """An empty answer says where events are, so a wrong --environment or --org is not mistaken for silence."""
    from logtraced.model import Tenant

    others = [
        env
        for env in ENVIRONMENTS
        if env != environment and store.for_tenant(Tenant(org, env)).label_names(start_ns, end_ns)
    ]
    where = f"organisation {org}, environment {environment}"
    hint = f"; environments with events: {', '.join(others)}" if others else "; check --org and --from"
    print(f"no events for {where} in this time range{hint}", file=sys.stderr)


def _add_tail_command(commands: Any) -> None:
    """`logtraced tail [KQL]`: follow the daemon's live stream (GET /v1/logs/tail) in a terminal."""
    tail = commands.add_parser("tail", help="follow new events live from a running daemon (KQL filter)")
    tail.add_argument("filter", nargs="?", default="", help="KQL, e.g. 'service:api and level:error'")
    tail.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's HTTP address")
    tail.add_argument("--key", default=None, help=f"an API key with read:logs (default: ${TAIL_KEY_VARIABLE})")
    tail.add_argument(
        "--from", dest="since", default=None, help="replay from: --from=-5m, ISO-8601, epoch (default: none)"
    )
    tail.add_argument("--json", action="store_true", help="print each event as its JSON line")
    tail.set_defaults(run=_tail)


def _tail(args: argparse.Namespace) -> int:
    import os
    import urllib.error
    import urllib.parse
    import urllib.request

    import msgspec

    from logtraced.sse import SseReader

    key = args.key or os.environ.get(TAIL_KEY_VARIABLE, "")
    if not key:
        print(f"logtraced: give an API key with --key or ${TAIL_KEY_VARIABLE}", file=sys.stderr)
        return EXIT_USAGE
    query = {"filter": args.filter, **({"from": args.since} if args.since else {})}
    url = args.url.rstrip("/") + "/v1/logs/tail?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"})
    reader = SseReader()
    try:
        with urllib.request.urlopen(request) as response:
            for raw in response:
                for name, data in reader.feed(raw.decode().rstrip("\r\n")):
                    if name == "dropped":
                        print(f"logtraced: {msgspec.json.decode(data)['dropped']} events dropped", file=sys.stderr)
                    elif args.json:
                        print(data, flush=True)
                    else:
                        event = msgspec.json.decode(data)
                        print(f"{event['timestamp']} {event['level'] or '-':5} {event['service'] or '-'} "
                              f"{event['message']}", flush=True)  # fmt: skip
    except urllib.error.HTTPError as exc:
        print(f"logtraced: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return EXIT_ERROR
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
