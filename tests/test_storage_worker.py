"""The reader thread answers a crowd of nick claims with one query: the answers must be those of one query each,
on SQLite and PostgreSQL, a registration made a moment before included, with other reads among the claims."""

from __future__ import annotations

import threading

from chat.protocol.names import name_key
from chat.server.member import Link, Member
from chat.server.reads import NickLookup, RoomLookup
from chat.server.storage_worker import StorageReader
from chat.storage.accounts import AccountStore
from chat.storage.database import make_engine, upgrade
from chat.storage.repository import ChatStore


def test_claims_taken_together_get_the_answers_of_one_query_each(any_db: str) -> None:
    engine = make_engine(any_db)
    upgrade(engine)
    store = ChatStore(engine)
    accounts = AccountStore(engine)
    accounts.register("Alice", "alice", "$argon2id$stand-in")  # a moment before the claims: reserved at once
    woken = threading.Event()
    reader = StorageReader(store, woken.set, page_budget=64 * 1024)
    nicks = [f"guest{i}" for i in range(40)] + ["ALICE", "bob"]
    gone = Member(99, Link())
    gone.gone = True
    reads: list[NickLookup | RoomLookup] = [NickLookup(Member(i, Link()), name_key(n), n, "claim")
                                            for i, n in enumerate(nicks)]
    reads.insert(10, RoomLookup("dev", "dev", 5))  # another read among them
    reads.append(NickLookup(gone, "carol", "carol", "claim"))  # its member left: nobody waits for it
    for read in reads:  # all queued before the thread starts: it takes them together
        reader.submit(read)
    reader.start()
    try:
        pause = threading.Event()
        for _ in range(200):
            if len(reader.done) == len(reads):
                break
            pause.wait(0.05)
        assert len(reader.done) == len(reads)
        assert woken.is_set()
    finally:
        reader.stop(10)
        store.close()
        engine.dispose()
    assert {id(r) for r in reader.done} == {id(r) for r in reads}  # every read handed back, once
    claims = {r.nick: r for r in reads if isinstance(r, NickLookup)}
    alice = claims["ALICE"]
    assert alice.error is None and alice.found is not None and alice.found.account is not None
    assert alice.found.account.nick == "Alice" and alice.found.nick == "Alice"
    for nick in [*nicks[:40], "bob"]:
        assert claims[nick].error is None and claims[nick].found is None, nick
    assert claims["carol"].found is None
    room = next(r for r in reads if isinstance(r, RoomLookup))
    assert room.error is None and room.found is None  # read, and not there
