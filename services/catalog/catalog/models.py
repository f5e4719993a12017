"""The catalog's tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from shared.db import kernel_tables, new_registry, utcnow


class CatalogModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(CatalogModel.metadata)


class Pole(CatalogModel, table=True):
    """A PTCE: the tenant everything else belongs to."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    time_zone: str = Field(default="Europe/Paris", max_length=64)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
