"""`chat client` in plain mode, as a real process with pipes, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Any

from harness import WAIT, ScriptedServer, ServerThread, chat_command, wait_for


def client_command(host: str, port: int, *args: str) -> list[str]:
    return [*chat_command(), "client", "--host", host, "--port", str(port), *args]


def run_client(server: Any, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the client to its end with `stdin` piped in (not a terminal: plain mode)."""
    env = {k: v for k, v in os.environ.items() if k != "CHAT_NICK"}  # the nick comes from the test only
    env["XDG_CONFIG_HOME"] = "/nonexistent"  # and never from the settings of whoever runs the tests
    return subprocess.run(client_command(server.host, server.port, *args), input=stdin, capture_output=True,
                          text=True, timeout=WAIT * 3, env=env)


class ClientProcess:
    """The client running with its stdin held open, its output collected as it comes."""

    def __init__(self, server: Any, *args: str) -> None:
        env = {**os.environ, "XDG_CONFIG_HOME": "/nonexistent"}  # never the settings of whoever runs the tests
        self.proc = subprocess.Popen(client_command(server.host, server.port, *args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")), daemon=True).start()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for_output(self, text: str) -> None:
        wait_for(lambda: any(text in line for line in self.out), what=f"{text!r} in {self.out[-5:]}")

    def wait(self) -> int:
        return self.proc.wait(WAIT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


def test_a_pipe_joins_talks_and_leaves_once_everything_was_accepted(server: ServerThread) -> None:
    alice = server.client("alice", json_mode=True)
    alice.send("/join dev")
    alice.expect_event("joined", room="dev")
    done = run_client(server, "/join dev\nhello from cron\n/me waves\n", "--nick", "bot")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert any(line.endswith("[#dev] bot: hello from cron") for line in out)
    assert any(line.endswith("[#dev] * bot waves") for line in out)
    assert out[-1].startswith("*** Goodbye")
    assert alice.expect_event("message", text="hello from cron")["nick"] == "bot"
    alice.expect_event("quit", nick="bot")
    later = server.client("carol", json_mode=True)  # it was stored: a newcomer gets it as history
    later.send("/join dev")
    assert later.expect_event("message", text="hello from cron")["history"] is True


def test_json_prints_the_servers_events_one_per_line(server: ServerThread) -> None:
    done = run_client(server, "/join dev\nhello\n", "--nick", "bot", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "welcome" and types[-1] == "bye"
    assert {"type": "joined", "room": "dev"}.items() <= next(e for e in events if e.get("room") == "dev").items()
    said = next(e for e in events if e["type"] == "message")
    assert said["text"] == "hello" and isinstance(said["id"], int) and said["time"].endswith("Z")
    assert "pong" not in types and "format" not in types  # the client's own bookkeeping is not shown


def test_without_a_nick_the_first_line_is_the_nick(server: ServerThread) -> None:
    done = run_client(server, "carol\nhi there\n")
    assert done.returncode == 0, done.stderr
    assert "*** Welcome, carol!" in done.stdout
    assert "[#lobby] carol: hi there" in done.stdout


def test_a_refused_nick_exits_1_and_sends_nothing_else(server: ServerThread) -> None:
    alice = server.client("alice", json_mode=True)
    bob = server.client("bob")
    taken = run_client(server, "hello from the wrong bob\n", "--nick", "bob")
    assert taken.returncode == 1
    assert "nick_taken" in taken.stderr and "bob is taken" in taken.stderr
    invalid = run_client(server, "no good!\nhello from nobody\n")
    assert invalid.returncode == 1
    assert "is not a valid nickname" in invalid.stderr
    alice.sync()
    assert not any("hello from" in line for line in alice.seen)
    bob.close()


def test_lines_the_server_refuses_go_to_stderr_and_the_exit_status_is_2(server: ServerThread) -> None:
    done = run_client(server, "/bogus\nstill said\n", "--nick", "bot")
    assert done.returncode == 2
    assert "Unknown command /bogus" in done.stderr
    assert "[#lobby] bot: still said" in done.stdout


def test_a_long_input_flows_at_the_servers_pace_instead_of_flooding_it(make_server: Any) -> None:
    # Without pacing, 150 lines at once would leave more than flood_limit waiting: disconnected.
    server = make_server(rate=200, burst=20, flood_limit=25)
    alice = server.client("alice", json_mode=True)
    done = run_client(server, "".join(f"line {i}\n" for i in range(150)), "--nick", "bot", "--room", "lobby")
    assert done.returncode == 0, done.stderr
    for i in range(150):
        alice.expect_event("message", text=f"line {i}")


def test_when_the_server_goes_away_it_says_so_and_exits_1(make_server: Any) -> None:
    server = make_server()
    client = ClientProcess(server, "--nick", "bot")
    try:
        client.wait_for_output("Welcome, bot")
        server.stop()
        assert client.wait() == 1
        assert any("the server closed the connection" in line for line in client.err)
        assert any("Goodbye" in line for line in client.out)
    finally:
        client.kill()


def test_ctrl_c_leaves_cleanly(server: ServerThread) -> None:
    alice = server.client("alice", json_mode=True)
    client = ClientProcess(server, "--nick", "bot")
    try:
        client.wait_for_output("You joined #lobby")
        client.send("last words")
        alice.expect_event("message", text="last words")
        client.proc.send_signal(signal.SIGINT)
        assert client.wait() == 0
        assert alice.expect_event("quit", nick="bot")["reason"] == "quit"
    finally:
        client.kill()


def test_no_server_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    done = subprocess.run(client_command("127.0.0.1", port, "--nick", "bot"), input="hi\n",
                          capture_output=True, text=True, timeout=WAIT * 3)
    assert done.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - started < WAIT * 3


def test_garbage_from_the_server_never_crashes_plain_mode() -> None:
    fake = ScriptedServer(b"".join([
        b"hello in text\n",
        b'{"type":"welcome","nick":"bot","max_line":4096}\n',
        b"{broken\n",
        b'{"type":"message","id":"nope"}\n',
        b"\xff\xfe\n",
        b'{"type":"message","id":1,"time":"2026-01-01T00:00:00.000Z","room":"x","nick":"a","text":"fine"}\n',
    ]))
    try:
        done = run_client(fake, "hi\n", "--nick", "bot")
        assert done.returncode == 0, done.stderr
        assert "00:00:00 [#x] a: fine" in done.stdout
        assert done.stdout.count("(ignored a line from the server") == 2
        assert "hi" in fake.received and "/quit" in fake.received
    finally:
        fake.close()


def test_help_explains_both_modes() -> None:
    done = subprocess.run([*chat_command(), "client", "--help"], capture_output=True, text=True, timeout=WAIT * 3)
    assert done.returncode == 0
    for word in ("--host", "--port", "--nick", "--room", "--plain", "--json", "--no-backlog", "--config",
                 "CHAT_HOST", "Ctrl-C", "printf"):
        assert word in done.stdout


def test_no_backlog_prints_what_happens_now_and_not_the_rooms_history(make_server: Any) -> None:
    server = make_server(backlog=60)
    alice = server.client("alice", json_mode=True)
    alice.send(*(f"old {i}" for i in range(60)))
    alice.sync()
    done = run_client(server, "posted by cron\n", "--nick", "bot", "--no-backlog")
    assert done.returncode == 0, done.stderr
    assert "old " not in done.stdout and "earlier message" not in done.stdout
    assert "[#lobby] bot: posted by cron" in done.stdout
    as_json = run_client(server, "again\n", "--nick", "bot", "--no-backlog", "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert not any(e.get("history") or e["type"] == "history_end" for e in events)
    assert any(e["type"] == "message" and e["text"] == "again" for e in events)
    with_it = run_client(server, "", "--nick", "bot")  # and without the option, the backlog is there
    assert "(earlier) [#lobby] alice: old 59" in with_it.stdout and "Above: 60 earlier messages" in with_it.stdout


def test_the_settings_file_chooses_the_server_and_options_win(server: ServerThread, tmp_path: Any) -> None:
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "client.toml").write_text(
        f'[server]\nhost = "{server.host}"\nport = {server.port}\nnick = "fromfile"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("CHAT_NICK", "CHAT_HOST", "CHAT_PORT")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    done = subprocess.run([*chat_command(), "client"], input="hi\n", capture_output=True, text=True,
                          timeout=WAIT * 3, env=env)
    assert done.returncode == 0, done.stderr
    assert "[#lobby] fromfile: hi" in done.stdout
    named = subprocess.run([*chat_command(), "client", "--nick", "fromoption"], input="hi\n",
                           capture_output=True, text=True, timeout=WAIT * 3, env=env)
    assert "[#lobby] fromoption: hi" in named.stdout
    (tmp_path / "chat" / "client.toml").write_text("[server]\nport = 'many'\n")
    broken = subprocess.run([*chat_command(), "client"], input="", capture_output=True, text=True,
                            timeout=WAIT * 3, env=env)
    assert broken.returncode == 1 and "server.port" in broken.stderr and "Traceback" not in broken.stderr
