"""The accounts the ledger posts to: the French chart of accounts (plan comptable général),
with classes 86/87 for voluntary contributions in kind as numbered by ANC 2018-06.

The State's subsidy forms (Cerfa 12156) and the older chart (CRC 99-01) swap 870 and 875:
``LEGACY_NUMBER`` gives the number to use in those documents. docs/ledger.md maps each kind of
flow to its accounts.
"""

from __future__ import annotations

from typing import Literal

Flow = Literal["monetary", "in_kind"]
Resource = Literal[
    "premises",
    "equipment",
    "staff_time",
    "service",
    "management_fee",
    "cancellation_fee",
]

ACCOUNTS: dict[str, str] = {
    # Classes 1 and 5: long-term resources, bank.
    "16": "Emprunts et dettes assimilées",
    "512": "Banque",
    # Class 4: third parties (one auxiliary account per counterpart member).
    "401": "Fournisseurs",
    "411": "Clients",
    # Class 6: expenses of the member who receives.
    "604": "Achats d'études et prestations de services",
    "6132": "Locations immobilières",
    "6135": "Locations mobilières",
    "6214": "Personnel détaché ou prêté à l'entité",
    "622": "Rémunérations d'intermédiaires et honoraires",
    "6281": "Cotisations (liées à l'activité)",
    "658": "Charges diverses de gestion courante",
    # Class 7: income of the member who provides.
    "706": "Prestations de services",
    "7083": "Locations diverses",
    "7084": "Mise à disposition de personnel facturée",
    "74": "Subventions d'exploitation",
    "756": "Cotisations",
    "758": "Produits divers de gestion courante",
    # Class 86: uses of contributions in kind (the beneficiary's books).
    "860": "Secours en nature",
    "8611": "Mise à disposition gratuite de locaux",
    "8612": "Mise à disposition gratuite de matériels",
    "862": "Prestations",
    "864": "Personnel bénévole",
    # Class 87: contributions in kind (ANC 2018-06 numbering).
    "870": "Dons en nature",
    "871": "Prestations en nature",
    "875": "Bénévolat",
}

# What the subsidy forms and the older chart call these accounts.
LEGACY_NUMBER: dict[str, str] = {"870": "875", "875": "870"}

REVENUE: dict[str, str] = {
    "premises": "7083",
    "equipment": "7083",
    "staff_time": "7084",
    "service": "706",
    "management_fee": "706",
    "cancellation_fee": "758",
}
EXPENSE: dict[str, str] = {
    "premises": "6132",
    "equipment": "6135",
    "staff_time": "6214",
    "service": "604",
    "management_fee": "622",
    "cancellation_fee": "658",
}
IN_KIND_USE: dict[str, str] = {
    "premises": "8611",
    "equipment": "8612",
    "staff_time": "862",
    "service": "862",
}
VOLUNTEER_USE, VOLUNTEER_SOURCE, PRESTATION_SOURCE = "864", "875", "871"

JOURNALS: dict[str, str] = {
    "EX": "Échanges entre membres",
    "CVN": "Contributions volontaires en nature",
    "OD": "Opérations diverses",
}


def legacy_account(account: str) -> str:
    """The number a Cerfa subsidy form expects for ``account``."""
    for new, old in LEGACY_NUMBER.items():
        if account.startswith(new):
            return old + account[len(new) :]
    return account
