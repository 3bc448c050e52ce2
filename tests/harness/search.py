"""Search as a test reads it: every match of a query, page after page, straight from the database."""

from __future__ import annotations

from sqlalchemy import Engine

from chat.search.query import parse_search
from chat.storage.search import SearchScope, search_messages


def every_match(engine: Engine, query: str) -> list[int]:
    """The ids of every message `query` finds with no scope's limits, newest first, across all its pages."""
    ids: list[int] = []
    before = None
    while True:
        page = search_messages(engine, parse_search(query), SearchScope.everything(), limit=500, before=before)
        ids += [m.id for m in page.messages]
        if not page.more:
            return ids
        before = page.messages[-1].id
