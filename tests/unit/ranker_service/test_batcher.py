"""The micro-batcher merges concurrent requests, keeps to its token budget, pushes back when full and
drops requests whose caller went away."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mixlm.errors import QueueFull
from ranker_service.batcher import MicroBatcher


class Recorder:
    """A run_batch that records the batches it ran; optionally blocks until released."""

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, batch):
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(list(batch))
        return [x * 10 for x in batch]


def run(coro):
    return asyncio.run(coro)


def submit_together(n: int, cost: int, budget: int, window_ms: float) -> tuple[list[list[int]], list[int]]:
    """Submit requests 0..n-1 concurrently -> the batches the engine ran, and each request's result."""
    async def main():
        rec = Recorder()
        b = MicroBatcher(rec, cost=lambda r: cost, window_ms=window_ms, max_batch_tokens=budget, max_queue=10)
        b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(n)))
        await b.close()
        return rec.batches, list(results)

    return run(main())


def test_concurrent_requests_within_the_window_share_one_engine_call():
    batches, results = submit_together(5, cost=1, budget=1000, window_ms=50)
    assert results == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2, 3, 4]]


def test_token_budget_splits_requests_into_several_batches_in_arrival_order():
    batches, results = submit_together(5, cost=40, budget=100, window_ms=20)
    assert results == [0, 10, 20, 30, 40]
    assert batches == [[0, 1], [2, 3], [4]]


def test_a_request_over_the_budget_still_runs_alone():
    batches, results = submit_together(1, cost=500, budget=100, window_ms=0)
    assert results == [0] and batches == [[0]]


async def busy_batcher(max_queue: int) -> tuple[MicroBatcher, Recorder, threading.Event, asyncio.Future]:
    """A started batcher, one request per batch, whose engine thread is busy with request 0 until `gate` is set."""
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, cost=lambda r: 1, window_ms=0, max_batch_tokens=1, max_queue=max_queue)
    b.start()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.05)  # 0 is running in the engine thread (blocked on the gate)
    return b, rec, gate, first


def test_full_queue_raises_queue_full_instead_of_growing():
    async def main():
        b, _, gate, first = await busy_batcher(max_queue=2)
        queued = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit(3)
        gate.set()
        results = await asyncio.gather(first, *queued)
        await b.close()
        return results

    assert run(main()) == [0, 10, 20]


def test_cancelled_request_is_dropped_before_it_reaches_the_engine():
    async def main():
        b, rec, gate, first = await busy_batcher(max_queue=10)
        gone = asyncio.ensure_future(b.submit(1))
        kept = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        gone.cancel()  # the client went away while its request was queued
        gate.set()
        results = await asyncio.gather(first, kept)
        await b.close()
        return rec, results

    rec, results = run(main())
    assert results == [0, 20]
    assert [x for batch in rec.batches for x in batch] == [0, 2]


def test_engine_error_reaches_every_caller_of_the_batch_and_the_batcher_keeps_serving():
    calls = []

    def flaky(batch):
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("engine exploded")
        return [x for x in batch]

    async def main():
        b = MicroBatcher(flaky, cost=lambda r: 1, window_ms=30, max_batch_tokens=100, max_queue=10)
        b.start()
        failed = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        ok = await b.submit(3)
        await b.close()
        return failed, ok

    failed, ok = run(main())
    assert all(isinstance(e, RuntimeError) for e in failed)
    assert ok == 3


def test_metrics_hooks_see_batch_sizes_and_queue_depth():
    seen_batches, depths = [], []

    async def main():
        b = MicroBatcher(lambda batch: list(batch), cost=lambda r: 3, window_ms=30, max_batch_tokens=100, max_queue=10,
                         on_batch=lambda n, t: seen_batches.append((n, t)), on_queue=depths.append)
        b.start()
        await asyncio.gather(*(b.submit(i) for i in range(4)))
        await b.close()

    run(main())
    assert seen_batches == [(4, 12)]
    assert max(depths) == 4 and depths[-1] == 0
