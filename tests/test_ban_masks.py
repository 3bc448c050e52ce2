"""Ban masks (+b nick!user@host with * and ?) and ban exceptions (+e): over IRC and native /mode, matched against
the nick!user@host IRC shows (the host is the server's name for everyone), stored like bans; hostile masks cost
no more than a match each, linear in the mask times the subject. Real sockets, real SQLite (and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from chat.protocol.masks import MASK_MAX, list_entry, matches
from harness import IrcClient, LineClient, ServerThread

PASSWORD = "correct horse battery"


def irc(server: ServerThread, nick: str, user: str | None = None) -> IrcClient:
    c = IrcClient(*server.loop.door_address("irc"))
    if user is None:
        c.register(nick)
    else:
        c.send(f"NICK {nick}", f"USER {user} 0 * :{nick}")
        c.expect(lambda line: " 422 " in line)
        c.nick = nick
    return c


def _reference(mask: str, text: str) -> bool:
    """The textbook dynamic program for `*`/`?` globs: slow and obviously right."""
    can = [[False] * (len(text) + 1) for _ in range(len(mask) + 1)]
    can[0][0] = True
    for i, p in enumerate(mask, 1):
        can[i][0] = can[i - 1][0] and p == "*"
        for j, t in enumerate(text, 1):
            can[i][j] = (can[i - 1][j] or can[i][j - 1]) if p == "*" else can[i - 1][j - 1] and p in ("?", t)
    return can[len(mask)][len(text)]


@given(st.text("ab*?", max_size=12), st.text("ab", max_size=12))
def test_a_mask_matches_exactly_what_the_textbook_glob_matches(mask: str, text: str) -> None:
    assert matches(mask, text) == _reference(mask, text)


def test_the_words_a_list_takes_are_filled_out_and_the_rest_refused() -> None:
    assert list_entry("bob") == ("bob", "bob") and list_entry("Bob!*@*") == ("Bob", "bob")  # a nick, as before
    assert list_entry("Ba*") == ("Ba*!*@*", "ba*!*@*")
    assert list_entry("evil@*") == ("*!evil@*", "*!evil@*")
    assert list_entry("n?ck!u") == ("n?ck!u@*", "n?ck!u@*")
    assert list_entry("a" + "*" * 300 + "!*@*") == ("a*!*@*", "a*!*@*")  # runs of * are one
    for bad in ("a b", "a!b!c@d", "x@", "!u@h", "é*", "a" * (MASK_MAX + 1) + "*", "*" * 401, "9lives"):
        try:
            list_entry(bad)
        except Exception as e:
            assert "is not a" in str(e)
        else:
            raise AssertionError(f"{bad!r} was taken")


def test_a_hostile_mask_is_matched_in_linear_steps_not_exponential_ones() -> None:
    # as a regular expression with .* for each *, this backtracks through C(200, 49) ways before failing; here it
    # is one pass per run (the test's timeout is the bound: an exponential matcher never finishes)
    mask = ("*a" * 49 + "*b")[:MASK_MAX]
    assert not matches(mask, "a" * 200)
    assert matches(mask, "a" * 199 + "b")
    slow = re.compile(".*a" * 3 + ".*b")  # the shape that explodes, kept tiny here to show the answer agrees
    assert (slow.fullmatch("a" * 20) is None) == (not matches("*a*a*a*b", "a" * 20))


def test_a_mask_ban_and_a_ban_exception_over_irc(make_server: Callable[..., ServerThread]) -> None:
    """irctest's testBanException, and the lists: 367/368 and 348/349, the MODE lines, ISUPPORT."""
    server = make_server(irc_port=0)
    op = irc(server, "chanop")
    isupport = " ".join(line for line in op.seen if " 005 chanop " in line)
    assert " CHANMODES=Ibe,k,l,imnst " in isupport and " EXCEPTS=e " in isupport
    op.send("JOIN #chan", "MODE #chan +b ba*!*@*")
    op.expect(":chanop!chanop@chat MODE #chan +b ba*!*@*")
    bar = irc(server, "Bar")
    bar.send("JOIN #chan")
    bar.expect(" 474 Bar #chan :Cannot join channel (+b)")
    native = server.client("bart")  # a native client: bart!bart@chat, as IRC would show it
    native.send("/join chan")
    native.expect("[error banned]")
    op.send("MODE #chan +e *ar!*@*")
    op.expect(":chanop!chanop@chat MODE #chan +e *ar!*@*")
    bar.send("JOIN #chan")
    bar.expect(":Bar!Bar@chat JOIN #chan")
    native.send("/join chan")
    native.expect("[error banned]")  # `bart` does not end in `ar`
    op.send("MODE #chan +e bart")  # a nick: shown as the mask it stands for
    op.expect(":chanop!chanop@chat MODE #chan +e bart!*@*")
    native.send("/join chan")
    native.expect("You joined #chan")
    op.send("MODE #chan +b")
    op.expect(" 367 chanop #chan ba*!*@*")
    op.expect(" 368 chanop #chan :End of channel ban list")
    op.send("MODE #chan +e")
    assert op.expect(" 348 chanop #chan ").endswith(" bart!*@*")
    op.expect(" 348 chanop #chan *ar!*@*")
    op.expect(" 349 chanop #chan :End of Channel Exception List")
    op.send("MODE #chan -e *AR!*@*")  # masks ignore case
    op.expect(":chanop!chanop@chat MODE #chan -e *ar!*@*")
    op.send("MODE #chan +b a!b!c@d", "MODE #chan +e !x@y")
    op.expect(" 696 chanop #chan b a!b!c@d :")
    op.expect(" 696 chanop #chan e !x@y :")
    bar.send("MODE #chan +b")  # the lists are the ops' business
    bar.expect(" 368 Bar #chan ")
    assert not any(" 367 " in line for line in bar.seen)


def test_masks_match_the_user_name_and_the_host_everyone_is_shown_with(make_server: Callable[..., ServerThread]
                                                                      ) -> None:
    server = make_server(irc_port=0, server_name="irc.example")
    op = irc(server, "chanop")
    op.send("JOIN #dev", "MODE #dev +b *!evil@*")
    op.expect("MODE #dev +b *!evil@*")
    evil = irc(server, "nice", user="evil")
    evil.send("JOIN #dev")
    evil.expect(" 474 nice #dev ")
    good = irc(server, "evilish")  # its user name is its nick: not `evil`
    good.send("JOIN #dev")
    good.expect(":evilish!evilish@irc.example JOIN #dev")
    op.send("MODE #dev -b *!evil@*", "MODE #dev +b *!*@irc.example", "MODE #dev +e *!chanop@*")
    op.expect(lambda line: " MODE #dev " in line and line.endswith(" *!chanop@*"))
    native = server.client("carol")
    native.send("/join dev")
    native.expect("[error banned]")  # every host is the server's name: a native client's too
    op.send("MODE #dev -b *!*@irc.example", "MODE #dev +b *!*@10.*")
    op.expect(lambda line: " MODE #dev " in line and line.endswith(" *!*@10.*"))
    native.send("/join dev")  # no door shows an address, so no mask matches one
    native.expect("You joined #dev")


def test_a_member_a_mask_ban_matches_stays_but_may_not_speak_unless_voiced(make_server: Callable[..., ServerThread]
                                                                          ) -> None:
    server = make_server(irc_port=0)
    op = irc(server, "chanop")
    op.send("JOIN #dev")
    troll = irc(server, "troll")
    troll.send("JOIN #dev")
    op.expect(":troll!troll@chat JOIN #dev")
    op.send("MODE #dev +b tr*")
    op.expect("MODE #dev +b tr*!*@*")
    troll.expect("MODE #dev +b tr*!*@*")  # told, not put out (ops KICK whom they mean, as on IRC)
    troll.send("PRIVMSG #dev :still here")
    troll.expect(" 404 troll #dev :Cannot send to channel")
    op.send("MODE #dev +v troll")
    troll.expect("MODE #dev +v troll")
    troll.send("PRIVMSG #dev :voiced now")
    op.expect(":troll!troll@chat PRIVMSG #dev :voiced now")
    op.send("MODE #dev -v troll", "MODE #dev +e troll")
    troll.expect(":chanop!chanop@chat MODE #dev -v+e troll troll!*@*")
    troll.send("PRIVMSG #dev :excepted now")
    op.expect(":troll!troll@chat PRIVMSG #dev :excepted now")


def test_masks_from_native_mode_survive_a_restart(make_server: Callable[..., ServerThread], any_db: str) -> None:
    first = make_server(db=any_db)
    alice = first.client()
    alice.register_account("alice", PASSWORD)
    longest = "x" * 20 + "!" + "?" * 16 + "@" + "h" * (MASK_MAX - 38)  # the widest a kept mask may be
    assert len(longest) == MASK_MAX
    alice.send("/join dev", "/mode dev +b spam*", f"/mode dev +b {longest}", "/mode dev +e spammer",
               "/mode dev +i", "/mode dev +I *!friend@*")
    alice.expect("[#dev] *** alice banned spam*!*@*")
    alice.expect("[#dev] *** alice let spammer into #dev whatever its bans")
    alice.expect("[#dev] *** alice let *!friend@* into #dev uninvited while it is invite-only")
    alice.sync()
    first.stop()

    second = make_server(db=any_db, irc_port=0)
    spam = second.client("spamalot")
    spam.send("/join dev")
    spam.expect("[error banned]")
    friend = irc(second, "pal", user="friend")  # +I by mask: comes into the +i room
    friend.send("JOIN #dev")
    friend.expect(":pal!pal@chat JOIN #dev")  # (lines show nick!nick@host; WHO shows the user name)
    alice = second.client()
    alice.login("alice", PASSWORD)
    alice.send("/join dev", "/mode dev")
    assert alice.expect("#dev:") == (
        f"[#dev] *** #dev: invite-only, no messages from outside; owner alice; ops: alice; banned: spam*!*@*, "
        f"{longest.lower()}; invite exceptions: *!friend@*; ban exceptions: spammer")
    spammer = second.client("spammer")
    spammer.send("/join dev")
    spammer.expect("[error invite_only]")  # spared the ban, not the invite-only: +e is not +I
    alice.send("/mode dev -b spam*")
    alice.expect("[#dev] *** alice lifted the ban on spam*!*@*")
    alice.sync()
    second.stop()

    third = make_server(db=any_db)
    spam = third.client("spamalot")
    spam.send("/join dev")
    spam.expect("[error invite_only]")  # not banned now: the -b was stored too


def test_a_hundred_hostile_masks_cost_a_join_little_and_the_101st_is_refused(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server(irc_port=0)
    op = irc(server, "chanop")
    op.send("JOIN #dev")
    hostile = ["*a" * 20 + f"*{i:03d}!" + "*a" * 20 + "*@*" for i in range(100)]  # 88 characters, 42 stars
    assert all(list_entry(mask)[0] == mask for mask in hostile)
    for batch in range(0, 100, 4):
        op.send("MODE #dev +bbbb " + " ".join(hostile[batch:batch + 4]))
    op.sync()
    op.send("MODE #dev +b *one-too-many*")
    op.expect(" 478 chanop #dev :Channel list is full")
    others = [server.client(f"bystander{i}") for i in range(3)]
    victim = irc(server, "a" * 20, user="a" * 16)  # a subject of a's: the most work each mask can give
    for _ in range(20):
        victim.send("JOIN #dev", "PRIVMSG #dev :hi", "PART #dev")
    victim.sync()
    assert sum(" JOIN #dev" in line for line in victim.seen) == 20  # no mask matches it (they want digits)
    assert not any(" 474 " in line or " 404 " in line for line in victim.seen)
    for c in others:  # and everyone else is served meanwhile
        c.send("/join dev")
        c.expect("You joined #dev")
    op.expect(":bystander2!bystander2@chat JOIN #dev")


def test_a_native_op_bans_by_mask_with_mode(make_server: Callable[..., ServerThread]) -> None:
    server = make_server()
    alice = server.client()
    alice.register_account("alice", PASSWORD)
    alice.send("/join dev", "/mode dev +b b?b")
    alice.expect("[#dev] *** alice banned b?b!*@*")
    bob: LineClient = server.client("bob")
    bob.send("/join dev")
    bob.expect("[error banned]")
    bobby = server.client("bobby")
    bobby.send("/join dev")
    bobby.expect("You joined #dev")
    alice.send("/mode dev +b a!b!c@d")
    alice.expect("[error bad_argument]")
