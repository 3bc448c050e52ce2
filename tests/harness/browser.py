"""A real browser for the web client's tests: Debian's chromium, driven headless by Playwright (its Python
package only: a browser download at install time cannot work here, so `playwright install` is never run)."""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")
# No sandbox (CI runs as root), no GPU, nothing fetched from the network by the browser itself. Playwright
# gives every launch a fresh temporary profile (user-data-dir) and every context its own storage.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")


def browser_unavailable() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        return f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    return None


def launch(playwright: Any) -> Any:
    return launch_chromium(playwright.chromium)


def launch_chromium(browser_type: Any, *extra_args: str) -> Any:
    """Another chromium, with options of its own (`browser.browser_type`: one Playwright per process)."""
    return browser_type.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


class ChatPage:
    """The chat page in one browser tab, with the few moves the tests make."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.problems: list[str] = []  # script errors and console errors: a test ends with none
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def login(self, nick: str, password: str | None = None, wait: bool = True) -> None:
        """Open the page (if it is not open yet) and log in as a guest, or to an account with its password."""
        if self.page.url != self.url:
            self.page.goto(self.url)
        self.page.fill("#login-nick", nick)
        self.page.fill("#login-password", password or "")
        self.page.click("#login-button")
        if wait:
            self.wait_online()

    def wait_online(self, timeout: float = 15) -> None:
        self.page.wait_for_selector('#status[data-state="online"]', timeout=timeout * 1000)

    def say(self, text: str) -> None:
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")

    def log(self, key: str = "#lobby") -> Any:
        return self.page.locator(f'.log[data-key="{key}"]')

    def texts(self, key: str = "#lobby") -> list[str]:
        """The text of every message shown in a conversation, top to bottom."""
        return self.log(key).locator(".msg .text").all_text_contents()

    def ids(self, key: str = "#lobby") -> list[int]:
        return [int(i) for i in self.log(key).locator(".msg").evaluate_all("els => els.map(e => e.dataset.id)")]

    def wait_text(self, text: str, key: str = "#lobby", timeout: float = 10) -> None:
        self.log(key).locator(".msg .text", has_text=text).first.wait_for(state="attached", timeout=timeout * 1000)

    def conversation(self, key: str) -> Any:
        """Its button in the sidebar."""
        return self.page.locator(f'#conversations button[data-key="{key}"]')
