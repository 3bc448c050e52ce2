"""Masks for the room lists that take them (bans +b, ban exceptions +e, invite exceptions +I): IRC's
`nick!user@host` with `*` (any run of characters) and `?` (one character).

A word is either a nick (`bob`, or IRC's `bob!*@*`, which says the same), kept by nick key as bans always were
(a logged-in nick's ban also holds its account), or a mask, kept whole and matched against `nick!user@host` as
the IRC door shows a member (WHO, USERHOST): its nick, its USER name (its nick for a native client, which has
none) and the server's name for every host (no door shows anyone's address, so no mask can test one).

Matching is never exponential: a mask compiles to one regular expression in which each run between `*`s is an
atomic group that takes the leftmost place it fits (for `*`-globs the leftmost fit is always a right one), so
nothing is tried twice; the work is at most the mask's length times the subject's, in C."""

from __future__ import annotations

import functools
import re

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.names import check_nick, is_valid_nick, name_key

MASK_MAX = 100  # characters of a mask as kept (after `nick` is filled out to `nick!*@*`, runs of `*` made one)
WORD_MAX = 4 * MASK_MAX  # characters of a mask as given: more than any run of `*` could shrink to MASK_MAX
_MASK_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII but space: names and hosts here are ASCII


def is_mask(key: str) -> bool:
    """Is a list entry's key a mask (else a nick key)? No nick has a `!`, and every mask does."""
    return "!" in key


def list_entry(word: str) -> tuple[str, str]:
    """The entry a list word stands for: (as shown, its key). A nick, or `nick!*@*`, is that nick (its key the
    nick key); anything else is a mask, filled out to `nick!user@host` (`a*` -> `a*!*@*`, `u@h` -> `*!u@h`,
    `n!u` -> `n!u@*`), with its runs of `*` made one, keyed in lower case. Raise ChatError for what is neither."""
    nick = word[:-4] if word.endswith("!*@*") else word
    if is_valid_nick(nick):
        return nick, name_key(nick)
    if len(word) > WORD_MAX:
        raise _bad(word, f"at most {MASK_MAX} characters")
    if _MASK_CHARS.fullmatch(word) is None:
        raise _bad(word, "printable ASCII without spaces")
    if "!" not in word and "@" not in word:
        if not set(word) & set("*?"):
            check_nick(word)  # neither a nick nor a pattern: say why as a nick
        word += "!*@*"
    elif "!" not in word:
        word = "*!" + word
    elif "@" not in word:
        word += "@*"
    nick_part, _, rest = word.partition("!")
    user, _, host = rest.partition("@")
    if not nick_part or not user or not host or "!" in rest or "@" in host or "@" in nick_part:
        raise _bad(word, "nick!user@host, each part at least one character")
    mask = re.sub(r"\*+", "*", word)
    if len(mask) > MASK_MAX:
        raise _bad(mask, f"at most {MASK_MAX} characters")
    return mask, mask.lower()


def subject(nick: str, user: str | None, host: str) -> str:
    """What a mask is matched against: `nick!user@host` as IRC shows the member, in lower case."""
    return f"{nick}!{user or nick}@{host}".lower()


def matches(key: str, text: str) -> bool:
    """Does the mask `key` (a lower-case entry key) match `text` (a lower-case `subject`)?"""
    return _compiled(key).fullmatch(text) is not None


@functools.lru_cache(maxsize=4096)
def _compiled(key: str) -> re.Pattern[str]:
    runs = [re.escape(run).replace(r"\?", ".") for run in key.split("*")]
    if len(runs) == 1:
        return re.compile(runs[0], re.DOTALL)
    first, middle, last = runs[0], runs[1:-1], runs[-1]
    # each middle run at its leftmost fit, committed (atomic); the last run at the end
    pattern = first + "".join(f"(?>.*?{run})" for run in middle if run) + f".*{last}"
    return re.compile(pattern, re.DOTALL)


def _bad(word: str, rule: str) -> ChatError:
    shown = word if len(word) <= 40 else word[:40] + "..."
    return ChatError(ErrorCode.BAD_ARGUMENT, f"{shown!r} is not a nick or a mask ({rule}).")
