"""Tests of the command line: exit codes, config checking and the direct `query` read path."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from logtraced.model import Tenant
from tests.conftest import Store
from tests.harness import DaemonProcess


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logtraced", *args], capture_output=True, text=True, timeout=60)


class TestExitCodes:
    """Errors become exit codes and one clear line; nothing prints a traceback."""

    def test_bad_config_value_exits_1_naming_the_key(self, tmp_path: Path) -> None:
        result = _cli("check-config", "--set", "tcp.port=99999")
        assert result.returncode == 1
        assert "tcp.port" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unknown_config_file_exits_1(self, tmp_path: Path) -> None:
        result = _cli("serve", "--config", str(tmp_path / "missing.toml"))
        assert result.returncode == 1
        assert "cannot read config file" in result.stderr

    def test_no_command_prints_help_and_exits_2(self) -> None:
        result = _cli()
        assert result.returncode == 2
        assert "serve" in result.stdout

    def test_check_config_prints_the_merged_configuration(self) -> None:
        result = _cli("check-config", "--set", "index.retention_days=7")
        assert result.returncode == 0
        assert json.loads(result.stdout)["index"]["retention_days"] == 7

    def test_check_config_does_not_print_secrets(self, tmp_path: Path) -> None:
        config = tmp_path / "secrets.toml"
        config.write_text(
            '[forward]\nrequire_shared_key = true\nshared_keys = [{key = "fwd-secret-1", org = "acme"}]\n'
            '[clickhouse]\npassword = "ch-secret-2"\n'
        )
        result = _cli("check-config", "--config", str(config))
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        assert "fwd-secret-1" not in result.stdout and "ch-secret-2" not in result.stdout
        assert printed["forward"]["shared_keys"] == [{"key": "<redacted>", "org": "acme", "environment": "production"}]
        assert printed["clickhouse"]["password"] == "<redacted>"


class TestQueryCommand:
    """`logtraced query` finds what the daemon stored, newest first, as JSON lines."""

    def test_query_reads_the_index(self, daemon: DaemonProcess, store: Store) -> None:
        marker = uuid.uuid4().hex[:10]
        lines = [{"message": f"{marker} {i}", "level": "ERROR" if i % 2 else "INFO"} for i in range(6)]
        daemon.send_tcp(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        store.wait_for(6, field="message", term=marker)
        result = _cli("query", f"{marker} and level:error", "--data-dir", str(daemon.data_dir), "--from=-1h", "-n", "2")
        assert result.returncode == 0, result.stderr
        found = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(found) == 2
        assert all(event["level"] == "error" and marker in event["message"] for event in found)

    def test_syntax_error_names_the_position(self, tmp_path: Path) -> None:
        result = _cli("query", "level:(", "--data-dir", str(tmp_path))
        assert result.returncode == 1
        assert "position 7" in result.stderr


def test_keys_and_query_refuse_a_data_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for args in (["keys", "list"], ["query", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "logtraced", *args, "--data-dir", str(missing)], capture_output=True, text=True
        )
        assert done.returncode == 1
        assert f"no data directory at {missing}" in done.stderr
    assert not missing.exists()


def test_keys_create_has_sensible_defaults_and_says_what_it_made(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logtraced", "keys", "create", "--data-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert (created["org"], created["environment"], created["scopes"]) == (
        "default",
        "production",
        ["read:logs", "write:logs"],
    )


def test_query_with_nothing_found_names_the_environments_that_have_events(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = DaemonProcess(data, "--environment", "staging").start()
    daemon.send_tcp(b'{"message": "staged"}\n')
    Store(data).wait_for(1, tenant=Tenant("default", "staging"))
    daemon.stop()
    done = subprocess.run(
        [sys.executable, "-m", "logtraced", "query", "--data-dir", str(data), "--environment", "production"],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert "no events for organisation default, environment production" in done.stderr
    assert "environments with events: staging" in done.stderr


@pytest.mark.parametrize(
    "args", [["query", "-n", "0"], ["query", "--environment", "prod"], ["check-config", "--set", "x"]]
)
def test_usage_mistakes_exit_2(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logtraced", *args, "--data-dir", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr


def test_a_closed_stdout_is_not_a_traceback() -> None:
    command = f"{sys.executable} -m logtraced check-config | head -1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert "Traceback" not in done.stderr and done.stdout.strip() == "{"
