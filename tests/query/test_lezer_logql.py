"""Every LogQL query of the test corpus is valid as Grafana sees it: parsed by its own grammar, @grafana/lezer-logql.

The grammar runs under node (Debian `nodejs`/`npm`, installed by scripts/test); the package is
installed once with `npm install --prefix` into a cache directory outside the work tree.
Both directions: what we accept lezer accepts, and what lezer refuses we refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from logtraced.errors import QueryError
from logtraced.query.logql import parse_logql
from tests.query.logql_corpus import ACCEPTED, MALFORMED

PACKAGE = "@grafana/lezer-logql@0.3.0"
SCRIPT = Path(__file__).with_name("lezer.js")


@pytest.fixture(scope="module")
def lezer() -> Path:
    """The cache directory holding node_modules/@grafana/lezer-logql, installed on first use."""
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/test, which installs Debian's nodejs and npm"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "logtraced-tests" / "lezer-logql"
    if not (cache / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund", PACKAGE],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return cache


def grafana_accepts(lezer: Path, queries: list[str]) -> dict[str, bool]:
    done = subprocess.run(
        ["node", str(SCRIPT), str(lezer)], input=json.dumps(queries), capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    return dict(zip(queries, json.loads(done.stdout), strict=True))


def test_every_query_we_accept_is_valid_logql_for_grafana(lezer: Path) -> None:
    for query in ACCEPTED:
        parse_logql(query)  # ours first: the corpus holds only what we accept
    verdicts = grafana_accepts(lezer, ACCEPTED)
    assert [query for query, ok in verdicts.items() if not ok] == []
    assert len(verdicts) > 50


def test_what_grafana_refuses_we_refuse(lezer: Path) -> None:
    verdicts = grafana_accepts(lezer, MALFORMED)
    assert [query for query, ok in verdicts.items() if ok] == []
    for query in MALFORMED:
        with pytest.raises(QueryError):
            parse_logql(query)
