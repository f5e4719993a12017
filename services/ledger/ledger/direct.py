"""Postings made by the pole's coordinator, not caused by an exchange: grants, dues, sales,
capital contributions and loans, indirect aid, volunteering for the animation cell, donations
in kind, and payments between members that settle their balances.

Each names its type of resource and its origin (individuals, private sector, public sector,
social and solidarity economy), which the pole's reports group by. Dues follow the pole's rule
for the year — a flat amount, or brackets by turnover or headcount — computed and posted for
every member at once. docs/ledger.md maps each kind to its accounts.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.journal import Line, Posting, money, post
from ledger.models import dues_rule, entry, member, pole
from ledger.postings import reference_on
from ledger.valuation import VOLUNTEER_HOUR
from shared.auth import CurrentPrincipal, Principal, require_coordinator
from shared.db import utcnow
from shared.errors import Conflict, NotFound, UnprocessableEntity
from shared.http import RuntimeDep
from shared.idempotency import IdempotencyKey
from shared.limits import Day

router = APIRouter(tags=["postings"])

Origin = Literal["individuals", "private", "public", "ess"]
DirectKind = Literal[
    "grant",
    "sales",
    "capital_and_loans",
    "dues",
    "indirect_aid",
    "volunteering",
    "donation_in_kind",
    "settlement",
]
# Kinds posted in one book: (debit account, credit account, flow).
ONE_BOOK: dict[str, tuple[str, str, str]] = {
    "grant": ("512", "74", "monetary"),
    "sales": ("512", "706", "monetary"),
    "capital_and_loans": ("512", "16", "monetary"),
    "indirect_aid": ("861", "871", "in_kind"),
    "volunteering": ("864", "875", "in_kind"),
    "donation_in_kind": ("860", "870", "in_kind"),
}
Year = Annotated[int, Path(ge=2000, le=2100)]


class DirectPosting(BaseModel):
    """A posting by the coordinator. ``member_id``: whose books (the pole's own when left
    out); for dues, the member who pays; for a settlement, the member who pays
    ``to_member_id``."""

    model_config = ConfigDict(extra="forbid")

    kind: DirectKind
    on: Day = Field(description="Between 2000-01-01 and 2999-12-31, as a fiscal year.")
    label: str = Field(min_length=1, max_length=300)
    amount: Decimal | None = Field(
        default=None,
        gt=0,
        le=Decimal("99999999.99"),
        decimal_places=2,
        description="Volunteering may give hours instead: valued at the pole's volunteer_hour "
        "reference in effect that day.",
    )
    origin: Origin | None = Field(default=None, description="Required but for a settlement.")
    member_id: uuid.UUID | None = None
    to_member_id: uuid.UUID | None = None
    quantity: Decimal | None = Field(default=None, gt=0, le=100_000, decimal_places=2)
    unit: Literal["hour", "half_day", "day", "unit"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DirectPosting:
        if self.kind == "settlement":
            if self.member_id is None or self.to_member_id is None:
                raise ValueError("a settlement names member_id (who pays) and to_member_id")
            if self.member_id == self.to_member_id:
                raise ValueError("a member does not settle with itself")
            if self.origin is not None:
                raise ValueError("a settlement between members has no origin")
        elif self.origin is None:
            raise ValueError(f"a {self.kind} posting names its origin")
        elif self.to_member_id is not None:
            raise ValueError("only a settlement names to_member_id")
        if self.kind == "dues" and self.member_id is None:
            raise ValueError("dues name the member who pays them (member_id)")
        if self.amount is None and not (self.kind == "volunteering" and self.quantity):
            raise ValueError("give the amount (or, for volunteering, the hours as quantity)")
        if self.kind == "volunteering" and self.amount is None and self.unit not in (None, "hour"):
            raise ValueError("volunteering without an amount is valued per hour")
        return self


class PostedEntry(BaseModel):
    id: uuid.UUID
    book_id: uuid.UUID
    journal: str
    number: int
    entry_date: date


class Posted(BaseModel):
    source: str
    entries: list[PostedEntry]


async def _member_of_pole(session: AsyncSession, pole_id: uuid.UUID, member_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            select(member).where(member.c.id == member_id, member.c.pole_id == pole_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such member in your pole.")
    return row


def _two_lines(
    *, debit: str, credit: str, amount: Decimal, flow: Any, resource: str, **common: Any
) -> tuple[Line, Line]:
    return (
        Line(account=debit, debit=amount, flow=flow, resource=resource, **common),
        Line(account=credit, credit=amount, flow=flow, resource=resource, **common),
    )


async def direct_postings(
    session: AsyncSession, principal: Principal, body: DirectPosting, *, source: str
) -> list[Posting]:
    """The entries a direct posting makes, in each book concerned."""
    currency = await session.scalar(select(pole.c.currency).where(pole.c.id == principal.pole_id))
    if currency is None:
        raise NotFound("This pole has not reached the ledger yet.")
    for member_id in (body.member_id, body.to_member_id):
        if member_id is not None:
            await _member_of_pole(session, principal.pole_id, member_id)
    amount, method, reference_date = body.amount, "amount", None
    if amount is None:
        reference = await reference_on(session, principal.pole_id, VOLUNTEER_HOUR, body.on)
        if reference is None:
            raise UnprocessableEntity(
                f"No {VOLUNTEER_HOUR} reference in effect on {body.on}: give the amount.",
                invalid_params=[{"name": "body.amount", "reason": "no reference to value hours"}],
            )
        assert body.quantity is not None
        amount = money(reference.amount * body.quantity)
        method, reference_date = "volunteer_time_reference", reference.valid_from
    common: dict[str, Any] = {
        "origin": body.origin,
        "quantity": body.quantity,
        "unit": body.unit or ("hour" if method == "volunteer_time_reference" else None),
        "valuation_method": method,
        "reference_date": reference_date,
    }
    posting = {"entry_date": body.on, "label": body.label, "source": source, "currency": currency}
    if body.kind in ONE_BOOK:
        debit, credit, flow = ONE_BOOK[body.kind]
        lines = _two_lines(
            debit=debit, credit=credit, amount=amount, flow=flow, resource=body.kind, **common
        )
        journal = "CVN" if flow == "in_kind" else "OD"
        return [
            Posting(
                book_id=body.member_id or principal.pole_id, journal=journal, lines=lines, **posting
            )
        ]
    if body.kind == "dues":
        assert body.member_id is not None
        return dues_postings(
            pole_id=principal.pole_id,
            member_id=body.member_id,
            amount=amount,
            common=common,
            **posting,
        )
    assert body.member_id is not None
    assert body.to_member_id is not None
    payer, payee = body.member_id, body.to_member_id
    settlement: dict[str, Any] = {**common, "origin": None, "resource": "settlement"}
    return [
        Posting(
            book_id=payer,
            journal="OD",
            lines=(
                Line(
                    account="401", debit=amount, counterpart_id=payee, flow="monetary", **settlement
                ),
                Line(account="512", credit=amount, flow="monetary", **settlement),
            ),
            **posting,
        ),
        Posting(
            book_id=payee,
            journal="OD",
            lines=(
                Line(account="512", debit=amount, flow="monetary", **settlement),
                Line(
                    account="411",
                    credit=amount,
                    counterpart_id=payer,
                    flow="monetary",
                    **settlement,
                ),
            ),
            **posting,
        ),
    ]


def dues_postings(
    *,
    pole_id: uuid.UUID,
    member_id: uuid.UUID,
    amount: Decimal,
    common: dict[str, Any],
    **posting: Any,
) -> list[Posting]:
    """Dues owed by a member to the pole: a charge in its books, an income in the pole's."""
    dues: dict[str, Any] = {**common, "flow": "monetary", "resource": "dues"}
    return [
        Posting(
            book_id=member_id,
            journal="OD",
            lines=(
                Line(account="6281", debit=amount, counterpart_id=pole_id, **dues),
                Line(account="401", credit=amount, counterpart_id=pole_id, **dues),
            ),
            **posting,
        ),
        Posting(
            book_id=pole_id,
            journal="OD",
            lines=(
                Line(account="411", debit=amount, counterpart_id=member_id, **dues),
                Line(account="756", credit=amount, counterpart_id=member_id, **dues),
            ),
            **posting,
        ),
    ]


async def _entries_of(session: AsyncSession, pole_id: uuid.UUID, source: str) -> list[PostedEntry]:
    rows = (
        await session.execute(
            select(entry.c.id, entry.c.book_id, entry.c.journal, entry.c.number, entry.c.entry_date)
            .where(entry.c.pole_id == pole_id, entry.c.source == source)
            .order_by(entry.c.position)
        )
    ).all()
    return [PostedEntry.model_validate(row._mapping) for row in rows]


@router.post(
    "/postings",
    status_code=status.HTTP_201_CREATED,
    summary="Post a grant, dues, sales, a loan, indirect aid, volunteering, a donation in kind "
    "or a settlement between members (coordinator)",
    responses={
        200: {
            "model": Posted,
            "description": "A retry with the same Idempotency-Key: what it posted",
        },
        403: {"description": "Not the coordinator"},
        404: {"description": "No such member in your pole (or the pole is not in the ledger yet)"},
    },
)
async def post_direct(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    body: DirectPosting,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Posted:
    require_coordinator(principal)
    # The source is what the journal accepts once: a retry with the same key posts nothing.
    key = idempotency_key or str(uuid.uuid4())
    source = f"api:{principal.client_id}:{key}"
    async with runtime.session_factory() as session, session.begin():
        existing = await _entries_of(session, principal.pole_id, source)
        if existing:
            response.status_code = status.HTTP_200_OK
            return Posted(source=source, entries=existing)
        now = utcnow()
        for posting in await direct_postings(session, principal, body, source=source):
            await post(session, principal.pole_id, posting, now=now)
        return Posted(source=source, entries=await _entries_of(session, principal.pole_id, source))


# --- Dues ------------------------------------------------------------------------------------


class Bracket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: Decimal | None = Field(
        default=None,
        ge=0,
        le=Decimal("99999999999999"),
        decimal_places=2,
        description="Upper bound of the basis (excluded); null: no bound.",
    )
    amount: Decimal = Field(ge=0, le=Decimal("9999999.99"), decimal_places=2)


class DuesRule(BaseModel):
    """The dues of a year: ``flat`` (one bracket), or brackets of ``turnover`` (€ a year) or
    ``headcount``, in increasing order, the last without bound."""

    model_config = ConfigDict(extra="forbid")

    basis: Literal["flat", "turnover", "headcount"]
    brackets: list[Bracket] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> DuesRule:
        bounds = [bracket.up_to for bracket in self.brackets]
        if bounds[-1] is not None or any(bound is None for bound in bounds[:-1]):
            raise ValueError("only the last bracket has no upper bound, and it has none")
        finite = [bound for bound in bounds if bound is not None]
        if finite != sorted(set(finite)):
            raise ValueError("brackets are in increasing order of their bounds")
        if self.basis == "flat" and len(self.brackets) != 1:
            raise ValueError("a flat rule has one bracket")
        return self


def origin_of(member_row: Any) -> Origin:
    """Where a member's money comes from, for the pole's resources by origin."""
    if member_row.category == "local_authority":
        return "public"
    if member_row.category == "individual":
        return "individuals"
    return "ess" if member_row.is_ess else "private"


def dues_for(rule: DuesRule, basis_value: Decimal | None) -> Decimal:
    """The amount of the bracket ``basis_value`` falls in (the first when it is unknown)."""
    if basis_value is None or rule.basis == "flat":
        return rule.brackets[0].amount
    for bracket in rule.brackets:
        if bracket.up_to is None or basis_value < bracket.up_to:
            return bracket.amount
    return rule.brackets[-1].amount


async def _dues_posted(session: AsyncSession, pole_id: uuid.UUID, year: int) -> bool:
    found = await session.scalar(
        select(entry.c.id)
        .where(entry.c.pole_id == pole_id, entry.c.source.like(f"dues:{year}:%"))
        .limit(1)
    )
    return found is not None


@router.put(
    "/dues-rules/{year}",
    summary="Set the pole's dues rule for a year (coordinator)",
    responses={
        403: {"description": "Not the coordinator"},
        409: {"description": "The year's dues are posted: their rule no longer changes"},
    },
)
async def put_dues_rule(
    runtime: RuntimeDep, principal: CurrentPrincipal, year: Year, body: DuesRule
) -> DuesRule:
    require_coordinator(principal)
    async with runtime.session_factory() as session, session.begin():
        if await _dues_posted(session, principal.pole_id, year):
            raise Conflict(f"The dues of {year} are posted: their rule no longer changes.")
        values = {"basis": body.basis, "brackets": body.model_dump(mode="json")["brackets"]}
        statement = insert(dues_rule).values(
            pole_id=principal.pole_id, year=year, version=1, changed_at=utcnow(), **values
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[dues_rule.c.pole_id, dues_rule.c.year],
                set_={
                    **values,
                    "version": dues_rule.c.version + 1,
                    "changed_at": statement.excluded.changed_at,
                },
            )
        )
    return body


async def _rule(session: AsyncSession, pole_id: uuid.UUID, year: int) -> DuesRule:
    row = (
        await session.execute(
            select(dues_rule).where(dues_rule.c.pole_id == pole_id, dues_rule.c.year == year)
        )
    ).first()
    if row is None:
        raise NotFound(f"No dues rule for {year}.")
    return DuesRule(basis=row.basis, brackets=row.brackets)


@router.get(
    "/dues-rules/{year}",
    summary="The pole's dues rule for a year (every member)",
    responses={404: {"description": "No dues rule for this year"}},
)
async def get_dues_rule(runtime: RuntimeDep, principal: CurrentPrincipal, year: Year) -> DuesRule:
    async with runtime.session_factory() as session:
        return await _rule(session, principal.pole_id, year)


class MemberDues(BaseModel):
    member_id: uuid.UUID
    legal_name: str
    basis_value: Decimal | None
    amount: Decimal
    newly_posted: bool


@router.post(
    "/dues/{year}",
    summary="Compute the year's dues of every member from the rule and post them (coordinator)",
    responses={
        403: {"description": "Not the coordinator"},
        404: {"description": "No dues rule for this year"},
    },
)
async def post_dues(
    runtime: RuntimeDep, principal: CurrentPrincipal, year: Year
) -> list[MemberDues]:
    """Members of the pole during the year (joined before its end, not left before its
    start); posted on 1 January of the year. Posting again posts only the members not yet
    posted (for example one who joined since)."""
    require_coordinator(principal)
    async with runtime.session_factory() as session, session.begin():
        rule = await _rule(session, principal.pole_id, year)
        currency = await session.scalar(
            select(pole.c.currency).where(pole.c.id == principal.pole_id)
        )
        members = (
            await session.execute(
                select(member)
                .where(
                    member.c.pole_id == principal.pole_id,
                    member.c.joined_on <= date(year, 12, 31),
                    or_(member.c.left_on.is_(None), member.c.left_on >= date(year, 1, 1)),
                )
                .order_by(func.lower(member.c.legal_name), member.c.id)
            )
        ).all()
        answer = []
        now = utcnow()
        for row in members:
            basis_value = {
                "flat": None,
                "turnover": row.annual_turnover,
                "headcount": Decimal(row.headcount) if row.headcount is not None else None,
            }[rule.basis]
            amount = dues_for(rule, basis_value)
            newly = False
            if amount > 0:
                for posting in dues_postings(
                    pole_id=principal.pole_id,
                    member_id=row.id,
                    amount=amount,
                    common={"origin": origin_of(row)},
                    entry_date=date(year, 1, 1),
                    label=f"Cotisation {year}",
                    source=f"dues:{year}:{row.id}",
                    currency=currency,
                ):
                    newly = (
                        await post(session, principal.pole_id, posting, now=now) is not None
                        or newly
                    )
            answer.append(
                MemberDues(
                    member_id=row.id,
                    legal_name=row.legal_name,
                    basis_value=basis_value,
                    amount=amount,
                    newly_posted=newly,
                )
            )
    return answer
