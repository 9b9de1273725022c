"""Runs queries off the event loop, within the configured time budget, on a small dedicated thread pool.

Searching releases the GIL inside tantivy, so a worker thread lets ingestion carry on while a
query runs; the executor checks the deadline cooperatively, so a query past its budget stops
instead of holding a thread.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from aiohttp import web

from logtraced.api.context import get_state
from logtraced.errors import ApiError, QueryError
from logtraced.query.execute import QueryRequest, QueryResult, execute

QUERY_THREADS: Final = 2
POOL_KEY: Final = web.AppKey("query_pool", ThreadPoolExecutor)


async def run_query(request: web.Request, query: QueryRequest) -> QueryResult:
    """Execute on the pool; past `query.timeout_seconds` the answer is 504 `query_timeout`."""
    state = get_state(request)
    budget = state.config.query.timeout_seconds
    bounded = QueryRequest(
        tenant=query.tenant,
        start_ns=query.start_ns,
        end_ns=query.end_ns,
        pipeline=query.pipeline,
        limit=query.limit,
        newest_first=query.newest_first,
        offset=query.offset,
        after=query.after,
        index=query.index,
        deadline=time.monotonic() + budget,
    )
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(request.app[POOL_KEY], execute, state.reader, bounded)
    except QueryError as exc:
        if exc.code == "query_timeout":
            raise ApiError(504, "query_timeout", f"the query took longer than {budget:g} s and was cancelled") from exc
        raise


async def run_blocking(request: web.Request, function: object, *args: object) -> object:
    """Run a read-only storage call (labels, label values) on the query pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[POOL_KEY], function, *args)  # type: ignore[arg-type]


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
