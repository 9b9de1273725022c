"""Stemming, switched on in config: Russian and English word forms find each other; off, they do not."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import Store
from tests.harness import DaemonProcess


def _query(data_dir: Path, kql: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "logtraced", "query", kql, "--data-dir", str(data_dir), "--from=-1h", "-n", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line)["message"] for line in result.stdout.splitlines()]


class TestStemming:
    """`index.stemming = true` indexes a stemmed copy of the message that word queries use."""

    @pytest.mark.parametrize("stemming", [True, False])
    def test_word_forms(self, tmp_path: Path, stemming: bool) -> None:
        data = tmp_path / "data"
        flags = ["--set", f"index.stemming={'true' if stemming else 'false'}", "--set", "index.commit_interval_ms=200"]
        daemon = DaemonProcess(data, *flags).start()
        try:
            marker = uuid.uuid4().hex[:8]
            lines = [f"{marker} Ошибка подключения к базе", f"{marker} connection errors everywhere"]
            daemon.send_tcp(b"".join(json.dumps({"message": line}).encode() + b"\n" for line in lines))
            Store(data).wait_for(2, field="message", term=marker)
            russian = _query(data, f"{marker} and ошибки")
            english = _query(data, f"{marker} and error")
            exact = _query(data, f"{marker} and ошибка")
        finally:
            daemon.kill()
        assert exact == [lines[0]]
        if stemming:
            assert russian == [lines[0]]
            assert english == [lines[1]]
        else:
            assert russian == []
            assert english == []
