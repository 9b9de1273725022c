"""Label discovery on the events table: which stream labels carry values, a label's values, routed indexes.

Every statement is confined to the tenant (org, env) and the window like every search.  Canonical
labels are answered by ClickHouse (DISTINCT over LowCardinality columns); an attribute's values
are read from the raw JSON text of at most MAX_ATTRIBUTE_ROWS candidate events, since attributes
are stored as sent rather than as typed columns.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from logtraced.model import Tenant
from logtraced.storage.clickhouse.client import Client
from logtraced.storage.clickhouse.params import Params
from logtraced.storage.clickhouse.schema import LABEL_COLUMNS, Target

_KEYWORD_COLUMNS: Final = frozenset({"level", "service", "host", "env", "org", "index"})
MAX_ATTRIBUTE_ROWS: Final = 100_000
_decode: Final = msgspec.json.Decoder(dict[str, Any]).decode


def _tenant_window(tenant: Tenant, start_ns: int, end_ns: int, params: Params) -> str:
    return (
        f"`org` = {params.text(tenant.org)} AND `env` = {params.text(tenant.env)} "
        f"AND `timestamp` >= {params.int64(start_ns)} AND `timestamp` < {params.int64(end_ns)}"
    )


def label_names(client: Client, target: Target, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]:
    """The stream labels with at least one non-empty value in [start_ns, end_ns), in the APIs' order."""
    params = Params()
    where = _tenant_window(tenant, start_ns, end_ns, params)
    present = ", ".join(f"countIf(`{name}` != '') > 0" for name in LABEL_COLUMNS)
    rows = client.query(f"SELECT {present} FROM {target.events} WHERE {where}", params.values)
    if not rows:
        return []
    return [name for name, found in zip(LABEL_COLUMNS, rows[0], strict=True) if found]


def label_values(
    client: Client, target: Target, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int
) -> list[str]:
    """Distinct non-empty values of a label (a canonical field, `tags` or an attribute path), sorted, first `limit`."""
    params = Params()
    where = _tenant_window(tenant, start_ns, end_ns, params)
    if name in _KEYWORD_COLUMNS or name == "tags":
        column = "arrayJoin(`tags`)" if name == "tags" else f"`{name}`"
        sql = (
            f"SELECT DISTINCT {column} AS value FROM {target.events} WHERE {where} AND value != '' "
            f"ORDER BY value LIMIT {params.int64(limit)}"
        )
        return [str(row[0]) for row in client.query(sql, params.values)]
    last = name.rsplit(".", 1)[-1]
    sql = (
        f"SELECT `attributes` FROM {target.events} WHERE {where} AND position(`attributes`, {params.text(last)}) > 0 "
        f"LIMIT {params.int64(MAX_ATTRIBUTE_ROWS)}"
    )
    values: set[str] = set()
    for (text,) in client.query(sql, params.values):
        values.update(_label_texts(_decode(text), name.split(".")))
    return sorted(values)[:limit]


def _label_texts(node: object, parts: list[str]) -> list[str]:
    """Leaf values at every nested/dotted reading of the path, as the Tantivy backend reports them."""
    found: list[str] = []
    _walk(node, parts, found)
    return found


def _walk(node: object, parts: list[str], found: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, parts, found)
        return
    if not parts:
        text = _text(node)
        if text:
            found.append(text)
        return
    if not isinstance(node, dict):
        return
    for cut in range(1, len(parts) + 1):
        key = ".".join(parts[:cut])
        if key in node:
            _walk(node[key], parts[cut:], found)


def _text(value: object) -> str:
    """Strings as sent, integral numbers without a fraction; containers and null are not values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    return ""


def has_index(client: Client, target: Target, tenant: Tenant, name: str) -> bool:
    """Whether any event of the tenant, at any time, was routed to `name`."""
    params = Params()
    where = _tenant_window(tenant, -(2**63), 2**63 - 1, params)
    sql = f"SELECT 1 FROM {target.events} WHERE {where} AND `index` = {params.text(name)} LIMIT 1"
    return bool(client.query(sql, params.values))
