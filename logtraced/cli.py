"""The `logtraced` command line; the only place where errors become exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from logtraced import __version__
from logtraced.config import Config, load_config
from logtraced.errors import LogtracedError

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
    _add_config_flags(serve)
    for flag, (key, kind) in SERVE_FLAGS.items():
        serve.add_argument(flag, dest=key, type=kind, default=None, help=f"sets {key}")
    serve.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key, e.g. --set index.commit_interval_ms=500",
    )
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", help="load and validate the configuration, print it as JSON")
    _add_config_flags(check)
    check.set_defaults(run=_check_config)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=None, help="TOML config file (default: $LOGTRACED_CONFIG, else embedded defaults)"
    )


def config_from_args(args: argparse.Namespace) -> tuple[Config, str | None]:
    """Flags win over the environment, which wins over the file, which wins over the defaults."""
    import os

    path = args.config or os.environ.get("LOGTRACED_CONFIG")
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
    return load_config(path, overrides=overrides), path


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
    run(config, path)
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    import msgspec

    config, _ = config_from_args(args)
    print(msgspec.json.format(msgspec.json.encode(config)).decode())
    return EXIT_OK
