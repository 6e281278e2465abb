"""The micro-batcher between HTTP and the engine (TEI-style dynamic batching).

Concurrent requests wait up to ``window_ms`` to be merged into one engine call, bounded by a token budget
(``max_batch_tokens``); the call runs in the engine's single worker thread so the event loop stays free.
The queue is bounded: past ``max_queue`` waiting requests, ``submit`` raises QueueFull (HTTP 429) instead of
growing without limit. A request whose caller went away (its future cancelled) is dropped before it is run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from mixlm.errors import QueueFull

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Pending(Generic[Req]):
    request: Req
    cost: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[Req, Res]):
    """``await submit(request)`` -> that request's result from ``run_batch([requests...])``.

    ``run_batch`` is blocking and returns one result per request, in order; ``cost`` gives a request's
    tokens. ``on_batch(n_requests, n_tokens)`` and ``on_queue(depth)`` feed the metrics.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Req]], Sequence[Res]],
        cost: Callable[[Req], int],
        *,
        window_ms: float,
        max_batch_tokens: int,
        max_queue: int,
        on_batch: Callable[[int, int], None] = lambda n, t: None,
        on_queue: Callable[[int], None] = lambda d: None,
    ):
        self._run_batch = run_batch
        self._cost = cost
        self.window_s = window_ms / 1000
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self._on_batch, self._on_queue = on_batch, on_queue
        self._pending: deque[_Pending[Req]] = deque()
        self._wakeup = asyncio.Event()
        # One thread: model work is serialised (CPU cores are shared by the forward pass anyway).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixlm-engine")
        self._loop_task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="mixlm-batcher")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
            self._loop_task = None
        for p in self._pending:
            p.future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, request: Req) -> Res:
        """Queue one request and wait for its result. Cancelling the awaiting task drops the request."""
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} requests already queued (max_queue={self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, max(1, self._cost(request)), future))
        self._on_queue(len(self._pending))
        self._wakeup.set()
        return await future

    async def run_exclusive(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run other model work (item encoding) in the engine thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _take_batch(self) -> list[_Pending[Req]]:
        batch, tokens = [], 0
        while self._pending:
            head = self._pending[0]
            if head.future.done():  # cancelled: the client went away
                self._pending.popleft()
                continue
            if batch and tokens + head.cost > self.max_batch_tokens:
                break
            batch.append(self._pending.popleft())
            tokens += head.cost
        return batch

    def _queued_tokens(self) -> int:
        return sum(p.cost for p in self._pending if not p.future.done())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            # Wait for company unless the budget is already full; requests that arrive while a batch runs
            # are merged into the next one without waiting.
            if self.window_s > 0 and self._queued_tokens() < self.max_batch_tokens:
                await asyncio.sleep(self.window_s)
            while self._pending:
                batch = self._take_batch()
                self._on_queue(len(self._pending))
                if not batch:
                    break
                self._on_batch(len(batch), sum(p.cost for p in batch))
                try:
                    results = await loop.run_in_executor(self._executor, self._run_batch, [p.request for p in batch])
                except Exception as exc:  # the engine failed: every caller in the batch gets the error
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                for p, result in zip(batch, results):
                    if not p.future.done():
                        p.future.set_result(result)
