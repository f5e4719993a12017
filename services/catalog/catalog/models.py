"""The catalog's tables."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Column, DateTime, Numeric, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from shared.db import kernel_tables, new_registry, utcnow


class CatalogModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(CatalogModel.metadata)


class Pole(CatalogModel, table=True):
    """A PTCE: the tenant everything else belongs to."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    territory: str = Field(default="", max_length=300)
    time_zone: str = Field(default="Europe/Paris", max_length=64)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    exchange_rules: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'")),
    )
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


MEMBER_CATEGORIES = (
    "association",
    "cooperative",
    "mutual",
    "work_integration",
    "other_ess",
    "company",
    "local_authority",
    "research_higher_education",
    "training_body",
    "individual",
)


class Member(CatalogModel, table=True):
    """An organisation of a pole. A member that left keeps its row and history."""

    __table_args__ = (
        UniqueConstraint("pole_id", "siret"),
        CheckConstraint(
            "category IN (" + ", ".join(f"'{c}'" for c in MEMBER_CATEGORIES) + ")",
            name="category",
        ),
        CheckConstraint("left_on IS NULL OR left_on >= joined_on", name="left_after_joined"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pole_id: uuid.UUID = Field(foreign_key="pole.id", index=True)
    legal_name: str = Field(max_length=300)
    siret: str = Field(max_length=14)
    category: str = Field(max_length=40)
    is_ess: bool
    headcount: int | None = Field(default=None, ge=0)
    annual_turnover: Decimal | None = Field(
        default=None, sa_column=Column(Numeric(16, 2), nullable=True)
    )
    street: str = Field(max_length=300)
    postal_code: str = Field(max_length=5)
    commune: str = Field(max_length=200)
    insee_code: str = Field(max_length=5)
    joined_on: date
    left_on: date | None = None
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ApiClient(CatalogModel, table=True):
    """An API client of a member: OAuth2 client credentials with one role."""

    __tablename__ = "api_client"
    __table_args__ = (CheckConstraint("role IN ('member', 'coordinator', 'auditor')", name="role"),)

    id: str = Field(primary_key=True, max_length=40)
    pole_id: uuid.UUID = Field(foreign_key="pole.id", index=True)
    member_id: uuid.UUID = Field(foreign_key="member.id", index=True)
    role: str = Field(max_length=20)
    label: str = Field(max_length=200)
    secret_hash: str = Field(max_length=128)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class SigningKey(CatalogModel, table=True):
    """A key the catalog signs access tokens with; its public half is in the JWKS."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    private_pem: str
    public_jwk: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    retired_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Offer(CatalogModel, table=True):
    """Something a member shares. ``search`` is a generated column (see migration 0003)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pole_id: uuid.UUID = Field(foreign_key="pole.id")
    owner_id: uuid.UUID = Field(foreign_key="member.id")
    kind: str = Field(max_length=20)
    state: str = Field(max_length=20)
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    street: str | None = Field(default=None, max_length=300)
    postal_code: str | None = Field(default=None, max_length=5)
    commune: str | None = Field(default=None, max_length=200)
    insee_code: str | None = Field(default=None, max_length=5)
    unit: str | None = Field(default=None, max_length=20)
    capacity: int = Field(default=1, ge=1)
    booking_mode: str = Field(max_length=20)
    internal_price: Decimal | None = Field(
        default=None, sa_column=Column(Numeric(12, 2), nullable=True)
    )
    reference_value: Decimal | None = Field(
        default=None, sa_column=Column(Numeric(12, 2), nullable=True)
    )
    valuation_basis: str | None = Field(default=None, max_length=20)
    attributes: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    availability: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    published_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ValuationReference(CatalogModel, table=True):
    """A dated value a pole values things with; rows are never changed, only added."""

    __tablename__ = "valuation_reference"
    __table_args__ = (UniqueConstraint("pole_id", "code", "valid_from"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pole_id: uuid.UUID = Field(foreign_key="pole.id")
    code: str = Field(max_length=50)
    label: str = Field(max_length=200)
    amount: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    unit: str = Field(max_length=20)
    valid_from: date
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
