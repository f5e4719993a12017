"""What one request and one caller may ask, bounded once for every service.

- **Body size**: at most ``HTTP_MAX_BODY_BYTES`` (1 MiB). A request declaring a larger
  ``Content-Length`` is refused before anything of it is read; a body without one (chunked)
  is counted as it arrives and refused as soon as it goes past the limit, so no more than the
  limit and one chunk is ever held. 413, problem details.
- **Throttling**: a token bucket per caller, refilled at ``HTTP_RATE_LIMIT_PER_SECOND`` up to
  ``HTTP_RATE_LIMIT_BURST``: the caller is the member a valid access token names (all its
  clients together), or the client address of a call without a valid token (an IPv6 address
  by its /64). An empty bucket answers 429 with ``Retry-After``; the others are served as
  before. The buckets live in the process's memory: each replica, and each uvicorn worker,
  has its own. ``/healthz`` and ``/readyz`` are never throttled.
- **Dates and instants** are between :data:`FIRST_DAY` and :data:`LAST_DAY` (:data:`Day`,
  :data:`Instant`): no arithmetic on them (a week of margin, a year of occurrences) can leave
  Python's calendar; **page sizes** are bounded in :mod:`shared.pagination`, **strings** and
  **counts** by each model's ``max_length``/``le``. 422, problem details.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import TokenVerifier
from shared.errors import PROBLEM_TYPE_BASE, problem_response
from shared.settings import KernelSettings

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)
FIRST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
END_OF_INSTANTS = datetime(3000, 1, 1, tzinfo=UTC)
"""Excluded."""
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A date the API accepts: from 2000-01-01 to 2999-12-31 (422 otherwise)."""
Instant = Annotated[AwareDatetime, Field(ge=FIRST_INSTANT, lt=END_OF_INSTANTS)]
"""An instant the API accepts: with its UTC offset, in the years 2000 to 2999 (UTC)."""

UNTHROTTLED = frozenset({"/healthz", "/readyz"})
MAX_CALLERS = 20_000
"""Buckets kept per process; past it, the least recently seen caller's is dropped (an idle
caller's bucket is full anyway: dropping it changes nothing)."""


class BodyTooLarge(StarletteHTTPException):
    """Raised while a body is read, when it goes past the limit.

    An ``HTTPException``: FastAPI lets it through its body parsing (anything else would become
    a 400), and the handler below answers it as a problem.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


def body_too_large(request: Request, limit: int) -> JSONResponse:
    return problem_response(
        request,
        status=413,
        title="Content too large",
        detail=f"A request body is at most {limit} bytes.",
        type_=PROBLEM_TYPE_BASE + "body-too-large",
        extra={"max_body_bytes": limit},
    )


async def _body_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return body_too_large(request, exc.limit)


class RateLimiter:
    """Token buckets in memory, one per caller: ``rate`` a second, ``burst`` at most."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_callers: int = MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max_callers = max_callers
        self._clock = clock
        # caller -> (tokens, when counted); in order of last use, the least recent first.
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def take(self, caller: Hashable) -> float:
        """Take a token from ``caller``'s bucket: 0 when there was one, otherwise the seconds
        until there is one (nothing is taken then)."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None)
        tokens = (
            float(self.burst)
            if bucket is None
            else min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        )
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[caller] = (tokens, now)
        if len(self._buckets) > self._max_callers:
            del self._buckets[next(iter(self._buckets))]
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class RequestLimits:
    """One app's limits; known when it starts, since its settings are read then."""

    def __init__(self) -> None:
        self.max_body_bytes: int | None = None
        self.limiter: RateLimiter | None = None
        self.verifier: TokenVerifier | None = None

    def configure(self, settings: KernelSettings, verifier: TokenVerifier) -> None:
        self.max_body_bytes = settings.http_max_body_bytes
        rate = settings.http_rate_limit_per_second
        self.limiter = RateLimiter(rate, settings.http_rate_limit_burst) if rate > 0 else None
        self.verifier = verifier


def _address(scope: Scope) -> str:
    client = scope.get("client")
    host: str = client[0] if client else ""
    if ":" in host:  # IPv6: one subscriber usually holds a whole /64
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_network(f"{host}/64", strict=False).network_address)
    return host


class RequestLimitsMiddleware:
    """Throttles each caller, then bounds the request body (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.max_body_bytes
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        bearer: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    declared = int(value)
            elif name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    bearer = credentials.strip()

        limiter = self.limits.limiter
        if limiter is not None and scope["path"] not in UNTHROTTLED:
            wait = limiter.take(await self._caller(scope, bearer))
            if wait > 0:
                response = self._too_many(Request(scope), limiter, wait)
                await response(scope, receive, send)
                return

        if declared is not None and declared > limit:
            await body_too_large(Request(scope), limit)(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)

    async def _caller(self, scope: Scope, bearer: str | None) -> Hashable:
        """The member a valid token names; otherwise the client's address. A token that does
        not verify is the endpoint's to refuse (401): here it only falls back to the address."""
        if bearer is not None and self.limits.verifier is not None:
            with contextlib.suppress(Exception):
                return ("member", (await self.limits.verifier.verify(bearer)).member_id)
        return ("address", _address(scope))

    @staticmethod
    def _too_many(request: Request, limiter: RateLimiter, wait: float) -> JSONResponse:
        retry_after = max(1, math.ceil(wait))
        return problem_response(
            request,
            status=429,
            title="Too many requests",
            detail=f"At most {limiter.rate:g} requests a second (bursts of {limiter.burst}) "
            f"from one caller; retry in {retry_after} s.",
            type_=PROBLEM_TYPE_BASE + "too-many-requests",
            headers={"Retry-After": str(retry_after)},
        )


def install_limits(app: FastAPI) -> RequestLimits:
    """Add the limits to ``app``; :meth:`RequestLimits.configure` them when it starts."""
    limits = RequestLimits()
    app.add_middleware(RequestLimitsMiddleware, limits=limits)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    return limits
