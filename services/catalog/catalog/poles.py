"""Poles: the commands that create and change them, and their rules."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from catalog.models import Pole
from shared.contracts.catalog import PoleRegistered
from shared.uow import UnitOfWork


class RegisterPole(BaseModel):
    """Create a pole (a tenant), with its own time zone and currency."""

    name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field(default="Europe/Paris", max_length=64)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


def pole_registered(pole: Pole) -> PoleRegistered:
    return PoleRegistered(
        pole_id=pole.id,
        name=pole.name,
        time_zone=pole.time_zone,
        currency=pole.currency,
        version=pole.version,
        registered_at=pole.created_at,
    )


async def register_pole(uow: UnitOfWork, command: RegisterPole) -> Pole:
    """Create a pole and announce it to the other services."""
    async with uow:
        pole = Pole(name=command.name, time_zone=command.time_zone, currency=command.currency)
        uow.session.add(pole)
        await uow.session.flush()
        uow.publish(pole_registered(pole))
        await uow.commit()
    return pole
