"""Running a search on SQLite or PostgreSQL: newest first, a page at a time, within what the searcher may read and
within a time budget.

The SQL is built by SQLAlchemy with every value bound. The text part is one bound value too: an FTS5 query or a
tsquery written here from the query's terms, each term quoted as a literal (terms never hold a quote, and the
quoting does not depend on that), so nothing a user types is ever read as FTS syntax.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    cast,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.exc import OperationalError

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import PRIVATE_KINDS, ChatMessage
from chat.search.query import SearchQuery, TextMatch
from chat.search.scope import SearchScope
from chat.storage.repository import MESSAGES, ROLES, ROOMS, _message
from chat.storage.search_index import FTS, STATE, STATE_ID, VECTOR, quote_lexeme, unindexed_below

__all__ = ["DEFAULT_BUDGET", "PAGE_MAX", "SearchPage", "SearchScope", "search_messages"]

DEFAULT_BUDGET = 1.0  # seconds one page of results may take, by default
PAGE_MAX = 500
_PROGRESS_STEPS = 10_000  # SQLite VM steps between two looks at the clock (each look takes the GIL)


@dataclass(slots=True)
class SearchPage:
    messages: list[ChatMessage]  # newest first
    more: bool  # older matches exist: search again with before=messages[-1].id
    unindexed_below: int | None  # messages with ids below this are not indexed yet: text matches among them are
    # missing from the results (None: the index is complete)


def search_messages(
    engine: Engine, query: SearchQuery, scope: SearchScope, *, limit: int = 50, before: int | None = None,
    budget: float = DEFAULT_BUDGET,
) -> SearchPage:
    """The newest `limit` matches with ids below `before`. Raises ChatError(SEARCH_TIMEOUT) past `budget` seconds."""
    if not 1 <= limit <= PAGE_MAX:
        raise ValueError(f"limit must be 1-{PAGE_MAX}")
    with engine.connect() as conn, _time_budget(conn, budget):
        words_on_postgres = conn.dialect.name == "postgresql" and query.include
        if words_on_postgres:  # and the newest id, for the walk, in the same round trip
            pending, newest = conn.execute(select(STATE.c.backfill_below, select(func.max(MESSAGES.c.id))
                                                  .scalar_subquery()).where(STATE.c.id == STATE_ID)).one()
        else:
            pending, newest = unindexed_below(conn), None
        visible = _visible(conn, query, scope)
        if visible is None:
            return SearchPage([], False, pending)
        if words_on_postgres:
            top = before if before is not None else (newest or 0) + 1
            rows = _postgres_words(conn, query, _conditions("postgresql", query, visible), top, limit + 1)
        else:
            rows = list(conn.execute(_statement(conn.dialect.name, query, visible, before, pending)
                                     .limit(limit + 1)).all())
    more = len(rows) > limit
    return SearchPage([_message(row, row.room_name) for row in rows[:limit]], more, pending)


# ------------------------------------------------------------------------------------------------ the SQL

_COLUMNS: tuple[ColumnElement[Any], ...] = (
    MESSAGES.c.id, MESSAGES.c.kind, MESSAGES.c.sender, MESSAGES.c.recipient, MESSAGES.c.text, MESSAGES.c.created_at,
    ROOMS.c.name.label("room_name"),
)


_PRIVATE = sorted(k.value for k in PRIVATE_KINDS)  # the kinds of private messages (and notices)


def _visible(conn: Connection, query: SearchQuery, scope: SearchScope) -> ColumnElement[bool] | None:
    """The condition on messages the searcher may see and asked for (in:), or None when that is nothing."""
    m = MESSAGES
    shut = _shut_out(scope)
    if query.rooms:  # in: narrows to rooms, so no private messages
        keys = sorted({room.lower() for room in query.rooms})
        ids = set(conn.execute(select(ROOMS.c.id).where(ROOMS.c.name_key.in_(keys))).scalars())
        if scope.room_ids is not None:
            ids &= scope.room_ids
        return and_(_in_rooms(conn.dialect.name, ids, query), *shut) if ids else None
    if scope.room_ids is None and scope.all_private and not shut:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.room_ids is None:
        parts.append(m.c.room_id.is_not(None))
    elif scope.room_ids:
        parts.append(_in_rooms(conn.dialect.name, scope.room_ids, query))
    if scope.all_private:
        parts.append(m.c.kind.in_(_PRIVATE))
    elif scope.private_account is not None:
        account = scope.private_account
        parts.append(and_(m.c.kind.in_(_PRIVATE), m.c.conversation.is_not(None),
                          or_(m.c.sender_account_id == account, m.c.recipient_account_id == account)))
    return and_(or_(*parts), *shut) if parts else None


def _shut_out(scope: SearchScope) -> list[ColumnElement[bool]]:
    """Conditions leaving out the rooms the searcher may not read: closed ones (invite-only or keyed) but its
    own, secret ones but its own (anyone may join a secret room by name, but finding it is its members'), and
    those that ban its nick. Private messages (no room) are not concerned."""
    room_id = MESSAGES.c.room_id
    found: list[ColumnElement[bool]] = []
    if scope.closed_except is not None:
        closed = select(ROOMS.c.id).where(or_(ROOMS.c.invite_only, ROOMS.c.secret, ROOMS.c.join_key.is_not(None)))
        if scope.closed_except:
            closed = closed.where(ROOMS.c.id.not_in(sorted(scope.closed_except)))
        found.append(or_(room_id.is_(None), room_id.not_in(closed)))
    if scope.banned_key:
        bans = select(ROLES.c.room_id).where(and_(ROLES.c.role == "ban", ROLES.c.nick_key == scope.banned_key))
        found.append(or_(room_id.is_(None), room_id.not_in(bans)))
    if scope.shut:
        found.append(or_(room_id.is_(None), room_id.not_in(sorted(scope.shut))))
    return found


def _in_rooms(dialect: str, ids: set[int] | frozenset[int], query: SearchQuery) -> ColumnElement[bool]:
    room_id = MESSAGES.c.room_id
    if len(ids) > 1 or (dialect == "postgresql" and query.include):
        # `room_id + 0` keeps the planners off the (room_id, id) index here: with several rooms they would read
        # every message of them and sort (PostgreSQL took 2.5 s for from:nick alone on a million); walking the
        # messages newest first stops at the first page of matches. One room's index gives that order itself,
        # but not beside words on PostgreSQL: there the planner ANDed the room's 50,000 ids with a rare word's
        # 35 GIN matches (20 ms) where the 35 alone, checked for their room, take a millisecond.
        return (room_id + literal_column("0")).in_(sorted(ids))
    return room_id.in_(sorted(ids))


def _conditions(dialect: str, query: SearchQuery, visible: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    """What the searcher may see and the filters asked for, besides the words."""
    m = MESSAGES
    conditions: list[ColumnElement[bool]] = [visible]
    if query.senders:
        conditions.append(func.lower(m.c.sender).in_(query.senders))
    if query.after is not None:
        conditions.append(m.c.created_at >= _db_time(dialect, query.after))
    if query.before is not None:
        conditions.append(m.c.created_at < _db_time(dialect, query.before))
    return conditions


def _statement(dialect: str, query: SearchQuery, visible: ColumnElement[bool], before: int | None,
               pending: int | None) -> Select[Any]:
    conditions = _conditions(dialect, query, visible)
    if dialect == "sqlite":
        return _sqlite_statement(query, conditions, before, pending)
    return _postgres_plain(query, conditions, before, pending)


def _sqlite_statement(query: SearchQuery, conditions: list[ColumnElement[bool]], before: int | None,
                      pending: int | None) -> Select[Any]:
    m = MESSAGES
    stmt: Select[Any]
    if query.include:
        # the FTS table drives: it walks the matches newest first (ORDER BY its rowid) and stops at the page
        text = FTS.c.terms.match(fts5_query(query.include, query.exclude))
        joined = FTS.join(m, m.c.id == FTS.c.rowid).outerjoin(ROOMS, ROOMS.c.id == m.c.room_id)
        stmt = select(*_COLUMNS).select_from(joined).where(text, *conditions).order_by(FTS.c.rowid.desc())
        if before is not None:
            stmt = stmt.where(FTS.c.rowid < before)
        return stmt
    stmt = _plain(conditions, before)
    if query.exclude:
        excluded = select(FTS.c.rowid).where(FTS.c.terms.match(fts5_any(query.exclude)))
        stmt = stmt.where(m.c.id.not_in(excluded), *_indexed(pending))
    return stmt


# PostgreSQL, with words. GIN returns a word's matches unordered, so the newest page costs either all of them
# (read, rechecked, sorted: about 3 µs each) or a walk down the primary key, newest first, checking each row's
# vector (about 1 µs a row) until the page is full. The planner chooses well for words, badly for phrases (CJK
# `会議`: 33 matches expected, 6,019 read) and nothing can make it stop a GIN scan early, so:
# 1. walk the newest WALK_WINDOW messages below the page's start down the primary key, the vector tested in a
#    form no index serves. A word in one message of 50 fills a page of 20 there, in a fraction of a millisecond.
# 2. if that found some but not enough, it is a sample of the word's frequency: when walking on for the rest is
#    expected to cost less than reading every older match would (and at most WALK_MAX rows), walk on, through
#    twice the rows expected.
# 3. what is still missing comes from the older messages with the planner's choice: for a word this rare, the
#    GIN index, whose cost is in proportion to its matches, few by then.
# Measured against the planner alone and the old join (docs/PERFORMANCE.md, "Search", PostgreSQL).
WALK_WINDOW = 1000  # rows walked first (0: none, the planner alone: for measuring against)
WALK_MAX = 40_000  # rows a second walk may take
MATCH_COST = 3  # reading one GIN match costs as much as walking this many rows


def _postgres_words(conn: Connection, query: SearchQuery, conditions: list[ColumnElement[bool]], top: int,
                    limit: int) -> list[Any]:
    """The newest `limit` matches with ids below `top`."""
    m = MESSAGES
    matches = VECTOR.bool_op("@@")(cast(tsquery(query.include, query.exclude), TSQUERY))
    stmt = (select(*_COLUMNS).select_from(m.outerjoin(ROOMS, ROOMS.c.id == m.c.room_id))
            .where(*conditions).order_by(m.c.id.desc()))
    if not WALK_WINDOW:  # the planner alone (for measuring against)
        return list(conn.execute(stmt.where(matches, m.c.id < top).limit(limit)).all())
    # `(… @@ …) IS TRUE` is the same test (a NULL vector matches nothing either way) in a form no index can
    # serve, so a walk is a walk down the primary key, whatever the planner thinks of the word
    walked = stmt.where(matches.is_(true()))
    low = top - WALK_WINDOW
    rows = list(conn.execute(walked.where(m.c.id < top, m.c.id >= low).limit(limit)).all())
    if 0 < len(rows) < limit and low > 0:
        rows_needed = (limit - len(rows)) * WALK_WINDOW / len(rows)
        matches_below = len(rows) * low / WALK_WINDOW
        if rows_needed <= min(WALK_MAX, MATCH_COST * matches_below):
            high, low = low, low - min(WALK_MAX, int(2 * rows_needed) + 1)
            rows += conn.execute(walked.where(m.c.id < high, m.c.id >= low).limit(limit - len(rows))).all()
    if len(rows) < limit and low > 0:
        rows += conn.execute(stmt.where(matches, m.c.id < low).limit(limit - len(rows))).all()
    return rows


def _postgres_plain(query: SearchQuery, conditions: list[ColumnElement[bool]], before: int | None,
                    pending: int | None) -> Select[Any]:
    """Filters and perhaps -words, no words: the messages newest first."""
    stmt = _plain(conditions, before)
    if query.exclude:
        excluded = VECTOR.bool_op("@@")(cast(tsquery_any(query.exclude), TSQUERY))
        stmt = stmt.where(or_(VECTOR.is_(None), ~excluded), *_indexed(pending))
    return stmt


def _plain(conditions: list[ColumnElement[bool]], before: int | None) -> Select[Any]:
    """Filters only: the messages table alone, newest first."""
    m = MESSAGES
    stmt = (select(*_COLUMNS).select_from(m.outerjoin(ROOMS, ROOMS.c.id == m.c.room_id))
            .where(*conditions).order_by(m.c.id.desc()))
    if before is not None:
        stmt = stmt.where(m.c.id < before)
    return stmt


def _indexed(pending: int | None) -> list[ColumnElement[bool]]:
    """Only messages the index holds can be told apart by their words."""
    return [] if pending is None else [MESSAGES.c.id >= pending]


def _db_time(dialect: str, moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)  # SQLite keeps naive UTC text and compares it as text
    return utc.replace(tzinfo=None) if dialect == "sqlite" else utc


# ------------------------------------------------------------------------------------------------ FTS syntax


def fts5_query(include: tuple[TextMatch, ...], exclude: tuple[TextMatch, ...] = ()) -> str:
    """An FTS5 query: every included match, none of the excluded ones. Each term is an FTS5 string ("...")."""
    query = " AND ".join(f"({_fts5_phrase(m)})" for m in include)
    return query + "".join(f" NOT ({_fts5_phrase(m)})" for m in exclude)


def fts5_any(matches: tuple[TextMatch, ...]) -> str:
    return " OR ".join(f"({_fts5_phrase(m)})" for m in matches)


def _fts5_phrase(match: TextMatch) -> str:
    phrase = " + ".join('"' + term.replace('"', '""') + '"' for term in match.terms)
    return phrase + " *" if match.prefix else phrase


def tsquery(include: tuple[TextMatch, ...], exclude: tuple[TextMatch, ...] = ()) -> str:
    """The same as a PostgreSQL tsquery: `<->` for adjacent terms, `:*` for a prefix, `!` for excluded."""
    return " & ".join([*(f"({_tsquery_phrase(m)})" for m in include),
                       *(f"!({_tsquery_phrase(m)})" for m in exclude)])


def tsquery_any(matches: tuple[TextMatch, ...]) -> str:
    return " | ".join(f"({_tsquery_phrase(m)})" for m in matches)


def _tsquery_phrase(match: TextMatch) -> str:
    lexemes = [f"'{quote_lexeme(term)}'" for term in match.terms]
    if match.prefix:
        lexemes[-1] += ":*"
    return " <-> ".join(lexemes)


# ------------------------------------------------------------------------------------------------ the budget


@contextmanager
def _time_budget(conn: Connection, seconds: float) -> Iterator[None]:
    """Stop the queries run inside past `seconds`: ChatError(SEARCH_TIMEOUT). SQLite: a progress handler that
    interrupts the statement; PostgreSQL: statement_timeout, for this transaction only."""
    try:
        if conn.dialect.name == "sqlite":
            raw: Any = conn.connection.driver_connection
            deadline = time.monotonic() + seconds
            raw.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
            try:
                yield
            finally:
                raw.set_progress_handler(None, 0)
        else:
            with conn.begin():
                conn.execute(select(func.set_config("statement_timeout", str(max(1, int(seconds * 1000))), True)))
                yield
    except OperationalError as e:
        if _timed_out(e):
            raise ChatError(ErrorCode.SEARCH_TIMEOUT, f"The search took longer than its {seconds:g} s: narrow it "
                            "(more words, a phrase, in:#room, from:nick, after:DATE).") from None
        raise


def _timed_out(e: OperationalError) -> bool:
    cause = e.orig
    return "interrupted" in str(cause) or getattr(cause, "sqlstate", None) == "57014"  # query_canceled

