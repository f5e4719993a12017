"""Hot statements run on the asyncpg connection itself, outside SQLAlchemy's execution.

A statement on an SQLAlchemy ``AsyncConnection`` costs about 110 µs of Python on this
machine (execution context, parameter and result processing, the greenlet hop), asyncpg's
own ``fetch`` about 40 µs (``bench/README.md``). A request's hot path runs two or three
statements, so for the few statements that run on every booking and every move, declared
with :func:`hot`, a :class:`DriverConnection` runs the statement as SQLAlchemy compiled it,
with SQLAlchemy's own bind and result processors (JSON, ranges, arrays: the values are the
same either way), on the pooled connection's asyncpg connection. An error is handed back to
SQLAlchemy, which translates it (``IntegrityError``…) and, on a lost connection, invalidates
the pool exactly as if it had run the statement. Any other statement runs through
SQLAlchemy as usual.

Only on a connection in autocommit mode: SQLAlchemy begins a transaction lazily, at its own
first statement, and a statement run beside it would run outside that transaction.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import greenlet_spawn

S = TypeVar("S", bound=ClauseElement)
T = TypeVar("T")

_HOT: dict[int, ClauseElement] = {}
"""The statements declared hot, by identity (held here, so that an identity is never reused)."""


def hot(statement: S) -> S:
    """Declare ``statement`` (built once, with bind parameters only) to run on the driver
    where a :class:`DriverConnection` runs it; the statement itself, unchanged."""
    _HOT[id(statement)] = statement
    return statement


@dataclass(frozen=True, slots=True)
class _Compiled:
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]
    binds: tuple[Any, ...]  # a bind processor or None, for each parameter
    row: Any  # a namedtuple class, fields named as the result's keys
    results: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    async def of(cls, statement: ClauseElement, dialect: Dialect, driver: Any) -> _Compiled:
        """``statement`` compiled for ``dialect``; ``driver`` (an asyncpg connection) says the
        types of its result columns, which some result processors depend on (numerics)."""
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        assert compiled.positiontup is not None
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("a hot statement takes no expanding (IN) parameters")
        names = tuple(compiled.positiontup)
        processors = compiled._bind_processors
        columns = compiled._result_columns
        described = (await driver.prepare(compiled.string)).get_attributes() if columns else ()
        return cls(
            compiled,
            compiled.string,
            names,
            tuple(processors.get(name) for name in names),
            namedtuple("Row", [column.keyname for column in columns]),
            tuple(
                column.type._cached_result_processor(dialect, attribute.type.oid)
                for column, attribute in zip(columns, described, strict=True)
            ),
        )

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(dict(parameters), _check=True)
        return [
            value if process is None or value is None else process(value)
            for process, value in zip(
                self.binds, (values[name] for name in self.names), strict=True
            )
        ]

    def rows(self, records: Sequence[Any]) -> list[Any]:
        make = self.row._make
        if not any(self.results):
            return [make(record) for record in records]
        return [
            make(
                value if process is None or value is None else process(value)
                for process, value in zip(self.results, record, strict=True)
            )
            for record in records
        ]


class DriverResult:
    """The rows of a statement run on the driver, read as a SQLAlchemy ``Result`` is."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise NoResultFound("No row") if not self._rows else MultipleResultsFound("Rows")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)


class DriverConnection:
    """An ``AsyncConnection`` in autocommit mode whose hot statements run on its asyncpg
    connection (its other statements through SQLAlchemy)."""

    def __init__(self, connection: AsyncConnection) -> None:
        sync = connection.sync_connection
        options = sync.get_execution_options() if sync is not None else {}
        if options.get("isolation_level") != "AUTOCOMMIT":
            raise ValueError("hot statements run on a started connection in autocommit mode")
        self.connection = connection
        self._compiled = _COMPILED.setdefault(connection.dialect, {})
        self._raw: Any = None

    async def execute(
        self, statement: ClauseElement, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        """``statement``'s result: as a :class:`DriverResult` if it is hot, else SQLAlchemy's."""
        if _HOT.get(id(statement)) is not statement:
            return await self.connection.execute(statement, parameters)  # type: ignore[call-overload]
        if self._raw is None:
            self._raw = await self.connection.get_raw_connection()
        raw = self._raw
        compiled = self._compiled.get(id(statement))
        if compiled is None:  # once per statement and engine: a round trip to prepare it
            preparing = _Compiled.of(statement, self.connection.dialect, raw.driver_connection)
            compiled = await self._translating(raw, str(statement), [], preparing)
            self._compiled[id(statement)] = compiled
        arguments = compiled.arguments(parameters or {})  # a missing one: SQLAlchemy's error
        fetching = raw.driver_connection.fetch(compiled.sql, *arguments)
        records = await self._translating(raw, compiled.sql, arguments, fetching)
        return DriverResult(compiled.rows(records))

    async def _translating(self, raw: Any, sql: str, arguments: list[Any], work: Awaitable[T]) -> T:
        """``work``'s result; its error as SQLAlchemy would have raised it, which on a lost
        connection also invalidates the pool."""
        try:
            return await work
        except Exception as error:
            self._raw = None
            await greenlet_spawn(
                self._raise_translated, error, raw.dbapi_connection, sql, arguments
            )
            raise  # not reached: _raise_translated raises

    def _raise_translated(
        self, error: Exception, adapted: Any, sql: str, arguments: list[Any]
    ) -> None:
        sync = self.connection.sync_connection
        assert sync is not None
        try:
            adapted._handle_exception(error)  # raises asyncpg's error as the DBAPI's
        except Exception as dbapi_error:
            sync._handle_dbapi_exception(dbapi_error, sql, tuple(arguments), None, None)


_COMPILED: weakref.WeakKeyDictionary[Dialect, dict[int, _Compiled]] = weakref.WeakKeyDictionary()
"""The hot statements compiled for each engine's dialect, by the statement's identity."""
