"""The FastAPI application every service is: lifespan, request ids, limits (body size,
throttling: ``shared.limits``), problem details, health."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import document_authentication
from shared.errors import Problem, document_problems, install_problem_handlers
from shared.limits import install_limits
from shared.logging import get_logger, new_request_id, request_id_var
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import ServiceSettings

log = get_logger("http")
REQUEST_ID_HEADER = "x-request-id"
# Paths whose last segment is a credential (a calendar feed's secret): never logged.
SECRET_IN_PATH = re.compile(r"^(/calendars/)[^/]+$")


def loggable_path(path: str) -> str:
    return SECRET_IN_PATH.sub(r"\1…", path)


class RequestIdMiddleware:
    """Takes the caller's ``X-Request-ID`` (or makes one), logs the request, echoes the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode())
        request_id = incoming.decode("latin-1")[:100] if incoming else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["path"] not in ("/healthz", "/readyz"):
                log.info(
                    "request",
                    method=scope["method"],
                    path=loggable_path(scope["path"]),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            request_id_var.reset(token)


class ServiceApp(FastAPI):
    """A service's app, whose OpenAPI document says that every error is problem details."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_problems(super().openapi())
        return self.openapi_schema


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="`ok`, or what failed, for each dependency.")


async def get_runtime(request: Request) -> ServiceRuntime:
    # ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop
    # (and two event loop wake-ups) per request for an attribute read.
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


def create_app(
    definition: ServiceDefinition, settings_factory: Callable[[], ServiceSettings]
) -> FastAPI:
    """Build a service's app; settings are read and the runtime built when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(definition, settings_factory())
        app.state.runtime = runtime
        limits.configure(runtime.settings, runtime.verifier)
        if runtime.settings.run_workers:
            runtime.start_workers()
        log.info("service_started", service=runtime.name)
        try:
            yield
        finally:
            await runtime.stop()

    app = ServiceApp(
        title=definition.title,
        lifespan=lifespan,
        responses={
            413: {"model": Problem, "description": "Body too large (problem details)"},
            422: {"model": Problem, "description": "Invalid request (problem details)"},
            429: {"model": Problem, "description": "Too many requests; see Retry-After"},
            503: {
                "model": Problem,
                "description": "The database is unreachable, or what this service learns from "
                "another one's events has not arrived yet; see Retry-After",
            },
        },
    )
    # The request id outermost: a refusal by the limits carries it and is logged.
    limits = install_limits(app)
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Database reachable and migrations applied (the broker is reported, not required)",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready"}},
    )
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        checks: dict[str, Any] = await runtime.readiness()
        # Without the broker a service still serves: its events wait in its outbox. Taking it
        # out of the load balancer would refuse the bookings the outbox exists to keep.
        ready = checks["database"] == "ok" and checks["migrations"] == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    for router in definition.routers:
        document_authentication(router)
        app.include_router(router)
    return app
