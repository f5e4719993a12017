"""Optimistic concurrency over HTTP: a resource's version is its ETag, writes send If-Match.

The row is read ``FOR UPDATE`` before the check, so two writers holding the same ETag cannot
both pass it: the second waits for the first, then finds a newer version and gets 412.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from shared.errors import PreconditionFailed

IfMatch = Annotated[
    str | None, Header(description="The ETag the change is based on; stale ones get 412.")
]


class PreconditionRequired(PreconditionFailed):
    status, slug, title = 428, "precondition-required", "Precondition required"


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def check_if_match(current: int, if_match: str | None, *, required: bool = False) -> None:
    """Refuse a write based on another version than ``current`` (412), or on none (428)."""
    if if_match is None or if_match.strip() == "*":
        if required and if_match is None:
            raise PreconditionRequired(
                "Send If-Match with the resource's ETag, so that no one's change is overwritten."
            )
        return
    try:
        expected = int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise PreconditionFailed("If-Match must be an ETag this API gave.") from exc
    if expected != current:
        raise PreconditionFailed(
            f"It changed meanwhile (now version {current}); reload it and try again.",
            extra={"current_version": current},
        )
