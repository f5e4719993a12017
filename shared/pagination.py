"""Cursor pagination: opaque cursors over a stable order (a sort key, then the id).

A page is asked with ``limit`` and the ``cursor`` of the previous page's last item; the
answer carries the items and ``next_cursor`` (null on the last page). Rows inserted or
deleted between two pages never shift the others, unlike offsets.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from shared.errors import UnprocessableEntity

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last one."
    )


class PageRequest(BaseModel):
    limit: int
    after: tuple[Any, uuid.UUID] | None


def encode_cursor(sort_value: Any, row_id: uuid.UUID) -> str:
    raw = json.dumps([sort_value, str(row_id)], default=str, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return sort_value, uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise UnprocessableEntity(
            "The cursor is not one this API gave.",
            invalid_params=[{"name": "cursor", "reason": "malformed cursor"}],
        ) from exc


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageRequest:
    """FastAPI dependency: the page a caller asks for."""
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)
