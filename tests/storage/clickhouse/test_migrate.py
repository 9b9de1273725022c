"""`logtraced migrate` creates the schema and copies Tantivy partitions (resumably); `serve` refuses unknown schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from logtraced.model import NS_PER_DAY, Event
from logtraced.storage.clickhouse.schema import SCHEMA_VERSION, VERSION_FILE, write_version_file
from logtraced.storage.tantivy.writer import TantivyWriter
from tests.storage.clickhouse.conftest import apply_wal, make_config, write_wal
from tests.storage.test_store import MINE, NOW, STRANGERS

ROOT = Path(__file__).resolve().parents[3]
CLICKHOUSE = ("--set", "storage.backend=clickhouse")
COUNT = (
    "import sys; from logtraced.storage.clickhouse.client import ChdbClient; from pathlib import Path; "
    "c = ChdbClient(Path(sys.argv[1])); "
    "print(*c.query('SELECT count(), uniqExact(id), countIf(org = {o:String}) FROM logtraced.events', "
    "{'o': 'acme'})[0])"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logtraced", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def stored(data_dir: Path) -> list[int]:
    done = subprocess.run([sys.executable, "-c", COUNT, str(data_dir / "clickhouse")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [int(value) for value in done.stdout.split()]


def test_migrate_copies_tantivy_partitions_once(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    mine = [Event(NOW - n * NS_PER_DAY // 3, f"mine {n}", attributes={"n": n}) for n in range(9)]
    theirs = [Event(NOW - n, f"theirs {n}") for n in range(4)]
    seq = write_wal(cfg, [(MINE, mine), (STRANGERS[1], theirs)])
    apply_wal(cfg, TantivyWriter(cfg), seq).close()
    first = cli("migrate", "--data-dir", str(tmp_path), *CLICKHOUSE, "--copy-tantivy")
    assert first.returncode == 0, first.stderr
    assert f"schema created: version {SCHEMA_VERSION}" in first.stdout
    assert "13/13 events" in first.stderr
    again = cli("migrate", "--data-dir", str(tmp_path), *CLICKHOUSE, "--copy-tantivy")
    assert again.returncode == 0, again.stderr
    assert f"schema version {SCHEMA_VERSION} is current" in again.stdout
    assert stored(tmp_path) == [13, 13, 9]


def test_serve_refuses_a_schema_it_does_not_know(tmp_path: Path) -> None:
    directory = tmp_path / "clickhouse"
    directory.mkdir()
    for version, advice in ((99, "upgrade logtraced"), (0, "run `logtraced migrate`")):
        write_version_file(directory, version)
        done = cli("serve", "--data-dir", str(tmp_path), *CLICKHOUSE, "--http-port", "0", "--tcp-port", "0",
                   "--udp-port", "0")  # fmt: skip
        assert done.returncode == 1
        assert advice in done.stderr
    assert (directory / VERSION_FILE).exists()
