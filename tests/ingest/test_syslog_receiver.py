"""End-to-end tests of the syslog listeners: Python's SysLogHandler, a real rsyslogd, device lines, bad input.

rsyslog comes from Debian (`bash scripts/test` installs it); the test starts it as an
unprivileged foreground process with its own configuration and work directory, no systemd and
no /dev/log: it reads lines from an `imtcp` input on a free local port the test writes to and
forwards them with `omfwd`, octet-counted RFC 5424 (`RSYSLOG_SyslogProtocol23Format`).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.harness import wait_until
from tests.ingest.conftest import Running, closed_by_peer, marker, start_running

ZONE = "Europe/Berlin"  # the listener's syslog.timezone in this module, for timestamps sent without one
MAX_MESSAGE_BYTES = 4096


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    started = start_running(
        tmp_path_factory.mktemp("syslog") / "data",
        "--set",
        f"syslog.timezone={ZONE}",
        "--set",
        f"syslog.max_message_bytes={MAX_MESSAGE_BYTES}",
    )
    yield started
    started.daemon.kill()


def recent(seconds_ago: int = 300) -> datetime:
    """A moment a few minutes ago, whole seconds, in UTC (recent, so retention keeps it)."""
    return datetime.fromtimestamp(int(time.time()) - seconds_ago, UTC)


def bsd_stamp(moment: datetime, zone: str) -> str:
    """`Mmm dd hh:mm:ss` as RFC 3164 writes it: wall time in `zone`, the day padded with a space."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%b} {local.day:2d} {local:%H:%M:%S}"


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


class TestSysLogHandler:
    """Python's logging.handlers.SysLogHandler over UDP (one message per datagram) and TCP (NUL-terminated)."""

    @pytest.mark.parametrize("transport", ["udp", "tcp"])
    def test_handler_records_arrive_with_their_fields(self, running: Running, transport: str) -> None:
        mark = marker()
        listener = "syslog_udp" if transport == "udp" else "syslog"
        socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        handler = logging.handlers.SysLogHandler(
            address=("127.0.0.1", running.port(listener)),
            facility=logging.handlers.SysLogHandler.LOG_LOCAL3,
            socktype=socktype,
        )
        handler.setFormatter(logging.Formatter("billing[%(process)d]: %(message)s"))
        logger = logging.Logger(f"syslog-{transport}")
        logger.addHandler(handler)
        try:
            logger.error("%s charge declined", mark)
            logger.warning("%s retrying", mark)
            logger.info("%s ü ünicode", mark)
        finally:
            handler.close()
        events = {e.level: e for e in running.store.wait_for(3, field="message", term=mark)}
        error = events["error"]
        assert (error.message, error.service, error.host) == (f"{mark} charge declined", "billing", "")
        assert error.attributes.pop("source")["address"] == "127.0.0.1"
        assert error.attributes == {"syslog": {"facility": "local3", "severity": 3, "procid": str(os.getpid())}}
        assert (events["warn"].message, events["info"].message) == (f"{mark} retrying", f"{mark} ü ünicode")
        rows = running.kql(f'"{mark}" and service:billing and syslog.facility:local3 and level:error')
        assert [row["message"] for row in rows] == [f"{mark} charge declined"]
        query = {"$and": [{"$eq": ["service", "billing"]}, {"$contains": ["body", f"{mark} retrying"]}]}
        assert [row[1] for row in running.pipeline(query)] == [f"{mark} retrying"]


class TestDeviceLines:
    """RFC 3164 lines as Linux daemons and Cisco IOS write them, and RFC 5424 with structured data."""

    def test_linux_bsd_line_is_read_in_the_configured_zone(self, running: Running) -> None:
        mark = marker()
        moment = recent()
        line = f"<38>{bsd_stamp(moment, ZONE)} web-07 sshd[1234]: Accepted publickey for ann {mark}"
        running.daemon.send_udp(line.encode(), "syslog_udp")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.timestamp == ns(moment)
        assert (event.service, event.host, event.level) == ("sshd", "web-07", "info")
        assert event.message == f"Accepted publickey for ann {mark}"
        assert event.attributes["syslog"] == {"facility": "auth", "severity": 6, "procid": "1234"}

    def test_cisco_ios_line(self, running: Running) -> None:
        mark = marker()
        moment = recent()
        millis = 483
        stamp = f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S}.{millis:03d} UTC"
        line = f"<189>4711: *{stamp}: %SYS-5-CONFIG_I: Configured from console by vty0 {mark}"
        running.daemon.send_udp(line.encode(), "syslog_udp")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.timestamp == ns(moment) + millis * 10**6
        assert event.message == f"%SYS-5-CONFIG_I: Configured from console by vty0 {mark}"
        assert event.attributes["syslog"]["facility"] == "local7"
        assert event.attributes["syslog"]["sequence"] == 4711

    def test_rfc5424_with_structured_data_over_octet_counted_tcp(self, running: Running) -> None:
        mark = marker()
        moment = recent()
        stamp = moment.astimezone(ZoneInfo("Asia/Kolkata")).isoformat().replace("+05:30", ".123456+05:30")
        record = (
            f'<165>1 {stamp} mymachine.example.com evntslog 8710 ID47 [exampleSDID@32473 iut="3" '
            f'eventSource="Appli\\]cation" eventID="1011"][examplePriority@32473 class="high"] \ufeff{mark} event'
        ).encode()
        running.daemon.send_stream("syslog", str(len(record)).encode() + b" " + record)
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert event.timestamp == ns(moment) + 123456000
        assert (event.message, event.service, event.host) == (f"{mark} event", "evntslog", "mymachine.example.com")
        assert event.level == "info"
        assert event.attributes["exampleSDID@32473"] == {"iut": "3", "eventSource": "Appli]cation", "eventID": "1011"}
        assert event.attributes["examplePriority@32473"] == {"class": "high"}
        assert event.attributes["syslog"] == {"facility": "local4", "severity": 5, "procid": "8710", "msgid": "ID47"}
        assert len(running.kql(f'"{mark}" and syslog.msgid:ID47 and syslog.procid:8710')) == 1


class Rsyslog:
    """rsyslogd in the foreground with its own config: imtcp on a free port in, omfwd to logtraced out."""

    def __init__(self, executable: str, target_port: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="logtraced-rsyslog-"))
        self.port_file = self.directory / "imtcp.port"
        config = self.directory / "rsyslog.conf"
        config.write_text(
            f"""global(workDirectory="{self.directory}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{self.port_file}")
action(type="omfwd" target="127.0.0.1" port="{target_port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
"""
        )
        user = group = None
        extra_groups: list[str] | None = None
        if os.geteuid() == 0:  # never run the system's syslog daemon with root's rights in a test
            shutil.chown(self.directory, "nobody", "nogroup")
            user, group, extra_groups = "nobody", "nogroup", []
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [executable, "-n", "-f", str(config), "-i", str(self.directory / "rsyslogd.pid")],
            cwd=self.directory,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin"), "TZ": "UTC"},
            stdout=self.output,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        wait_until(lambda: self.process.poll() is not None or self.port_file.exists() and self.port_file.read_text())
        if self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"rsyslogd exited with {self.process.returncode}: {self.log()}")
        self.port = int(self.port_file.read_text())

    def log(self) -> str:
        """What rsyslogd wrote to stdout and stderr."""
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def send(self, lines: list[str]) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.sendall("".join(line + "\n" for line in lines).encode())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self) -> None:
        self.stop()
        self.output.close()


def rsyslogd_path() -> str:
    """Debian installs rsyslogd in /usr/sbin, which an unprivileged user's PATH may lack."""
    found = shutil.which("rsyslogd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:  # a failure, never a skip: CI must not pass without the real daemon
        pytest.fail("rsyslogd is not installed: `bash scripts/test` installs Debian's rsyslog package first")
    return found


@pytest.fixture
def rsyslog(running: Running) -> Iterator[Rsyslog]:
    daemon = Rsyslog(rsyslogd_path(), running.port("syslog"))
    yield daemon
    daemon.close()


class TestRsyslog:
    """A real rsyslogd forwards to the listener with octet-counted RFC 5424, as its omfwd docs show."""

    def test_rsyslog_forwards_rfc5424_and_bsd_input(self, running: Running, rsyslog: Rsyslog) -> None:
        mark = marker()
        moment = recent()
        stamp = moment.isoformat().replace("+00:00", ".654321Z")
        rsyslog.send(
            [
                f'<134>1 {stamp} app-host payments 4242 TX9 [origin@32473 region="eu-1" tier="gold"] {mark} charged',
                f"<27>{bsd_stamp(moment, 'UTC')} db-01 postgres[77]: {mark} deadlock detected",
            ]
        )
        events = {e.service: e for e in running.store.wait_for(2, timeout=30, field="message", term=mark)}
        charged = events["payments"]
        assert charged.timestamp == ns(moment) + 654321000
        assert (charged.message, charged.host, charged.level) == (f"{mark} charged", "app-host", "info")
        assert charged.attributes["origin@32473"] == {"region": "eu-1", "tier": "gold"}
        assert charged.attributes["syslog"] == {"facility": "local0", "severity": 6, "procid": "4242", "msgid": "TX9"}
        deadlock = events["postgres"]
        assert deadlock.timestamp == ns(moment)  # rsyslog read the BSD time in its zone (UTC) and sent the offset
        assert (deadlock.host, deadlock.level) == ("db-01", "error")
        # rsyslog's %msg% of a BSD line keeps the space after `TAG[pid]:`, and RFC 5424 MSG is kept as sent.
        assert deadlock.message == f" {mark} deadlock detected"
        assert deadlock.attributes["syslog"] == {"facility": "daemon", "severity": 3, "procid": "77"}
        rows = running.kql(f'"{mark}" and host:"db-01" and syslog.facility:daemon')
        assert [row["service"] for row in rows] == ["postgres"]


class TestBadInput:
    """Bad input is stored raw or counted per cause; the daemon keeps serving everyone else."""

    def test_text_that_is_not_syslog_is_stored_raw_and_counted(self, running: Running) -> None:
        mark = marker()
        before = running.counters("syslog")["parse_failures"]
        running.daemon.send_stream("syslog", f"just some text {mark}\n".encode())
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert (event.message, event.tags) == (f"just some text {mark}", ["_syslogparsefailure"])
        wait_until(lambda: running.counters("syslog")["parse_failures"] == before + 1)

    def test_a_bad_octet_count_closes_the_connection_after_storing_what_came_before(self, running: Running) -> None:
        mark = marker()
        before = running.counters("syslog")["causes"].get("bad_octet_count", 0)
        good = f"<13>1 - h app - - - {mark} before".encode()
        with socket.create_connection(("127.0.0.1", running.port("syslog"))) as sock:
            sock.sendall(str(len(good)).encode() + b" " + good + b"12x garbage")
            assert closed_by_peer(sock)
        running.store.wait_for(1, field="message", term=mark)
        running.wait_for_cause("syslog", "bad_octet_count", before + 1)
        running.serving()

    def test_an_over_long_record_is_cut_tagged_and_counted(self, running: Running) -> None:
        mark = marker()
        before = running.counters("syslog")["truncated"]
        running.daemon.send_stream("syslog", f"<13>app: {mark} ".encode() + b"x" * (3 * MAX_MESSAGE_BYTES) + b"\n")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert "_truncated" in event.tags
        assert len(event.message.encode()) < MAX_MESSAGE_BYTES
        wait_until(lambda: running.counters("syslog")["truncated"] == before + 1)

    def test_an_empty_datagram_is_counted(self, running: Running) -> None:
        before = running.counters("syslog_udp")["causes"].get("empty_datagram", 0)
        running.daemon.send_udp(b"", "syslog_udp")
        running.wait_for_cause("syslog_udp", "empty_datagram", before + 1)

    def test_binary_garbage_over_udp_is_stored_raw(self, running: Running) -> None:
        mark = marker()
        running.daemon.send_udp(b"\xff\xfe\x00garbage " + mark.encode(), "syslog_udp")
        (event,) = running.store.wait_for(1, field="message", term=mark)
        assert "_syslogparsefailure" in event.tags
        running.serving()


def test_syslog_over_tls(tmp_path: Path) -> None:
    """RFC 5425: octet-counted syslog over TLS when syslog.tls_* are set."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = start_running(
        tmp_path / "data",
        "--set",
        f"syslog.tls_cert_file={json.dumps(str(cert))}",
        "--set",
        f"syslog.tls_key_file={json.dumps(str(key))}",
    )
    try:
        mark = marker()
        record = f"<14>1 - tls-host app - - - {mark} over tls".encode()
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", tls.port("syslog"))) as raw, context.wrap_socket(raw) as sock:
            sock.sendall(str(len(record)).encode() + b" " + record)
        (event,) = tls.store.wait_for(1, field="message", term=mark)
        assert event.host == "tls-host"
    finally:
        tls.daemon.kill()
