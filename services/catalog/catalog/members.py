"""Members: what the coordinator onboards, what changes, who leaves; the events that say so."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from catalog.identifiers import check_insee_code, normalise_siret
from catalog.models import Member
from shared.contracts.catalog import MemberLeft, MemberRegistered, MemberSnapshot, MemberUpdated
from shared.db import utcnow
from shared.errors import Conflict
from shared.limits import Day
from shared.uow import UnitOfWork

E = TypeVar("E", bound=MemberSnapshot)


class Category(StrEnum):
    association = "association"
    cooperative = "cooperative"
    """SCIC, SCOP, CAE…"""
    mutual = "mutual"
    work_integration = "work_integration"
    """Structure d'insertion par l'activité économique (SIAE)."""
    other_ess = "other_ess"
    company = "company"
    local_authority = "local_authority"
    research_higher_education = "research_higher_education"
    training_body = "training_body"
    individual = "individual"


Siret = Annotated[
    str,
    Field(min_length=14, max_length=20, examples=["73282932000074"]),
    AfterValidator(normalise_siret),
]
InseeCode = Annotated[
    str, Field(min_length=5, max_length=5, examples=["69123"]), AfterValidator(check_insee_code)
]


class MemberFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_name: str = Field(min_length=1, max_length=300)
    siret: Siret
    category: Category
    is_ess: bool = Field(description="Whether it belongs to the social and solidarity economy.")
    headcount: int | None = Field(default=None, ge=0, le=1_000_000)
    annual_turnover: Decimal | None = Field(
        default=None, ge=0, le=Decimal("99999999999999"), decimal_places=2
    )
    street: str = Field(min_length=1, max_length=300)
    postal_code: str = Field(pattern=r"^[0-9]{5}$")
    commune: str = Field(min_length=1, max_length=200)
    insee_code: InseeCode
    joined_on: Day


class RegisterMember(MemberFields):
    """Onboard an organisation into the caller's pole (coordinator only)."""


class UpdateMember(BaseModel):
    """Change some of a member's details; fields left out are kept."""

    model_config = ConfigDict(extra="forbid")

    legal_name: str | None = Field(default=None, min_length=1, max_length=300)
    category: Category | None = None
    is_ess: bool | None = None
    headcount: int | None = Field(default=None, ge=0, le=1_000_000)
    annual_turnover: Decimal | None = Field(
        default=None, ge=0, le=Decimal("99999999999999"), decimal_places=2
    )
    street: str | None = Field(default=None, min_length=1, max_length=300)
    postal_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    commune: str | None = Field(default=None, min_length=1, max_length=200)
    insee_code: InseeCode | None = None

    @model_validator(mode="after")
    def _no_nulls_for_required(self) -> UpdateMember:
        for name in (
            "legal_name",
            "category",
            "is_ess",
            "street",
            "postal_code",
            "commune",
            "insee_code",
        ):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class MemberLeaves(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left_on: Day


class MemberOut(MemberFields):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID
    pole_id: uuid.UUID
    siret: str  # already valid: not re-checked on the way out
    insee_code: str
    left_on: date | None
    version: int


def _snapshot(kind: type[E], member: Member) -> E:
    return kind(
        member_id=member.id,
        pole_id=member.pole_id,
        legal_name=member.legal_name,
        siret=member.siret,
        category=member.category,
        is_ess=member.is_ess,
        headcount=member.headcount,
        annual_turnover=member.annual_turnover,
        street=member.street,
        postal_code=member.postal_code,
        commune=member.commune,
        insee_code=member.insee_code,
        joined_on=member.joined_on,
        left_on=member.left_on,
        version=member.version,
        changed_at=member.updated_at,
    )


def new_member(pole_id: uuid.UUID, command: RegisterMember) -> Member:
    return Member(pole_id=pole_id, **command.model_dump())


def member_registered(member: Member) -> MemberRegistered:
    return _snapshot(MemberRegistered, member)


async def register_member(uow: UnitOfWork, pole_id: uuid.UUID, command: RegisterMember) -> Member:
    async with uow:
        member = new_member(pole_id, command)
        uow.session.add(member)
        await uow.session.flush()
        uow.publish(member_registered(member))
        await uow.commit()
    return member


def update_member(uow: UnitOfWork, member: Member, command: UpdateMember) -> None:
    """Apply the changes to a loaded (and locked) member; the caller commits."""
    if member.left_on is not None:
        raise Conflict("This member left the pole; its details are kept as they were.")
    for name, value in command.model_dump(exclude_unset=True).items():
        setattr(member, name, value)
    member.version += 1
    member.updated_at = utcnow()
    uow.publish(_snapshot(MemberUpdated, member))


def member_leaves(uow: UnitOfWork, member: Member, command: MemberLeaves) -> None:
    if member.left_on is not None:
        raise Conflict(f"This member already left the pole on {member.left_on}.")
    if command.left_on < member.joined_on:
        raise Conflict("A member cannot leave before it joined.")
    member.left_on = command.left_on
    member.version += 1
    member.updated_at = utcnow()
    uow.publish(_snapshot(MemberLeft, member))
