"""Search in the store, on SQLite and PostgreSQL: what is found (accents, case, CJK, emoji, phrases, filters), paging,
rights, hostile queries, the time budget, and a message found the moment it is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import ChatMessage, MessageKind
from chat.protocol.text import sanitize
from chat.search.query import parse_search
from chat.storage.database import make_engine, upgrade
from chat.storage.records import PrivateRecord
from chat.storage.repository import ChatStore, StoredRoom, WriteBatch
from chat.storage.search import WALK_WINDOW, SearchPage, SearchScope, search_messages
from harness import LineClient, ServerThread

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
LOBBY, DEV, SECRET = 1, 2, 3
EVERYTHING = SearchScope.everything()
PUBLIC = SearchScope(room_ids=frozenset({LOBBY, DEV}))


class Corpus:
    """A store with rooms lobby, dev and secret, and a helper to add messages and to search."""

    def __init__(self, db: str) -> None:
        self.engine = make_engine(db)
        upgrade(self.engine)
        self.store = ChatStore(self.engine)
        self.store.write(WriteBatch(rooms=[StoredRoom(LOBBY, "lobby", None, None, None, T0),
                                           StoredRoom(DEV, "Dev", None, None, None, T0),
                                           StoredRoom(SECRET, "secret", None, None, None, T0)]))
        self.next_id = 1
        self.names = {LOBBY: "lobby", DEV: "Dev", SECRET: "secret"}

    def say(self, text: str, room: int | None = LOBBY, nick: str = "alice", to: str | None = None,
            at: float | None = None, accounts: tuple[int | None, int | None] = (None, None)) -> int:
        """A message; a private one (room None) between the accounts `accounts` (sender, recipient) if given."""
        i = self.next_id
        self.next_id += 1
        kind = MessageKind.PRIVATE if room is None else MessageKind.MESSAGE
        message = ChatMessage(i, kind, nick, sanitize(text), at if at is not None else T0 + i,
                              room=self.names.get(room or 0), to=to)
        private = [PrivateRecord(i, *accounts)] if room is None else []
        self.store.write(WriteBatch(messages=[(message, room)], private=private))
        return i

    def page(self, query: str, scope: SearchScope = EVERYTHING, **kw: object) -> SearchPage:
        return search_messages(self.engine, parse_search(query), scope, **kw)  # type: ignore[arg-type]

    def ids(self, query: str, scope: SearchScope = EVERYTHING) -> list[int]:
        return [m.id for m in self.page(query, scope, limit=500).messages]


@pytest.fixture
def corpus(any_db: str) -> Iterator[Corpus]:
    c = Corpus(any_db)
    yield c
    c.engine.dispose()


def test_case_and_accents_do_not_matter(corpus: Corpus) -> None:
    cafe = corpus.say("Un Café crème, s'il vous plaît")
    plain = corpus.say("CAFE CREME")
    german = corpus.say("Die Straße ist naß")
    polish = corpus.say("Łódź is in Poland")
    assert corpus.ids("cafe") == [plain, cafe]
    assert corpus.ids("CAFÉ crème") == [plain, cafe]
    assert corpus.ids("plait") == [cafe]
    assert corpus.ids("strasse") == corpus.ids("STRASSE") == [german]
    assert corpus.ids("lodz") == corpus.ids("ŁÓDŹ") == [polish]


def test_cjk_is_found_inside_longer_runs(corpus: Corpus) -> None:
    tokyo = corpus.say("東京タワーに行きました")
    kyoto = corpus.say("京都に行きます")
    seoul = corpus.say("서울에서 만나요")
    thai = corpus.say("สวัสดีครับ")
    assert corpus.ids("東京") == [tokyo]
    assert corpus.ids("タワー") == [tokyo]
    assert corpus.ids("京") == [kyoto, tokyo]
    assert corpus.ids("行き") == [kyoto, tokyo]
    assert corpus.ids("京東") == []  # the characters must be adjacent, in order
    assert corpus.ids("서울") == [seoul]
    assert corpus.ids("สวัสดี") == [thai]


def test_emoji(corpus: Corpus) -> None:
    party = corpus.say("shipped 🎉🎉")
    coder = corpus.say("the 👩‍💻 is in")
    thumbs = corpus.say("👍🏽")
    heart = corpus.say("❤️ it")
    assert corpus.ids("🎉") == [party]
    assert corpus.ids("👩‍💻") == [coder]
    assert corpus.ids("💻") == [coder]
    assert corpus.ids("👍") == [thumbs]
    assert corpus.ids("❤") == corpus.ids("❤️") == [heart]


def test_phrases_words_and_prefixes(corpus: Corpus) -> None:
    exact = corpus.say("the deploy failed again")
    reversed_ = corpus.say("failed to deploy")
    longer = corpus.say("Deployment ok; deployed twice")
    short = corpus.say("de facto")
    assert corpus.ids('"deploy failed"') == [exact]
    assert corpus.ids("deploy failed") == [reversed_, exact]
    assert corpus.ids("deploy") == [longer, reversed_, exact]  # three letters or more: words it begins
    assert corpus.ids('"deploy"') == [reversed_, exact]  # quoted: the whole word
    assert corpus.ids("de") == [short]  # two letters: the whole word only
    assert corpus.ids('"failed again"') == [exact]
    assert corpus.ids('"again failed"') == []
    assert corpus.ids("example.com") == []
    dotted = corpus.say("see example.com/page")
    assert corpus.ids("example.com") == [dotted]
    assert corpus.ids('"example com"') == [dotted]


def test_each_filter(corpus: Corpus) -> None:
    a = corpus.say("standup notes", LOBBY, "alice", at=T0)
    b = corpus.say("standup moved", DEV, "Bob", at=T0 + 86400)
    c = corpus.say("standup cancelled", DEV, "alice", at=T0 + 2 * 86400)
    d = corpus.say("standup is private", None, "alice", to="bob", at=T0 + 3 * 86400)
    assert corpus.ids("standup") == [d, c, b, a]
    assert corpus.ids("standup in:#dev") == corpus.ids("standup in:DEV") == [c, b]
    assert corpus.ids("standup in:dev in:lobby") == [c, b, a]  # in: means rooms: no private messages
    assert corpus.ids("standup in:nowhere") == []
    assert corpus.ids("standup from:bob") == [b]
    assert corpus.ids("standup from:ALICE") == [d, c, a]
    assert corpus.ids("standup from:alice from:bob in:dev") == [c, b]
    assert corpus.ids("standup after:2026-09-22") == [d, c, b]  # T0 is 2026-09-21T14:13:20Z
    assert corpus.ids("standup before:2026-09-22T14:13:20Z") == [a]
    assert corpus.ids("standup after:2026-09-22T14:13:20Z before:2026-09-23T14:13:21Z") == [c, b]
    assert corpus.ids("standup after:2026-09-22T16:13:20+02:00") == [d, c, b]
    assert corpus.ids("standup -moved -cancelled") == [d, a]
    assert corpus.ids('standup -"is private"') == [c, b, a]
    assert corpus.ids("from:bob") == [b]  # filters alone
    assert corpus.ids("in:dev -cancelled") == [b]
    assert corpus.ids("after:2026-09-23") == [d, c]


def test_rights(corpus: Corpus) -> None:
    """Only what the scope allows, whatever the query names."""
    public = corpus.say("password is hunter2", LOBBY)
    hidden = corpus.say("password is swordfish", SECRET)
    alice, bob, carol, dave = 11, 12, 13, 14  # account ids
    mine = corpus.say("password for bob", None, "alice", to="bob", accounts=(alice, bob))
    theirs = corpus.say("password for carol", None, "dave", to="carol", accounts=(dave, carol))
    guests = corpus.say("password for a guest", None, "bob", to="erin", accounts=(bob, None))  # no conversation
    assert corpus.ids("password", PUBLIC) == [public]
    assert corpus.ids("password in:#secret", PUBLIC) == []
    assert corpus.ids("in:secret", PUBLIC) == []
    assert corpus.ids("swordfish", PUBLIC) == []
    assert corpus.ids("password", SearchScope()) == []
    assert corpus.ids("from:dave", PUBLIC) == []
    bobs = SearchScope(room_ids=frozenset({LOBBY}), private_account=bob)
    assert corpus.ids("password", bobs) == [mine, public]
    assert corpus.ids("password from:dave", bobs) == []
    assert corpus.ids("password in:#lobby", bobs) == [public]  # in: narrows to rooms
    assert corpus.ids("password", SearchScope(private_account=alice)) == [mine]  # both sides find it
    assert corpus.ids("from:alice", SearchScope(private_account=bob)) == [mine]
    assert corpus.ids("password", SearchScope(private_account=carol)) == [theirs]
    assert corpus.ids("password", SearchScope(private_account=99)) == []
    assert corpus.ids("password", EVERYTHING) == [guests, theirs, mine, hidden, public]


def test_paging_newest_first_without_repeats(corpus: Corpus) -> None:
    said = [corpus.say(f"round {i} of the match", room) for i in range(60) for room in (LOBBY, DEV)]
    corpus.say("no such word here")
    seen: list[int] = []
    before = None
    while True:
        page = corpus.page("match", PUBLIC, limit=25, before=before)
        seen += [m.id for m in page.messages]
        if not page.more:
            break
        before = page.messages[-1].id
    assert seen == sorted(said, reverse=True)
    page = corpus.page("match", PUBLIC, limit=10, before=said[5])
    assert [m.id for m in page.messages] == [5, 4, 3, 2, 1] and not page.more


def test_pages_span_the_newest_messages_and_the_older_ones_alike(corpus: Corpus) -> None:
    """PostgreSQL reads a page in two parts, the newest WALK_WINDOW ids walked, then the older ones from the GIN
    index (chat.storage.search): ids far apart put matches in both, and a page across the boundary has each once."""
    old = [corpus.say(f"gap word {i}", room) for i in range(12) for room in (LOBBY, SECRET)]
    corpus.next_id = WALK_WINDOW * 3  # ids may skip: a batch that failed to commit leaves a gap
    new = [corpus.say(f"gap word new {i}") for i in range(5)]
    corpus.say("gap, but not the other")
    for scope, expected in ((EVERYTHING, [*old, *new]), (PUBLIC, [*old[::2], *new])):
        seen: list[int] = []
        before = None
        while True:
            page = corpus.page('word "gap word"', scope, limit=4, before=before)
            seen += [m.id for m in page.messages]
            if not page.more:
                break
            before = page.messages[-1].id
        assert seen == sorted(expected, reverse=True)
    assert corpus.ids("new", PUBLIC) == new[::-1]
    assert [m.id for m in corpus.page("word", PUBLIC, limit=8).messages] == [*new[::-1], *old[::2][:-4:-1]]


def test_pages_of_a_word_that_a_first_walk_only_half_fills(corpus: Corpus) -> None:
    """A word in one message of WALK_WINDOW / 10, high ids: PostgreSQL's first walk finds 10 of a page of 15,
    walks on for the rest (step 2 in chat.storage.search), then pages on below; every match once, newest first."""
    first, count, every = 1_000_000, 4 * WALK_WINDOW, WALK_WINDOW // 10
    corpus.store.write(WriteBatch(messages=[
        (ChatMessage(i, MessageKind.MESSAGE, "alice", f"line {i}" + (" needle" if i % every == 0 else ""), T0 + i,
                     room="lobby"), LOBBY) for i in range(first, first + count)]))
    needles = [i for i in range(first + count - 1, first - 1, -1) if i % every == 0]
    page = corpus.page("needle", PUBLIC, limit=15)
    assert [m.id for m in page.messages] == needles[:15] and page.more
    seen = [m.id for m in page.messages]
    while page.more:
        page = corpus.page("needle", PUBLIC, limit=7, before=seen[-1])
        seen += [m.id for m in page.messages]
    assert seen == needles and len(needles) == 40


def test_a_result_carries_room_time_sender_and_id(corpus: Corpus) -> None:
    i = corpus.say("Find me, please", DEV, "Bob", at=T0 + 0.25)
    j = corpus.say("find me too", None, "carol", to="dave")
    private, message = corpus.page("find").messages
    assert (message.id, message.room, message.nick, message.text, message.time, message.kind) == (
        i, "Dev", "Bob", "Find me, please", T0 + 0.25, MessageKind.MESSAGE)
    assert (private.id, private.room, private.to, private.kind) == (j, None, "dave", MessageKind.PRIVATE)


HOSTILE = [
    'x"; DROP TABLE messages; --', "NEAR(a b, 5)", "a AND b OR c NOT d", "^start", "terms:value", "{terms} : c",
    "a* b * *c", "(((a)))", "')) OR 1=1 --", "%' OR '1'='1", "q\\' \\\" \\\\", "a:* & !b | c <-> d", "rowid:1",
    "messages_fts:x", "'DROP' <2> d", "x - y -", "x\x00y", "x\x1b[31my", "☃️ 💥 ' a\"b `",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_text(corpus: Corpus, query: str) -> None:
    said = corpus.say(f"text: {query}")
    other = corpus.say("something else entirely")
    found = corpus.ids(query)
    assert said in found and other not in found
    assert corpus.ids("something") == [other]  # and the tables are still there


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=60))
def test_any_query_runs_or_is_refused(corpus: Corpus, query: str) -> None:
    """Whatever parses runs on the database (no FTS or tsquery syntax error) and finds a message of its text."""
    try:
        parsed = parse_search(query)
    except ChatError as e:
        assert e.code is ErrorCode.BAD_SEARCH
        return
    if parsed.rooms or parsed.senders or parsed.after or parsed.before or parsed.exclude:
        search_messages(corpus.engine, parsed, EVERYTHING)
        return
    said = corpus.say(query)
    assert said in [m.id for m in search_messages(corpus.engine, parsed, EVERYTHING, limit=1).messages]


def test_the_time_budget(corpus: Corpus) -> None:
    """A search past its budget stops with search_timeout, and the connection it ran on is fine afterwards."""
    with corpus.engine.begin() as conn:  # 200,000 messages, quickly (the store's path would take longer)
        if conn.dialect.name == "sqlite":
            conn.execute(text(
                "WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 201000) "
                "INSERT INTO messages (id, kind, room_id, sender, text, created_at) "
                "SELECT i, 'message', 1, 'filler', 'filler text', '2026-09-21 14:13:20.000000' FROM n"))
        else:
            conn.execute(text(
                "INSERT INTO messages (id, kind, room_id, sender, text, created_at) "
                "SELECT i, 'message', 1, 'filler', 'filler text', now() FROM generate_series(1000, 201000) AS i"))
    with pytest.raises(ChatError) as caught:
        corpus.page("from:nobody", budget=0.001)
    assert caught.value.code is ErrorCode.SEARCH_TIMEOUT
    assert "narrow it" in caught.value.message
    wanted = corpus.say("needle")
    for _ in range(3):  # the pool's connections all still work, without a budget left behind
        assert corpus.ids("needle") == [wanted]
        assert corpus.page("from:nobody", budget=30).messages == []


def test_found_the_moment_it_is_stored(make_server: Callable[..., ServerThread], any_db: str) -> None:
    """Through the running server: once the sender sees its message (delivered means stored), search finds it."""
    server = make_server(db=any_db)
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register("alice")
    engine = make_engine(any_db)
    try:
        for i in range(20):
            alice.send(f"/msg #lobby fresh word{i} ☕")
            event = alice.expect_event("message", room="lobby")
            page = search_messages(engine, parse_search(f"word{i} ☕"), EVERYTHING)
            assert [m.id for m in page.messages] == [event["id"]]
    finally:
        engine.dispose()
