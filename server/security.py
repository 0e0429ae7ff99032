"""Safe by default: an ASGI middleware in front of every route that refuses

* a ``Host`` header other than the bound address (or a loopback name for a loopback bind; any
  host for a wildcard bind, which needs a token anyway) -> 403 ``bad_host`` (DNS rebinding);
* an ``Origin`` header that is not a loopback ``http://`` origin -> 403 ``bad_origin`` (a web page
  on another site driving the local server; Blender sends no Origin);
* a missing or wrong ``Authorization: Bearer`` token when the server has one, except for
  ``GET /v1/health`` -> 401 ``unauthorized``;
* a request body over the body limit (`server.config.Limits.body_bytes`, asked of ``body_limit()``
  per request) -> 413 ``too_large``, from ``Content-Length`` before any of it is read, or while a
  chunked body streams in.
"""

import hmac
import re
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import LOOPBACK_NAMES, ServerConfig, is_loopback
from server.errors import ApiError, error_response

__all__ = ["GuardMiddleware", "host_name", "PUBLIC_PATHS", "WILDCARD_HOSTS"]

PUBLIC_PATHS = frozenset({"/v1/health"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})
_LOOPBACK_ORIGIN = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$", re.IGNORECASE)


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header, lower-case, brackets kept for IPv6: ``[::1]:80`` -> ``[::1]``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.split(":", 1)[0]


class GuardMiddleware:
    """The checks of the module docstring, for the server configured by ``config``."""

    def __init__(self, app: ASGIApp, config: ServerConfig, body_limit: Callable[[], int]) -> None:
        self.app, self.config, self.body_limit = app, config, body_limit
        bound = config.host.strip().lower()
        self.any_host = bound in WILDCARD_HOSTS
        self.hosts = LOOPBACK_NAMES if is_loopback(bound) else frozenset({bound, f"[{bound.strip('[]')}]"})
        self.token = config.token.encode() if config.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.body_limit()
        refusal = self._refusal(scope, Headers(scope=scope), limit)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive, limit), send)

    def _refusal(self, scope: Scope, headers: Headers, limit: int) -> ApiError | None:
        """The error that refuses this request, or None to let it through."""
        if not self.any_host and host_name(headers.get("host", "")) not in self.hosts:
            return ApiError(403, "bad_host", "the Host header does not name this server; "
                                             "connect to the address the server listens on")
        origin = headers.get("origin")
        if origin is not None and not _LOOPBACK_ORIGIN.match(origin):
            return ApiError(403, "bad_origin", f"requests from web pages on {origin!r} are refused; "
                                               "this server only answers local programs")
        if self.token is not None and scope["path"] not in PUBLIC_PATHS and not self._authorized(headers):
            return ApiError(401, "unauthorized", "this server needs 'Authorization: Bearer <token>' "
                                                 "with the token it was started with",
                            headers={"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _too_large(limit)
        return None

    def _authorized(self, headers: Headers) -> bool:
        """True when the Bearer token matches (compared in constant time)."""
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token)

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        """``receive`` that raises 413 once the body passes ``limit`` bytes."""
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        return limited


def _too_large(limit: int) -> ApiError:
    """413 ``too_large`` for a body over ``limit`` bytes."""
    return ApiError(413, "too_large", f"the request is larger than the upload limit of {limit} bytes "
                                      f"({limit / 2**20:.1f} MiB); send a shorter or smaller file")
