"""Reports: what the pole brought each member, the pole's whole activity, the annex of
contributions in kind, statements of account and a settlement proposal.

Every report is computed by SQL aggregates over the journal (only the statement lists lines:
it is a list of lines) and answers JSON, or CSV with ``?format=csv`` or when the ``Accept``
header names ``text/csv`` (``format`` wins over ``Accept``).

- Periods: ``from`` included, ``to`` excluded, at most :data:`MAX_YEARS` years (422 otherwise).
- Amounts to the cent, in the pole's currency; shares and ratios are fractions (0.25 is a
  quarter) to :data:`SHARE` (six decimals), null when their denominator is zero.
- CSV: UTF-8 with a byte order mark (spreadsheets then read the accents right), ``;``
  between fields, decimal comma, ISO dates, CRLF line ends, a header line; the columns are
  the JSON's field names; a text a spreadsheet would take for a formula (``=``, ``+``, ``-``,
  ``@``) is prefixed with ``'``. The pole's activity, made of several tables, comes in long
  format (``section;key;name;other_key;other_name;measure;value``).
- Reversals carry the original lines swapped (quantities negated): sums cancel; a group that
  ends at zero amount and zero quantity is left out.
- Who reads: a member's reports by the member itself, the coordinator and auditors of its
  pole (anything else: 404, as for its book); the pole's reports by the coordinator and
  auditors only (a member: 403).

What is counted (docs/ledger.md, "Reports"):
- provided in money: class 7 of the member's ``EX`` journal (the counterpart is the
  requester); received in money: class 6 of its ``EX`` journal; received in kind: class 86 of
  its ``CVN`` journal; provided in kind: class 86 of the ``CVN`` journals of the other books of
  the pole whose counterpart is the member (contributions in kind are posted in the books of
  who receives them). Dues and other direct postings are the pole's resources, not exchanges.
"""

from __future__ import annotations

import calendar
import csv
import functools
import io
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    Subquery,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ledger.access import sees_the_whole_pole
from ledger.chart import ACCOUNTS, Resource, legacy_account
from ledger.models import (
    activity_attribution,
    activity_breakdown,
    activity_total,
    entry,
    entry_line,
    member,
    pole,
)
from ledger.settlement import settle
from shared.auth import CurrentPrincipal, Principal
from shared.errors import Conflict, Forbidden, NotFound, Problem, UnprocessableEntity
from shared.http import RuntimeDep
from shared.limits import Day

router = APIRouter(tags=["reports"])

MAX_YEARS = 5
SHARE = Decimal("0.000001")
ZERO = Decimal("0.00")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
JSON_MEDIA_TYPE = "application/json"
BYTE_ORDER_MARK = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_CURRENCY = "EUR"
EXCHANGE_RESOURCES: tuple[str, ...] = get_args(Resource)
"""The resources of exchanges; direct postings name theirs after their kind (grant, dues…)."""
RESOURCE_TYPE = {
    "volunteering": "voluntary_contribution",
    "donation_in_kind": "voluntary_contribution",
}
"""The field's types of resources (sales, grant, dues, capital_and_loans, indirect_aid,
voluntary_contribution) from the resource a direct posting names."""
POLE_CATEGORY = "pole"
"""The category given to the pole itself when it is a counterpart (dues)."""

Direction = Literal["provided", "received"]
FlowName = Literal["monetary", "in_kind"]


# --- Common: periods, formats, access ---------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    """Excluded."""


def years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def period(
    from_: Annotated[Day, Query(alias="from", description="First day, included.")],
    to: Annotated[Day, Query(description="Day after the last one: excluded.")],
) -> Period:
    if to <= from_:
        raise UnprocessableEntity(
            "The period is empty: `to` (excluded) must come after `from`.",
            invalid_params=[{"name": "query.to", "reason": "not after from"}],
        )
    if to > years_later(from_, MAX_YEARS):
        raise UnprocessableEntity(
            f"A report covers at most {MAX_YEARS} years.",
            invalid_params=[{"name": "query.to", "reason": f"more than {MAX_YEARS} years"}],
        )
    return Period(from_, to)


PeriodDep = Annotated[Period, Depends(period)]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(
        alias="format",
        description="`csv` for a spreadsheet (also with `Accept: text/csv`); JSON by default.",
    ),
]
MemberId = Annotated[uuid.UUID, Path(description="A member of the caller's pole.")]
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The report (JSON, or CSV when asked)"},
    422: {"model": Problem, "description": "A period empty or longer than five years"},
}
MEMBER_REPORT_RESPONSES = {
    **REPORT_RESPONSES,
    404: {"model": Problem, "description": "No such member for you"},
}
POLE_REPORT_RESPONSES = {
    **REPORT_RESPONSES,
    403: {"model": Problem, "description": "A member's client"},
}


class PeriodOut(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date = Field(description="Excluded.")


def _period_out(span: Period) -> PeriodOut:
    return PeriodOut(from_=span.start, to=span.end)


def wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "").lower()


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f").replace(".", ",")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " | ".join(csv_cell(item) for item in value)
    text = str(value)
    # A name or label a spreadsheet would run as a formula is kept as text.
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return BYTE_ORDER_MARK + buffer.getvalue()


def answer(
    request: Request,
    format_: str | None,
    report: BaseModel,
    *,
    table: Callable[[], tuple[Sequence[str], Iterable[Sequence[Any]]]],
    filename: str,
) -> Response:
    """The report as JSON, or as the CSV ``table`` gives (header, rows) when asked."""
    if wants_csv(request, format_):
        header, rows = table()
        return Response(
            content=csv_text(header, rows),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    # The same bytes as JSONResponse(report.model_dump(mode="json")), serialised in one step
    # by pydantic-core: a report may hold thousands of rows.
    return Response(content=report.model_dump_json(by_alias=True), media_type=JSON_MEDIA_TYPE)


def share(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if not whole else (part / whole).quantize(SHARE)


@dataclass(frozen=True)
class Party:
    name: str
    category: str
    is_ess: bool | None


async def _parties(session: AsyncSession, pole_id: uuid.UUID) -> dict[uuid.UUID, Party]:
    """The pole's members, and the pole itself: the names a report gives to ids."""
    parties = {
        row.id: Party(row.legal_name, row.category, row.is_ess)
        for row in await session.execute(
            select(member.c.id, member.c.legal_name, member.c.category, member.c.is_ess).where(
                member.c.pole_id == pole_id
            )
        )
    }
    name = await session.scalar(select(pole.c.name).where(pole.c.id == pole_id))
    if name is not None:
        parties[pole_id] = Party(name, POLE_CATEGORY, None)
    return parties


async def _currency(session: AsyncSession, pole_id: uuid.UUID) -> str:
    found = await session.scalar(select(pole.c.currency).where(pole.c.id == pole_id))
    return found or DEFAULT_CURRENCY


async def readable_member(session: AsyncSession, principal: Principal, member_id: uuid.UUID) -> Any:
    """The member's copy, for the member itself and its pole's coordinator and auditors."""
    row = (
        await session.execute(
            select(member).where(member.c.id == member_id, member.c.pole_id == principal.pole_id)
        )
    ).first()
    if row is None or not (sees_the_whole_pole(principal) or principal.member_id == member_id):
        raise NotFound("No such member for you in your pole.")
    return row


async def plan_with_values(session: AsyncSession) -> None:
    """Plan the transaction's statements with their values (``SET LOCAL``).

    asyncpg prepares statements; after five runs PostgreSQL may switch to a generic plan,
    made without the values. For a member's activity it reads every ``CVN`` entry of the
    period to find the few whose counterpart the member is: 35 ms, where the plan made with a
    small member's values takes under 1 (bench/ledger_reports.py)."""
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def require_whole_pole(principal: Principal) -> None:
    if not sees_the_whole_pole(principal):
        raise Forbidden("Only the pole's coordinator and auditors read the pole's reports.")


class MemberRef(BaseModel):
    id: uuid.UUID
    legal_name: str
    category: str
    is_ess: bool


def _member_ref(row: Any) -> MemberRef:
    return MemberRef(id=row.id, legal_name=row.legal_name, category=row.category, is_ess=row.is_ess)


_LINES = entry_line.join(entry, entry.c.id == entry_line.c.entry_id)
_DEBIT_BALANCE = entry_line.c.debit - entry_line.c.credit
_CREDIT_BALANCE = entry_line.c.credit - entry_line.c.debit
_THIRD_PARTY = or_(entry_line.c.account.like("411%"), entry_line.c.account.like("401%"))


def _starts(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``column LIKE '<prefix>%'``, the pattern written into the statement rather than bound:
    the partial indexes of the reports (migration 0006) are defined by such patterns, and
    PostgreSQL uses a partial index only when the statement's own conditions imply its
    predicate, also in the generic plan of a prepared statement."""
    return column.like(literal(f"{prefix}%", String, literal_execute=True))


def _in(pole_id: uuid.UUID, span: Period) -> tuple[ColumnElement[bool], ...]:
    return (
        entry.c.pole_id == pole_id,
        entry.c.entry_date >= span.start,
        entry.c.entry_date < span.end,
    )


def _not_empty(amount: Any, quantity: Any) -> ColumnElement[bool]:
    return or_(amount != 0, func.coalesce(quantity, 0) != 0)


# --- 1. A member's activity attributable to the pole ------------------------------------------


class FlowTotals(BaseModel):
    provided_monetary: Decimal = ZERO
    provided_in_kind: Decimal = ZERO
    provided: Decimal = ZERO
    received_monetary: Decimal = ZERO
    received_in_kind: Decimal = ZERO
    received: Decimal = ZERO
    total: Decimal = Field(default=ZERO, description="Provided and received, money and kind.")


class _Tally:
    """Sums of (direction, flow) pairs, turned into :class:`FlowTotals`."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)

    def add(self, direction: str, flow: str, amount: Decimal) -> None:
        self.sums[direction, flow] += amount

    def figures(self) -> dict[str, Decimal]:
        s = self.sums
        provided = s["provided", "monetary"] + s["provided", "in_kind"]
        received = s["received", "monetary"] + s["received", "in_kind"]
        return {
            "provided_monetary": s["provided", "monetary"],
            "provided_in_kind": s["provided", "in_kind"],
            "provided": provided,
            "received_monetary": s["received", "monetary"],
            "received_in_kind": s["received", "in_kind"],
            "received": received,
            "total": provided + received,
        }


class QuantityOut(BaseModel):
    direction: Direction
    flow: FlowName
    unit: str
    quantity: Decimal


class _ResourceKey(BaseModel):
    resource: str


class ResourceFlows(FlowTotals, _ResourceKey):
    """(The key mixin comes last so that its field comes first.)"""

    quantities: list[QuantityOut] = Field(
        description="By unit. An exchange partly paid and partly in kind counts its quantity "
        "in both flows."
    )


class _CounterpartKey(BaseModel):
    counterpart_id: uuid.UUID | None
    legal_name: str | None
    category: str | None


class CounterpartFlows(FlowTotals, _CounterpartKey):
    pass


class _CategoryKey(BaseModel):
    category: str | None


class CategoryFlows(FlowTotals, _CategoryKey):
    pass


class ActivityLine(BaseModel):
    direction: Direction
    flow: FlowName
    resource: str
    counterpart_id: uuid.UUID | None
    counterpart: str | None
    counterpart_category: str | None
    unit: str | None
    quantity: Decimal | None
    amount: Decimal


class TurnoverShare(BaseModel):
    annual_turnover: Decimal = Field(
        description="The member's annual turnover as the catalog holds it now (not dated)."
    )
    years: Decimal = Field(
        description="The period in years: for each calendar year, its days in the period over "
        "the days of that year (a whole calendar year is 1)."
    )
    turnover_of_period: Decimal = Field(description="annual_turnover × years, to the cent.")
    provided_monetary_share: Decimal | None = Field(
        description="What the member invoiced inside the pole over turnover_of_period."
    )
    activity_share: Decimal | None = Field(
        description="Its whole activity attributable to the pole (provided and received, money "
        "and kind) over turnover_of_period: a measure of volume."
    )


class MemberActivity(BaseModel):
    member: MemberRef
    period: PeriodOut
    currency: str
    totals: FlowTotals
    turnover: TurnoverShare | None = Field(description="Null when the turnover is unknown.")
    by_resource: list[ResourceFlows]
    by_counterpart: list[CounterpartFlows]
    by_counterpart_category: list[CategoryFlows]
    lines: list[ActivityLine] | None = Field(
        default=None,
        description="With `lines=true` (the CSV is made of them): the detail everything else "
        "sums, per direction, flow, resource, counterpart and unit. Null otherwise.",
    )


def years_of(span: Period) -> Decimal:
    years = Fraction(0)
    for year in range(span.start.year, span.end.year + 1):
        first, after = date(year, 1, 1), date(year + 1, 1, 1)
        days = (min(span.end, after) - max(span.start, first)).days
        if days > 0:
            years += Fraction(days, 366 if calendar.isleap(year) else 365)
    return Decimal(years.numerator) / Decimal(years.denominator)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _empty_at(day: date) -> Period:
    return Period(day, day)


@dataclass(frozen=True)
class Slices:
    """A period cut for the totals of ``activity_total`` (migration 0007): its whole calendar
    years and whole months are read from the totals, its other days from the lines."""

    years: Period
    """First days of the whole years: ``[start, end)``."""
    months: tuple[Period, Period]
    """First days of the whole months before the years, and after them."""
    days: tuple[Period, Period]
    """The days before the first whole month, and after the last."""

    @classmethod
    def of(cls, span: Period, *, years: bool = True) -> Slices:
        """``years=False``: whole months only (for sums by month)."""
        first_month = span.start if span.start.day == 1 else _next_month(span.start)
        last_month = span.end.replace(day=1)
        if first_month >= last_month:
            return cls.from_lines(span)
        days = (Period(span.start, first_month), Period(last_month, span.end))
        first_year = date(first_month.year + (first_month.month != 1), 1, 1)
        last_year = date(last_month.year, 1, 1)
        if not years or first_year >= last_year:
            months = Period(first_month, last_month)
            return cls(_empty_at(first_month), (months, _empty_at(last_month)), days)
        return cls(
            Period(first_year, last_year),
            (Period(first_month, first_year), Period(last_year, last_month)),
            days,
        )

    @classmethod
    def from_lines(cls, span: Period) -> Slices:
        """The whole period from the lines (what the totals must agree with)."""
        nothing = _empty_at(span.start)
        return cls(nothing, (nothing, nothing), (span, _empty_at(span.end)))

    def values(self) -> dict[str, date]:
        named = {
            "years": self.years,
            "months_before": self.months[0],
            "months_after": self.months[1],
            "days_before": self.days[0],
            "days_after": self.days[1],
        }
        values = {}
        for name, part in named.items():
            values[f"{name}_from"], values[f"{name}_to"] = part.start, part.end
        return values


_BREAKDOWN_KEYS = ("breakdown", "direction", "flow", "resource", "unit", "counterpart_id")


def _breakdown_rows(*, of_member: bool, only: Callable[[Table], ColumnElement[bool]]) -> Subquery:
    """The rows of ``activity_breakdown`` for the bound pole (and member) that ``only`` keeps,
    for a period's :class:`Slices`: the totals of its whole years and months, the lines of
    its other days. (``only`` is written into each part: PostgreSQL does not push a condition
    into a union whose parts' column types differ, varchar and text here.)"""
    columns = (*_BREAKDOWN_KEYS, "member_id", "exchange", "amount", "quantity")

    def conditions(source: Table, day: ColumnElement[date], name: str) -> list[Any]:
        kept = [
            source.c.pole_id == bindparam("pole_id", type_=Uuid),
            day >= bindparam(f"{name}_from", type_=Date),
            day < bindparam(f"{name}_to", type_=Date),
            only(source),
        ]
        if of_member:
            kept.append(source.c.member_id == bindparam("member_id", type_=Uuid))
        return kept

    def totals(grain: str, name: str) -> Select[Any]:
        start = activity_total.c.period_start
        return select(
            *(activity_total.c[column] for column in columns), start.label("month")
        ).where(activity_total.c.grain == grain, *conditions(activity_total, start, name))

    def lines(name: str) -> Select[Any]:
        view = activity_breakdown
        return select(*(view.c[column] for column in columns), view.c.month).where(
            *conditions(view, view.c.entry_date, name)
        )

    return union_all(
        totals("year", "years"),
        totals("month", "months_before"),
        totals("month", "months_after"),
        lines("days_before"),
        lines("days_after"),
    ).subquery("activity")


@functools.cache
def _member_breakdown() -> Select[Any]:
    """A member's activity, summed twice: by direction, flow, resource and unit, and by
    direction, flow and counterpart. Built once: the endpoint binds its values at each
    execution (building a statement takes a millisecond or more)."""
    rows = _breakdown_rows(of_member=True, only=lambda source: source.c.breakdown != "pole")
    keys = [rows.c[name] for name in _BREAKDOWN_KEYS]
    amount, quantity = func.sum(rows.c.amount), func.sum(rows.c.quantity)
    return (
        select(*keys, amount.label("amount"), quantity.label("quantity"))
        .group_by(*keys)
        .having(_not_empty(amount, quantity))
    )


def member_breakdown_values(
    pole_id: uuid.UUID, member_id: uuid.UUID, slices: Slices
) -> dict[str, Any]:
    return {"pole_id": pole_id, "member_id": member_id, **slices.values()}


def member_activity_statement(
    pole_id: uuid.UUID, member_id: uuid.UUID, span: Period
) -> Select[Any]:
    """What ``GET /members/{id}/activity`` runs (``bench/ledger_reports.py`` explains it)."""
    return _member_breakdown().params(member_breakdown_values(pole_id, member_id, Slices.of(span)))


@functools.cache
def _member_lines() -> Select[Any]:
    """The detail lines: per direction, flow, resource, counterpart and unit, from the
    journal's lines (``activity_attribution``)."""
    lines = activity_attribution
    keys = (lines.c.direction, lines.c.flow, lines.c.resource, lines.c.counterpart_id, lines.c.unit)
    amount, quantity = func.sum(lines.c.amount), func.sum(lines.c.quantity)
    return (
        select(*keys, amount.label("amount"), quantity.label("quantity"))
        .where(
            lines.c.pole_id == bindparam("pole_id", type_=Uuid),
            lines.c.member_id == bindparam("member_id", type_=Uuid),
            lines.c.entry_date >= bindparam("start", type_=Date),
            lines.c.entry_date < bindparam("end", type_=Date),
        )
        .group_by(*keys)
        .having(_not_empty(amount, quantity))
        .order_by(
            lines.c.direction, lines.c.flow, lines.c.resource, lines.c.unit, lines.c.counterpart_id
        )
    )


def _quantities(sums: dict[tuple[str, str, str], Decimal]) -> list[QuantityOut]:
    return [
        QuantityOut(direction=d, flow=f, unit=u, quantity=q)
        for (d, f, u), q in sorted(sums.items())
        if q
    ]


def build_member_activity(
    row: Any,
    breakdown: Sequence[Any],
    *,
    detail: Sequence[Any] | None,
    parties: dict[uuid.UUID, Party],
    span: Period,
    currency: str,
) -> MemberActivity:
    """``breakdown``: the rows of :func:`_member_breakdown`; ``detail``: those of
    :func:`_member_lines`, when asked for."""
    totals = _Tally()
    by_resource: dict[str, _Tally] = defaultdict(_Tally)
    resource_quantities: dict[str, dict[tuple[str, str, str], Decimal]] = defaultdict(
        lambda: defaultdict(lambda: ZERO)
    )
    by_counterpart: dict[uuid.UUID | None, _Tally] = defaultdict(_Tally)
    by_category: dict[str | None, _Tally] = defaultdict(_Tally)
    # Rows unpacked once (a row's attributes are slower to read than a tuple's items).
    for kind, direction, flow, resource, unit, counterpart_id, amount, quantity in breakdown:
        if kind == "resource":
            totals.add(direction, flow, amount)
            by_resource[resource].add(direction, flow, amount)
            if unit is not None and quantity is not None:
                resource_quantities[resource][direction, flow, unit] += quantity
        else:
            party = parties.get(counterpart_id) if counterpart_id else None
            by_counterpart[counterpart_id].add(direction, flow, amount)
            by_category[party.category if party else None].add(direction, flow, amount)
    lines = None
    if detail is not None:
        lines = []
        for direction, flow, resource, counterpart_id, unit, amount, quantity in detail:
            party = parties.get(counterpart_id) if counterpart_id else None
            lines.append(
                ActivityLine(
                    direction=direction,
                    flow=flow,
                    resource=resource,
                    counterpart_id=counterpart_id,
                    counterpart=party.name if party else None,
                    counterpart_category=party.category if party else None,
                    unit=unit,
                    quantity=quantity,
                    amount=amount,
                )
            )
    figures = totals.figures()
    turnover = None
    if row.annual_turnover is not None:
        years = years_of(span)
        of_period = (row.annual_turnover * years).quantize(ZERO)
        turnover = TurnoverShare(
            annual_turnover=row.annual_turnover,
            years=years.quantize(SHARE),
            turnover_of_period=of_period,
            provided_monetary_share=share(figures["provided_monetary"], of_period),
            activity_share=share(figures["total"], of_period),
        )

    def name_of(counterpart_id: uuid.UUID | None) -> str:
        party = parties.get(counterpart_id) if counterpart_id else None
        return party.name if party else "~"

    return MemberActivity(
        member=_member_ref(row),
        period=_period_out(span),
        currency=currency,
        totals=FlowTotals(**figures),
        turnover=turnover,
        by_resource=[
            ResourceFlows(
                resource=resource,
                quantities=_quantities(resource_quantities[resource]),
                **tally.figures(),
            )
            for resource, tally in sorted(by_resource.items())
        ],
        by_counterpart=[
            CounterpartFlows(
                counterpart_id=counterpart_id,
                legal_name=parties[counterpart_id].name if counterpart_id in parties else None,
                category=parties[counterpart_id].category if counterpart_id in parties else None,
                **tally.figures(),
            )
            for counterpart_id, tally in sorted(
                by_counterpart.items(), key=lambda item: (name_of(item[0]), str(item[0]))
            )
        ],
        by_counterpart_category=[
            CategoryFlows(category=category, **tally.figures())
            for category, tally in sorted(by_category.items(), key=lambda item: item[0] or "~")
        ],
        lines=lines,
    )


ACTIVITY_COLUMNS = (
    "direction",
    "flow",
    "resource",
    "counterpart_id",
    "counterpart",
    "counterpart_category",
    "unit",
    "quantity",
    "amount",
)


@router.get(
    "/members/{member_id}/activity",
    summary="A member's activity attributable to the pole: provided and received, in money "
    "and in kind (the member, coordinator, auditors)",
    response_model=MemberActivity,
    responses=MEMBER_REPORT_RESPONSES,
)
async def member_activity(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request: Request,
    member_id: MemberId,
    span: PeriodDep,
    format_: Format = None,
    with_lines: Annotated[
        bool,
        Query(
            alias="lines",
            description="Add the detail lines (per direction, flow, resource, counterpart and "
            "unit) to the JSON; the CSV is made of them.",
        ),
    ] = False,
) -> Response:
    as_csv = wants_csv(request, format_)
    async with runtime.session_factory() as session:
        row = await readable_member(session, principal, member_id)
        await plan_with_values(session)
        breakdown = (
            await session.execute(
                _member_breakdown(),
                member_breakdown_values(principal.pole_id, member_id, Slices.of(span)),
            )
        ).all()
        detail = None
        if with_lines or as_csv:
            detail = (
                await session.execute(
                    _member_lines(),
                    {
                        "pole_id": principal.pole_id,
                        "member_id": member_id,
                        "start": span.start,
                        "end": span.end,
                    },
                )
            ).all()
        parties = await _parties(session, principal.pole_id)
        currency = await _currency(session, principal.pole_id)
    report = build_member_activity(
        row, breakdown, detail=detail, parties=parties, span=span, currency=currency
    )
    return answer(
        request,
        format_,
        report,
        table=lambda: (
            ACTIVITY_COLUMNS,
            ([getattr(line, name) for name in ACTIVITY_COLUMNS] for line in report.lines or ()),
        ),
        filename=f"activity-{member_id}-{span.start}-{span.end}.csv",
    )


# --- 2. The pole's activity -------------------------------------------------------------------


class FlowSplit(BaseModel):
    monetary: Decimal = ZERO
    in_kind: Decimal = ZERO
    total: Decimal = ZERO
    in_kind_share: Decimal | None = Field(default=None, description="in_kind / total.")


def _split(monetary: Decimal, in_kind: Decimal) -> dict[str, Any]:
    total = monetary + in_kind
    return {
        "monetary": monetary,
        "in_kind": in_kind,
        "total": total,
        "in_kind_share": share(in_kind, total),
    }


class _MonthKey(BaseModel):
    month: str = Field(description="YYYY-MM")


class MonthFlows(FlowSplit, _MonthKey):
    pass


class PoleQuantity(BaseModel):
    flow: FlowName
    unit: str
    quantity: Decimal


class PoleResourceFlows(FlowSplit, _ResourceKey):
    quantities: list[PoleQuantity]


class Reciprocity(BaseModel):
    member_id: uuid.UUID
    legal_name: str
    category: str
    given_monetary: Decimal
    given_in_kind: Decimal
    given: Decimal
    received_monetary: Decimal
    received_in_kind: Decimal
    received: Decimal
    balance: Decimal = Field(description="given − received.")
    ratio: Decimal | None = Field(description="given / received; null when nothing received.")


class MemberFlow(TypedDict):
    """A typed dict, not a model: a pole's report has thousands (as dicts, they cost a
    microsecond each to build and serialise)."""

    provider_id: uuid.UUID | None
    provider: str | None
    beneficiary_id: uuid.UUID | None
    beneficiary: str | None
    monetary: Decimal
    in_kind: Decimal
    total: Decimal


class ResourceLine(BaseModel):
    type: str = Field(
        description="sales, grant, dues, capital_and_loans, indirect_aid, voluntary_contribution"
    )
    origin: str = Field(description="individuals, private, public, ess")
    book: Literal["pole", "members"] = Field(
        description="pole: the pole's own book (the animation cell); members: members' books."
    )
    monetary: Decimal
    in_kind: Decimal
    total: Decimal


class Amount(BaseModel):
    key: str
    amount: Decimal


class PoleResources(BaseModel):
    lines: list[ResourceLine]
    by_type: list[Amount]
    by_origin: list[Amount]
    total: Decimal


class Levels(BaseModel):
    animation_cell: FlowSplit = Field(
        description="The funding of the animation cell: resources posted in the pole's own book."
    )
    mobilised_by_the_pole: FlowSplit = Field(
        description="Resources mobilised by the pole: the exchanges between its members."
    )
    common_projects: FlowSplit | None = Field(
        default=None, description="The weight of common projects: not tracked yet (null)."
    )
    note: str = "Common projects are not tracked yet: common_projects is null."


class PoleRef(BaseModel):
    id: uuid.UUID
    name: str | None


class PoleActivity(BaseModel):
    pole: PoleRef
    period: PeriodOut
    currency: str
    totals: FlowSplit = Field(description="Exchanges between members.")
    by_month: list[MonthFlows]
    by_resource: list[PoleResourceFlows]
    reciprocity: list[Reciprocity]
    flows: list[MemberFlow] = Field(description="Provider → beneficiary.")
    resources: PoleResources = Field(
        description="Direct postings naming a type and an origin, at their source account "
        "(classes 1, 7 and 87)."
    )
    levels: Levels


GROUPED_BY_MONTH, GROUPED_BY_RESOURCE = 0b011, 0b100
"""``GROUPING(month, resource, unit)`` of the rows of :func:`_pole_by_month_and_resource`, per
grouping set (a bit set: that column not grouped)."""


def _exchanged(breakdown: str) -> Callable[[Table], ColumnElement[bool]]:
    """The flows between members, each once: in money, what a member provided (class 7 of its
    ``EX`` journal) to its counterpart; in kind, what a member received for an exchange's
    resource (class 86 of its ``CVN`` journal) from its counterpart. Not also as the other
    party's received money or provided kind."""

    def only(source: Table) -> ColumnElement[bool]:
        return and_(
            source.c.breakdown == breakdown,
            or_(
                and_(source.c.direction == "provided", source.c.flow == "monetary"),
                and_(
                    source.c.direction == "received",
                    source.c.flow == "in_kind",
                    source.c.exchange,
                ),
            ),
        )

    return only


@functools.cache
def _pole_by_month_and_resource() -> Select[Any]:
    """The flows between members summed two ways in one pass (grouping sets): by flow and
    month, and by flow, resource and unit, from the pole's breakdown (a few rows a month);
    ``grouping`` tells which (:data:`GROUPED_BY_MONTH`, :data:`GROUPED_BY_RESOURCE`), rows come
    in that order."""
    rows = _breakdown_rows(of_member=False, only=_exchanged("pole"))
    amount, quantity = func.sum(rows.c.amount), func.sum(rows.c.quantity)
    keys = (rows.c.month, rows.c.resource, rows.c.unit)
    grouping = func.grouping(*keys)
    return (
        select(rows.c.flow, *keys, amount.label("amount"), quantity.label("quantity"), grouping)
        .group_by(
            func.grouping_sets(
                tuple_(rows.c.flow, rows.c.month),
                tuple_(rows.c.flow, rows.c.resource, rows.c.unit),
            )
        )
        .having(_not_empty(amount, quantity))
        .order_by(grouping, rows.c.flow, *keys)
    )


PAIR, GIVEN, RECEIVED = 0b00, 0b01, 0b10
"""``GROUPING(provider_id, beneficiary_id)`` of the rows of :func:`_pole_pairs`."""


@functools.cache
def _pole_pairs() -> Select[Any]:
    """The flows between members, in money and in kind, by provider and beneficiary
    (:data:`PAIR`), by provider (:data:`GIVEN`) and by beneficiary (:data:`RECEIVED`), in
    that order, pairs by names (the pole's own name for the pole) then ids, in code point
    order (``COLLATE "C"``, as Python compares strings).

    Thousands of pairs for a pole of 200 members: summed, named and sorted here, where it
    costs a few milliseconds, rather than row by row in Python (tens)."""
    rows = _breakdown_rows(of_member=False, only=_exchanged("counterpart"))
    provided = rows.c.direction == "provided"
    flows = select(
        case((provided, rows.c.member_id), else_=rows.c.counterpart_id).label("provider_id"),
        case((provided, rows.c.counterpart_id), else_=rows.c.member_id).label("beneficiary_id"),
        rows.c.flow,
        rows.c.amount,
    ).subquery("flows")
    monetary = func.coalesce(func.sum(flows.c.amount).filter(flows.c.flow == "monetary"), 0)
    in_kind = func.coalesce(func.sum(flows.c.amount).filter(flows.c.flow == "in_kind"), 0)
    provider, beneficiary = flows.c.provider_id, flows.c.beneficiary_id
    sums = (
        select(
            func.grouping(provider, beneficiary).label("grouping"),
            provider,
            beneficiary,
            monetary.label("monetary"),
            in_kind.label("in_kind"),
        )
        .group_by(func.grouping_sets(tuple_(provider, beneficiary), provider, beneficiary))
        .having(or_(monetary != 0, in_kind != 0))
        .subquery("sums")
    )
    names = union_all(
        select(member.c.id, member.c.legal_name.label("name")).where(
            member.c.pole_id == bindparam("pole_id", type_=Uuid)
        ),
        select(pole.c.id, pole.c.name).where(pole.c.id == bindparam("pole_id", type_=Uuid)),
    ).subquery("names")
    provider_names, beneficiary_names = (
        names.alias("provider_names"),
        names.alias("beneficiary_names"),
    )

    def in_order(name: ColumnElement[str]) -> ColumnElement[str]:
        return func.coalesce(name, "~").collate("C")

    return (
        select(
            sums.c.grouping,
            sums.c.provider_id,
            provider_names.c.name.label("provider"),
            sums.c.beneficiary_id,
            beneficiary_names.c.name.label("beneficiary"),
            sums.c.monetary,
            sums.c.in_kind,
        )
        .select_from(
            sums.outerjoin(provider_names, provider_names.c.id == sums.c.provider_id).outerjoin(
                beneficiary_names, beneficiary_names.c.id == sums.c.beneficiary_id
            )
        )
        .order_by(
            sums.c.grouping,
            in_order(provider_names.c.name),
            in_order(beneficiary_names.c.name),
            # Ids compare as their texts do (bytes, hexadecimal digits): without the text.
            sums.c.provider_id.nulls_first(),
            sums.c.beneficiary_id.nulls_first(),
        )
    )


def pole_breakdown_values(pole_id: uuid.UUID, slices: Slices) -> dict[str, Any]:
    return {"pole_id": pole_id, **slices.values()}


def pole_activity_statements(pole_id: uuid.UUID, span: Period) -> list[tuple[str, Select[Any]]]:
    """What ``GET /pole/activity`` runs, by name (``bench/ledger_reports.py`` explains them)."""
    by_month = pole_breakdown_values(pole_id, Slices.of(span, years=False))
    by_year = pole_breakdown_values(pole_id, Slices.of(span))
    return [
        ("by month and resource", _pole_by_month_and_resource().params(by_month)),
        ("flows between members", _pole_pairs().params(by_year)),
        ("resources", pole_resources_statement(pole_id, span)),
    ]


def pole_resources_statement(pole_id: uuid.UUID, span: Period) -> Select[Any]:
    """Direct postings' lines naming an origin, at their source account (classes 1, 7, 87),
    by book, resource, origin and flow (``ix_entry_line_origin``: the few lines with an
    origin, without reading the others)."""
    account = entry_line.c.account
    amount = func.sum(_CREDIT_BALANCE)
    return (
        select(
            entry.c.book_id,
            entry_line.c.resource,
            entry_line.c.origin,
            entry_line.c.flow,
            amount.label("amount"),
        )
        .select_from(_LINES)
        .where(
            *_in(pole_id, span),
            entry_line.c.origin.is_not(None),
            or_(account.like("1%"), account.like("7%"), account.like("87%")),
        )
        .group_by(entry.c.book_id, entry_line.c.resource, entry_line.c.origin, entry_line.c.flow)
        .having(amount != 0)
    )


def months_of(span: Period) -> list[str]:
    months, day = [], date(span.start.year, span.start.month, 1)
    while day < span.end:
        months.append(f"{day:%Y-%m}")
        day = _next_month(day)
    return months


def build_resources(rows: Sequence[Any], *, pole_id: uuid.UUID) -> PoleResources:
    lines: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(
        lambda: {"monetary": ZERO, "in_kind": ZERO}
    )
    for row in rows:
        kind = RESOURCE_TYPE.get(row.resource, row.resource)
        book = "pole" if row.book_id == pole_id else "members"
        lines[kind, row.origin, book][row.flow] += row.amount
    out = [
        ResourceLine(
            type=kind,
            origin=origin,
            book=book,
            monetary=sums["monetary"],
            in_kind=sums["in_kind"],
            total=sums["monetary"] + sums["in_kind"],
        )
        for (kind, origin, book), sums in sorted(lines.items())
    ]
    by_type: dict[str, Decimal] = defaultdict(lambda: ZERO)
    by_origin: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in out:
        by_type[line.type] += line.total
        by_origin[line.origin] += line.total
    return PoleResources(
        lines=out,
        by_type=[Amount(key=key, amount=value) for key, value in sorted(by_type.items())],
        by_origin=[Amount(key=key, amount=value) for key, value in sorted(by_origin.items())],
        total=sum((line.total for line in out), ZERO),
    )


def build_pole_activity(
    *,
    pole_id: uuid.UUID,
    span: Period,
    currency: str,
    parties: dict[uuid.UUID, Party],
    sums: Sequence[Any],
    pairs: Sequence[Any],
    pole_resources: Sequence[Any],
) -> PoleActivity:
    """``sums``: the rows of :func:`_pole_by_month_and_resource`; ``pairs``: those of
    :func:`_pole_pairs`."""
    by_month: dict[str, dict[str, Decimal]] = {
        month: {"monetary": ZERO, "in_kind": ZERO} for month in months_of(span)
    }
    by_resource: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {"monetary": ZERO, "in_kind": ZERO}
    )
    quantities: dict[str, list[PoleQuantity]] = defaultdict(list)
    # Rows unpacked once (a row's attributes are slower to read than a tuple's items).
    for flow, first_day, resource, unit, amount, quantity, grouping in sums:
        if grouping == GROUPED_BY_MONTH:
            month = f"{first_day:%Y-%m}"
            by_month.setdefault(month, {"monetary": ZERO, "in_kind": ZERO})[flow] += amount
        else:
            by_resource[resource][flow] += amount
            if unit is not None and quantity:
                quantities[resource].append(PoleQuantity(flow=flow, unit=unit, quantity=quantity))
    flows: list[MemberFlow] = []
    given: dict[uuid.UUID | None, tuple[Decimal, Decimal]] = {}
    received: dict[uuid.UUID | None, tuple[Decimal, Decimal]] = {}
    # Rows unpacked once; the pairs in their order, as they are.
    for grouping, provider, provider_name, beneficiary, beneficiary_name, money, kind in pairs:
        if grouping == PAIR:
            flows.append(
                {
                    "provider_id": provider,
                    "provider": provider_name,
                    "beneficiary_id": beneficiary,
                    "beneficiary": beneficiary_name,
                    "monetary": money,
                    "in_kind": kind,
                    "total": money + kind,
                }
            )
        elif grouping == GIVEN:
            given[provider] = (money, kind)
        else:
            received[beneficiary] = (money, kind)

    reciprocity = []
    nothing = (ZERO, ZERO)
    for member_id, party in sorted(parties.items(), key=lambda item: (item[1].name, item[0])):
        if member_id == pole_id:
            continue
        gave, got = given.get(member_id, nothing), received.get(member_id, nothing)
        given_total, received_total = gave[0] + gave[1], got[0] + got[1]
        reciprocity.append(
            Reciprocity(
                member_id=member_id,
                legal_name=party.name,
                category=party.category,
                given_monetary=gave[0],
                given_in_kind=gave[1],
                given=given_total,
                received_monetary=got[0],
                received_in_kind=got[1],
                received=received_total,
                balance=given_total - received_total,
                ratio=share(given_total, received_total),
            )
        )
    totals = _split(
        sum((sums["monetary"] for sums in by_month.values()), ZERO),
        sum((sums["in_kind"] for sums in by_month.values()), ZERO),
    )
    pole_resources_out = build_resources(pole_resources, pole_id=pole_id)
    cell = [line for line in pole_resources_out.lines if line.book == "pole"]
    # Built without validating the pairs again (thousands, made of checked values).
    return PoleActivity.model_construct(
        pole=PoleRef(id=pole_id, name=parties[pole_id].name if pole_id in parties else None),
        period=_period_out(span),
        currency=currency,
        totals=FlowSplit(**totals),
        by_month=[
            MonthFlows(month=month, **_split(sums["monetary"], sums["in_kind"]))
            for month, sums in sorted(by_month.items())
        ],
        by_resource=[
            PoleResourceFlows(
                resource=resource,
                quantities=quantities[resource],
                **_split(sums["monetary"], sums["in_kind"]),
            )
            for resource, sums in sorted(by_resource.items())
        ],
        reciprocity=reciprocity,
        flows=flows,
        resources=pole_resources_out,
        levels=Levels(
            animation_cell=FlowSplit(
                **_split(
                    sum((line.monetary for line in cell), ZERO),
                    sum((line.in_kind for line in cell), ZERO),
                )
            ),
            mobilised_by_the_pole=FlowSplit(**totals),
        ),
    )


LONG_COLUMNS = ("section", "key", "name", "other_key", "other_name", "measure", "value")
SPLIT_MEASURES = ("monetary", "in_kind", "total", "in_kind_share")


def pole_activity_rows(report: PoleActivity) -> Iterator[tuple[Any, ...]]:
    """The report in long format: one figure a row."""
    for measure in SPLIT_MEASURES:
        yield ("totals", "", "", "", "", measure, getattr(report.totals, measure))
    for month in report.by_month:
        for measure in SPLIT_MEASURES:
            yield ("month", month.month, "", "", "", measure, getattr(month, measure))
    for resource in report.by_resource:
        for measure in SPLIT_MEASURES:
            yield ("resource", resource.resource, "", "", "", measure, getattr(resource, measure))
        for quantity in resource.quantities:
            yield (
                "resource_quantity",
                resource.resource,
                "",
                quantity.unit,
                "",
                quantity.flow,
                quantity.quantity,
            )
    reciprocity_measures = [
        name
        for name in Reciprocity.model_fields
        if name not in ("member_id", "legal_name", "category")
    ]
    for member_row in report.reciprocity:
        for measure in reciprocity_measures:
            yield (
                "reciprocity",
                member_row.member_id,
                member_row.legal_name,
                "",
                "",
                measure,
                getattr(member_row, measure),
            )
    for pair in report.flows:
        for measure in ("monetary", "in_kind", "total"):
            yield (
                "flow",
                pair["provider_id"],
                pair["provider"],
                pair["beneficiary_id"],
                pair["beneficiary"],
                measure,
                pair[measure],  # type: ignore[literal-required]
            )
    for line in report.resources.lines:
        for measure in ("monetary", "in_kind", "total"):
            yield (
                "resource_origin",
                line.type,
                "",
                line.origin,
                line.book,
                measure,
                getattr(line, measure),
            )
    for level in ("animation_cell", "mobilised_by_the_pole", "common_projects"):
        split: FlowSplit | None = getattr(report.levels, level)
        for measure in SPLIT_MEASURES:
            yield ("level", level, "", "", "", measure, getattr(split, measure) if split else None)


@router.get(
    "/pole/activity",
    summary="The pole's activity: by month and resource, reciprocity, flows between members, "
    "resources by type and origin (coordinator, auditors)",
    response_model=PoleActivity,
    responses=POLE_REPORT_RESPONSES,
)
async def pole_activity(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request: Request,
    span: PeriodDep,
    format_: Format = None,
) -> Response:
    require_whole_pole(principal)
    pole_id = principal.pole_id
    async with runtime.session_factory() as session:
        await plan_with_values(session)
        by_month = pole_breakdown_values(pole_id, Slices.of(span, years=False))
        sums = (await session.execute(_pole_by_month_and_resource(), by_month)).all()
        by_year = pole_breakdown_values(pole_id, Slices.of(span))
        pairs = (await session.execute(_pole_pairs(), by_year)).all()
        pole_resources = (await session.execute(pole_resources_statement(pole_id, span))).all()
        parties = await _parties(session, pole_id)
        currency = await _currency(session, pole_id)
    report = build_pole_activity(
        pole_id=pole_id,
        span=span,
        currency=currency,
        parties=parties,
        sums=sums,
        pairs=pairs,
        pole_resources=pole_resources,
    )
    return answer(
        request,
        format_,
        report,
        table=lambda: (LONG_COLUMNS, pole_activity_rows(report)),
        filename=f"pole-activity-{span.start}-{span.end}.csv",
    )


# --- 3. The annex of contributions in kind ----------------------------------------------------


class UnitQuantity(BaseModel):
    unit: str
    quantity: Decimal


class CounterpartRef(BaseModel):
    id: uuid.UUID
    legal_name: str | None


class InKindAccount(BaseModel):
    account: str
    label: str
    cerfa_account: str = Field(
        description="The number the Cerfa 12156 subsidy form and the older chart (CRC 99-01) "
        "use: 870 and 875 swapped."
    )
    side: Literal["use", "source"] = Field(description="use: class 86; source: class 87.")
    amount: Decimal
    quantities: list[UnitQuantity]
    valuation_methods: list[str]
    reference_dates: list[date]
    counterparts: list[CounterpartRef]


class ContributionsInKind(BaseModel):
    member: MemberRef
    year: int
    currency: str
    accounts: list[InKindAccount]
    total_uses: Decimal
    total_sources: Decimal


def account_label(account: str) -> str:
    for length in range(len(account), 0, -1):
        if account[:length] in ACCOUNTS:
            return ACCOUNTS[account[:length]]
    return f"Compte {account}"


def contributions_statement(pole_id: uuid.UUID, member_id: uuid.UUID, year: int) -> Select[Any]:
    use = entry_line.c.account.like("86%")
    amount = func.sum(case((use, _DEBIT_BALANCE), else_=_CREDIT_BALANCE))
    quantity = func.sum(entry_line.c.quantity)
    return (
        select(
            entry_line.c.account,
            entry_line.c.unit,
            amount.label("amount"),
            quantity.label("quantity"),
            func.array_agg(entry_line.c.valuation_method.distinct()).label("methods"),
            func.array_agg(entry_line.c.reference_date.distinct()).label("reference_dates"),
            func.array_agg(entry_line.c.counterpart_id.distinct()).label("counterparts"),
        )
        .select_from(_LINES)
        .where(
            entry.c.pole_id == pole_id,
            entry.c.book_id == member_id,
            entry.c.journal == "CVN",
            entry.c.fiscal_year == year,
        )
        .group_by(entry_line.c.account, entry_line.c.unit)
        .having(_not_empty(amount, quantity))
        .order_by(entry_line.c.account, entry_line.c.unit)
    )


def build_contributions(
    row: Any, rows: Sequence[Any], *, year: int, currency: str, parties: dict[uuid.UUID, Party]
) -> ContributionsInKind:
    merged: dict[str, InKindAccount] = {}
    for line in rows:
        account = merged.get(line.account)
        if account is None:
            account = merged[line.account] = InKindAccount(
                account=line.account,
                label=account_label(line.account),
                cerfa_account=legacy_account(line.account),
                side="use" if line.account.startswith("86") else "source",
                amount=ZERO,
                quantities=[],
                valuation_methods=[],
                reference_dates=[],
                counterparts=[],
            )
        account.amount += line.amount
        if line.unit is not None and line.quantity:
            account.quantities.append(UnitQuantity(unit=line.unit, quantity=line.quantity))
        account.valuation_methods = sorted(
            {*account.valuation_methods, *(m for m in line.methods if m is not None)}
        )
        account.reference_dates = sorted(
            {*account.reference_dates, *(d for d in line.reference_dates if d is not None)}
        )
        known = {counterpart.id for counterpart in account.counterparts}
        for counterpart_id in line.counterparts:
            if counterpart_id is not None and counterpart_id not in known:
                party = parties.get(counterpart_id)
                account.counterparts.append(
                    CounterpartRef(id=counterpart_id, legal_name=party.name if party else None)
                )
                known.add(counterpart_id)
    accounts = list(merged.values())
    for account in accounts:
        account.counterparts.sort(key=lambda c: (c.legal_name or "~", str(c.id)))
    return ContributionsInKind(
        member=_member_ref(row),
        year=year,
        currency=currency,
        accounts=accounts,
        total_uses=sum((a.amount for a in accounts if a.side == "use"), ZERO),
        total_sources=sum((a.amount for a in accounts if a.side == "source"), ZERO),
    )


CONTRIBUTION_COLUMNS = (
    "account",
    "label",
    "cerfa_account",
    "side",
    "unit",
    "quantity",
    "amount",
    "valuation_methods",
    "reference_dates",
    "counterparts",
)


def contribution_rows(
    report: ContributionsInKind, rows: Sequence[Any]
) -> Iterator[tuple[Any, ...]]:
    """One row per account and unit (the amount valued in that unit)."""
    accounts = {account.account: account for account in report.accounts}
    for line in rows:
        account = accounts[line.account]
        yield (
            account.account,
            account.label,
            account.cerfa_account,
            account.side,
            line.unit,
            line.quantity,
            line.amount,
            account.valuation_methods,
            account.reference_dates,
            [c.legal_name or str(c.id) for c in account.counterparts],
        )


@router.get(
    "/members/{member_id}/contributions-in-kind",
    summary="A member's yearly table of contributions in kind (classes 86/87), as an annex to "
    "its accounts (the member, coordinator, auditors)",
    response_model=ContributionsInKind,
    responses=MEMBER_REPORT_RESPONSES,
)
async def contributions_in_kind(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request: Request,
    member_id: MemberId,
    year: Annotated[int, Query(ge=2000, le=2999, description="The fiscal (calendar) year.")],
    format_: Format = None,
) -> Response:
    async with runtime.session_factory() as session:
        row = await readable_member(session, principal, member_id)
        rows = (
            await session.execute(contributions_statement(principal.pole_id, member_id, year))
        ).all()
        parties = await _parties(session, principal.pole_id)
        currency = await _currency(session, principal.pole_id)
    report = build_contributions(row, rows, year=year, currency=currency, parties=parties)
    return answer(
        request,
        format_,
        report,
        table=lambda: (CONTRIBUTION_COLUMNS, contribution_rows(report, rows)),
        filename=f"contributions-in-kind-{member_id}-{year}.csv",
    )


# --- 4. Statement of account ------------------------------------------------------------------


class StatementLine(BaseModel):
    entry_date: date
    journal: str
    number: int
    label: str
    source: str
    account: str
    debit: Decimal
    credit: Decimal
    balance: Decimal = Field(description="Running balance with this counterpart.")


class CounterpartStatement(BaseModel):
    counterpart_id: uuid.UUID | None
    legal_name: str | None
    opening_balance: Decimal = Field(description="Before `from`.")
    lines: list[StatementLine]
    total_debit: Decimal
    total_credit: Decimal
    closing_balance: Decimal = Field(description="At the end of the period (`to` excluded).")


class Statement(BaseModel):
    member: MemberRef
    period: PeriodOut
    currency: str
    sign: str = (
        "Balances are debit minus credit of the 411 and 401 accounts: positive, the "
        "counterpart owes the member; negative, the member owes the counterpart."
    )
    counterparts: list[CounterpartStatement]
    receivable: Decimal = Field(description="The positive closing balances.")
    payable: Decimal = Field(description="The negative closing balances, as a positive sum.")
    net: Decimal


def statement_statements(
    pole_id: uuid.UUID, member_id: uuid.UUID, span: Period
) -> tuple[Select[Any], Select[Any]]:
    """The opening balance per counterpart, and the period's lines with running balances."""
    own = (entry.c.pole_id == pole_id, entry.c.book_id == member_id, _THIRD_PARTY)
    opening = (
        select(entry_line.c.counterpart_id, func.sum(_DEBIT_BALANCE).label("balance"))
        .select_from(_LINES)
        .where(*own, entry.c.entry_date < span.start)
        .group_by(entry_line.c.counterpart_id)
    )
    order = (entry.c.entry_date, entry.c.position, entry_line.c.line_no)
    running = func.sum(_DEBIT_BALANCE).over(
        partition_by=entry_line.c.counterpart_id, order_by=order
    )
    lines = (
        select(
            entry_line.c.counterpart_id,
            entry.c.entry_date,
            entry.c.journal,
            entry.c.number,
            entry.c.label,
            entry.c.source,
            entry_line.c.account,
            entry_line.c.debit,
            entry_line.c.credit,
            running.label("running"),
        )
        .select_from(_LINES)
        .where(*own, entry.c.entry_date >= span.start, entry.c.entry_date < span.end)
        .order_by(entry_line.c.counterpart_id, *order)
    )
    return opening, lines


def build_statement(
    row: Any,
    opening: Sequence[Any],
    lines: Sequence[Any],
    *,
    span: Period,
    currency: str,
    parties: dict[uuid.UUID, Party],
) -> Statement:
    openings: dict[uuid.UUID | None, Decimal] = {o.counterpart_id: o.balance for o in opening}
    grouped: dict[uuid.UUID | None, list[Any]] = defaultdict(list)
    for line in lines:
        grouped[line.counterpart_id].append(line)
    counterparts = []
    for counterpart_id in {*openings, *grouped}:
        start = openings.get(counterpart_id, ZERO)
        own_lines = [
            StatementLine(
                entry_date=line.entry_date,
                journal=line.journal,
                number=line.number,
                label=line.label,
                source=line.source,
                account=line.account,
                debit=line.debit,
                credit=line.credit,
                balance=start + line.running,
            )
            for line in grouped.get(counterpart_id, [])
        ]
        party = parties.get(counterpart_id) if counterpart_id else None
        counterparts.append(
            CounterpartStatement(
                counterpart_id=counterpart_id,
                legal_name=party.name if party else None,
                opening_balance=start,
                lines=own_lines,
                total_debit=sum((line.debit for line in own_lines), ZERO),
                total_credit=sum((line.credit for line in own_lines), ZERO),
                closing_balance=own_lines[-1].balance if own_lines else start,
            )
        )
    counterparts.sort(key=lambda c: (c.legal_name or "~", str(c.counterpart_id)))
    closings = [c.closing_balance for c in counterparts]
    return Statement(
        member=_member_ref(row),
        period=_period_out(span),
        currency=currency,
        counterparts=counterparts,
        receivable=sum((b for b in closings if b > 0), ZERO),
        payable=-sum((b for b in closings if b < 0), ZERO),
        net=sum(closings, ZERO),
    )


STATEMENT_COLUMNS = (
    "counterpart_id",
    "counterpart",
    "entry_date",
    "journal",
    "number",
    "account",
    "label",
    "debit",
    "credit",
    "balance",
)


def statement_rows(report: Statement) -> Iterator[tuple[Any, ...]]:
    """Per counterpart: its opening balance, its lines, its closing balance."""
    for c in report.counterparts:
        who = (c.counterpart_id, c.legal_name)
        yield (*who, report.period.from_, "", "", "", "opening balance", "", "", c.opening_balance)
        for line in c.lines:
            yield (
                *who,
                line.entry_date,
                line.journal,
                line.number,
                line.account,
                line.label,
                line.debit,
                line.credit,
                line.balance,
            )
        yield (
            *who,
            report.period.to,
            "",
            "",
            "",
            "closing balance",
            c.total_debit,
            c.total_credit,
            c.closing_balance,
        )


@router.get(
    "/members/{member_id}/statement",
    summary="A member's statement of account: its 411/401 lines per counterpart with running "
    "balances (the member, coordinator, auditors)",
    response_model=Statement,
    responses=MEMBER_REPORT_RESPONSES,
)
async def member_statement(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request: Request,
    member_id: MemberId,
    span: PeriodDep,
    format_: Format = None,
) -> Response:
    opening_query, lines_query = statement_statements(principal.pole_id, member_id, span)
    async with runtime.session_factory() as session:
        row = await readable_member(session, principal, member_id)
        opening = (await session.execute(opening_query)).all()
        lines = (await session.execute(lines_query)).all()
        parties = await _parties(session, principal.pole_id)
        currency = await _currency(session, principal.pole_id)
    report = build_statement(row, opening, lines, span=span, currency=currency, parties=parties)
    return answer(
        request,
        format_,
        report,
        table=lambda: (STATEMENT_COLUMNS, statement_rows(report)),
        filename=f"statement-{member_id}-{span.start}-{span.end}.csv",
    )


# --- 5. Settlement proposal -------------------------------------------------------------------


class MemberBalance(BaseModel):
    member_id: uuid.UUID
    legal_name: str | None
    balance: Decimal = Field(description="What the others owe it minus what it owes them.")


class ProposedPayment(BaseModel):
    from_: uuid.UUID = Field(serialization_alias="from", description="The member who pays.")
    from_name: str | None
    to: uuid.UUID = Field(description="The member who is paid.")
    to_name: str | None
    amount: Decimal


class SettlementProposal(BaseModel):
    period: PeriodOut
    currency: str
    balances: list[MemberBalance] = Field(description="Members with a non-zero balance.")
    payments: list[ProposedPayment]
    exact: bool = Field(
        description="True: no fewer payments can settle the balances; false: the greedy "
        "fallback beyond 16 members (largest debtor pays largest creditor)."
    )


def balances_statement(pole_id: uuid.UUID, span: Period) -> Select[Any]:
    """Each member's net balance with the other members: its 411/401 lines whose counterpart
    is a member (dues, owed to the pole, are settled with the pole, not between members)."""
    members = select(member.c.id).where(member.c.pole_id == pole_id).scalar_subquery()
    return (
        select(entry.c.book_id.label("member_id"), func.sum(_DEBIT_BALANCE).label("balance"))
        .select_from(_LINES)
        .where(
            *_in(pole_id, span),
            _THIRD_PARTY,
            entry.c.book_id.in_(members),
            entry_line.c.counterpart_id.in_(members),
        )
        .group_by(entry.c.book_id)
    )


def build_settlement(
    rows: Sequence[Any], *, span: Period, currency: str, parties: dict[uuid.UUID, Party]
) -> SettlementProposal:
    balances = {row.member_id: row.balance for row in rows if row.balance}
    try:
        plan = settle(balances)
    except ValueError as exc:
        raise Conflict(f"The members' balances cannot be settled: {exc}.") from exc

    def name(member_id: uuid.UUID) -> str | None:
        party = parties.get(member_id)
        return party.name if party else None

    return SettlementProposal(
        period=_period_out(span),
        currency=currency,
        balances=[
            MemberBalance(member_id=member_id, legal_name=name(member_id), balance=balance)
            for member_id, balance in sorted(
                balances.items(), key=lambda item: (name(item[0]) or "~", str(item[0]))
            )
        ],
        payments=[
            ProposedPayment(
                from_=payment.payer,
                from_name=name(payment.payer),
                to=payment.payee,
                to_name=name(payment.payee),
                amount=payment.amount,
            )
            for payment in plan.payments
        ],
        exact=plan.exact,
    )


SETTLEMENT_COLUMNS = ("section", "member_id", "member", "to_member_id", "to_member", "amount")


def settlement_rows(report: SettlementProposal) -> Iterator[tuple[Any, ...]]:
    for balance in report.balances:
        yield ("balance", balance.member_id, balance.legal_name, "", "", balance.balance)
    for payment in report.payments:
        yield (
            "payment",
            payment.from_,
            payment.from_name,
            payment.to,
            payment.to_name,
            payment.amount,
        )


@router.get(
    "/pole/settlement",
    summary="A net settlement proposal: each member's balance with the others and the fewest "
    "payments that settle them (coordinator, auditors)",
    response_model=SettlementProposal,
    responses={
        **POLE_REPORT_RESPONSES,
        409: {"description": "The balances do not settle (the ledger needs checking)"},
    },
)
async def pole_settlement(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request: Request,
    span: PeriodDep,
    format_: Format = None,
) -> Response:
    require_whole_pole(principal)
    async with runtime.session_factory() as session:
        rows = (await session.execute(balances_statement(principal.pole_id, span))).all()
        parties = await _parties(session, principal.pole_id)
        currency = await _currency(session, principal.pole_id)
    # Up to 2^16 subsets: off the event loop.
    report = await run_in_threadpool(
        build_settlement, rows, span=span, currency=currency, parties=parties
    )
    return answer(
        request,
        format_,
        report,
        table=lambda: (SETTLEMENT_COLUMNS, settlement_rows(report)),
        filename=f"settlement-{span.start}-{span.end}.csv",
    )
