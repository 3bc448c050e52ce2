"""What user text may hold (chat/protocol/text.py): tables of attacks and of real writing, and properties for any
text. The same attacks over a real server are in test_reliability_spoofing.py."""

from __future__ import annotations

import unicodedata

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from chat.protocol.text import MARKS_MAX, sanitize

ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # line breaks: none survives, so no text can start a line or end the server's
        ("bye)\u2029*** carol quit (x", "bye)␤*** carol quit (x"),
        ("bye)\u2028*** carol quit (x", "bye)␤*** carol quit (x"),
        ("a\nb\rc\x0bd\x0ce\x1cf\x1dg\x1eh", "a␊b␍c␋d␌e␜f␝g␞h"),
        ("x\x85y", "x\ufffdy"),  # NEL, a C1 control
        ("\x1b]0;pwned\x07", "␛]0;pwned␇"),
        ("tab\there", "tab here"),
        (" \u2028 \t", " ␤  "),  # a break inside a run of spaces
        # bidi controls, U+061C among them
        ("\u202egnp.exe", "\ufffdgnp.exe"),
        ("x\u061cy\u200ez\u200f", "x\ufffdy\ufffdz\ufffd"),
        ("\u2066isolated\u2069", "\ufffdisolated\ufffd"),
        # invisible characters
        ("adm\u200bin", "adm\ufffdin"),
        ("\u2060\ufeff\u00ad", "\ufffd\ufffd\ufffd"),
        ("\u3164", "\ufffd"),  # HANGUL FILLER: the "empty" message
        ("\u115f\u1160\uffa0", "\ufffd\ufffd\ufffd"),
        ("x\u180ey\u034fz", "x\ufffdy\ufffdz"),
        ("x\ufff9hidden\ufffbz", "x\ufffdhidden\ufffdz"),
        ("a\u200c", "a\ufffd"),  # a joiner with nothing to join
        ("\u200db", "\ufffdb"),
        ("a\u200d\u200db", "a\ufffd\ufffdb"),
        ("a \u200d b", "a \ufffd b"),
        # tag characters: hidden text, unless they spell a flag
        ("hi\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065", "hi" + "\ufffd" * 6),
        ("\U000e0001\U000e0065\U000e006e", "\ufffd\ufffd\ufffd"),
        ("\U0001f3f4\U000e0067\U000e007f\U000e007f", "\U0001f3f4\U000e0067\U000e007f\ufffd"),
        # variation selectors: one, after a character
        ("\u2764\ufe0f\ufe0f", "\u2764\ufe0f\ufffd"),
        ("a\U000e0100\U000e0101\U000e0102b", "a\U000e0100\ufffd\ufffdb"),  # data smuggled in selectors
        ("\ufe0f", "\ufffd"),
        # combining marks: a few per character, and never on the server's text
        ("Z" + "\u0301\u0316\u0353" * 10, "Z\u0301\u0316\u0353\u0301"),
        ("\u0336\u0336\u0336struck", "\u25cc\u0336\u0336\u0336struck"),
        ("\u20dd", "\u25cc\u20dd"),
    ],
)
def test_attacks_are_made_visible(text: str, shown: str) -> None:
    assert sanitize(text) == shown


REAL_WRITING = [
    "hello, world", "Tiếng Việt có dấu", "Ti\u0065\u0302\u0301ng Vie\u0323\u0302t",  # Vietnamese, precomposed or not
    "नमस्ते दुनिया", "क्षत्रिय", "ภาษาไทย ที่นี่", "שָׁלוֹם", "בְּרֵאשִׁ֖ית", "ཧྲཱུྃ", "مرحبا بالعالم",
    "می\u200cخواهم", "ക്\u200dക", "日本語\u3000の\u3000文", "한국어", "Ελληνικά", "русский",
    "👍🏽 👨\u200d👩\u200d👧\u200d👦 🏳\ufe0f\u200d🌈 ❤\ufe0f\u200d🔥 1\ufe0f\u20e3 🇫🇷 " + ENGLAND,
    "葛\U000e0100城市", "⠓⠑⠇⠇⠕\u2800⠺⠕⠗⠇⠙", "non\u00a0breaking and narrow\u202fno-break", "\ue0b0 powerline",
]


@pytest.mark.parametrize("text", REAL_WRITING)
def test_real_writing_is_left_alone(text: str) -> None:
    assert sanitize(text) == text


_SPLITS_LINES = regex.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_ALLOWED_INVISIBLE = regex.compile(r"[\u200c\u200d\ufe00-\ufe0f\U000e0100-\U000e01ef\u180b-\u180d\u180f"
                                   r"\U000e0020-\U000e007f]")


# characters whose fate depends on their neighbours, mixed into any text more often than chance would
TRICKY = st.sampled_from(list("\u200c\u200d\ufe0f\ufe0e\u0301\u20e3\U0001f3f4\U000e0067\U000e007f\ufffd"
                              " \u2028\x85\t\u3164a\U000e0100"))


@given(st.text(alphabet=st.one_of(st.characters(), TRICKY), max_size=200))
def test_any_text_is_made_safe_and_sanitizing_twice_changes_nothing(text: str) -> None:
    shown = sanitize(text)
    assert sanitize(shown) == shown
    assert len(shown.splitlines()) <= 1 and _SPLITS_LINES.search(shown) is None
    assert not any(unicodedata.category(ch) == "Cc" for ch in shown)
    for m in regex.finditer(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]", shown):  # kept only inside writing
        assert _ALLOWED_INVISIBLE.fullmatch(m.group()), ascii(shown)
    assert regex.search(rf"^\p{{M}}|[\p{{M}}]{{{MARKS_MAX + 1}}}", shown) is None, ascii(shown)
    assert shown or not text


@given(st.text(alphabet=st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=100))
def test_text_without_controls_invisibles_or_marks_is_unchanged(text: str) -> None:
    if regex.search(r"\p{Default_Ignorable_Code_Point}", text) is None:  # the Hangul fillers are letters (Lo)
        assert sanitize(text) is text


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_is_kept_or_replaced_as_a_control(code: int) -> None:
    """ASCII text takes a shortcut (str.isprintable): every ASCII control, and only a control, is replaced."""
    ch = chr(code)
    shown = sanitize(f"a{ch}b")
    if code < 0x20 or code == 0x7F:
        assert shown != f"a{ch}b" and ch not in shown and shown.startswith("a") and shown.endswith("b")
    else:
        assert shown == f"a{ch}b"
