"""The deliverer's path for clients without echo-message (IRC's default): a run of a room's messages is rendered
once per codec key, and a client that sent some of them gets those bytes without its own lines, cut out of the
shared rendering (chat.server.delivery._Cut), never a render of its own. Checked on the Deliverer with real
connections, sockets and IRC codecs, run by run, then end to end with many IRC clients blasting into one room."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chat.protocol import events as ev
from chat.protocol.irc.codec import IrcCodec
from chat.protocol.irc.message import parse
from chat.server.connection import Connection
from chat.server.delivery import Deliverer
from chat.server.member import Member
from chat.server.outbox import Outbox
from chat.server.transport import SocketTransport
from harness import WAIT, IrcClient, ServerThread

T0 = 1_790_000_000.0


class Peer:
    """One connection as the deliverer sees it: a real socket, a real IRC codec with these capabilities."""

    def __init__(self, number: int, nick: str, caps: tuple[str, ...]) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.caps = caps
        self.conn = Connection(number, SocketTransport(self.ours), IrcCodec("chat"), f"peer{number}", "127.0.0.1",
                               "", "irc", 100, 0.0)
        if caps:
            self.conn.codec.decode(f"CAP REQ :{' '.join(caps)}")
        self.member.nick, self.member.registered = nick, True

    @property
    def member(self) -> Member:
        return self.conn.member

    def queued(self) -> bytes:
        """What the deliverer queued for it so far (taken: the next call returns what came after)."""
        data = b"".join(bytes(x) for x in self.conn.out)
        self.conn.out.clear()
        self.conn.out_bytes = 0
        return data

    def close(self) -> None:
        self.ours.close()
        self.theirs.close()


@pytest.fixture
def peers() -> Iterator[Callable[[str, tuple[str, ...]], Peer]]:
    made: list[Peer] = []

    def make(nick: str, caps: tuple[str, ...] = ()) -> Peer:
        made.append(Peer(len(made) + 1, nick, caps))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _alone(peer: Peer, events: list[ev.Event], own: set[int]) -> bytes:
    """What `peer` must get: the events rendered by a codec of its own with the same capabilities, without the
    messages it sent (the rule the shared path has to keep)."""
    codec = IrcCodec("chat")
    if peer.caps:
        codec.decode(f"CAP REQ :{' '.join(peer.caps)}")
    codec.attach(peer.member)
    shown = [e for e in events if not (isinstance(e, ev.ChatMessage) and e.id in own)]
    return codec.render(shown)


def test_senders_without_echo_get_the_shared_run_minus_their_own_lines(peers: Callable[..., Peer]) -> None:
    # two keys (plain; server-time + message-tags), each with echo and non-echo members, senders and readers
    plain_a, plain_b, plain_reader = peers("pa"), peers("pb"), peers("pr")
    plain_echo = peers("pe", ("echo-message",))
    tagged_a, tagged_reader = peers("ta", ("server-time", "message-tags")), peers("tr", ("server-time",
                                                                                         "message-tags"))
    tagged_echo = peers("te", ("server-time", "message-tags", "echo-message"))
    everyone = [plain_a, plain_b, plain_reader, plain_echo, tagged_a, tagged_reader, tagged_echo]
    members = tuple(p.member for p in everyone)
    out = Outbox()
    ids = iter(range(1, 1000))

    def say(p: Peer, text: str) -> ev.ChatMessage:
        message = ev.ChatMessage(next(ids), ev.MessageKind.MESSAGE, p.member.nick, text, T0 + len(out.deliveries),
                                 room="dev")
        out.senders[message.id] = p.member
        out.deliver(members, message)
        return message

    # one run (the same members tuple throughout): messages of several senders with other events between them,
    # first and last items messages, a sender with several messages in a row, two mode changes said as one line
    run: list[ev.Event] = [
        say(plain_a, "a1"), say(plain_a, "a2"), say(tagged_a, "t1"),
        ev.Join("dev", "newcomer", T0), say(plain_b, "b1"), say(plain_echo, "e1"),
        ev.Mode("dev", "pa", "+m", None, T0), ev.Mode("dev", "pa", "+t", None, T0),
        say(tagged_echo, "te1"), say(plain_a, "a3"), ev.Part("dev", "newcomer", "gone", T0),
        say(tagged_a, "t2"), say(plain_b, "b2"),
    ]
    for e in run[3], run[6], run[7], run[10]:
        out.deliver(members, e)
    out.deliveries.sort(key=lambda d: run.index(d[1]))  # type: ignore[arg-type]  # in the run's order
    Deliverer(1 << 30, lambda c: None).deliver(out)

    sent_by: dict[int, set[int]] = {p.member.id: set() for p in everyone}
    for e in run:
        if isinstance(e, ev.ChatMessage):
            sent_by[out.senders[e.id].id].add(e.id)
    for p in everyone:
        got = p.queued()
        own = set() if "echo-message" in p.caps else sent_by[p.member.id]
        assert got == _alone(p, run, own), p.member.nick
        lines = got.decode().split("\r\n")
        texts = [m.params[1] for m in map(parse, filter(None, lines)) if m.verb == "PRIVMSG"]
        for e in run:
            if isinstance(e, ev.ChatMessage):  # no duplicate, no gap
                assert texts.count(e.text) == (0 if e.id in own else 1), (p.member.nick, e.text)
        assert texts == [e.text for e in run if isinstance(e, ev.ChatMessage) and e.id not in own]  # one order
        assert sum(" MODE #dev +mt" in x for x in lines) == 1  # still one MODE line for the two changes
        assert all(x.startswith("@time=") for x in lines if x and "PRIVMSG" in x) == ("server-time" in p.caps)


def test_a_message_to_yourself_stays_and_a_private_one_is_not_echoed(peers: Callable[..., Peer]) -> None:
    me, other = peers("me"), peers("you")
    out = Outbox()
    to_self = ev.ChatMessage(1, ev.MessageKind.PRIVATE, "me", "note", T0, to="me")
    private = ev.ChatMessage(2, ev.MessageKind.PRIVATE, "me", "psst", T0, to="you")
    out.senders.update({1: me.member, 2: me.member})
    out.deliver((me.member,), to_self)
    out.deliver((me.member, other.member), private)
    Deliverer(1 << 30, lambda c: None).deliver(out)
    assert me.queued() == b":me!me@chat PRIVMSG me note\r\n"
    assert other.queued() == b":me!me@chat PRIVMSG you psst\r\n"


def test_a_sender_inside_a_labeled_response_is_rendered_alone_without_its_own_lines(
        peers: Callable[..., Peer]) -> None:
    labeled, reader, other = peers("lab", ("labeled-response", "batch")), peers("rd"), peers("ot")
    labeled.conn.codec.attach(labeled.member)
    members = (labeled.member, reader.member, other.member)
    deliverer = Deliverer(1 << 30, lambda c: None)
    text, end = labeled.conn.codec.frames(b"@label=L1 PRIVMSG #dev :mine\r\n")
    said = labeled.conn.codec.decode(text)  # type: ignore[arg-type]
    deliverer.push(labeled.member, said[0])  # type: ignore[arg-type]  # the label opens: its key is its own
    assert labeled.conn.codec.key is None
    out = Outbox()
    messages = [ev.ChatMessage(1, ev.MessageKind.MESSAGE, "ot", "before", T0, room="dev"),
                ev.ChatMessage(2, ev.MessageKind.MESSAGE, "lab", "mine", T0, room="dev"),
                ev.ChatMessage(3, ev.MessageKind.MESSAGE, "ot", "after", T0, room="dev")]
    out.senders.update({1: other.member, 2: labeled.member, 3: other.member})
    for m in messages:
        out.deliver(members, m)
    deliverer.deliver(out)
    deliverer.push(labeled.member, labeled.conn.codec.decode(end)[0])  # type: ignore[arg-type]  # it closes
    got = labeled.queued().decode()
    assert "PRIVMSG #dev before" in got and "PRIVMSG #dev after" in got and "mine" not in got
    assert "labeled-response" in got  # what came meanwhile is inside the labeled answer
    assert reader.queued().decode().count(" PRIVMSG #dev ") == 3


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def irc_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(irc_port=0)


def test_many_irc_clients_with_and_without_echo_blasting_one_room_see_one_order(irc_server: ServerThread) -> None:
    """Every sender blasts at once, so the server's runs hold messages of many senders: each client gets every
    other client's messages once, in the order the echo-message clients see everything, and its own only with
    echo-message."""
    kinds = [(), ("echo-message",), ("server-time",), ("server-time", "echo-message"), ("message-tags",)]
    clients: list[IrcClient] = []
    for i in range(20):
        c = irc_server.irc_client(f"blast{i}", caps=kinds[i % len(kinds)])
        c.send("JOIN #blast")
        c.expect(f" 366 blast{i} #blast ")
        clients.append(c)
    for c in clients[:-1]:  # everyone is in before anyone speaks (the last join reached them all)
        c.expect(lambda line: f":blast{len(clients) - 1}!" in line and " JOIN #blast" in line)
    per_sender = 40
    start = threading.Barrier(len(clients))

    def blast(c: IrcClient, nick: str) -> None:
        start.wait(WAIT)
        c.send(*(f"PRIVMSG #blast :{nick} {n}" for n in range(per_sender)))

    threads = [threading.Thread(target=blast, args=(c, f"blast{i}")) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    total = per_sender * len(clients)
    seen: list[list[str]] = []
    for i, c in enumerate(clients):
        echo = "echo-message" in kinds[i % len(kinds)]
        want = total if echo else total - per_sender
        got: list[str] = []
        deadline = time.monotonic() + WAIT * 3
        while len(got) < want:
            line = c.expect(" PRIVMSG #blast ", max(0.1, deadline - time.monotonic()))
            got.append(parse(line).params[1])
        c.send("PING end")
        c.expect("PONG")  # nothing more came before the PONG: no duplicate after the last
        assert sum(" PRIVMSG #blast " in x for x in c.seen) == want, f"blast{i}: a duplicate"
        seen.append(got)
    order = seen[1]  # an echo-message client: every message, itself included
    assert len(set(order)) == total
    for i, got in enumerate(seen):
        nick = f"blast{i}"
        echo = "echo-message" in kinds[i % len(kinds)]
        assert got == (order if echo else [x for x in order if x.split()[0] != nick]), nick
        for sender in range(len(clients)):  # each sender's own order kept
            numbers = [int(x.split()[1]) for x in got if x.split()[0] == f"blast{sender}"]
            assert numbers == ([] if sender == i and not echo else list(range(per_sender)))
