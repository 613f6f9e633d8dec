"""``TurnBatch``: calls made in one turn of an asyncio event loop, sent on together as one batch.

verl's agent-loop worker starts a prompt's n samples (and every prompt of a chunk) as concurrent tasks that each make
their own Ray call. Calls queued in the same turn of the worker's event loop are gathered here and sent with one
call to ``send``, a coroutine taking the list of items and returning one result per item, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class TurnBatch:
    def __init__(self, send: Callable[[list[Any]], Awaitable[list[Any]]]):
        self.send = send
        self.pending: list[tuple[Any, asyncio.Future]] = []

    def add(self, item: Any) -> asyncio.Future:
        """Queue ``item``; the returned future gets its result (or the batch's error)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:  # the turn's first call sends the turn's calls once the others are queued
            loop.call_soon(self._send_pending)
        self.pending.append((item, future))
        return future

    def _send_pending(self) -> None:
        pending, self.pending = self.pending, []
        futures = [future for _, future in pending]
        reply = asyncio.ensure_future(self.send([item for item, _ in pending]))
        reply.add_done_callback(lambda done: _deliver(done, futures))


def _deliver(reply: asyncio.Future, futures: list[asyncio.Future]) -> None:
    error = asyncio.CancelledError() if reply.cancelled() else reply.exception()
    results = None if error else list(reply.result())
    for i, future in enumerate(futures):
        if future.done():
            continue
        if error:
            future.set_exception(error)
        else:
            future.set_result(results[i])
