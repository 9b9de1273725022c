"""Live tail: events handed to subscribers of their own tenant as soon as the WAL has them durable.

Tail feeds from the ingest path, not from the store: `IngestPipeline` calls `TailHub.publish`
once a batch is fsynced, so a subscriber sees an event about one group-commit window after it
arrived (not a commit interval later), every event exactly once and in WAL order, and no query
runs per subscriber.  `publish` is the one place confinement happens: it hands a batch only to
the subscribers registered under the batch's tenant.  Each subscriber has a bounded queue; when
a slow reader lets it fill, further events are counted as dropped and the reader is told how
many (Loki's `dropped_entries`).  The number of subscribers is capped (`TooManySubscribers`).
Events get the ids the writer will give them (WAL sequence and position), so a replay read
from the store before following can be joined to the live stream without repeats.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Final

from logtraced.errors import RateLimited
from logtraced.model import MAX_EVENTS_PER_RECORD, Event, Tenant, event_id

DEFAULT_QUEUE_EVENTS: Final = 10_000
DEFAULT_MAX_SUBSCRIBERS: Final = 64
RETRY_SECONDS: Final = 5


class TooManySubscribers(RateLimited):
    default_code = "too_many_tail_subscribers"


@dataclasses.dataclass(eq=False)
class Subscriber:
    """One live reader: its tenant, its filter, and a bounded queue of matching events."""

    tenant: Tenant
    accepts: Callable[[Event], bool]
    capacity: int
    events: deque[Event] = dataclasses.field(default_factory=deque)
    dropped: list[Event] = dataclasses.field(default_factory=list)  # the first events that did not fit
    dropped_count: int = 0
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def offer(self, event: Event) -> None:
        if not self.accepts(event):
            return
        if len(self.events) >= self.capacity:
            self.dropped_count += 1
            if len(self.dropped) < self.capacity:
                self.dropped.append(event)
        else:
            self.events.append(event)
        self.wake.set()

    async def take(self) -> tuple[list[Event], list[Event], int]:
        """Wait for news: the queued events, and the events dropped since the last take (a sample and a count)."""
        while not self.events and not self.dropped_count:
            self.wake.clear()
            await self.wake.wait()
        events, self.events = list(self.events), deque()
        dropped, self.dropped = self.dropped, []
        count, self.dropped_count = self.dropped_count, 0
        return events, dropped, count


class TailHub:
    """Every live subscriber, by tenant; fed by the ingest pipeline after each fsync."""

    def __init__(
        self, *, max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS, queue_events: int = DEFAULT_QUEUE_EVENTS
    ) -> None:
        self.max_subscribers = max_subscribers
        self.queue_events = queue_events
        self._by_tenant: dict[Tenant, list[Subscriber]] = {}
        self.published = 0

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self._by_tenant.values())

    def wants(self, tenant: Tenant) -> bool:
        """Whether anyone tails this tenant (the pipeline keeps batches for publishing only then)."""
        return tenant in self._by_tenant

    def subscribe(self, tenant: Tenant, accepts: Callable[[Event], bool]) -> Subscriber:
        if self.subscribers >= self.max_subscribers:
            raise TooManySubscribers(
                f"at most {self.max_subscribers} tail subscribers at once; try again later", retry_after=RETRY_SECONDS
            )
        subscriber = Subscriber(tenant, accepts, self.queue_events)
        self._by_tenant.setdefault(tenant, []).append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        group = self._by_tenant.get(subscriber.tenant, [])
        if subscriber in group:
            group.remove(subscriber)
        if not group:
            self._by_tenant.pop(subscriber.tenant, None)

    def publish(self, first_seq: int, tenant: Tenant, events: list[Event]) -> None:
        """A durable batch written as WAL records from `first_seq`: to the subscribers of its tenant only."""
        group = self._by_tenant.get(tenant)
        if not group:
            return
        for position, event in enumerate(events):
            event.id = event_id(first_seq + position // MAX_EVENTS_PER_RECORD, position % MAX_EVENTS_PER_RECORD)
            self.published += 1
            for subscriber in group:
                subscriber.offer(event)
