"""The web client in a real browser: Debian's chromium, headless, driven by Playwright; the page talks to a real
server on 127.0.0.1 beside nc-style line clients. One browser per test session (each test gets fresh contexts:
separate storage, like separate people). Skipped, saying why, where chromium or Playwright is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import ServerThread, TLSFiles, server_config, wait_for
from harness.browser import ChatPage, browser_unavailable, launch, launch_chromium

pytestmark = pytest.mark.skipif(browser_unavailable() is not None, reason=str(browser_unavailable()))

Server = Callable[..., ServerThread]
DOCS = Path(__file__).resolve().parent.parent / "docs"


# module, not session: Playwright's sync API keeps an asyncio loop running in the thread while it is started, and
# an xdist worker that later ran a test calling asyncio.run() (the client's tests) would find it there
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., ChatPage]]:
    """Open the chat in a new browser context (its own storage, as another person's browser would be)."""
    contexts: list[Any] = []
    pages: list[ChatPage] = []

    def open_(url: str, **context_options: Any) -> ChatPage:
        context = browser.new_context(**{"viewport": {"width": 1200, "height": 760}, **context_options})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = ChatPage(context.new_page(), url)
        pages.append(page)
        return page

    yield open_
    for context in contexts:
        context.close()
    for page in pages:
        assert not page.problems, page.problems


def test_two_browser_users_and_an_nc_user_chat_in_one_room(make_server: Server,
                                                            open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    alice, bob = open_page(server.web_url), open_page(server.web_url)
    alice.login("alice")
    bob.login("bob")
    carol = server.client("carol")
    alice.say("hello everyone")
    bob.wait_text("hello everyone")
    assert carol.expect("alice: ") == "[#lobby] alice: hello everyone"
    carol.send("hi from nc")
    alice.wait_text("hi from nc")
    bob.wait_text("hi from nc")
    bob.say("/me waves")
    alice.log().locator(".msg.action", has_text="waves").wait_for()
    assert carol.expect("* bob") == "[#lobby] * bob waves"
    members = alice.page.locator("#member-list button")
    wait_for(lambda: members.all_text_contents() == ["alice", "bob", "carol"], what="three members")
    # Tab completes a nick; Up brings back what was sent, to edit and send again
    alice.page.fill("#input", "ca")
    alice.page.press("#input", "Tab")
    assert alice.page.input_value("#input") == "carol: "
    alice.page.fill("#input", "")
    alice.page.press("#input", "ArrowUp")
    assert alice.page.input_value("#input") == "hello everyone"
    alice.page.press("#input", "End")
    alice.page.keyboard.type(" again")
    alice.page.press("#input", "Enter")
    assert carol.expect("alice: ") == "[#lobby] alice: hello everyone again"
    # a mention is marked; another room gets an unread count; Alt+number switches
    carol.send("/join dev", "/topic #dev Release day")
    alice.page.fill("#join-room", "dev")
    alice.page.press("#join-room", "Enter")
    alice.page.locator("#conv-name", has_text="#dev").wait_for()
    alice.page.locator("#conv-topic", has_text="Release day").wait_for()
    carol.send("/msg #lobby alice: are you there?")
    badge = alice.conversation("#lobby").locator(".badge.mention")
    badge.wait_for()
    assert badge.text_content() == "1"
    alice.page.keyboard.press("Alt+1")
    alice.page.locator("#conv-name", has_text="#lobby").wait_for()
    assert alice.log().locator(".msg.mention .text").last.text_content() == "alice: are you there?"
    assert alice.log().locator(".marker").count() == 1  # the "new messages" marker, before it
    assert alice.conversation("#lobby").locator(".badge").count() == 0
    alice.page.keyboard.press("Alt+2")
    alice.page.locator("#conv-name", has_text="#dev").wait_for()
    # a private message opens a conversation of its own
    carol.send("/msg bob just between us")
    bob.conversation("@carol").locator(".badge.mention").wait_for()
    bob.conversation("@carol").click()
    bob.wait_text("just between us", key="@carol")
    bob.say("sure")
    assert carol.expect("bob -> carol") == "[private] bob -> carol: sure"


def test_scrolling_up_loads_older_history_to_the_beginning_without_duplicates(
        make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0, backlog=30)
    carol = server.client("carol")
    count = 260
    for i in range(count):
        carol.send(f"line {i}")
    carol.sync()
    alice = open_page(server.web_url, viewport={"width": 1000, "height": 600})
    alice.login("alice")
    alice.wait_text(f"line {count - 1}")
    log = alice.log()
    beginning = log.locator(".beginning")
    for _ in range(40):
        if beginning.is_visible():
            break
        shown = log.locator(".msg").count()
        log.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        wait_for(lambda shown=shown: log.locator(".msg").count() > shown or beginning.is_visible(),
                 what="an older page")
    assert beginning.text_content() == "This is the beginning of #lobby."
    assert alice.texts() == [f"line {i}" for i in range(count)]
    ids = alice.ids()
    assert ids == sorted(set(ids))


def test_a_server_restart_reconnects_the_page_and_shows_what_was_missed_once(
        make_server: Server, open_page: Callable[..., ChatPage], sqlite_db: str) -> None:
    server = make_server(web_port=0, backlog=5)
    port = server.web_address[1]
    carol = server.client("carol")
    carol.send("before 0", "before 1", "before 2")
    carol.sync()
    alice = open_page(server.web_url)
    alice.login("alice")
    alice.wait_text("before 2")
    for room in ("dev", "ops"):
        alice.page.fill("#join-room", room)
        alice.page.press("#join-room", "Enter")
        alice.page.locator("#conv-name", has_text=f"#{room}").wait_for()
    alice.page.keyboard.press("Alt+1")
    server.stop()
    alice.page.locator('#status[data-state="offline"]').wait_for()
    assert alice.page.locator("#offline").is_visible()
    alice.page.context.set_offline(True)  # so that the page cannot come back before the messages it misses
    again = make_server(web_port=port, backlog=5)  # same database, same address
    carol = again.client("carol")
    missed = [f"missed {i}" for i in range(8)]  # more than the backlog: the page fetches the rest
    carol.send(*missed)
    carol.sync()
    alice.page.context.set_offline(False)
    alice.wait_online(timeout=40)
    alice.wait_text("missed 7")
    wait_for(lambda: alice.texts() == ["before 0", "before 1", "before 2", *missed], what="every message once")
    marker = alice.log().locator(".marker + .msg .text")
    assert marker.text_content() == "missed 0"  # the "new messages" marker: where the missed ones begin
    alice.say("back again")
    assert carol.expect("alice: ") == "[#lobby] alice: back again"
    carol.send("/join ops", "in ops")  # its other rooms were joined again too
    alice.wait_text("in ops", key="#ops")


def test_markup_in_messages_and_topics_is_shown_as_text(make_server: Server,
                                                         open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    alice = open_page(server.web_url)
    alice.login("alice")
    response = alice.page.request.get(server.web_url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    mallory = server.client("mallory")
    attacks = [
        "<script>window.__pwned = 1</script>",
        '<img src=x onerror="window.__pwned = 2">',
        '<a href="javascript:window.__pwned=3">click</a> javascript:window.__pwned=4',
        "see https://example.com/a?b=<i>c</i> now",  # a URL ends where markup begins
    ]
    mallory.send(*attacks, "/topic <img src=y onerror=window.__pwned=5>")
    alice.log().locator(".system.topic").wait_for()
    alice.wait_text("see https://example.com")
    assert alice.texts() == attacks
    assert alice.page.locator("#conv-topic").text_content() == "<img src=y onerror=window.__pwned=5>"
    assert alice.page.evaluate("window.__pwned") is None
    assert alice.page.locator(".log img, .log script, .log i, #conv-topic *").count() == 0
    links = alice.log().locator("a")
    assert links.count() == 1  # only the http(s) address became a link
    assert links.get_attribute("href") == "https://example.com/a?b="
    assert links.get_attribute("rel") == "noopener noreferrer"
    assert links.get_attribute("target") == "_blank"


def test_the_phone_width_layout(make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    carol = server.client("carol")
    carol.send("a fairly long line that must wrap on a narrow screen rather than widen the page " * 3)
    alice = open_page(server.web_url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    alice.login("alice")
    alice.wait_text("fairly long line")
    page = alice.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    sidebar = page.locator("#sidebar")

    def on_screen() -> bool:
        box = sidebar.bounding_box()
        return box is not None and box["x"] >= 0

    assert not on_screen()  # the conversations are a drawer...
    assert page.locator("#members").bounding_box()["x"] >= 390  # ...and so are the members
    composer = page.locator("#input").bounding_box()
    assert composer is not None and composer["x"] >= 0 and composer["x"] + composer["width"] <= 390
    assert composer["y"] + composer["height"] <= 844
    page.click("#menu-button")
    wait_for(on_screen, what="the drawer to open")
    alice.conversation("#lobby").click()
    wait_for(lambda: not on_screen(), what="the drawer to close")
    page.click("#members-button")
    page.locator("#member-list button", has_text="carol").wait_for()
    wait_for(lambda: page.locator("#members").bounding_box()["x"] < 390, what="the members to slide in")


def test_notifications_are_requested_and_shown_for_mentions_and_private_messages(
        make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    watch = """
        window.__asked = 0; window.__shown = [];
        const Real = window.Notification;
        const ask = Real.requestPermission.bind(Real);
        Real.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
        window.Notification = new Proxy(Real, {construct(target, args) {
            window.__shown.push({title: args[0], body: args[1].body}); return new target(...args); }});
    """
    asked = open_page(server.web_url)
    asked.page.add_init_script(watch)
    asked.login("asked")
    assert asked.page.evaluate("window.__asked") == 1  # on the click that logged in
    allowed = open_page(server.web_url, permissions=["notifications"])
    allowed.page.add_init_script(watch)
    allowed.login("alice")
    carol = server.client("carol")
    carol.send("/join dev")
    allowed.page.fill("#join-room", "dev")
    allowed.page.press("#join-room", "Enter")
    allowed.page.locator("#conv-name", has_text="#dev").wait_for()
    carol.send("/msg #lobby nothing for anyone", "/msg #lobby alice, lunch?", "/msg alice a secret")
    wait_for(lambda: len(allowed.page.evaluate("window.__shown")) == 2, what="two notifications")
    assert allowed.page.evaluate("window.__shown") == [
        {"title": "carol in #lobby", "body": "alice, lunch?"}, {"title": "carol", "body": "a secret"}]


def test_logging_in_to_an_account_in_the_page(make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    port = server.web_address[1]
    password = "correct horse battery"
    owner = server.client()
    owner.register_account("alice", password)
    owner.send("/quit")
    server.wait_until(lambda loop: "alice" not in loop.state.nicks, what="alice gone")
    alice = open_page(server.web_url)
    page = alice.page
    error = page.locator("#login-error")
    # a wrong password: the server's refusal, on the login form
    alice.login("alice", "not the password", wait=False)
    page.locator('#login-error[data-code="bad_password"]').wait_for()
    assert error.text_content() == "Wrong password for alice."
    assert page.locator("#login").is_visible() and not page.locator("#app").is_visible()
    # the nick alone: the page asks for the password (the server's password_wanted)
    alice.login("alice", wait=False)
    page.locator("#login-hint", has_text="alice is a registered nickname").wait_for()
    assert page.evaluate("document.activeElement.id") == "login-password"
    assert not error.is_visible()
    page.fill("#login-password", password)
    page.click("#login-button")
    alice.wait_online()
    assert page.locator("#me-nick").text_content() == "alice"
    bob = server.client("bob")
    bob.send("/whois alice")
    assert "registered since" in bob.expect("alice: online")
    # a server restart: the page logs in again by itself, with the password it kept in memory (only)
    server.stop()
    page.locator('#status[data-state="offline"]').wait_for()
    again = make_server(web_port=port)
    alice.wait_online(timeout=40)
    assert page.locator("#me-nick").text_content() == "alice"
    assert not page.locator("#login").is_visible()
    bob = again.client("bob")
    bob.send("/whois alice")
    assert "registered since" in bob.expect("alice: online")
    stored = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert password not in stored and "alice" in stored  # the nick, for a reload of the tab; never the password


def test_a_password_registered_in_the_page_logs_in_again_after_a_restart(
        make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    port = server.web_address[1]
    alice = open_page(server.web_url)
    alice.login("alice")
    alice.say("hello")
    alice.say("/register a page-made password")
    alice.log().locator(".line", has_text="alice is registered to you").wait_for()
    alice.page.press("#input", "ArrowUp")  # what holds a password is not kept for Up to bring back
    assert alice.page.input_value("#input") == "hello"
    server.stop()
    alice.page.locator('#status[data-state="offline"]').wait_for()
    again = make_server(web_port=port)
    alice.wait_online(timeout=40)  # with /login and the password it kept: no prompt
    assert not alice.page.locator("#login").is_visible()
    bob = again.client("bob")
    bob.send("/whois alice")
    assert "registered since" in bob.expect("alice: online")


def test_ops_are_marked_in_the_member_list_and_follow_mode_changes(
        make_server: Server, open_page: Callable[..., ChatPage]) -> None:
    server = make_server(web_port=0)
    olga, bob = server.client(), server.client()
    olga.register_account("olga", "olga's password")
    bob.register_account("bob", "bob's password")
    olga.send("/join dev")  # the first logged-in user in a new room owns it
    olga.expect("You joined #dev")
    bob.send("/join dev")
    bob.expect("You joined #dev")
    alice = open_page(server.web_url)
    alice.login("alice")
    alice.page.fill("#join-room", "dev")
    alice.page.press("#join-room", "Enter")
    alice.page.locator("#conv-name", has_text="#dev").wait_for()
    page = alice.page

    def members() -> list[tuple[str, str]]:
        """(mark, nick) of each member, top to bottom."""
        return [tuple(row.split("|")) for row in page.locator("#member-list li").evaluate_all(  # type: ignore[misc]
            "lis => lis.map(li => li.querySelector('.role').textContent + '|' + li.querySelector('.nick')"
            ".textContent)")]

    owner = page.locator('#member-list li[data-role="owner"]')
    owner.wait_for()
    assert owner.text_content() == "@olga" and owner.locator(".role").get_attribute("title") is not None
    assert members() == [("@", "olga"), ("", "alice"), ("", "bob")]
    olga.send("/op dev bob")
    alice.log("#dev").locator(".system.mode", has_text="made bob an op").wait_for()
    wait_for(lambda: members() == [("@", "bob"), ("@", "olga"), ("", "alice")], what="bob marked an op")
    bob.send("/leave dev", "/join dev")  # an op who comes back is still one (ops belong to accounts)
    alice.log("#dev").locator(".system.join", has_text="bob").wait_for()
    wait_for(lambda: members() == [("@", "bob"), ("@", "olga"), ("", "alice")], what="bob an op again")
    olga.send("/deop dev bob", "/mode dev +v bob")
    alice.log("#dev").locator(".system.mode", has_text="gave bob a voice").wait_for()
    wait_for(lambda: members() == [("@", "olga"), ("+", "bob"), ("", "alice")], what="bob voiced, no op")
    assert alice.log("#dev").locator(".system.mode", has_text="took ops from bob").count() == 1
    # /who and a /mode typed by the user are shown (the page's own /mode on joining was not)
    assert alice.log("#dev").locator(".line", has_text="owner olga").count() == 0
    olga.send("/mode dev +l 10")
    alice.log("#dev").locator(".system.mode", has_text="limited #dev to 10 members").wait_for()
    alice.say("/mode")
    alice.log("#dev").locator(".line", has_text="#dev: modes +ln; at most 10 members; owner olga; ops: olga; "
                              "voiced: bob").wait_for()
    olga.send("/kick dev bob enough")
    alice.log("#dev").locator(".system.part", has_text="was put out by olga (enough)").wait_for()
    wait_for(lambda: members() == [("@", "olga"), ("", "alice")], what="bob gone")


def test_the_page_over_https_chats_with_a_plain_client(make_server: Server, browser: Any,
                                                       tls_files: TLSFiles) -> None:
    """`--https-port`: the page loaded over https:// opens its WebSocket over wss:// to the same door. The browser
    is told to trust the test server's key alone (chromium's SPKI pin), not to ignore certificate errors."""
    server = make_server(https_port=0, tls_port=0, tls_cert=tls_files.cert, tls_key=tls_files.key)
    carol = server.client("carol")
    chromium = launch_chromium(browser.browser_type,
                               f"--ignore-certificate-errors-spki-list={tls_files.spki_pin()}")
    try:
        alice = ChatPage(chromium.new_context().new_page(), server.https_url)
        alice.login("alice")
        host, port = server.https_address
        assert alice.page.evaluate("chat.connection.socket.url") == f"wss://{host}:{port}/ws"
        assert alice.page.evaluate("location.protocol") == "https:"
        alice.say("hello over https")
        assert carol.expect("alice: ") == "[#lobby] alice: hello over https"
        carol.send("and back")
        alice.wait_text("and back")
        assert not alice.problems, alice.problems
    finally:
        chromium.close()


def test_screenshots_at_desktop_and_phone_width(open_page: Callable[..., ChatPage], sqlite_db: str,
                                                tmp_path: Path) -> None:
    """The pictures in the README (docs/web-desktop.png, docs/web-phone.png): a fixed clock and a fixed script,
    so that a run changes them only when the page changes."""
    ticks = iter(range(10**6))
    server = ServerThread(server_config(sqlite_db, web_port=0),
                          clock=lambda: 1_795_510_800.0 + 23 * next(ticks))  # 2026-11-24 09:00 UTC on
    try:
        bob, carol, erin = server.client("bob"), server.client("carol"), server.client("erin")
        bob.send("/register bob's password")  # logged in, bob owns the room he makes: an op, marked in the list
        bob.expect("registered to you")
        script = [
            (bob, "/join dev"), (carol, "/join dev"), (erin, "/join dev"),
            (bob, "/topic #dev Release 0.4: ship it on Thursday"),
            (bob, "morning! the build is green again"), (bob, "/me puts the kettle on"),
            (carol, "nice. was it the flaky storage test?"),
            (bob, "yes: it waited on a sleep, now it waits for the commit"),
            (erin, "the benchmark numbers are in PERFORMANCE.md, web clients included"),
            (carol, "1,000 browsers in one room, on two cores. not bad"),
            (erin, "the page reconnects by itself after a restart, and shows what you missed"),
            (bob, "alice, can you review the web client? https://example.com/pull/12"),
            (carol, "/msg #lobby lunch at 12:30, anyone?"),
        ]
        for who, line in script:  # one at a time: the order (and the ids) are the same every run
            who.send(line)
            who.sync()
        options = {"timezone_id": "UTC", "locale": "en-GB", "color_scheme": "light"}
        desktop = open_page(server.web_url, viewport={"width": 1200, "height": 700}, **options)
        desktop.page.clock.set_fixed_time(1_795_511_200)
        desktop.login("alice")
        desktop.page.fill("#join-room", "dev")
        desktop.page.press("#join-room", "Enter")
        desktop.wait_text("review the web client", key="#dev")
        carol.send("/msg #lobby see you there")
        desktop.conversation("#lobby").locator(".badge").wait_for()
        carol.send("/msg alice thanks for the review!")
        desktop.conversation("@carol").locator(".badge").wait_for()
        desktop.page.fill("#input", "looks good to me, merging")
        desktop.page.locator('#member-list li[data-role="owner"]', has_text="bob").wait_for()
        shot(desktop, tmp_path / "web-desktop.png")
        phone = open_page(server.web_url, viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True,
                          device_scale_factor=2, **options)
        phone.page.clock.set_fixed_time(1_795_511_200)
        phone.login("dana")
        phone.page.fill("#join-room", "dev")
        phone.page.press("#join-room", "Enter")
        phone.wait_text("review the web client", key="#dev")
        shot(phone, tmp_path / "web-phone.png")
    finally:
        server.stop()


def shot(page: ChatPage, path: Path) -> None:
    """Take the picture once the page's fonts are loaded and a frame is painted; with CHAT_UPDATE_SCREENSHOTS=1 it
    replaces the one in docs/ (a normal run leaves the checkout alone)."""
    page.page.evaluate("() => document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r())))")
    page.page.screenshot(path=str(path), animations="disabled", caret="hide")
    assert path.stat().st_size > 10_000  # a picture of something, not a blank page
    if os.environ.get("CHAT_UPDATE_SCREENSHOTS") == "1" and DOCS.is_dir():
        with contextlib.suppress(OSError):  # a read-only checkout: the test still checked the page
            shutil.copyfile(path, DOCS / path.name)
