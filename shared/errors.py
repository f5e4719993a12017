"""RFC 9457 problem details for every error answer, mapped in one place.

Domain code raises :class:`ProblemError` subclasses carrying their own status (404,
409, …); 422 is kept for payloads that are malformed. Nothing escapes as a bare 500:
an unexpected exception is logged with its request id and answered as a problem too,
and a database that is unreachable answers 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.logging import get_logger, request_id_var

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://ptce.example/problems/"
log = get_logger(__name__)


class InvalidParam(BaseModel):
    name: str = Field(description="Where the problem is: body.field, query.name, path.id…")
    reason: str


class Problem(BaseModel):
    """The body of every error answer (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    invalid_params: list[InvalidParam] | None = Field(default=None, alias="invalid-params")

    model_config = {"populate_by_name": True}


class ProblemError(Exception):
    """A business error with its own status; subclasses name the problem type."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        invalid_params: Sequence[InvalidParam | dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.invalid_params = [InvalidParam.model_validate(p) for p in invalid_params or []]
        self.headers = headers


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class PreconditionFailed(ProblemError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class UnprocessableEntity(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid request"


class NotReadyYet(ProblemError):
    """A fact this service learns from another one's events has not arrived yet."""

    status, slug, title = 503, "not-ready-yet", "Not ready yet"

    def __init__(self, detail: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str | None = None,
    type_: str = "about:blank",
    invalid_params: Sequence[InvalidParam] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=type_,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_var.get(),
        invalid_params=list(invalid_params) if invalid_params else None,
    ).model_dump(by_alias=True, exclude_none=True)
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        type_=PROBLEM_TYPE_BASE + exc.slug,
        invalid_params=exc.invalid_params,
        extra=exc.extra,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    params = [
        InvalidParam(name=_location(error["loc"]), reason=str(error["msg"]))
        for error in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        title="Invalid request",
        detail="; ".join(f"{p.name}: {p.reason}" for p in params),
        type_=PROBLEM_TYPE_BASE + "validation-error",
        invalid_params=params,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem_response(
        request,
        status=exc.status_code,
        title=title,
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


def _server_unavailable(exc: DBAPIError) -> bool:
    """A failure of the server or of the connection, not of the statement: the driver's
    errors of SQLSTATE classes 08 (connection) and 57 (operator intervention: shutting down,
    restarting, "not yet accepting connections" while it recovers), which SQLAlchemy wraps
    in a plain ``DBAPIError``."""
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(
            cause,
            asyncpg.PostgresConnectionError
            | asyncpg.exceptions.OperatorInterventionError
            | asyncpg.exceptions.InterfaceError
            | OSError,
        ):
            return True
        cause = cause.__cause__
    return False


UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
"""SQLSTATEs of text that PostgreSQL cannot store, whatever the column: a NUL character
(U+0000) in text (character_not_in_repertoire) or its escape in JSON (untranslatable_character).
Any string of a request may carry one (a body field, a query or path parameter)."""


def _sqlstate(exc: DBAPIError) -> str | None:
    cause: BaseException | None = exc.orig
    while cause is not None:
        code = getattr(cause, "sqlstate", None)
        if isinstance(code, str):
            return code
        cause = cause.__cause__
    return None


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and _sqlstate(exc) in UNSTORABLE_TEXT:
        return problem_response(
            request,
            status=422,
            title="Invalid request",
            detail="Text cannot contain the NUL character (U+0000).",
            type_=PROBLEM_TYPE_BASE + "validation-error",
        )
    if isinstance(exc, DBAPIError) and not _server_unavailable(exc):
        return await _unexpected(request, exc)
    log.warning("database_unavailable", error=repr(exc))
    return problem_response(
        request,
        status=503,
        title="Service unavailable",
        detail="The database is not reachable; retry shortly.",
        type_=PROBLEM_TYPE_BASE + "database-unavailable",
        headers={"Retry-After": "2"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged with this request id.",
    )


PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
UNREADABLE_BODY = {
    "description": "The body cannot even be decoded (not UTF-8, a malformed form): problem details"
}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Say in an OpenAPI document what every error answer is: problem details, sent as
    ``application/problem+json`` (FastAPI documents a response ``model`` as
    ``application/json``). An error documented without a body, or with :class:`Problem`, gets
    that; one documented with another body keeps it. An operation that takes a body also
    documents the 400 that FastAPI answers when it cannot even decode it."""
    for methods in document.get("paths", {}).values():
        for operation in methods.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", dict(UNREADABLE_BODY))
            for status, response in responses.items():
                content = response.get("content")
                if status.startswith(("4", "5")) and (
                    not content or content == {"application/json": {"schema": PROBLEM_SCHEMA}}
                ):
                    response["content"] = {PROBLEM_JSON: {"schema": dict(PROBLEM_SCHEMA)}}
    return document


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(ConnectionError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
