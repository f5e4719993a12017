"""Poles: the commands that create and change them, and their rules."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator

from catalog.credentials import IssuedClient, new_client
from catalog.members import RegisterMember, member_registered, new_member
from catalog.models import Member, Pole
from shared.auth import Role
from shared.contracts.catalog import PoleRegistered
from shared.uow import UnitOfWork


class RegisterPole(BaseModel):
    """Create a pole (a tenant), with its own time zone and currency."""

    name: str = Field(min_length=1, max_length=200)
    territory: str = Field(default="", max_length=300)
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
        territory=pole.territory,
        time_zone=pole.time_zone,
        currency=pole.currency,
        version=pole.version,
        registered_at=pole.created_at,
    )


async def register_pole(uow: UnitOfWork, command: RegisterPole) -> Pole:
    """Create a pole and announce it to the other services."""
    async with uow:
        pole = Pole(**command.model_dump())
        uow.session.add(pole)
        await uow.session.flush()
        uow.publish(pole_registered(pole))
        await uow.commit()
    return pole


@dataclass(frozen=True)
class NewPole:
    pole: Pole
    coordinator: Member
    client: IssuedClient


async def create_pole_with_coordinator(
    uow: UnitOfWork, command: RegisterPole, coordinator: RegisterMember, *, label: str
) -> NewPole:
    """A new pole, the organisation that coordinates it, and that organisation's first
    coordinator client: how a pole starts (from the CLI, never from an open endpoint)."""
    async with uow:
        pole = Pole(**command.model_dump())
        uow.session.add(pole)
        await uow.session.flush()
        member = new_member(pole.id, coordinator)
        uow.session.add(member)
        await uow.session.flush()
        issued = new_client(member, role=Role.coordinator, label=label)
        uow.session.add(issued.client)
        uow.publish(pole_registered(pole))
        uow.publish(member_registered(member))
        await uow.commit()
    return NewPole(pole=pole, coordinator=member, client=issued)
