"""Named-index routing at ingest: config rules on (nested) attributes, and an event's own `index` field."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import Store
from tests.harness import DaemonProcess

RULES = (
    '[{field="kubernetes.namespace", equals="payments", index="payments"}, {field="team", equals="ops", index="ops"}]'
)


class TestRouting:
    """Events land in the index their rule or their own field names; the rest stay in the default index."""

    def test_rules_and_explicit_index(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        daemon = DaemonProcess(data, "--set", f"routing={RULES}", "--set", "index.commit_interval_ms=200").start()
        marker = uuid.uuid4().hex[:10]
        records = [
            {"message": f"{marker} nested", "kubernetes": {"namespace": "payments"}},
            {"message": f"{marker} dotted", "kubernetes.namespace": "payments"},
            {"message": f"{marker} flat", "team": "ops"},
            {"message": f"{marker} explicit", "index": "audit", "team": "ops"},
            {"message": f"{marker} default", "kubernetes": {"namespace": "web"}},
        ]
        try:
            daemon.send_tcp(b"".join(json.dumps(record).encode() + b"\n" for record in records))
            events = Store(data).wait_for(5, field="message", term=marker)
        finally:
            daemon.kill()
        routed = {event.message.split()[1]: event.index for event in events}
        assert routed == {"nested": "payments", "dotted": "payments", "flat": "ops", "explicit": "audit", "default": ""}
        explicit = next(event for event in events if event.index == "audit")
        assert "index" not in explicit.attributes
        found = subprocess.run(
            [sys.executable, "-m", "logtraced", "query", "index:payments", "--data-dir", str(data), "--from=-1h"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert len(found.stdout.splitlines()) == 2
