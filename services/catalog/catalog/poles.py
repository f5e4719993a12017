"""Poles: the commands that create and change them, and their rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlmodel import col

from catalog.credentials import IssuedClient, new_client
from catalog.members import RegisterMember, member_registered, new_member
from catalog.models import Member, Pole, ValuationReference
from shared.auth import Role
from shared.contracts.catalog import (
    ExchangeRules,
    PoleRegistered,
    PoleUpdated,
    ValuationReferenceRecorded,
)
from shared.errors import Conflict, UnprocessableEntity
from shared.limits import Day
from shared.uow import UnitOfWork


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_time_zone)]


class RegisterPole(BaseModel):
    """Create a pole (a tenant), with its own time zone and currency."""

    name: str = Field(min_length=1, max_length=200)
    territory: str = Field(default="", max_length=300)
    time_zone: TimeZone = "Europe/Paris"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


def pole_registered(pole: Pole) -> PoleRegistered:
    return PoleRegistered(
        pole_id=pole.id,
        name=pole.name,
        territory=pole.territory,
        time_zone=pole.time_zone,
        currency=pole.currency,
        exchange_rules=ExchangeRules.model_validate(pole.exchange_rules),
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


class UpdatePole(BaseModel):
    """Change a pole's settings; its currency never changes (past figures are in it)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    territory: str | None = Field(default=None, max_length=300)
    time_zone: TimeZone | None = None
    exchange_rules: ExchangeRulesPatch | None = None


class ExchangeRulesPatch(BaseModel):
    """The rules to change; those left out (or null) keep their value."""

    model_config = ConfigDict(extra="forbid")

    answer_within_hours: int | None = Field(default=None, ge=1, le=720)
    completion_grace_hours: int | None = Field(default=None, ge=0, le=720)
    late_cancellation_hours: int | None = Field(default=None, ge=0, le=720)
    late_cancellation_fee_percent: int | None = Field(default=None, ge=0, le=100)
    no_show_fee_percent: int | None = Field(default=None, ge=0, le=100)


def _merged_rules(pole: Pole, changes: dict[str, Any]) -> dict[str, Any]:
    """A rule left out (or null) keeps its value."""
    current = ExchangeRules.model_validate(pole.exchange_rules).model_dump()
    kept = {rule: value for rule, value in changes.items() if value is not None}
    return ExchangeRules.model_validate({**current, **kept}).model_dump()


def update_pole(uow: UnitOfWork, pole: Pole, command: UpdatePole) -> None:
    for name, value in command.model_dump(exclude_unset=True).items():
        if value is None:
            raise UnprocessableEntity(
                f"{name} cannot be null.",
                invalid_params=[{"name": f"body.{name}", "reason": "null"}],
            )
        if name == "exchange_rules":
            setattr(pole, name, _merged_rules(pole, value))
        else:
            setattr(pole, name, value)
    pole.version += 1
    uow.publish(PoleUpdated(**pole_registered(pole).model_dump()))


class RecordReference(BaseModel):
    """A valuation reference from a date on, e.g. ``volunteer_hour``: 17.50 per hour."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{2,49}$", examples=["volunteer_hour"])
    label: str = Field(min_length=1, max_length=200)
    amount: Decimal = Field(ge=0, le=Decimal("9999999.99"), decimal_places=2)
    unit: Literal["hour", "half_day", "day", "unit"]
    valid_from: Day


async def record_reference(
    uow: UnitOfWork, pole: Pole, command: RecordReference
) -> ValuationReference:
    """Append a reference value. History is never rewritten: a new value starts after the
    latest one of the same code, so what was in effect on any past date stays as it was."""
    latest = await uow.session.scalar(
        select(func.max(col(ValuationReference.valid_from))).where(
            col(ValuationReference.pole_id) == pole.id,
            col(ValuationReference.code) == command.code,
        )
    )
    if latest is not None and command.valid_from <= latest:
        raise Conflict(
            f"{command.code} already has a value from {latest}; a new value must start later.",
            extra={"latest_valid_from": latest.isoformat()},
        )
    reference = ValuationReference(pole_id=pole.id, **command.model_dump())
    uow.session.add(reference)
    await uow.session.flush()
    uow.publish(
        ValuationReferenceRecorded(
            reference_id=reference.id,
            pole_id=pole.id,
            code=reference.code,
            label=reference.label,
            amount=reference.amount,
            currency=pole.currency,
            unit=command.unit,
            valid_from=reference.valid_from,
            recorded_at=reference.recorded_at,
        )
    )
    return reference
