"""Settling the members' net balances with the fewest payments: a pure function, no database.

A member's balance is what the others owe it minus what it owes them (positive: it is owed
money, a creditor; negative: it owes, a debtor); the balances of a pole sum to zero. A set of
payments settles them when every member ends at zero.

Members whose balances sum to zero can settle among themselves with one payment fewer than
their number (largest debtor pays largest creditor, each payment clearing at least one of
them). So the fewest payments is the number of members with a non-zero balance minus the
largest number of disjoint zero-sum groups they can be split into. Finding that split is
NP-hard in general (it contains subset sum):

1. two members with opposite balances are always a group of some optimal split (taking them
   out of the groups they were in keeps the count at least as high): they are paired first;
2. up to :data:`EXACT_LIMIT` members left, a dynamic programme over the subsets finds the
   optimal split exactly (2^n subsets, n steps each: about a million for 16);
3. beyond, a greedy fallback: largest debtor pays largest creditor, at most one payment fewer
   than the members left, not proven minimal (the plan says ``exact=False``).

Amounts are handled in whole cents: a balance finer than the cent is refused, and so are
balances that do not sum to zero.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

CENT = Decimal("0.01")
EXACT_LIMIT = 16
"""Members left after pairing opposite balances, up to which the optimum is searched."""


@dataclass(frozen=True)
class Payment(Generic[K]):
    payer: K
    payee: K
    amount: Decimal
    """Positive, to the cent."""


@dataclass(frozen=True)
class Plan(Generic[K]):
    payments: tuple[Payment[K], ...]
    exact: bool
    """True when the number of payments is proven the fewest possible."""
    members: int
    """Members with a non-zero balance."""


def _in_cents(balances: Mapping[K, Decimal]) -> dict[K, int]:
    cents: dict[K, int] = {}
    for key, balance in balances.items():
        amount = Decimal(balance)
        if amount != amount.quantize(CENT):
            raise ValueError(f"the balance of {key!r} is not to the cent: {balance}")
        if amount:
            cents[key] = int(amount.scaleb(2))
    if sum(cents.values()) != 0:
        total = Decimal(sum(cents.values())).scaleb(-2)
        raise ValueError(f"the balances do not sum to zero (they sum to {total})")
    return cents


def zero_sum_groups(values: Sequence[int]) -> list[list[int]]:
    """The largest number of disjoint groups of ``values`` (non-zero, summing to zero), each
    summing to zero, as lists of indices covering every value. Exponential: 2^n subsets.

    ``best[mask]`` is the largest number of zero-sum groups a chain of subsets ending at
    ``mask`` can close: removing one member at a time from ``mask`` down to the empty set,
    every zero-sum subset met closes a group (the members removed since the previous one).
    """
    n = len(values)
    if n == 0:
        return []
    size = 1 << n
    total = [0] * size
    best = [0] * size
    for mask in range(1, size):
        low = mask & -mask
        total[mask] = total[mask ^ low] + values[low.bit_length() - 1]
        most, rest = 0, mask
        while rest:
            bit = rest & -rest
            most = max(most, best[mask ^ bit])
            rest ^= bit
        best[mask] = most + (total[mask] == 0)
    groups: list[list[int]] = []
    mask, closed = size - 1, size - 1
    while mask:
        wanted = best[mask] - (total[mask] == 0)
        rest = mask
        while rest:
            bit = rest & -rest
            if best[mask ^ bit] == wanted:
                break
            rest ^= bit
        mask ^= bit
        if total[mask] == 0:
            # ``closed`` minus ``mask`` sums to zero: a group.
            group = closed ^ mask
            groups.append([i for i in range(n) if group >> i & 1])
            closed = mask
    return groups


def _greedy(keys: Sequence[K], cents: Mapping[K, int]) -> list[Payment[K]]:
    """Largest debtor pays largest creditor, until all are settled (ties: by key's text)."""
    creditors: list[tuple[int, str, int]] = []
    debtors: list[tuple[int, str, int]] = []
    for index, key in enumerate(keys):
        amount = cents[key]
        heap = creditors if amount > 0 else debtors
        heapq.heappush(heap, (-abs(amount), str(key), index))
    payments: list[Payment[K]] = []
    while creditors and debtors:
        credit, credit_name, creditor = heapq.heappop(creditors)
        debt, debt_name, debtor = heapq.heappop(debtors)
        paid = min(-credit, -debt)
        payments.append(Payment(keys[debtor], keys[creditor], Decimal(paid).scaleb(-2)))
        if -credit > paid:
            heapq.heappush(creditors, (credit + paid, credit_name, creditor))
        if -debt > paid:
            heapq.heappush(debtors, (debt + paid, debt_name, debtor))
    assert not creditors, "balances summing to zero settle completely"
    assert not debtors, "balances summing to zero settle completely"
    return payments


def settle(balances: Mapping[K, Decimal], *, exact_limit: int = EXACT_LIMIT) -> Plan[K]:
    """The payments that bring every balance to zero: the fewest possible when at most
    ``exact_limit`` members are left once opposite balances are paired, otherwise greedy."""
    cents = _in_cents(balances)
    keys = sorted(cents, key=str)
    groups: list[list[K]] = []
    unpaired: dict[int, list[K]] = {}
    for key in keys:
        partners = unpaired.get(-cents[key])
        if partners:
            groups.append([partners.pop(0), key])
        else:
            unpaired.setdefault(cents[key], []).append(key)
    rest = sorted((key for waiting in unpaired.values() for key in waiting), key=str)
    exact = len(rest) <= exact_limit
    if exact:
        groups += [
            [rest[i] for i in group] for group in zero_sum_groups([cents[key] for key in rest])
        ]
    elif rest:
        groups.append(rest)
    payments = tuple(payment for group in groups for payment in _greedy(group, cents))
    return Plan(payments=payments, exact=exact, members=len(keys))
