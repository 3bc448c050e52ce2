"""Password hashing: argon2id through argon2-cffi, one place for the rules a password must meet.

Hashing and verifying cost tens to hundreds of milliseconds and 64 MiB each with the default profile, on purpose:
the server never does it on its event-loop thread (chat.server.account_worker runs it on a small pool). The CLI
(`chat users add`) calls it directly.

A password is never logged, stored or echoed: only its argon2id hash (`$argon2id$v=19$m=...`) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from chat.protocol.errors import ChatError, ErrorCode

PASSWORD_MIN = 8  # characters
# characters: longer ones only cost the hasher, they add nothing. 1024, not less: an IRC client's SASL PLAIN
# carries up to 1,200 bytes (4 AUTHENTICATE chunks of 400 base64 characters), and irctest tries passwords of 300 and
# 592; argon2id prehashes the password once with BLAKE2b, so 1,024 characters cost it microseconds more than 8
PASSWORD_MAX = 1024

# RFC 9106's second recommended option (argon2id, t=3, 64 MiB, 4 lanes): its "low memory" profile, for machines
# that cannot spend 2 GiB per hash. `test` is the cheapest argon2id there is: for the test suite only.
PROFILES = {
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "test": profiles.CHEAPEST,
}
DEFAULT_PROFILE = "rfc9106-low-memory"


def check_password(password: str) -> str:
    """Refuse a password too short to resist guessing (or too long to hash for free)."""
    if len(password) < PASSWORD_MIN:
        raise ChatError(ErrorCode.WEAK_PASSWORD, f"A password needs at least {PASSWORD_MIN} characters; that one "
                        f"has {len(password)}. A few words make a good one.")
    if len(password) > PASSWORD_MAX:
        raise ChatError(ErrorCode.WEAK_PASSWORD, f"A password may have at most {PASSWORD_MAX} characters.")
    return password


@dataclass(slots=True)
class Checked:
    """The outcome of a verification: `rehashed` is a new hash when the stored one used other parameters."""

    ok: bool
    rehashed: str | None = None


class Hasher:
    """argon2id with one profile's parameters. Thread-safe: argon2-cffi releases the GIL while it hashes."""

    def __init__(self, profile: str = DEFAULT_PROFILE) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown password profile {profile!r} (known: {', '.join(PROFILES)})")
        self.profile = profile
        self._argon2 = PasswordHasher.from_parameters(PROFILES[profile])

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, stored: str, password: str) -> Checked:
        try:
            self._argon2.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Checked(False)
        if self._argon2.check_needs_rehash(stored):  # the server's parameters changed since it was made
            return Checked(True, self._argon2.hash(password))
        return Checked(True)
