"""The terms a message is found by: one definition, used to index messages and to read queries, on both databases.

Neither SQLite's tokenizers nor PostgreSQL's text-search parser decide what a word is: both would decide
differently (PostgreSQL's even by the database's locale), and neither handles every script users write in.
`terms()` does it here, and the engines only match whole terms and runs of adjacent terms (phrases):

* **Case and accents do not matter**: text is NFKC-normalised and case-folded (`Straße` = `strasse`, full-width
  `ＡＢＣ` = `abc`), and accents are taken off Latin letters (`café` = `cafe`, `Łódź` = `lodz`), as SQLite's
  `unicode61 remove_diacritics 2` does. Other scripts keep their marks: `й` is not `и`.
* **Words** are runs of letters, digits and their combining marks. Everything else separates them (`don't` is
  `don t`, `foo_bar` is `foo bar`), as FTS5's `ascii` tokenizer does for ASCII, so an ASCII message is stored
  as it is and split by SQLite itself.
* **Scripts written without spaces** (Chinese, Japanese, Korean, Thai, Lao, Khmer, Myanmar) give one term per
  character (with its marks). A query's `東京` becomes the phrase `東 京`: any run of characters is found
  inside a longer run, whatever its length. (Trigrams would miss one- and two-character words, which are most
  Chinese words.)
* **Emoji and other symbols** are one term each (`🎉`). Joiners, variation selectors and skin-tone modifiers
  separate or vanish: `👩‍💻` is the phrase `👩 💻`, `👍🏽` is found by `👍`.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from functools import lru_cache

TERM_MAX = 255  # characters: at most 1020 bytes, under PostgreSQL's 2047-byte limit for one lexeme
PREFIX_MIN = 3  # a query term this long also matches longer words it begins (see chat.search.query)

_ASCII_WORD = re.compile(r"[a-z0-9]+")
_ASCII_LONG_WORD = re.compile(rf"[A-Za-z0-9]{{{TERM_MAX + 1}}}")

# Scripts written without spaces between words: each character is a term of its own.
_SOLO_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31A0, 0x31FF),  # Bopomofo extended, Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x323AF),  # CJK extensions B to H
)
_SOLO_STARTS = [start for start, _ in _SOLO_RANGES]
# Latin letters that carry their "accent" without a decomposition
_LATIN_EXTRA = {"ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ł": "l", "ŀ": "l", "ŧ": "t", "æ": "ae", "œ": "oe"}

_SEP, _WORD, _LATIN, _MARK, _SOLO, _SYMBOL, _IGNORE = range(7)


def terms(text: str) -> list[str]:
    """The terms of `text`, in order (a term may repeat). Each is non-empty, at most TERM_MAX characters, holds no
    ASCII character other than a-z and 0-9, and is its own only term: `terms(t) == [t]`."""
    if text.isascii():
        return ascii_terms(text)
    return unicode_terms(text)


def ascii_terms(text: str) -> list[str]:
    """`terms()` for ASCII text (the writer's hot path on PostgreSQL: no call it can do without)."""
    found = _ASCII_WORD.findall(text.lower())
    if len(text) > TERM_MAX:  # only then can a word be longer than a term
        return [t[:TERM_MAX] for t in found]
    return found


def is_verbatim(text: str) -> bool:
    """True when SQLite's `ascii` tokenizer, given `text` itself, finds exactly `terms(text)`: then the index is
    given the text as it is, with no work in Python."""
    # (a text no longer than a term cannot hold a word longer than one: no regex for nearly every message)
    return text.isascii() and (len(text) <= TERM_MAX or _ASCII_LONG_WORD.search(text) is None)


def unicode_terms(text: str) -> list[str]:
    """`terms()` for any text (the general path; `terms()` takes a shortcut for ASCII)."""
    out: list[str] = []
    word: list[str] = []
    solo = False  # the current term is one character of a script without spaces (and its marks)
    keep_marks = False  # combining marks belong to the current term (not after a Latin letter: accents go)
    for ch in _normalize(text):
        kind, folded = _classify(ch)
        if kind == _MARK:
            if word and keep_marks:
                word.append(ch)
        elif kind in (_WORD, _LATIN):
            if solo:
                _flush(out, word)
                solo = False
            word.append(folded)
            keep_marks = kind == _WORD
        elif kind == _SOLO:
            _flush(out, word)
            word.append(ch)
            solo = keep_marks = True
        elif kind == _SYMBOL:
            _flush(out, word)
            out.append(ch)
            solo = keep_marks = False
        elif kind == _SEP:
            _flush(out, word)
            solo = keep_marks = False
        # _IGNORE: as if it were not there
    _flush(out, word)
    return out


def _flush(out: list[str], word: list[str]) -> None:
    if word:
        term = "".join(word)
        if term:
            out.append(term[:TERM_MAX])
        word.clear()


def _normalize(text: str) -> str:
    # NFKC after folding as well: case folding can leave text decomposed (ΐ folds to three code points)
    once = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if once.casefold() == once:
        return once
    return unicodedata.normalize("NFKC", once.casefold())


@lru_cache(maxsize=1 << 16)
def _classify(ch: str) -> tuple[int, str]:
    """What a (normalised, folded) character does, and what it is indexed as."""
    cp = ord(ch)
    if 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:  # variation selectors
        return _IGNORE, ""
    i = bisect.bisect_right(_SOLO_STARTS, cp) - 1
    if i >= 0 and cp <= _SOLO_RANGES[i][1] and unicodedata.category(ch)[0] in "LN":
        return _SOLO, ch
    category = unicodedata.category(ch)
    if category[0] == "M":
        return _MARK, ch
    if category == "So":
        return _SYMBOL, ch
    if category[0] not in "LN":
        return _SEP, ""
    if cp < 0x80:
        return _LATIN, ch
    if ch in _LATIN_EXTRA:
        return _LATIN, _LATIN_EXTRA[ch]
    if unicodedata.name(ch, "").startswith("LATIN"):
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        return _LATIN, base if base.isascii() and base.isalnum() else ch
    return _WORD, ch
