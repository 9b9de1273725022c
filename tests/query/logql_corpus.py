"""Every LogQL query the tests send, in one place, so Grafana's own grammar can check them all."""

from __future__ import annotations

from tests.query.test_logql import GRAFANA_QUERIES, LINE_FILTERS, METRICS, SELECTORS, STAGES

# The queries the Loki API tests send to the daemon (Explore, logs volume, metric panels).
API_QUERIES = [
    '{service_name="checkout"}',
    '{service_name="checkout", level="error"}',
    '{service_name="checkout"} |= "timeout"',
    '{service_name="checkout"} | json | status >= 500',
    '{service_name="checkout"} | json | line_format "{{.status}} {{.path}}"',
    '{service_name="checkout"} | logfmt | drop __error__',
    'sum by (level, detected_level) (count_over_time({service_name="checkout"} | drop __error__[1m]))',
    'sum by (level, detected_level) (count_over_time({service_name="checkout"} |= "timeout" | drop __error__[1m]))',
    'count_over_time({service_name="checkout"}[1m])',
    'sum(rate({service_name="checkout"}[5m]))',
    'sum by (level) (count_over_time({service_name="checkout"} | json | status >= 500 [1m]))',
    'avg_over_time({service_name="checkout"} | json | unwrap duration_ms [5m])',
    'topk(1, sum by (level) (count_over_time({service_name="checkout"}[1m])))',
    "vector(1)+vector(1)",
]

ACCEPTED = sorted(
    {
        *GRAFANA_QUERIES,
        *API_QUERIES,
        *(query for query, _ in SELECTORS),
        *(f'{{service_name="api"}} {fragment}' for fragment, _ in [*LINE_FILTERS, *STAGES]),
        *(query for query, _ in METRICS),
    }
)

# Malformed LogQL: Grafana's grammar refuses each, and so must ours.
MALFORMED = [
    '{service_name="api"',
    "{}",
    '{service_name="api"} |= ',
    '{service_name="api"} | json |',
    'count_over_time({service_name="api"})',
    'sum by (level (count_over_time({a="b"}[1m]))',
    'rate({a="b"}[1m]',
    '{a="b"} | line_format',
    "sum(",
    'sum by level (rate({a="b"}[1m]))',
    '{a="b"} |= "x" |',
    "nonsense",
    '{a="b"} | a="1" b="2"',
]
