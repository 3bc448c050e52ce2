"""The search language and the terms a message is found by: pure functions, tested with tables and Hypothesis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.text import sanitize
from chat.search.query import QUERY_MAX, SearchQuery, TextMatch, parse_search
from chat.search.terms import TERM_MAX, is_verbatim, terms, unicode_terms

# ------------------------------------------------------------------------------------------------ terms


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello, World_42!", ["hello", "world", "42"]),
    ("don't stop-me now.", ["don", "t", "stop", "me", "now"]),
    ("Café CRÈME naïve Ångström", ["cafe", "creme", "naive", "angstrom"]),
    ("Straße ＡＢＣ ﬁne", ["strasse", "abc", "fine"]),  # case folding, full width, ligatures
    ("Łódź Øresund Đakovo œuvre", ["lodz", "oresund", "dakovo", "oeuvre"]),
    ("Привет, мир! йод", ["привет", "мир", "йод"]),  # Cyrillic keeps its marks: й is not и
    ("Ελληνικά", ["ελληνικά"]),
    ("東京タワーに行きました", ["東", "京", "タ", "ワ", "ー", "に", "行", "き", "ま", "し", "た"]),
    ("서울에서 만나요", ["서", "울", "에", "서", "만", "나", "요"]),
    ("ｶﾀｶﾅ", ["カ", "タ", "カ", "ナ"]),  # half-width katakana
    ("deploy🎉🎉 done", ["deploy", "🎉", "🎉", "done"]),
    ("👩‍💻 👍🏽 ❤️ 1️⃣ 🇫🇷", ["👩", "💻", "👍", "❤", "1", "🇫", "🇷"]),
    ("'; DROP TABLE messages; --", ["drop", "table", "messages"]),
    ("\" NEAR(a b) AND * ^x col:y", ["near", "a", "b", "and", "x", "col", "y"]),
    ("nul\x00byte esc\x1b[31m ␀", ["nul", "byte", "esc", "31m", "␀"]),  # stored text shows controls as ␀
    ("", []),
])
def test_terms(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_a_long_word_is_cut_to_the_longest_term() -> None:
    assert terms("a" * 4000) == ["a" * TERM_MAX]
    assert terms("é" * 4000) == ["e" * TERM_MAX]
    assert not is_verbatim("a" * (TERM_MAX + 1)) and is_verbatim("a" * TERM_MAX + " b")
    assert is_verbatim("a" * TERM_MAX) and not is_verbatim("x " + "a" * (TERM_MAX + 1))


@given(st.text(st.sampled_from("ab1 .-"), min_size=TERM_MAX - 5, max_size=TERM_MAX + 300))
def test_verbatim_means_no_ascii_word_longer_than_a_term(text: str) -> None:
    """is_verbatim skips its regex for a text no longer than a term: the answer is the same either way."""
    longest = max((len(w) for w in re.findall(r"[a-z0-9]+", text)), default=0)
    assert is_verbatim(text) == (longest <= TERM_MAX)


ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=400)
@given(ANY_TEXT)
def test_terms_are_plain_and_stable(text: str) -> None:
    """Every term is something both engines keep as one token: no whitespace, no ASCII but a-z 0-9, short enough
    for PostgreSQL; and a term is its own only term, so a query of it finds it."""
    for term in terms(text):
        assert 0 < len(term) <= TERM_MAX
        assert not any(ch.isspace() for ch in term)
        assert all(ch.isalnum() and not ch.isupper() for ch in term if ch.isascii())
        assert terms(term) == [term], term


@given(st.text(st.characters(max_codepoint=127), max_size=300))
def test_the_ascii_shortcut_agrees_with_the_general_path(text: str) -> None:
    assert terms(text) == unicode_terms(text)


# ------------------------------------------------------------------------------------------------ the query


def words(*found: str, prefix: bool | None = None) -> TextMatch:
    return TextMatch(found, prefix=len(found[-1]) >= 3 if prefix is None else prefix)


def test_words_phrases_and_exclusions() -> None:
    q = parse_search('deploy failed "exact  phrase" -word -"no way" de')
    assert q.include == (words("deploy"), words("failed"), words("exact", "phrase", prefix=False), words("de"))
    assert q.include[-1].prefix is False  # two letters: a whole word, not every word starting with "de"
    assert q.exclude == (words("word"), words("no", "way", prefix=False))


def test_a_word_that_is_several_terms_is_a_phrase() -> None:
    assert parse_search("example.com").include == (words("example", "com"),)
    assert parse_search("東京").include == (words("東", "京", prefix=False),)
    assert parse_search("👩‍💻").include == (words("👩", "💻", prefix=False),)


def test_filters() -> None:
    q = parse_search("in:#Dev IN:ops in:dev from:Alice From:bob after:2026-11-24 before:2026-11-25T12:00+02:00")
    assert q.rooms == ("Dev", "ops") and q.senders == ("alice", "bob")
    assert q.after == datetime(2026, 11, 24, tzinfo=UTC)
    assert q.before == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert not q.has_text
    tight = parse_search("x after:2026-01-01 after:2026-02-01 before:2026-04-01 before:2026-03-01")
    assert (tight.after, tight.before) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert parse_search("x before:2026-11-24T07:30:15.250Z").before == datetime(2026, 11, 24, 7, 30, 15, 250000,
                                                                                 tzinfo=UTC)
    assert parse_search("x after:2026-11-24T09:00+09:00").after == datetime(2026, 11, 24, tzinfo=UTC) + timedelta(0)


@pytest.mark.parametrize("query", [
    'x"; DROP TABLE messages; --', "NEAR(a b, 5)", "a AND b OR c NOT d", "^start", "col:value", "{a b} : c",
    "a* b * *c", "(((a)))", "re:meeting http://x.com/a?b=c", "'quoted' `ticks`", "a\\b \\\"", "y - -- ---x",
    '"a" "b"', '""x', "x \x00 \x1b[31m", "+a +b", "a + b", 'a"b"c',
])
def test_fts_syntax_is_only_text(query: str) -> None:
    q = parse_search(query)
    found = {t for m in (*q.include, *q.exclude) for t in m.terms}
    assert found <= set(terms(sanitize(query)))  # what is searched is what a stored message would hold
    assert not (q.rooms or q.senders or q.after or q.before)


@pytest.mark.parametrize(("query", "says"), [
    ("", "Nothing to search for"),
    ("   ", "Nothing to search for"),
    ("* ^ ( ) :", "Nothing to search for"),
    ('""', "Nothing to search for"),
    ("-foo", "besides -words"),
    ('"unclosed phrase', "no closing quote"),
    ('x -"unclosed', "no closing quote"),
    ("-in:#dev x", "cannot be excluded"),
    ("in:", "in: needs a value"),
    ("from: x", "from: needs a value"),
    ("in:#bad!room", "not a valid room name"),
    ("from:1nick", "not a valid nickname"),
    ("after:yesterday", "is not a date or time"),
    ("before:2026-02-30", "is not a date or time"),
    ("before:0001-01-01T00:00+01:00", "is not a date or time"),
    ("after:2026-11-25 before:2026-11-24", "is not earlier than"),
    (" ".join(f"w{i}" for i in range(17)), "at most 16 words"),
    ("東" * 65, "at most 64 words"),
    (" ".join(f"in:r{i}" for i in range(17)), "at most 16 in: rooms"),
    ("x" * (QUERY_MAX + 1), "at most 500 characters"),
])
def test_bad_searches_say_why(query: str, says: str) -> None:
    with pytest.raises(ChatError) as caught:
        parse_search(query)
    assert caught.value.code is ErrorCode.BAD_SEARCH
    assert says in caught.value.message


QUERY_PARTS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(['"', "-", "-\"", "in:", "in:#", "from:", "after:", "before:", " ", "  ", "*", "NEAR", "AND",
                     "OR", "NOT", "^", ":", "(", ")", "2026-11-24", "T07:30", "Z", "+02:00", "lobby", "alice", "東京",
                     "🎉", "é", "\x00", "\u200d", "IN:", "From:"]),
)


@settings(max_examples=1500)
@given(st.lists(QUERY_PARTS, max_size=14).map("".join))
def test_any_string_gives_a_query_or_a_bad_search(query: str) -> None:
    """Never a crash; and the canonical form of a query is the same query."""
    try:
        q = parse_search(query)
    except ChatError as e:
        assert e.code is ErrorCode.BAD_SEARCH and e.message.endswith(".")
        return
    assert isinstance(q, SearchQuery)
    assert q.include or q.rooms or q.senders or q.after or q.before
    canonical = q.text()
    if len(canonical) <= QUERY_MAX:
        assert parse_search(canonical) == q, canonical


@given(ANY_TEXT)
def test_any_text_parses_or_is_refused(query: str) -> None:
    try:
        parse_search(query)
    except ChatError as e:
        assert e.code is ErrorCode.BAD_SEARCH


def test_dates_near_the_ends_of_time() -> None:
    assert parse_search("after:9999-12-31").after == datetime(9999, 12, 31, tzinfo=UTC)
    assert parse_search("before:0001-01-02").before == datetime(1, 1, 2, tzinfo=UTC)
    assert parse_search("x after:2026-11-24T00:00-01:00").after == datetime(2026, 11, 24, tzinfo=UTC) + timedelta(
        hours=1)
