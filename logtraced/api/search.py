"""Runs reads off the event loop, within the configured time budget, on a small dedicated thread pool.

Searching releases the GIL inside the storage engine, so a worker thread lets ingestion carry
on while a query runs.  Searches and counts check their deadline cooperatively (the backend
raises QueryTimeout); label discovery has no such check, so past the budget the client gets its
504 at once and the worker finishes in the background.
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
from logtraced.auth.principal import Principal
from logtraced.errors import InvalidInput, QueryTimeout
from logtraced.storage.backend import CountRequest, CountResult, SearchPage, SearchRequest, TenantView

QUERY_THREADS: Final = 2
POOL_KEY: Final = web.AppKey("query_pool", ThreadPoolExecutor)
T = TypeVar("T")


async def run_search(request: web.Request, view: TenantView, query: SearchRequest) -> SearchPage:
    """One page of a search, on the pool, under `query.timeout_seconds`."""
    return await run_read(request, view.search, dataclasses.replace(query, deadline=_deadline(request)))


async def run_count(request: web.Request, view: TenantView, query: CountRequest) -> CountResult:
    """Counts per step, on the pool, under the same time budget as a search."""
    return await run_read(request, view.count, dataclasses.replace(query, deadline=_deadline(request)))


def tenant_view(request: web.Request, principal: Principal) -> TenantView:
    """The caller's confined view of the store: the tenant comes from the credential, never from the query."""
    return get_state(request).store.for_tenant(principal.tenant)


def _deadline(request: web.Request) -> float:
    return time.monotonic() + get_state(request).config.query.timeout_seconds


async def run_read(request: web.Request, function: Callable[..., T], *args: Any) -> T:
    """Run one read on the query pool; past the time budget the answer is 504 `query_timeout`."""
    budget = get_state(request).config.query.timeout_seconds
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(request.app[POOL_KEY], function, *args)
    try:
        return await asyncio.wait_for(work, budget)
    except TimeoutError:
        raise QueryTimeout(f"the request took longer than {budget:g} s and was abandoned") from None
    except QueryTimeout:  # the backend's cooperative deadline: say which budget it was
        raise QueryTimeout(f"the query took longer than {budget:g} s and was cancelled") from None


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
        raise InvalidInput(f"limit must be between 1 and {config.max_limit}, got {limit}", code="invalid_limit")
    return limit
