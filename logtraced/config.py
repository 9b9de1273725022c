"""Every setting as one frozen, typed object, loaded from defaults, a TOML file, the environment and flags.

Precedence, lowest to highest: embedded defaults, the TOML file, `LOGTRACED_*` environment
variables, command-line flags.  Validation happens once, at start, so a bad value fails
before anything listens and the message names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from logtraced.errors import ConfigError

ENV_PREFIX = "LOGTRACED_"
ENVIRONMENTS = ("production", "staging", "development")
ORG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# ClickHouse names logtraced writes into DDL: plain identifiers, so they never need quoting rules.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_IDENTIFIER = "[A-Za-z_][A-Za-z0-9_]*"
CLICKHOUSE_SCHEMES = ("http://", "https://", "chdb://")


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every section: unknown keys are an error, values cannot change after start."""


class LogConfig(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class FieldMap(_Section, frozen=True):
    """Where a sender puts the canonical fields, when not in a spelling logtraced knows.

    Each is a list of dotted paths (`payload.text`, a literal dotted key matches too), tried in
    order before the built-in spellings; the first present wins and is taken out of the attributes.
    """

    message: list[str] = []
    timestamp: list[str] = []
    level: list[str] = []
    service: list[str] = []
    host: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.message or self.timestamp or self.level or self.service or self.host)


class ListenerConfig(_Section, frozen=True):
    """What every listener section has: where it listens and whose events arrive there."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 0
    org: str = "default"
    environment: str = "production"
    fields: FieldMap = FieldMap()  # for protocols whose events are JSON objects (JSON lines, forward, beats)


class StreamListenerConfig(ListenerConfig, frozen=True):
    """A TCP listener: connection limits, idle timeout, optional TLS."""

    max_connections: int = 10_000
    idle_timeout_seconds: float = 3600.0
    tls_cert_file: str = ""
    tls_key_file: str = ""


class DatagramListenerConfig(ListenerConfig, frozen=True):
    receive_buffer_bytes: int = 8 * 1024 * 1024


class TcpConfig(StreamListenerConfig, frozen=True):
    port: int = 5000
    max_line_bytes: int = 1024 * 1024


class UdpConfig(DatagramListenerConfig, frozen=True):
    port: int = 5000


class DualListenerConfig(StreamListenerConfig, frozen=True):
    """A protocol served on TCP and, unless `udp_enabled` is false, on UDP at the same host and port."""

    udp_enabled: bool = True
    receive_buffer_bytes: int = 8 * 1024 * 1024

    def datagram(self) -> DatagramListenerConfig:
        """The UDP listener's settings: the section's address and tenant."""
        return DatagramListenerConfig(
            enabled=self.enabled and self.udp_enabled,
            host=self.host,
            port=self.port,
            org=self.org,
            environment=self.environment,
            receive_buffer_bytes=self.receive_buffer_bytes,
        )


class ForwardSharedKey(_Section, frozen=True):
    """A Fluentd forward shared key, in clear (the handshake digest needs it), and the tenant it selects."""

    key: str
    org: str
    environment: str = "production"


class ForwardConfig(DualListenerConfig, frozen=True):
    """Fluentd Forward protocol v1 on TCP; the UDP port only answers heartbeats."""

    port: int = 24224
    max_frame_bytes: int = 64 * 1024 * 1024
    max_decompressed_bytes: int = 256 * 1024 * 1024
    require_shared_key: bool = False
    shared_keys: list[ForwardSharedKey] = []
    self_hostname: str = "logtraced"


class BeatsConfig(StreamListenerConfig, frozen=True):
    """Lumberjack v2 (Filebeat, Winlogbeat and Logstash `output.logstash`)."""

    port: int = 5044
    max_frame_bytes: int = 64 * 1024 * 1024
    max_decompressed_bytes: int = 256 * 1024 * 1024
    max_window_events: int = 65536
    max_window_bytes: int = 256 * 1024 * 1024
    keepalive_seconds: float = 10.0


class SyslogConfig(DualListenerConfig, frozen=True):
    """RFC 5424 and RFC 3164 over TCP (octet-counted or LF/NUL framing, optional TLS) and UDP."""

    port: int = 5514
    max_message_bytes: int = 64 * 1024
    timezone: str = "UTC"


class GelfConfig(DualListenerConfig, frozen=True):
    """GELF 1.1: NUL-delimited over TCP; plain, zlib, gzip and chunked over UDP."""

    port: int = 12201
    max_message_bytes: int = 1024 * 1024
    max_pending_messages: int = 1000
    max_pending_bytes: int = 32 * 1024 * 1024
    chunk_timeout_seconds: float = 5.0


class HttpConfig(_Section, frozen=True):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    max_batch_events: int = 5000
    client_timeout_seconds: float = 30.0


class WalConfig(_Section, frozen=True):
    fsync: Literal["group", "always", "never"] = "group"
    group_commit_ms: int = 50
    segment_bytes: int = 64 * 1024 * 1024


class IndexConfig(_Section, frozen=True):
    commit_interval_ms: int = 1000
    commit_quiet_ms: int = 100
    writer_heap_bytes: int = 128 * 1024 * 1024
    writer_threads: int = 2
    stemming: bool = False
    capitals: bool = True
    retention_days: int = 30
    retention_check_seconds: float = 60.0


class IngestConfig(_Section, frozen=True):
    queue_max_events: int = 500_000
    queue_max_bytes: int = 256 * 1024 * 1024


class TailConfig(_Section, frozen=True):
    max_subscribers: int = 64
    queue_events: int = 10_000


class MetricsConfig(_Section, frozen=True):
    require_key: bool = False


class QueryConfig(_Section, frozen=True):
    timeout_seconds: float = 30.0
    default_limit: int = 100
    max_limit: int = 10_000
    region: str = ""


MaskingRule = Literal["email", "phone", "card", "inn", "snils", "passport", "ip"]


def _default_masking_rules() -> list[MaskingRule]:
    """Every rule but `ip`: addresses are operational data more often than personal data."""
    return ["email", "phone", "card", "inn", "snils", "passport"]


class MaskingOrgConfig(_Section, frozen=True):
    """One organisation's departures from [masking]; a key left out keeps the section's value."""

    enabled: bool | None = None
    rules: list[MaskingRule] | None = None
    fields: list[str] | None = None


class MaskingConfig(_Section, frozen=True):
    """PII masking before the WAL write (ingest/masking.py); `fields = []` means the message and every string."""

    enabled: bool = False
    rules: list[MaskingRule] = msgspec.field(default_factory=_default_masking_rules)
    fields: list[str] = []
    orgs: dict[str, MaskingOrgConfig] = {}


class PatternsConfig(_Section, frozen=True):
    """Pattern mining and insights read at most `max_events` events per period, the newest first.

    An insights baseline is read as a sample of `baseline_events` spread over the period: enough to
    say which patterns it had and at what rate; what the sample misses is checked exactly.
    """

    max_events: int = 100_000
    baseline_events: int = 6000


class StorageConfig(_Section, frozen=True):
    """Which backend stores and searches events; the WAL, receivers and APIs are the same for both."""

    backend: Literal["tantivy", "clickhouse"] = "tantivy"


class ClickHouseConfig(_Section, frozen=True):
    """Where the ClickHouse backend keeps events: a server over HTTP, or the embedded engine (chdb) in a directory."""

    url: str = "chdb://clickhouse"
    database: str = "logtraced"
    user: str = "default"
    password: str = ""
    cluster: str = ""


class TierConfig(_Section, frozen=True):
    ingest_per_hour: int
    query_per_hour: int
    overflow: bool = False


def _default_tiers() -> dict[str, TierConfig]:
    return {
        "standard": TierConfig(ingest_per_hour=10_000, query_per_hour=2_000),
        "enterprise": TierConfig(ingest_per_hour=50_000, query_per_hour=10_000, overflow=True),
    }


class AuthConfig(_Section, frozen=True):
    token_ttl_seconds: int = 86_400
    default_tier: str = "standard"
    tiers: dict[str, TierConfig] = msgspec.field(default_factory=_default_tiers)


class RoutingRule(_Section, frozen=True):
    """Route events whose attribute `field` equals `equals` into the named index `index`."""

    field: str
    equals: str
    index: str


class Config(_Section, frozen=True):
    data_dir: str = "./logtraced-data"
    log: LogConfig = LogConfig()
    tcp: TcpConfig = TcpConfig()
    udp: UdpConfig = UdpConfig()
    forward: ForwardConfig = ForwardConfig()
    beats: BeatsConfig = BeatsConfig()
    syslog: SyslogConfig = SyslogConfig()
    gelf: GelfConfig = GelfConfig()
    http: HttpConfig = HttpConfig()
    wal: WalConfig = WalConfig()
    index: IndexConfig = IndexConfig()
    ingest: IngestConfig = IngestConfig()
    query: QueryConfig = QueryConfig()
    storage: StorageConfig = StorageConfig()
    clickhouse: ClickHouseConfig = ClickHouseConfig()
    auth: AuthConfig = AuthConfig()
    masking: MaskingConfig = MaskingConfig()
    patterns: PatternsConfig = PatternsConfig()
    metrics: MetricsConfig = MetricsConfig()
    tail: TailConfig = TailConfig()
    routing: list[RoutingRule] = []

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def default_config() -> Config:
    """The embedded defaults alone (what every key is before files, environment and flags)."""
    return Config()


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge the layers and validate; `overrides` maps dotted keys (`tcp.port`) to flag values.

    The built-in tiers are the first layer, so a file or flag that sets one budget of a tier keeps
    the tier's other budgets, and a new tier is added beside the built-in ones.
    """
    tree: dict[str, Any] = {"auth": {"tiers": msgspec.to_builtins(_default_tiers())}}
    if path is not None:
        _merge(tree, _read_toml(Path(path)))
    _merge(tree, _environment_layer(os.environ if environ is None else environ))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    try:
        config = msgspec.convert(tree, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from exc
    _check(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _environment_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """`LOGTRACED_TCP_PORT=5001` sets `tcp.port`; the first `_` after the section splits it."""
    layer: dict[str, Any] = {}
    sections = {name for name, kind in _section_fields().items() if kind}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        section, _, rest = key.partition("_")
        dotted = f"{section}.{rest}" if section in sections and rest else key
        _set_dotted(layer, dotted, value)
    return layer


def _section_fields() -> dict[str, bool]:
    """Top-level keys of Config, each marked True when it is a nested section."""
    return {field.name: isinstance(field.default, _Section) for field in msgspec.structs.fields(Config)}


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[leaf] = value


def _describe(exc: msgspec.ValidationError) -> str:
    """msgspec says `... - at `$.tcp.port``; name the key the way the TOML file spells it."""
    text = str(exc)
    message, _, where = text.partition(" - at `$")
    key = where.rstrip("`").lstrip(".")
    return f"{key}: {message}" if key else message


def _check(config: Config) -> None:
    """Rules a type cannot express; each message names the key."""
    for section, listener in listener_sections(config).items():
        _check_tenant(f"{section}.org", listener.org, f"{section}.environment", listener.environment)
        _check_port(f"{section}.port", listener.port)
        if isinstance(listener, StreamListenerConfig) and bool(listener.tls_cert_file) != bool(listener.tls_key_file):
            raise ConfigError(f"{section}.tls_cert_file and {section}.tls_key_file must be set together")
    _check_port("http.port", config.http.port)
    _check_distinct_ports(config)
    _check_protocols(config)
    positives = {
        "tcp.max_line_bytes": config.tcp.max_line_bytes,
        "http.max_body_bytes": config.http.max_body_bytes,
        "http.max_batch_events": config.http.max_batch_events,
        "wal.segment_bytes": config.wal.segment_bytes,
        "index.commit_interval_ms": config.index.commit_interval_ms,
        "index.retention_days": config.index.retention_days,
        "index.writer_threads": config.index.writer_threads,
        "ingest.queue_max_events": config.ingest.queue_max_events,
        "ingest.queue_max_bytes": config.ingest.queue_max_bytes,
        "query.default_limit": config.query.default_limit,
        "query.max_limit": config.query.max_limit,
        "query.timeout_seconds": config.query.timeout_seconds,
        "auth.token_ttl_seconds": config.auth.token_ttl_seconds,
        "patterns.max_events": config.patterns.max_events,
        "patterns.baseline_events": config.patterns.baseline_events,
    }
    for key, value in positives.items():
        if value <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {value}")
    if config.index.commit_quiet_ms < 0:
        raise ConfigError(f"index.commit_quiet_ms: must be 0 (off) or more, got {config.index.commit_quiet_ms}")
    if config.index.writer_heap_bytes < 15_000_000 * config.index.writer_threads:
        raise ConfigError("index.writer_heap_bytes: must be at least 15000000 per writer thread")
    _check_clickhouse(config.clickhouse)
    if config.auth.default_tier not in config.auth.tiers:
        raise ConfigError(f"auth.default_tier: no tier named {config.auth.default_tier!r} in auth.tiers")
    _check_masking(config.masking)


def _check_masking(masking: MaskingConfig) -> None:
    """Organisation slugs and field paths are checked here; rule names are checked by their type."""
    for org, override in masking.orgs.items():
        if not ORG_PATTERN.fullmatch(org):
            raise ConfigError(f"masking.orgs.{org}: {org!r} is not an organisation slug ([a-z0-9][a-z0-9_-]*)")
        _check_mask_fields(f"masking.orgs.{org}.fields", override.fields or [])
    _check_mask_fields("masking.fields", masking.fields)


def _check_mask_fields(key: str, paths: list[str]) -> None:
    for path in paths:
        if not path or not all(path.split(".")):
            raise ConfigError(f"{key}: {path!r} is not a field path (message, or an attribute path such as user.email)")


def _check_clickhouse(section: ClickHouseConfig) -> None:
    if not section.url.startswith(CLICKHOUSE_SCHEMES):
        raise ConfigError(f"clickhouse.url: {section.url!r} must start with one of {', '.join(CLICKHOUSE_SCHEMES)}")
    if not IDENTIFIER_PATTERN.fullmatch(section.database):
        raise ConfigError(f"clickhouse.database: {section.database!r} is not a plain identifier ({_IDENTIFIER})")
    if section.cluster and not IDENTIFIER_PATTERN.fullmatch(section.cluster):
        raise ConfigError(f"clickhouse.cluster: {section.cluster!r} is not a plain identifier ({_IDENTIFIER})")


def _check_protocols(config: Config) -> None:
    """The stream protocols' bounds, the syslog zone and forward's shared keys."""
    positives: dict[str, float] = {
        "forward.max_frame_bytes": config.forward.max_frame_bytes,
        "forward.max_decompressed_bytes": config.forward.max_decompressed_bytes,
        "beats.max_frame_bytes": config.beats.max_frame_bytes,
        "beats.max_decompressed_bytes": config.beats.max_decompressed_bytes,
        "beats.max_window_events": config.beats.max_window_events,
        "beats.max_window_bytes": config.beats.max_window_bytes,
        "syslog.max_message_bytes": config.syslog.max_message_bytes,
        "gelf.max_message_bytes": config.gelf.max_message_bytes,
        "gelf.max_pending_messages": config.gelf.max_pending_messages,
        "gelf.max_pending_bytes": config.gelf.max_pending_bytes,
        "gelf.chunk_timeout_seconds": config.gelf.chunk_timeout_seconds,
    }
    for key, value in positives.items():
        if value <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {value}")
    if not 1 <= config.beats.keepalive_seconds <= 25:
        # Filebeat gives up on a window after `timeout` (30 s) without an ACK.
        raise ConfigError(f"beats.keepalive_seconds: must be between 1 and 25, got {config.beats.keepalive_seconds}")
    try:
        ZoneInfo(config.syslog.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"syslog.timezone: {config.syslog.timezone!r} is not a time zone name (e.g. UTC, Europe/Berlin)"
        ) from None
    forward = config.forward
    if forward.require_shared_key and not forward.shared_keys:
        raise ConfigError("forward.require_shared_key: true needs at least one entry in forward.shared_keys")
    seen: set[str] = set()
    for number, shared in enumerate(forward.shared_keys):
        where = f"forward.shared_keys[{number}]"
        if not shared.key:
            raise ConfigError(f"{where}.key: must not be empty")
        if shared.key in seen:
            raise ConfigError(f"{where}.key: the same key is listed twice")
        seen.add(shared.key)
        _check_tenant(f"{where}.org", shared.org, f"{where}.environment", shared.environment)


def listener_sections(config: Config) -> dict[str, ListenerConfig]:
    """Every listener section by name (tcp, udp and each protocol's), found by type, so none is missed."""
    return {
        item.name: getattr(config, item.name)
        for item in msgspec.structs.fields(config)
        if isinstance(getattr(config, item.name), ListenerConfig)
    }


def _check_distinct_ports(config: Config) -> None:
    """Two enabled listeners on one TCP (or one UDP) port would fail to bind at start: refuse the config instead."""
    taken: dict[tuple[str, int], str] = {}
    listeners: list[tuple[str, str, bool, int]] = [("http", "tcp", config.http.enabled, config.http.port)]
    for section, listener in listener_sections(config).items():
        network = "udp" if isinstance(listener, DatagramListenerConfig) else "tcp"
        listeners.append((section, network, listener.enabled, listener.port))
    for section, network, enabled, port in listeners:
        if not enabled or port == 0:
            continue
        other = taken.setdefault((network, port), section)
        if other != section:
            raise ConfigError(f"{section}.port: {network} port {port} is already {other}.port; give each its own")


def _check_tenant(org_key: str, org: str, env_key: str, environment: str) -> None:
    if not ORG_PATTERN.fullmatch(org):
        raise ConfigError(f"{org_key}: {org!r} is not an organisation slug ([a-z0-9][a-z0-9_-]*)")
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"{env_key}: {environment!r} is not one of {', '.join(ENVIRONMENTS)}")


def _check_port(key: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: {port} is not a port number (0-65535; 0 picks a free port)")
