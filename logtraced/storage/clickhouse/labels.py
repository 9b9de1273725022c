"""Label discovery: which stream labels carry values, a label's values, routed indexes.

Every statement is confined to the tenant (org, env) and the window like every search.  Canonical
labels (the keyword columns and `tags`) are answered from the label rollup (schema.py) for the
whole minutes inside the window and from the events table for the partial minutes at its two edges,
unioned: exactly the answer of a scan of the window, at the cost of reading one row per distinct
value per minute plus at most two minutes of events.  An attribute's values are read from the raw
JSON text of at most MAX_ATTRIBUTE_ROWS candidate events, since attributes are stored as sent
rather than as typed columns (and are not rolled up).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from logtraced.model import Tenant
from logtraced.storage.clickhouse.client import Client
from logtraced.storage.clickhouse.params import Params
from logtraced.storage.clickhouse.schema import (
    LABEL_COLUMNS,
    LABEL_PAIRS_SQL,
    NS_PER_BUCKET,
    ROLLUP_LABELS,
    Target,
)

MAX_ATTRIBUTE_ROWS: Final = 100_000
_decode: Final = msgspec.json.Decoder(dict[str, Any]).decode


def _tenant(tenant: Tenant, params: Params) -> str:
    return f"`org` = {params.text(tenant.org)} AND `env` = {params.text(tenant.env)}"


def _between(start_ns: int, end_ns: int, params: Params) -> str:
    return f"`timestamp` >= {params.int64(start_ns)} AND `timestamp` < {params.int64(end_ns)}"


def _tenant_window(tenant: Tenant, start_ns: int, end_ns: int, params: Params) -> str:
    return f"{_tenant(tenant, params)} AND {_between(start_ns, end_ns, params)}"


def _buckets(start_ns: int, end_ns: int) -> tuple[int, int]:
    """The whole minutes [first, last) inside [start_ns, end_ns): empty (first >= last) in a window within one or
    two minutes.  The rollup holds no minute before the epoch (schema.py), so those times count as an edge."""
    first = max(-(-start_ns // NS_PER_BUCKET), 0)
    return first, max(end_ns // NS_PER_BUCKET, first)


def _edges(start_ns: int, end_ns: int, first: int, last: int) -> list[tuple[int, int]]:
    """The non-empty time ranges of [start_ns, end_ns) outside the whole minutes [first, last), read from events."""
    if first >= last:
        return [(start_ns, end_ns)] if start_ns < end_ns else []
    edges = [(start_ns, first * NS_PER_BUCKET), (last * NS_PER_BUCKET, end_ns)]
    return [(low, high) for low, high in edges if low < high]


def _labels_sql(
    target: Target, tenant: Tenant, start_ns: int, end_ns: int, names: tuple[str, ...], params: Params
) -> str:
    """A subquery of the (name, value) pairs of `names` the tenant's events carry in [start_ns, end_ns), with
    repeats: the rollup's whole minutes UNION ALL the edges' events, expanded as the rollup's view expands them."""
    first, last = _buckets(start_ns, end_ns)
    tenant_sql = _tenant(tenant, params)
    in_names = "`name` IN (" + ", ".join(params.text(name) for name in names) + ")"
    ranges = [f"({_between(low, high, params)})" for low, high in _edges(start_ns, end_ns, first, last)]
    parts = []
    if first < last:
        parts.append(
            f"SELECT `name`, `value` FROM {target.rollup} WHERE {tenant_sql} "
            f"AND `minute` >= {params.int64(first)} AND `minute` < {params.int64(last)} AND {in_names}"
        )
    if ranges:
        parts.append(
            f"SELECT pair.1 AS `name`, pair.2 AS `value` FROM {target.events} ARRAY JOIN {LABEL_PAIRS_SQL} AS pair "
            f"WHERE {tenant_sql} AND ({' OR '.join(ranges)}) AND {in_names} AND `value` != ''"
        )
    return " UNION ALL ".join(parts)


def label_names(client: Client, target: Target, tenant: Tenant, start_ns: int, end_ns: int) -> list[str]:
    """The stream labels with at least one non-empty value in [start_ns, end_ns), in the APIs' order."""
    if start_ns >= end_ns:
        return []
    params = Params()
    pairs = _labels_sql(target, tenant, start_ns, end_ns, LABEL_COLUMNS, params)
    found = {str(row[0]) for row in client.query(f"SELECT DISTINCT `name` FROM ({pairs})", params.values)}
    return [name for name in LABEL_COLUMNS if name in found]


def label_values(
    client: Client, target: Target, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int
) -> list[str]:
    """Distinct non-empty values of a label (a canonical field, `tags` or an attribute path), sorted, first `limit`."""
    if name in ROLLUP_LABELS:
        return _canonical_values(client, target, tenant, name, start_ns, end_ns, limit)
    return _attribute_values(client, target, tenant, name, start_ns, end_ns, limit)


def _canonical_values(
    client: Client, target: Target, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int
) -> list[str]:
    """A rolled-up label's values: whole minutes from the rollup, the edges from the events, sorted in SQL."""
    if start_ns >= end_ns:
        return []
    params = Params()
    pairs = _labels_sql(target, tenant, start_ns, end_ns, (name,), params)
    sql = f"SELECT DISTINCT `value` FROM ({pairs}) ORDER BY `value` LIMIT {params.int64(limit)}"
    return [str(row[0]) for row in client.query(sql, params.values)]


def _attribute_values(
    client: Client, target: Target, tenant: Tenant, name: str, start_ns: int, end_ns: int, limit: int
) -> list[str]:
    """An attribute path's values, read from the raw JSON of the window's candidate events (never rolled up)."""
    params = Params()
    where = _tenant_window(tenant, start_ns, end_ns, params)
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
    """Whether any event of the tenant, at any time, was routed to `name`.

    Read like label values (the rollup, and the events outside its minutes), so a name never routed
    to costs a look at the rollup, not a scan of every event the tenant has.
    """
    params = Params()
    pairs = _labels_sql(target, tenant, -(2**63), 2**63 - 1, ("index",), params)
    sql = f"SELECT 1 FROM ({pairs}) WHERE `value` = {params.text(name)} LIMIT 1"
    return bool(client.query(sql, params.values))
