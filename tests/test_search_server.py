"""`/search` through a running server, on SQLite and PostgreSQL: results, paging, errors and who may read what."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from harness import ServerThread


def test_search_finds_room_messages_newest_first_with_room_time_sender_and_id(
    make_server: Callable[..., ServerThread], any_db: str,
) -> None:
    server = make_server(any_db)
    alice = server.client("alice", json_mode=True)
    bob = server.client("bob")
    for c, room in ((alice, "dev"), (bob, "ops")):
        c.send(f"/join {room}")
    alice.expect_event("joined", room="dev")
    bob.expect("You joined #ops")
    alice.send("/msg #dev the deploy failed on staging", "/msg #dev lunch?")
    bob.send("/msg #ops Deployment déjà vu", "/me deployed it again")
    bob.sync()
    alice.send("/search deploy")  # found at once: a message is searchable as soon as it is delivered
    found = alice.events_until("search_end")
    results = [e for e in found if e.get("search")]
    assert [(e["room"], e["nick"], e["text"]) for e in results] == [
        ("ops", "bob", "deployed it again"), ("ops", "bob", "Deployment déjà vu"),
        ("dev", "alice", "the deploy failed on staging")]
    assert [e["type"] for e in results] == ["action", "message", "message"]
    assert all(isinstance(e["id"], int) and e["time"].endswith("Z") for e in results)
    assert results[0]["id"] > results[1]["id"] > results[2]["id"]
    assert found[-1] == {"type": "search_end", "query": "deploy", "count": 3, "more": False, "before": None,
                         "indexing": False}
    alice.send('/search "deja vu" from:BOB in:#ops')
    (hit,) = [e for e in alice.events_until("search_end") if e.get("search")]
    assert hit["text"] == "Deployment déjà vu"
    bob.send("/search -lunch in:dev deploy")
    assert bob.expect("*** Search: deploy -lunch in:#dev") == "*** Search: deploy -lunch in:#dev"
    assert bob.expect("alice: ").endswith("] alice: the deploy failed on staging")
    assert bob.expect("End of search") == "*** End of search: 1 result; that is all."


def test_search_pages_back_without_repeats(make_server: Callable[..., ServerThread], any_db: str) -> None:
    server = make_server(any_db)
    alice = server.client("alice", json_mode=True)
    alice.send(*[f"/msg #lobby needle {i}" for i in range(45)], "/msg #lobby haystack")
    alice.sync()
    seen: list[int] = []
    query = "/search needle"
    while True:
        alice.send(query)
        page = alice.events_until("search_end")
        seen += [e["id"] for e in page if e.get("search")]
        end = page[-1]
        if not end["more"]:
            break
        query = f"/search {end['query']} before {end['before']}"
    assert len(seen) == 45 and len(set(seen)) == 45 and seen == sorted(seen, reverse=True)


def test_a_bad_search_is_refused_with_its_code(server: ServerThread) -> None:
    alice = server.client("alice", json_mode=True)
    for query, code in (('"unclosed', "bad_search"), ("-only", "bad_search"), ("after:yesterday x", "bad_search"),
                        ("", "bad_argument")):
        alice.send(f"/search {query}".rstrip())
        error = alice.expect_event("error")
        assert (error["code"], error["command"]) == (code, "search"), query
    alice.send("/search nothing-like-this")
    assert alice.expect_event("search_end")["count"] == 0
    alice.send("/format text", "/search nothing-like-this")
    assert alice.expect("No results") == "*** No results for nothing.like.this."  # the query as understood


def test_nobody_finds_private_messages_not_even_the_nick_that_got_them(server: ServerThread) -> None:
    """A nick is not an account: whoever holds `bob` later must not read bob's conversations by searching."""
    alice, bob, carol = server.client("alice"), server.client("bob"), server.client("carol")
    alice.send("/msg bob the vault code is 1234")
    bob.expect("vault code")
    for c in (carol, bob):
        c.send("/search vault")
        assert c.expect("No results") == "*** No results for vault."
        c.send("/search from:alice")
        assert c.expect("No results") == "*** No results for from:alice."


def test_quotes_operators_and_sql_in_a_search_are_plain_text(server: ServerThread) -> None:
    alice = server.client("alice", json_mode=True)
    alice.send("/msg #lobby NEAR AND OR * quotes ' \" ; DROP TABLE messages;--")
    alice.sync()
    answers = {}
    for query in ('NEAR', "AND OR", "*", "'; DROP TABLE messages;--", '"NEAR AND"', "^quotes", "(or)"):
        alice.send(f"/search {query}")
        answer = json.loads(alice.expect(lambda line: '"search_end"' in line or '"error"' in line))
        answers[query] = answer.get("count", answer.get("code"))
    # words are words (found once each); punctuation alone asks for nothing (refused, never a crash)
    assert answers == {"NEAR": 1, "AND OR": 1, "*": "bad_search", "'; DROP TABLE messages;--": 1, '"NEAR AND"': 1,
                       "^quotes": 1, "(or)": 1}
    alice.send("/search drop table")
    assert alice.expect_event("search_end")["count"] == 1


def test_a_search_past_its_time_budget_is_refused_and_the_server_carries_on(
    make_server: Callable[..., ServerThread], tmp_path: object,
) -> None:
    db = f"{tmp_path}/big.sqlite"
    server = make_server(db, search_budget=0.001)
    alice = server.client("alice", json_mode=True)
    alice.send("/msg #lobby a needle")
    alice.expect_event("message", text="a needle")
    with sqlite3.connect(db) as conn:  # 200,000 more messages beside the server, quickly
        conn.execute("WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 201000) "
                     "INSERT INTO messages (id, kind, room_id, sender, text, created_at) "
                     "SELECT i, 'message', 1, 'filler', 'filler text', '2026-09-21 14:13:20.000000' FROM n")
    alice.send("/search from:nobody")  # no index can answer it: every message is read, past 1 ms
    error = alice.expect_event("error")
    assert (error["code"], error["command"]) == ("search_timeout", "search")
    assert error["message"].startswith("The search took longer than its 0.001 s: narrow it")
    alice.send("/msg #lobby still here")
    alice.expect_event("message", text="still here")
    bob = server.client("bob", json_mode=True)
    bob.sync()
