"""A request whose client disconnects is cancelled (and so dropped from the batcher's queue)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from ranker_service.errors import ClientGone
from ranker_service.http_io import unless_disconnected


def _request(disconnect: asyncio.Event) -> Request:
    async def receive():
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/rank", "headers": []}, receive)


def test_work_is_cancelled_when_the_client_goes_away():
    async def main():
        disconnect = asyncio.Event()
        started = asyncio.Event()
        cancelled = []

        async def work():
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        pending = asyncio.ensure_future(unless_disconnected(_request(disconnect), work()))
        await started.wait()
        disconnect.set()
        with pytest.raises(ClientGone):
            await pending
        await asyncio.sleep(0)
        return cancelled

    assert asyncio.run(main()) == [True]


def test_result_is_returned_while_the_client_stays():
    async def main():
        async def work():
            return 42

        return await unless_disconnected(_request(asyncio.Event()), work())

    assert asyncio.run(main()) == 42
