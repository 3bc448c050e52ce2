"""Make user text safe to show on someone else's terminal, and unable to pass for the server's own lines.

Every text a user sends (messages, actions, topics, part and quit reasons, ping tokens) goes through `sanitize()`
when its line is accepted, and again when it is read back from a database (an older chat, or another program,
may have written it). The database is never rewritten; what is stored, sent, shown and exported follows this rule:

1. Controls. C0 controls and DEL become their visible "control pictures" (ESC shows as ␛, LF as ␊), a tab becomes
   a space, C1 controls (NEL and CSI among them) become U+FFFD. No escape sequence reaches a terminal.
2. Line breaks. U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR become ␤ (U+2424). Some terminals and
   clients, and every `str.splitlines()`, end a line there: text could otherwise start a line of its own, and a
   quit reason could end the server's `*** bob quit (...)` line and forge the next one.
3. Invisible characters: the format characters (Unicode category Cf) and Unicode's default-ignorable code points
   (zero-width space and joiners, word joiner, BOM, bidi marks, embeddings, overrides and isolates with U+061C,
   soft hyphen, the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, U+034F, variation selectors, tag
   characters...) become U+FFFD: they let text hide, reorder or pad itself. They are kept where they are part of
   visible writing:
   - ZWJ U+200D and ZWNJ U+200C between two visible characters (emoji sequences, Indic scripts, Persian);
   - one variation selector right after a visible character (❤️, keycaps, ideographic variants);
   - the tags of an emoji tag sequence: 🏴 then 1-8 tag letters or digits then the cancel tag (the flags of
     England, Scotland and Wales).
4. Combining marks: at most 4 in a row after a character (Vietnamese, Thai, Hebrew with points and cantillation,
   Tibetan stacks need no more); more are dropped, so "Zalgo" text cannot spill over the lines around it. A mark
   at the very start of a text is put on a dotted circle ◌ (U+25CC), so it cannot attach to the character the
   server writes before the text.

Spaces of every width are kept (U+3000 is how Japanese is spaced), and so is U+2800 BRAILLE PATTERN BLANK (it is
braille). `sanitize()` is idempotent: sanitized text comes back unchanged.
"""

from __future__ import annotations

import re

import regex

MARKS_MAX = 4  # combining marks kept in a row after one character
DOTTED_CIRCLE = "\u25cc"  # the base Unicode draws a lone combining mark on
REPLACEMENT = "\ufffd"

_CONTROLS: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20)}
_CONTROLS[0x09] = " "
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({c: REPLACEMENT for c in range(0x80, 0xA0)})

# What to look for before doing any work. ASCII text can only hold controls; other text is searched for each
# kind of trouble with a pattern of one property each (the `regex` module's \p{...} classes are fast alone).
_CONTROL_OR_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORMAT = regex.compile(r"\p{Cf}")
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
_MARK_TROUBLE = regex.compile(rf"^\p{{M}}|\p{{M}}{{{MARKS_MAX + 1}}}")

_SELECTORS = r"\ufe00-\ufe0f\U000e0100-\U000e01ef\u180b-\u180d\u180f"  # variation selectors (Mongolian too)
_FLAG = "\U0001f3f4"  # WAVING BLACK FLAG, the base of emoji tag sequences
# The characters whose fate depends on their kind and neighbours, one token per kind (in order of precedence).
# What lies between two tokens is ordinary text (letters, digits, symbols, spaces) and is kept as it is.
_TOKENS = regex.compile(
    rf"""(?P<flag>{_FLAG}[\U000e0030-\U000e0039\U000e0061-\U000e007a]{{1,8}}\U000e007f)
    |(?P<replaced>\ufffd)
    |(?P<control>[\x00-\x1f\x7f-\x9f])
    |(?P<linebreak>[\u2028\u2029])
    |(?P<joiner>[\u200c\u200d])
    |(?P<selector>[{_SELECTORS}])
    |(?P<invisible>[\p{{Cf}}\p{{Default_Ignorable_Code_Point}}])
    |(?P<marks>[\p{{M}}--[{_SELECTORS}]]+)""",
    regex.VERBOSE | regex.V1,
)

# What the last character written was, for the characters whose fate depends on it. A U+FFFD (written here, or
# already in the text) joins nothing and takes no variation selector, so sanitizing twice changes nothing more.
_START, _BASE, _REPLACED, _SPACE, _MARK, _SELECTOR, _JOINER = range(7)


def sanitize(text: str) -> str:
    """Return `text` made harmless and visible by the rules above (unchanged, and not copied, if it already is)."""
    if text.isascii():  # the common case: only controls to look for
        # in ASCII, isprintable() is False exactly for the controls (0x00-0x1f, 0x7f): a C loop, 4x the regex's speed
        return text if text.isprintable() else text.translate(_CONTROLS)
    if (_CONTROL_OR_BREAK.search(text) is None and _FORMAT.search(text) is None
            and _IGNORABLE.search(text) is None and _MARK_TROUBLE.search(text) is None):
        return text
    return _rewrite(text)


def _rewrite(text: str) -> str:
    tokens = list(_TOKENS.finditer(text))
    out: list[str] = []
    last, marks, at = _START, 0, 0
    for i, token in enumerate(tokens):
        if token.start() > at:  # ordinary text before this token
            out.append(text[at:token.start()])
            last, marks = (_SPACE if text[token.start() - 1].isspace() else _BASE), 0
        at = token.end()
        kind, piece = token.lastgroup, token.group()
        if kind == "flag":
            out.append(piece)
            last, marks = _BASE, 0
        elif kind == "replaced":
            out.append(piece)
            last, marks = _REPLACED, 0
        elif kind == "control":
            shown = piece.translate(_CONTROLS)
            out.append(shown)
            last = _SPACE if shown == " " else _REPLACED if shown == REPLACEMENT else _BASE
            marks = 0
        elif kind == "linebreak":
            out.append("\u2424")
            last, marks = _BASE, 0
        elif kind == "joiner":
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if last in (_BASE, _MARK, _SELECTOR) and _joins_onto(text, at, following):
                out.append(piece)
                last = _JOINER
            else:
                out.append(REPLACEMENT)
                last, marks = _REPLACED, 0
        elif kind == "selector":
            if last == _BASE:
                out.append(piece)
                last, marks = _SELECTOR, marks + 1
            else:
                out.append(REPLACEMENT)
                last, marks = _REPLACED, 0
        elif kind == "invisible":
            out.append(REPLACEMENT)
            last, marks = _REPLACED, 0
        else:  # marks
            if last == _START:
                out.append(DOTTED_CIRCLE)
            kept = piece[:max(0, MARKS_MAX - marks)]
            out.append(kept)
            last, marks = _MARK, marks + len(kept)
    out.append(text[at:])
    return "".join(out)


def _joins_onto(text: str, at: int, following: regex.Match[str] | None) -> bool:
    """Whether a joiner ending at `at` is followed by a visible character: ordinary text, or a flag."""
    if following is not None and following.start() == at:
        return following.lastgroup == "flag"
    return at < len(text) and not text[at].isspace()
