"""The search language, parsed into a frozen model: pure, no I/O, total (any string in: a model or a ChatError out).

    deploy failed                 messages with both words (a word of 3+ characters also matches longer
                                  words it begins: `deploy` finds `deployed`)
    "exact phrase"                these words, adjacent, in this order, as whole words
    -word  -"some phrase"         without it
    in:#room  (or in:room)        only in this room; several in: mean any of them
    from:nick                     only sent by this nick (any case); several from: mean any of them
    after:DATE  before:DATE       sent at or after / before this moment: 2026-11-24 (its midnight UTC),
                                  2026-11-24T07:30, 2026-11-24T07:30:15+02:00 (UTC unless it says)

Words are matched as `chat.search.terms` defines them (case, accents, CJK, emoji). Nothing a user types is
query syntax for the database: quotes, `*`, `NEAR`, `AND`, `OR`, `^`, `:` and parentheses are characters like
any other (punctuation separates words; `AND` is the word "and"). A `key:value` whose key is not one of the four
filters is text (`re:meeting`, `http://x`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.names import check_nick, check_room, name_key
from chat.protocol.text import sanitize
from chat.search.terms import PREFIX_MIN, terms

QUERY_MAX = 500  # characters in a query
MATCHES_MAX = 16  # words and phrases, included and excluded together
TERMS_MAX = 64  # terms in all of them
FILTER_VALUES_MAX = 16  # in: rooms, and from: nicks, each
FILTERS = ("in", "from", "after", "before")


@dataclass(frozen=True, slots=True)
class TextMatch:
    """One word or phrase, as index terms: they must appear adjacent and in this order."""

    terms: tuple[str, ...]
    prefix: bool = False  # the last term also matches longer words that begin with it

    def text(self) -> str:
        """How to write this match in the query language (parsing it gives this match back)."""
        if self.prefix == _prefix_rule(self.terms):
            return ".".join(self.terms)  # a plain word: the dots separate its terms and keep them adjacent
        return '"' + " ".join(self.terms) + '"'


@dataclass(frozen=True, slots=True)
class SearchQuery:
    include: tuple[TextMatch, ...] = ()
    exclude: tuple[TextMatch, ...] = ()
    rooms: tuple[str, ...] = ()  # in: room names, without `#`, as typed
    senders: tuple[str, ...] = ()  # from: nick keys (lower case)
    after: datetime | None = None  # inclusive, UTC
    before: datetime | None = None  # exclusive, UTC

    @property
    def has_text(self) -> bool:
        return bool(self.include or self.exclude)

    def text(self) -> str:
        """The query in canonical form: parse(q.text()) == q. Servers may echo it to say what was searched."""
        parts = [m.text() for m in self.include]
        parts += ["-" + m.text() for m in self.exclude]
        parts += [f"in:#{room}" for room in self.rooms]
        parts += [f"from:{nick}" for nick in self.senders]
        if self.after is not None:
            parts.append("after:" + _iso(self.after))
        if self.before is not None:
            parts.append("before:" + _iso(self.before))
        return " ".join(parts)


def parse_search(query: str) -> SearchQuery:
    """Parse a search; raise ChatError(BAD_SEARCH) with a sentence saying what is wrong."""
    query = sanitize(query)  # as stored texts are: a NUL typed in a query is the ␀ stored in place of one
    if len(query) > QUERY_MAX:
        raise _bad(f"A search is at most {QUERY_MAX} characters (this one has {len(query)})")
    include: list[TextMatch] = []
    exclude: list[TextMatch] = []
    rooms: list[str] = []
    senders: list[str] = []
    after: datetime | None = None
    before: datetime | None = None
    for negated, chunk, quoted in _chunks(query):
        key, colon, value = chunk.partition(":")
        if not quoted and colon and key.lower() in FILTERS:
            key = key.lower()
            if negated:
                raise _bad(f"-{key}: is not supported: a filter narrows a search, it cannot be excluded")
            if not value:
                raise _bad(f"{key}: needs a value, like {_EXAMPLES[key]}")
            if key == "in":
                room = _room(value)
                if room.lower() not in (r.lower() for r in rooms):
                    rooms.append(room)
            elif key == "from":
                nick = _nick(value)
                if nick not in senders:
                    senders.append(nick)
            elif key == "after":
                moment = _moment(key, value)
                after = moment if after is None else max(after, moment)
            else:
                moment = _moment(key, value)
                before = moment if before is None else min(before, moment)
            continue
        found = tuple(terms(chunk))
        if not found:
            continue  # punctuation only: nothing to look for
        match = TextMatch(found, prefix=not quoted and _prefix_rule(found))
        target = exclude if negated else include
        if match not in target:
            target.append(match)
    if len(include) + len(exclude) > MATCHES_MAX:
        raise _bad(f"A search takes at most {MATCHES_MAX} words and phrases")
    if sum(len(m.terms) for m in (*include, *exclude)) > TERMS_MAX:
        raise _bad(f"A search takes at most {TERMS_MAX} words in all (CJK characters count one each)")
    if len(rooms) > FILTER_VALUES_MAX or len(senders) > FILTER_VALUES_MAX:
        raise _bad(f"A search takes at most {FILTER_VALUES_MAX} in: rooms and {FILTER_VALUES_MAX} from: nicks")
    if after is not None and before is not None and after >= before:
        raise _bad(f"after:{_iso(after)} is not earlier than before:{_iso(before)}: nothing can match")
    if not (include or rooms or senders or after or before):
        if exclude:
            raise _bad("Say what to look for besides -words: a word, a phrase, in:, from:, after: or before:")
        raise _bad("Nothing to search for: give words (letters or digits), a \"phrase\" or a filter "
                    "(in:#room, from:nick, after:DATE, before:DATE)")
    return SearchQuery(tuple(include), tuple(exclude), tuple(rooms), tuple(senders), after, before)


_EXAMPLES = {"in": "in:#dev", "from": "from:alice", "after": "after:2026-11-24", "before": "before:2026-11-24T12:00"}


def _prefix_rule(found: tuple[str, ...]) -> bool:
    """A plain word's last term matches longer words when it has PREFIX_MIN characters or more: `dep` finds
    `deploy`, but `a` does not find every word that starts with an a."""
    return len(found[-1]) >= PREFIX_MIN


def _chunks(query: str) -> list[tuple[bool, str, bool]]:
    """(excluded, text, quoted) for each part: whitespace separates parts; a part starting with `"` (or `-"`)
    runs to the next `"`; a `"` anywhere else is an ordinary character."""
    out: list[tuple[bool, str, bool]] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        negated = query[i] == "-" and i + 1 < n and not query[i + 1].isspace()
        start = i + 1 if negated else i
        if query[start] == '"':
            end = query.find('"', start + 1)
            if end < 0:
                shown = query[start:start + 30] + ("..." if n - start > 30 else "")
                raise _bad(f"The phrase {shown} has no closing quote")
            out.append((negated, query[start + 1:end], True))
            i = end + 1
            continue
        end = start
        while end < n and not query[end].isspace():
            end += 1
        out.append((negated, query[start:end], False))
        i = end
    return out


def _room(value: str) -> str:
    try:
        return check_room(value)
    except ChatError as e:
        raise _bad(f"in:{_short(value)}: {e.message}") from None


def _nick(value: str) -> str:
    try:
        return name_key(check_nick(value))
    except ChatError as e:
        raise _bad(f"from:{_short(value)}: {e.message}") from None


def _moment(key: str, value: str) -> datetime:
    """A date (its midnight, UTC) or an ISO date and time (UTC unless it gives an offset)."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        moment.timestamp()  # the year 1 minus an offset, or the year 9999 plus one, is out of range
    except (ValueError, OverflowError, OSError):
        raise _bad(f"{key}:{_short(value)} is not a date or time (like 2026-11-24, 2026-11-24T07:30 "
                   "or 2026-11-24T07:30:00+02:00)") from None
    return moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:40] + "..."


def _bad(message: str) -> ChatError:
    return ChatError(ErrorCode.BAD_SEARCH, message if message.endswith(".") else message + ".")
