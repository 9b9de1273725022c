"""Tests of the typed configuration: layers, precedence, validation and the documented example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from logtraced.config import Config, load_config
from logtraced.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "logtraced.toml"


def _leaf_keys(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, msgspec.Struct):
        keys: set[str] = set()
        for field in msgspec.structs.fields(value):
            keys |= _leaf_keys(getattr(value, field.name), f"{prefix}{field.name}.")
        return keys
    if isinstance(value, list):
        return {prefix.rstrip(".")}
    if isinstance(value, dict):
        keys = set()
        for name, item in value.items():
            keys |= _leaf_keys(item, f"{prefix}{name}.")
        return keys
    return {prefix.rstrip(".")}


class TestExampleFile:
    """config/logtraced.toml documents every key with its embedded default."""

    def test_example_equals_defaults(self) -> None:
        assert load_config(EXAMPLE, environ={}) == Config()

    def test_every_key_is_in_the_example(self) -> None:
        text = EXAMPLE.read_text()
        for dotted in sorted(_leaf_keys(Config())):
            leaf = dotted.rsplit(".", 1)[-1]
            assert re.search(rf"^#? ?{re.escape(leaf)} = ", text, re.MULTILINE), f"{dotted} is not documented"
        for field in ("field", "equals", "index"):
            assert re.search(rf"^# {field} = ", text, re.MULTILINE), f"routing.{field} is not documented"

    def test_every_key_has_a_comment_above_its_section_or_itself(self) -> None:
        lines = EXAMPLE.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.match(r"^\w+ = ", line) and number > 0:
                context = lines[max(0, number - 12) : number]
                assert any(item.startswith("#") for item in context), f"line {number + 1} has no comment nearby"


class TestPrecedence:
    """Defaults < file < environment < flags."""

    def test_environment_overrides_file(self, tmp_path: Path) -> None:
        path = tmp_path / "c.toml"
        path.write_text("[tcp]\nport = 6000\n")
        assert load_config(path, environ={}).tcp.port == 6000
        assert load_config(path, environ={"LOGTRACED_TCP_PORT": "6001"}).tcp.port == 6001

    def test_flags_override_environment(self, tmp_path: Path) -> None:
        config = load_config(None, environ={"LOGTRACED_TCP_PORT": "6001"}, overrides={"tcp.port": 6002})
        assert config.tcp.port == 6002

    def test_top_level_key_from_environment(self) -> None:
        assert load_config(None, environ={"LOGTRACED_DATA_DIR": "/srv/x"}).data_dir == "/srv/x"

    def test_nested_section_from_environment(self) -> None:
        config = load_config(None, environ={"LOGTRACED_INDEX_RETENTION_DAYS": "3"})
        assert config.index.retention_days == 3

    def test_unset_flags_do_not_override(self) -> None:
        assert load_config(None, environ={}, overrides={"tcp.port": None}).tcp.port == 5000


class TestValidation:
    """Bad values fail at start and the message names the key."""

    @pytest.mark.parametrize(
        ("toml", "named"),
        [
            ("[tcp]\nportx = 1\n", "portx"),
            ("[tcp]\nport = 'abc'\n", "tcp.port"),
            ("[tcp]\nport = 70000\n", "tcp.port"),
            ("[tcp]\norg = 'Not A Slug'\n", "tcp.org"),
            ("[udp]\nenvironment = 'prod'\n", "udp.environment"),
            ("[wal]\nfsync = 'sometimes'\n", "wal.fsync"),
            ("[index]\nretention_days = 0\n", "index.retention_days"),
            ("[auth]\ndefault_tier = 'gold'\n", "auth.default_tier"),
            ("[tcp]\ntls_cert_file = '/x.pem'\n", "tcp.tls_key_file"),
            ("nonsense = 1\n", "nonsense"),
            ("[syslog]\ntimezone = 'Mars/Olympus'\n", "syslog.timezone"),
            ("[syslog]\ntimezone = '../etc/passwd'\n", "syslog.timezone"),
            ("[syslog]\nmax_message_bytes = 0\n", "syslog.max_message_bytes"),
            ("[gelf]\nport = -1\n", "gelf.port"),
            ("[gelf]\nchunk_timeout_seconds = 0\n", "gelf.chunk_timeout_seconds"),
            ("[beats]\nkeepalive_seconds = 40\n", "beats.keepalive_seconds"),
            ("[beats]\norg = 'Acme'\n", "beats.org"),
            ("[forward]\nrequire_shared_key = true\n", "forward.shared_keys"),
            ("[[forward.shared_keys]]\nkey = ''\norg = 'acme'\n", "forward.shared_keys[0].key"),
            ("[[forward.shared_keys]]\nkey = 'k'\norg = 'Bad Org'\n", "forward.shared_keys[0].org"),
            ("[[forward.shared_keys]]\nkey = 'k'\n", "org"),
            ("[syslog]\ntls_key_file = '/k.pem'\n", "syslog.tls_cert_file"),
        ],
    )
    def test_bad_value_names_the_key(self, tmp_path: Path, toml: str, named: str) -> None:
        path = tmp_path / "bad.toml"
        path.write_text(toml)
        with pytest.raises(ConfigError, match=re.escape(named)):
            load_config(path, environ={})

    def test_invalid_toml_is_a_config_error(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text("[tcp\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(path, environ={})

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(tmp_path / "absent.toml", environ={})

    def test_org_with_trailing_newline_is_rejected(self) -> None:
        with pytest.raises(ConfigError, match="tcp.org"):
            load_config(None, environ={}, overrides={"tcp.org": "acme\n"})


class TestProtocolSections:
    """Every shipper protocol has a section, enabled by default on its standard port, set like any other."""

    def test_standard_ports(self) -> None:
        config = load_config(None, environ={})
        ports = {name: (getattr(config, name).enabled, getattr(config, name).port) for name in PROTOCOLS}
        assert ports == {"forward": (True, 24224), "beats": (True, 5044), "syslog": (True, 5514), "gelf": (True, 12201)}
        assert (config.syslog.timezone, config.forward.require_shared_key) == ("UTC", False)

    def test_environment_and_flags(self) -> None:
        config = load_config(
            None,
            environ={"LOGTRACED_SYSLOG_TIMEZONE": "Europe/Berlin", "LOGTRACED_GELF_UDP_ENABLED": "false"},
            overrides={"beats.port": 0, "forward.shared_keys": [{"key": "s3cret", "org": "acme"}]},
        )
        assert (config.syslog.timezone, config.gelf.udp_enabled, config.beats.port) == ("Europe/Berlin", False, 0)
        assert config.gelf.datagram().enabled is False
        assert (config.forward.shared_keys[0].org, config.forward.shared_keys[0].environment) == ("acme", "production")

    def test_a_shared_key_listed_twice_is_refused(self) -> None:
        keys = [{"key": "same", "org": "a"}, {"key": "same", "org": "b"}]
        with pytest.raises(ConfigError, match=re.escape("forward.shared_keys[1].key")):
            load_config(None, environ={}, overrides={"forward.shared_keys": keys})

    def test_the_udp_listener_shares_the_sections_address_and_tenant(self) -> None:
        syslog = load_config(None, environ={}, overrides={"syslog.org": "acme", "syslog.port": 1514}).syslog
        udp = syslog.datagram()
        assert (udp.enabled, udp.host, udp.port, udp.org, udp.environment) == (
            True,
            "0.0.0.0",
            1514,
            "acme",
            "production",
        )


PROTOCOLS = ("forward", "beats", "syslog", "gelf")
