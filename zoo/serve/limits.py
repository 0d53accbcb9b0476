"""The request body limit, enforced before the application reads a body: a larger body is a 413 naming the limit,
never a body held in memory."""

from __future__ import annotations

import json
from typing import Any, Callable


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of request body (declared or streamed)."""

    def __init__(self, app: Callable, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return await self.app(scope, _replay([message]), send)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._refuse(send)
            chunks.append(message)
            more = message.get("more_body", False)
        await self.app(scope, _replay(chunks, receive), send)

    async def _refuse(self, send: Callable) -> None:
        body = json.dumps({"detail": f"the request body is over {self.limit:,} bytes (--max-body-bytes); send "
                                     "fewer or shorter texts per request"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[dict[str, Any]], then: Callable | None = None) -> Callable:
    """A receive() that hands out the buffered messages, then waits on the real one (for a disconnect)."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
