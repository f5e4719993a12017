"""The exchange's tables, including its local copies of the catalog's facts."""

from __future__ import annotations

from sqlmodel import SQLModel

from shared.db import kernel_tables, new_registry
from shared.readmodels import member_copy_table, offer_copy_table, pole_copy_table


class ExchangeModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(ExchangeModel.metadata)
pole = pole_copy_table(ExchangeModel.metadata)
member = member_copy_table(ExchangeModel.metadata)
offer = offer_copy_table(ExchangeModel.metadata)
