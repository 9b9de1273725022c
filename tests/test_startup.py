"""Starts that cannot succeed end at once, with one line saying why: a busy port, a directory in use, one not ours."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import mint_key
from tests.harness import DaemonProcess, wait_until

NOBODY = 65534
# Every listener on an ephemeral loopback port unless a test says otherwise.
EPHEMERAL = ["--tcp-host", "127.0.0.1", "--tcp-port", "0", "--udp-host", "127.0.0.1", "--udp-port", "0",
             "--http-host", "127.0.0.1", "--http-port", "0"]  # fmt: skip


def serve(data_dir: Path, *args: str, python: str = sys.executable, **run: Any) -> subprocess.CompletedProcess[str]:
    """`logtraced serve` that is expected to give up: its exit code and its stderr."""
    command = [python, "-m", "logtraced", "serve", "--data-dir", str(data_dir), *EPHEMERAL, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=20, **run)


def as_unprivileged_user(data: Path) -> subprocess.CompletedProcess[str]:
    """The daemon run as `nobody`, with the same code and libraries (the virtualenv's interpreter lives under
    /root, which `nobody` cannot enter, so the system's Python of the same minor version runs them)."""
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
    assert probe.stdout.decode().strip() == str(sys.version_info[:2]), (
        "the test needs the system Python of this version"
    )
    path = os.pathsep.join([str(Path(__file__).resolve().parent.parent), sysconfig.get_paths()["purelib"]])
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "PYTHONPATH": path}
    imports = subprocess.run(
        [system_python, "-c", "import logtraced.cli"], user=NOBODY, group=NOBODY, env=environment, capture_output=True
    )
    if imports.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot read this checkout or its libraries (clone it where every user may read)")
    return serve(data, python=system_python, user=NOBODY, group=NOBODY, env=environment)


def no_stray_processes(data_dir: Path) -> bool:
    """No logtraced process (daemon or writer) is left running for this data directory."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(data_dir).encode() in (entry / "cmdline").read_bytes():
                    return False
            except OSError:
                continue
    return True


@pytest.fixture
def busy_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock, sock.getsockname()[1]
    sock.close()


def test_a_busy_http_port_ends_the_start_with_one_line(tmp_path: Path, busy_port: tuple[socket.socket, int]) -> None:
    _, port = busy_port
    result = serve(tmp_path / "data", "--http-port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("logtraced: the http listener cannot listen on 127.0.0.1:") and str(port) in last
    assert "in use" in last
    assert no_stray_processes(tmp_path / "data")


def test_a_busy_tcp_port_names_its_listener(tmp_path: Path, busy_port: tuple[socket.socket, int]) -> None:
    _, port = busy_port
    result = serve(tmp_path / "data", "--tcp-port", str(port))
    assert result.returncode == 1
    assert f"the tcp listener cannot listen on 127.0.0.1:{port}" in result.stderr


def test_two_listeners_on_one_port_are_refused_by_check_config(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "logtraced", "check-config", "--tcp-port", "7000", "--http-port", "7000"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "tcp port 7000 is already" in result.stderr


def test_a_second_daemon_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = DaemonProcess(tmp_path / "data").start()
    try:
        result = serve(tmp_path / "data")
        assert result.returncode == 1
        assert f"the data directory {tmp_path / 'data'} is in use by another logtraced (pid {first.process.pid})" in (
            result.stderr
        )
        assert first.process is not None and first.process.poll() is None  # the first one is untouched
    finally:
        first.stop()


def test_a_directory_another_user_wrote_is_refused_naming_the_file(tmp_path: Path) -> None:
    """As when `keys create` ran as root before the service user's first start."""
    data = tmp_path / "data"
    DaemonProcess(data).start().stop()
    for directory in (tmp_path, *tmp_path.parents):
        directory.chmod(directory.stat().st_mode | 0o005)  # nobody may reach the directory, not write it
    result = as_unprivileged_user(data)
    assert result.returncode == 1
    assert "is not writable by this user" in result.stderr and "chown -R" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_first_start_says_where_it_listens_and_how_to_make_a_key(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "data").start()
    try:
        [http] = daemon.events_named("http_listening")
        assert http["port"] == daemon.http_port
        assert daemon.events_named("tcp_listening") and daemon.events_named("udp_listening")
        [hint] = daemon.events_named("no_api_keys")
        assert "logtraced keys create" in hint["hint"]
    finally:
        daemon.stop()


def test_debug_logs_one_access_line_per_request_without_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = mint_key(data, "read:logs")
    daemon = DaemonProcess(data, "--log-level", "debug").start()
    try:
        assert daemon.request("GET", "/v1/health", headers=key.bearer)[0] == 200
        [line] = wait_until(lambda: [e for e in daemon.events_named("http_request") if e["route"] == "/v1/health"])
        assert (line["method"], line["status"], line["key_id"]) == ("GET", 200, key.id)
        assert not [entry for entry in daemon.lines if key.secret in json.dumps(entry)]
    finally:
        daemon.stop()
