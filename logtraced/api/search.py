"""Runs queries off the event loop, within the configured time budget, on a small dedicated thread pool.

Searching releases the GIL inside tantivy, so a worker thread lets ingestion carry on while a
query runs; the executor checks the deadline cooperatively, so a query past its budget stops
instead of holding a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from aiohttp import web

from logtraced.api.context import get_state
from logtraced.errors import ApiError, QueryError
from logtraced.query.execute import QueryRequest, QueryResult, Series, count_per_step, execute

QUERY_THREADS: Final = 2
POOL_KEY: Final = web.AppKey("query_pool", ThreadPoolExecutor)
T = TypeVar("T")


async def run_query(request: web.Request, query: QueryRequest) -> QueryResult:
    """Execute on the pool; past `query.timeout_seconds` the answer is 504 `query_timeout`."""
    state = get_state(request)
    return await _within_budget(request, execute, state.reader, _bounded(request, query))


async def run_counts(
    request: web.Request, query: QueryRequest, step_ns: int, by: tuple[str, ...]
) -> tuple[list[Series], QueryResult]:
    """Count matches per step on the pool, under the same time budget as a search."""
    state = get_state(request)
    return await _within_budget(request, count_per_step, state.reader, _bounded(request, query), step_ns, by)


def _bounded(request: web.Request, query: QueryRequest) -> QueryRequest:
    budget = get_state(request).config.query.timeout_seconds
    return dataclasses.replace(query, deadline=time.monotonic() + budget)


async def _within_budget(request: web.Request, function: Callable[..., T], *args: Any) -> T:
    budget = get_state(request).config.query.timeout_seconds
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(request.app[POOL_KEY], function, *args)
    except QueryError as exc:
        if exc.code == "query_timeout":
            raise ApiError(504, "query_timeout", f"the query took longer than {budget:g} s and was cancelled") from exc
        raise


async def run_blocking(request: web.Request, function: Callable[..., T], *args: Any) -> T:
    """Run a read-only storage call (labels, label values) on the query pool, under the query time budget.

    These calls have no cooperative deadline, so past the budget the client gets its 504 at once and
    the worker finishes in the background.
    """
    budget = get_state(request).config.query.timeout_seconds
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(request.app[POOL_KEY], function, *args)
    try:
        return await asyncio.wait_for(work, budget)
    except TimeoutError:
        raise ApiError(504, "query_timeout", f"the request took longer than {budget:g} s and was abandoned") from None


def install_pool(app: web.Application) -> None:
    """One pool per application, shut down with it."""
    if POOL_KEY in app:
        return
    app[POOL_KEY] = ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="query")

    async def shutdown(app: web.Application) -> None:
        app[POOL_KEY].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)


def clamp_limit(request: web.Request, limit: int | None) -> int:
    """The default when absent; 400 outside 1..query.max_limit."""
    config = get_state(request).config.query
    if limit is None:
        return config.default_limit
    if not 1 <= limit <= config.max_limit:
        raise ApiError(400, "invalid_limit", f"limit must be between 1 and {config.max_limit}, got {limit}")
    return limit
