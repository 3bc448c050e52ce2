"""The account workers: a small pool of threads that hash and verify passwords, off the event-loop thread.

An argon2id hash costs tens to hundreds of milliseconds of CPU and 64 MiB (chat.passwords). On the loop thread
one login would stall every chat for that long; a login storm would stall it for good. So logins, registrations
and password changes are jobs for this pool: `threads` threads (argon2-cffi releases the GIL while it hashes, so
the loop keeps serving meanwhile) and at most `queue_max` jobs waiting. A job finds the pool full only when a
storm is on: it is answered at once with `server_busy` instead of waiting behind it, so memory and the wait stay
bounded. Each job reads or writes its account row itself (one short transaction: chat.storage.accounts), so a
login reads the password hash the CLI may have changed a second before.

Results come back as the storage threads' do: a `done` deque and one byte on the loop's wake pipe. Jobs touch
no chat state: the loop hands each back to the services (ChatService.account_done) on its own thread.

A job holds the password only until it is hashed or checked; it is never logged (a failure logs the database's
own words, never the statement's parameters).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.server.member import Member
from chat.storage.records import StoredAccount

if TYPE_CHECKING:  # the services import this module, and run without a database library (or argon2)
    from chat.passwords import Hasher
    from chat.storage.accounts import AccountStore

log = logging.getLogger("chat.accounts")

# How much less CPU priority the hashing threads take than the event loop (Linux nice values are per thread): a
# login storm gets the cores the chat leaves, not the other way round (benchmarks/logins.py measured it).
HASHING_NICENESS = 10


@dataclass(slots=True, eq=False)
class LoginJob:
    """Check `password` against the account `key`; `take_nick`: the member takes the account's nick at once."""

    member: Member
    nick: str
    key: str
    password: str | None
    take_nick: bool = True
    prompted: bool = False  # the password came as the plain line after PasswordWanted
    # the answer
    account: StoredAccount | None = None  # None: no such account
    ok: bool = False
    busy: bool = False  # refused unchecked: too many jobs waiting
    error: Exception | None = None
    node: str | None = None  # a clustered node's name: a good password also takes the nick across the cluster
    elsewhere: bool = False  # the answer of that: a member of another node holds it (logged in there)
    oper: bool = False  # /oper: a check of an admin account's password, not a login (the nick stays the member's)

    def run(self, accounts: AccountStore, hasher: Hasher) -> None:
        password, self.password = self.password or "", None
        found = accounts.credentials(self.key)
        if found is None:
            return
        self.account, stored = found
        checked = hasher.verify(stored, password)
        self.ok = checked.ok
        if checked.rehashed is not None:  # made with other parameters: store it as they are now
            accounts.set_password(self.account.id, checked.rehashed, replacing=stored)
        if self.ok and self.node is not None and not self.oper:
            from chat.storage.cluster import claim_presence

            self.elsewhere = not claim_presence(accounts.engine, self.key, self.account.nick, self.node,
                                                self.member.id)


@dataclass(slots=True, eq=False)
class RegisterJob:
    """Make the member's nick an account with `password`."""

    member: Member
    nick: str
    key: str
    password: str | None
    # the answer
    account: StoredAccount | None = None  # None: registered meanwhile by someone else
    busy: bool = False
    error: Exception | None = None

    def run(self, accounts: AccountStore, hasher: Hasher) -> None:
        password, self.password = self.password or "", None
        self.account = accounts.register(self.nick, self.key, hasher.hash(password))


@dataclass(slots=True, eq=False)
class PasswordJob:
    """Give the member's account a new password."""

    member: Member
    account_id: int
    password: str | None
    # the answer
    ok: bool = False  # False: the account was deleted meanwhile
    busy: bool = False
    error: Exception | None = None

    def run(self, accounts: AccountStore, hasher: Hasher) -> None:
        password, self.password = self.password or "", None
        self.ok = accounts.set_password(self.account_id, hasher.hash(password))


AccountJob = LoginJob | RegisterJob | PasswordJob


class AccountWorkers:
    """`threads` threads taking account jobs; at most `threads + queue_max` jobs in the pool at once."""

    def __init__(self, accounts: AccountStore, hasher: Hasher, notify: Callable[[], None], threads: int = 2,
                 queue_max: int = 8) -> None:
        self.accounts = accounts
        self.hasher = hasher
        self.notify = notify
        self.capacity = threads + queue_max
        self.in_flight = 0  # jobs handed over and not yet taken back (the loop thread's count)
        self.done: deque[AccountJob] = deque()
        self._jobs: queue.SimpleQueue[AccountJob | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"chat-accounts-{i}", daemon=True)
                         for i in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: AccountJob) -> None:
        """Hand a job over, or, when the pool is full, hand it straight back marked `busy`."""
        if self.in_flight >= self.capacity:
            job.busy = True
            job.password = None
            self.done.append(job)
            return
        self.in_flight += 1
        self._jobs.put(job)

    def taken_back(self, job: AccountJob) -> None:
        """The loop took `job` out of `done`."""
        if not job.busy:
            self.in_flight -= 1

    def stop(self, timeout: float = 30.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: the same priority, then
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HASHING_NICENESS))
        while (job := self._jobs.get()) is not None:
            if job.member.gone:  # nobody to answer: skip the hashing
                job.password = None
            else:
                try:
                    job.run(self.accounts, self.hasher)
                except Exception as e:  # the member is told; the job goes back all the same
                    job.error = e
                    job.password = None
                    cause = getattr(e, "orig", None) or e
                    first = (str(cause).strip().splitlines() or [""])[0]
                    log.error("accounts: a %s failed: %s: %s", type(job).__name__, type(cause).__name__, first,
                              extra={"event": "account_error"})
            self.done.append(job)
            job = None  # handed back: do not keep it (or its member) alive while waiting
            self.notify()
