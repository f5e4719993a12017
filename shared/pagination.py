"""Cursor pagination: opaque cursors over a stable order (a sort key, then the id).

A page is asked with ``limit`` and the ``cursor`` of the previous page's last item; the
answer carries the items and ``next_cursor`` (null on the last page). Rows inserted or
deleted between two pages never shift the others, unlike offsets.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
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

    def after_as(self, parse: Callable[[str], T]) -> tuple[T, uuid.UUID] | None:
        """``after`` with its sort value read by ``parse`` (``datetime.fromisoformat``…); a
        cursor whose value does not parse was not made by this API: 422, never a 500."""
        if self.after is None:
            return None
        try:
            return parse(str(self.after[0])), self.after[1]
        except (ValueError, TypeError, OverflowError) as exc:
            raise _bad_cursor() from exc


def encode_cursor(sort_value: Any, row_id: uuid.UUID) -> str:
    raw = json.dumps([sort_value, str(row_id)], default=str, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return sort_value, uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc


def _bad_cursor() -> UnprocessableEntity:
    return UnprocessableEntity(
        "The cursor is not one this API gave.",
        invalid_params=[{"name": "query.cursor", "reason": "malformed cursor"}],
    )


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageRequest:
    """FastAPI dependency: the page a caller asks for."""
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)
