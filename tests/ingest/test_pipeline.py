"""The one ingest path in-process: tenancy and routing stamped, durable before acknowledged, backpressure, counters."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from logtraced.config import Config, load_config
from logtraced.errors import RateLimited
from logtraced.ingest.codec import Decoded
from logtraced.ingest.pipeline import IngestPipeline
from logtraced.log import WarningLimiter, get_logger
from logtraced.model import Event, Tenant
from logtraced.storage.wal import WalTailer, WalWriter

TENANT = Tenant("acme", "staging")


def config(tmp_path: Path, **ingest: int) -> Config:
    base = load_config(None, overrides={"data_dir": str(tmp_path)})
    return msgspec.structs.replace(base, ingest=msgspec.structs.replace(base.ingest, **ingest))


class Writer:
    """Records the durable marks the pipeline reports, as the writer link would."""

    def __init__(self) -> None:
        self.durable: list[int] = []


def pipeline(cfg: Config, writer: Writer) -> IngestPipeline:
    return IngestPipeline(cfg, WalWriter(cfg.data_path / "wal", cfg.wal.segment_bytes), writer.durable.append)


async def test_store_returns_once_durable_with_tenancy_and_routing(tmp_path: Path) -> None:
    cfg, writer = config(tmp_path), Writer()
    ingest = pipeline(cfg, writer)
    ingest.start()
    events = [Event(1, "a", attributes={"index": "audit", "env": "production"}), Event(2, "b")]
    await ingest.store(events, TENANT, 10, "http")
    assert writer.durable[-1] == ingest.wal.written_seq == 1
    tailer = WalTailer(cfg.data_path / "wal")
    [record] = list(tailer.read_until(1))
    tailer.close()
    stored = record.events()
    assert record.tenant == TENANT
    assert [(e.org, e.env, e.index) for e in stored] == [("acme", "staging", "audit"), ("acme", "staging", "")]
    assert stored[0].attributes == {"env": "production"}  # a field of the event never moves its tenant
    assert (ingest.protocols["http"].events, ingest.protocols["http"].bytes) == (2, 10)
    await ingest.stop()


async def test_a_full_backlog_refuses_standard_senders_and_admits_overflow(tmp_path: Path) -> None:
    cfg, writer = config(tmp_path, queue_max_events=2), Writer()
    ingest = pipeline(cfg, writer)
    ingest.start()
    assert ingest.admit(may_overflow=False) is False
    await ingest.store([Event(1, "a"), Event(2, "b")], TENANT, 2, "http")
    with pytest.raises(RateLimited) as refused:
        ingest.admit(may_overflow=False)
    assert (refused.value.code, refused.value.retry_after) == ("ingest_backpressure", 1)
    assert ingest.admit(may_overflow=True) is True
    resumed: list[bool] = []
    ingest.when_drained(lambda: resumed.append(True))
    ingest.on_committed(ingest.wal.written_seq, 2, 0, 0)
    assert resumed == [True]
    assert ingest.admit(may_overflow=False) is False
    await ingest.stop()


def test_bad_input_is_counted_per_protocol_and_cause(tmp_path: Path) -> None:
    ingest = pipeline(config(tmp_path), Writer())
    decoded = Decoded(truncated=2, parse_failures=1, rejected={"bad_octet_count": 1})
    ingest.count_input("syslog", decoded, WarningLimiter(get_logger("test")), peer="10.0.0.1:514")
    counters = ingest.protocols["syslog"]
    assert (counters.rejected, counters.causes) == (1, {"bad_octet_count": 1})
    assert (ingest.counters.truncated, ingest.counters.parse_failures) == (2, 1)
    ingest.drop_datagram("gelf_udp")
    assert ingest.protocols["gelf_udp"].causes == {"dropped_backpressure": 1}
    assert ingest.counters.udp_dropped == 1
    ingest.wal.close()


def test_the_ingestion_rate_counts_what_receivers_accepted_before_any_commit(tmp_path: Path) -> None:
    ingest = pipeline(config(tmp_path), Writer())
    assert ingest.ingestion_rate() == 0.0
    ingest.submit([Event(n, "x") for n in range(3000)], TENANT, 3000, "tcp")
    assert ingest.ingestion_rate() == 3000.0  # one batch, counted over one second
    ingest.wal.close()
