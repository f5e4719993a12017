"""The ledger's tables, including its local copies of the catalog's facts."""

from __future__ import annotations

from sqlmodel import SQLModel

from shared.db import kernel_tables, new_registry
from shared.readmodels import member_copy_table, pole_copy_table


class LedgerModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(LedgerModel.metadata)
pole = pole_copy_table(LedgerModel.metadata)
member = member_copy_table(LedgerModel.metadata)
