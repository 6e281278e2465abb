"""Request bodies in and out with msgspec (the schemas in mixlm/schemas.py), and client-disconnect watching."""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

import msgspec
from fastapi import Request
from starlette.responses import Response

from ranker_service.errors import BodyTooLarge, ClientGone

T = TypeVar("T")


async def decode_body(request: Request, type_: type[T], max_bytes: int) -> T:
    """Read at most max_bytes (413 past that) and decode strictly into type_ (422 naming the field)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"body of {declared} bytes is over the limit of {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return msgspec.json.decode(b"".join(chunks), type=type_)


def encode(obj: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(obj), status_code=status, media_type="application/json")


async def _until_disconnected(request: Request) -> None:
    # The body is consumed, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await work, but cancel it (dropping a queued batch entry) if the client goes away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise ClientGone("client disconnected")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
