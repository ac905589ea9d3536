"""Request body size limit, answered in the contract's JSON error shape.

A request whose ``Content-Length`` exceeds the limit gets a 413 before its body is read; a body
sent without a length (chunked) is counted as it arrives and refused with a 413 as soon as it
passes the limit. The middleware sits inside the request-id middleware, so the 413 carries an
``X-Request-ID`` like every other answer.

(FastAPI's own ``max_body_size`` answers in plain text from outside the app's middleware, without
the error shape or the request id, hence this one.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body


class BodyTooLargeError(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (handled as a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_message(limit))


def _message(limit: int) -> str:
    return (
        f"The request body is larger than the limit of {limit:,} bytes. Send fewer items per "
        "request (or a smaller file); the limit is VERBATIM_MAX_BODY_BYTES."
    )


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            # Normally the app's exception handler has answered already; this covers a body
            # read outside a route (nothing was sent yet, so answering here is safe).
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", _message(self.max_bytes), {"limit_bytes": self.max_bytes}),
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
