"""Label discovery from the per-minute rollup: exact at every edge, confined, current at once, kept by retention.

Every answer is compared with a brute-force reading of the events written (the reference), over
windows that start and end one nanosecond either side of minute and day boundaries, windows inside
one minute and windows across midnight, so a missed edge or an off-by-one bucket shows.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from logtraced.model import NS_PER_DAY, Event, EventColumns, Tenant
from logtraced.storage.clickhouse import schema
from logtraced.storage.clickhouse.schema import LABEL_COLUMNS, NS_PER_BUCKET
from tests.storage.clickhouse.conftest import Backend, apply_wal, make_config, write_wal

MINE = Tenant("acme", "production")
STRANGERS = (Tenant("acme", "staging"), Tenant("globex", "production"))
MINUTE = NS_PER_BUCKET
MIDNIGHT = 19_797 * NS_PER_DAY  # 2024-03-15T00:00:00Z
# Minute boundaries: one before midnight, midnight, one after; events sit on them and one ns either side.
BOUNDARIES = tuple(MIDNIGHT + k * MINUTE for k in (-1, 0, 1))
OFFSETS = (-1, 0, 1)
# Window ends: every event time, and the middle of a minute (windows smaller than a bucket).
POINTS = sorted({b + o for b in BOUNDARIES for o in OFFSETS} | {b + MINUTE // 2 for b in BOUNDARIES[:-1]})
LABELS = ("service", "host", "index", "level", "tags", "org", "env")
# Asked of every window (each statement takes some ms in the embedded engine): a value unique to each event,
# and the array column; every label is asked of the whole range and of an edge in the confinement test.
SHARP_LABELS = ("service", "tags")


def _mine(n: int, stamp: int) -> Event:
    """An event carrying its own service and tag, and one of host/index/level by turn (label names then vary)."""
    kind = ("host", "index", "level")[n % 3]
    return Event(
        stamp,
        f"mine {n}",
        level=f"lvl-{n}" if kind == "level" else "",
        service=f"svc-{n:02d}",
        host=f"host-{n}" if kind == "host" else "",
        index=f"idx-{n}" if kind == "index" else "",
        tags=[f"tag-{n}", "common"],
    )


def _stamps() -> list[int]:
    return [b + o for b in BOUNDARIES for o in OFFSETS] + [b + MINUTE // 2 for b in BOUNDARIES[:-1]]


def _strangers(stamps: list[int]) -> list[tuple[Tenant, list[Event]]]:
    """The same times for other tenants, every label set to a value that must never show for MINE."""
    batches = []
    for stranger in STRANGERS:
        events = [
            Event(stamp, "theirs", level="leak", service="leak", host="leak", index="leak", tags=["leak"])
            for stamp in stamps
        ]
        batches.append((stranger, events))
    return batches


@pytest.fixture
def written(backend: Backend, tmp_path: Path) -> tuple[Backend, list[Event]]:
    mine = [_mine(n, stamp) for n, stamp in enumerate(_stamps())]
    cfg = make_config(tmp_path)
    apply_wal(cfg, backend.writer(), write_wal(cfg, [(MINE, mine), *_strangers(_stamps())])).close()
    return backend, mine


def reference_values(events: list[Event], name: str, start_ns: int, end_ns: int) -> list[str]:
    """What a scan of the window answers: the distinct non-empty values of the label, sorted."""
    values: set[str] = set()
    for event in events:
        if start_ns <= event.timestamp < end_ns:
            values.update(event.tags if name == "tags" else [getattr(event, name)])
    return sorted(value for value in values if value)


def reference_names(events: list[Event], start_ns: int, end_ns: int) -> list[str]:
    return [name for name in LABEL_COLUMNS if reference_values(events, name, start_ns, end_ns)]


def test_every_window_answers_as_a_scan_of_it(written: tuple[Backend, list[Event]]) -> None:
    backend, mine = written
    view = backend.store.for_tenant(MINE)
    for start_ns, end_ns in itertools.combinations(POINTS, 2):
        assert view.label_names(start_ns, end_ns) == reference_names(mine, start_ns, end_ns), (start_ns, end_ns)
        for name in SHARP_LABELS:
            expected = reference_values(mine, name, start_ns, end_ns)
            assert view.label_values(name, start_ns, end_ns, 1000) == expected, (name, start_ns, end_ns)


def test_whole_minutes_come_from_the_rollup(written: tuple[Backend, list[Event]]) -> None:
    """Emptying the events table leaves a window of whole minutes answering from the rollup alone: it is used."""
    backend, mine = written
    first, last = BOUNDARIES[0], BOUNDARIES[-1]
    backend.client.command(f"TRUNCATE TABLE {backend.target.events}")
    view = backend.store.for_tenant(MINE)
    assert view.label_values("service", first, last, 1000) == reference_values(mine, "service", first, last)
    assert view.label_values("service", first + 1, last, 1000) == reference_values(
        mine, "service", first + MINUTE, last
    )


def test_limit_and_empty_windows(written: tuple[Backend, list[Event]]) -> None:
    backend, mine = written
    view = backend.store.for_tenant(MINE)
    everything = (BOUNDARIES[0] - MINUTE, BOUNDARIES[-1] + MINUTE)
    assert view.label_values("service", *everything, 3) == [f"svc-{n:02d}" for n in range(3)]
    assert view.label_values("tags", *everything, 1) == ["common"]
    assert view.label_names(BOUNDARIES[1], BOUNDARIES[1]) == []
    assert view.label_values("service", BOUNDARIES[2], BOUNDARIES[1], 10) == []


def test_other_tenants_labels_never_show(written: tuple[Backend, list[Event]]) -> None:
    backend, mine = written
    whole, edge = (BOUNDARIES[0], BOUNDARIES[-1]), (BOUNDARIES[1] - 1, BOUNDARIES[1] + 2)
    for start_ns, end_ns in (whole, edge):
        for name in LABELS:
            found = backend.store.for_tenant(MINE).label_values(name, start_ns, end_ns, 1000)
            assert found == reference_values(mine, name, start_ns, end_ns)
            assert "leak" not in found
        for stranger in STRANGERS:
            view = backend.store.for_tenant(stranger)
            assert view.label_values("service", start_ns, end_ns, 1000) == ["leak"]
            assert view.label_values("org", start_ns, end_ns, 10) == [stranger.org]
            assert view.label_values("env", start_ns, end_ns, 10) == [stranger.env]
            assert view.label_values("tags", start_ns, end_ns, 10) == ["leak"]


def test_an_acknowledged_insert_is_discovered_at_once(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    window = (MIDNIGHT - 10 * MINUTE, MIDNIGHT + 10 * MINUTE)
    view = backend.store.for_tenant(MINE)
    for n in range(3):
        seq = write_wal(cfg, [(MINE, [Event(MIDNIGHT + n * MINUTE + 7, "new", service=f"late-{n}", tags=[f"t{n}"])])])
        apply_wal(cfg, backend.writer(), seq).close()  # returns once ClickHouse acknowledged the INSERT
        assert view.label_values("service", *window, 100) == [f"late-{k}" for k in range(n + 1)]
        assert view.label_values("tags", *window, 100) == [f"t{k}" for k in range(n + 1)]
        assert view.label_names(*window) == ["service", "env"]
    rolled = backend.client.query(
        f"SELECT `minute`, `value` FROM {backend.target.rollup} WHERE `name` = 'service' ORDER BY `minute`"
    )
    assert rolled == [[MIDNIGHT // MINUTE + n, f"late-{n}"] for n in range(3)]


def test_a_retried_insert_makes_good_a_lost_rollup_write(backend: Backend) -> None:
    """The events table drops the retry (same token) but the view still receives it: nothing is missed for good."""
    writer = backend.writer()
    writer.apply(1, MINE, EventColumns.of_events([Event(MIDNIGHT + 5, "x", org=MINE.org, env=MINE.env, id=1 << 20,
                                                        service="retried")]))  # fmt: skip
    staged = dict(writer.staged)
    writer.commit()
    backend.client.command(f"TRUNCATE TABLE {backend.target.rollup}")  # as if the view's write had failed
    writer.staged = staged  # as if commit() had raised, and the writer process tried again
    writer.commit()
    assert backend.count() == 1
    window = (MIDNIGHT - MINUTE, MIDNIGHT + MINUTE)
    assert backend.store.for_tenant(MINE).label_values("service", *window, 10) == ["retried"]


def test_times_before_the_epoch_are_read_from_the_events(backend: Backend, tmp_path: Path) -> None:
    """The rollup's minutes start at the epoch (intDiv truncates toward zero); earlier events are still found."""
    cfg = make_config(tmp_path)
    events = [Event(-MINUTE - 1, "early", service="before"), Event(-1, "x", service="just-before"),
              Event(0, "y", service="epoch"), Event(MINUTE, "z", service="after")]  # fmt: skip
    apply_wal(cfg, backend.writer(), write_wal(cfg, [(MINE, events)])).close()
    view = backend.store.for_tenant(MINE)
    for start_ns, end_ns in itertools.combinations(
        (-2 * MINUTE, -MINUTE - 1, -MINUTE, -1, 0, 1, MINUTE, 3 * MINUTE), 2
    ):
        assert view.label_values("service", start_ns, end_ns, 10) == reference_values(
            events, "service", start_ns, end_ns
        )


def test_routed_indexes_are_known_from_the_rollup_and_before_the_epoch(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    events = [Event(MIDNIGHT + 7, "now", index="audit"), Event(-MINUTE, "early", index="ancient")]
    theirs = (STRANGERS[0], [Event(MIDNIGHT, "x", index="theirs")])
    apply_wal(cfg, backend.writer(), write_wal(cfg, [(MINE, events), theirs])).close()
    view = backend.store.for_tenant(MINE)
    assert (view.has_index("audit"), view.has_index("ancient"), view.has_index("theirs")) == (True, True, False)
    assert backend.store.for_tenant(STRANGERS[0]).has_index("theirs")
    backend.client.command(f"TRUNCATE TABLE {backend.target.events}")
    # The rollup answers alone once the events are gone; it starts at 1970, so the earlier index went with them.
    assert (view.has_index("audit"), view.has_index("ancient")) == (True, False)


def test_retention_drops_the_rollups_days_too(backend: Backend, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    old, today = Event(MIDNIGHT - MINUTE, "old", service="gone"), Event(MIDNIGHT + MINUTE, "new", service="kept")
    apply_wal(cfg, backend.writer(), write_wal(cfg, [(MINE, [old, today])])).close()
    assert backend.writer().enforce_retention(MIDNIGHT // NS_PER_DAY) == [f"day/{MIDNIGHT // NS_PER_DAY - 1}"]
    window = (MIDNIGHT - NS_PER_DAY, MIDNIGHT + NS_PER_DAY)
    assert backend.store.for_tenant(MINE).label_values("service", *window, 10) == ["kept"]
    rolled = backend.client.query(f"SELECT DISTINCT `value` FROM {backend.target.rollup} WHERE `name` = 'service'")
    assert rolled == [["kept"]]


def test_the_cluster_layout_puts_the_view_on_each_nodes_local_tables() -> None:
    statements = schema.MIGRATIONS[3](schema.Target("logs", "c1"))
    local_rollup, distributed, view, backfill = statements
    assert local_rollup.startswith("CREATE TABLE IF NOT EXISTS `logs`.`label_rollup_local` ON CLUSTER `c1`")
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/logs/label_rollup_local', '{replica}')"
        in local_rollup
    )
    assert "ON CLUSTER `c1`" in distributed and "Distributed(`c1`, `logs`, `label_rollup_local`" in distributed
    assert " ON CLUSTER `c1` TO `logs`.`label_rollup_local` AS SELECT " in view
    assert "FROM `logs`.`events_local` " in view
    assert backfill.startswith("INSERT INTO `logs`.`label_rollup` SELECT ") and "FROM `logs`.`events` " in backfill
