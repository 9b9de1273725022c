"""The compiled-query cache the query threads share: bounded in queries and in forms per query, LRU first."""

from __future__ import annotations

import threading
from typing import cast

from logtraced.query.ast import Compare, MatchAll, Node, Op
from logtraced.storage.tantivy.reader import COMPILED_QUERIES, COMPILED_VARIANTS, CompiledCache, CompiledVariant


def word(text: str) -> Node:
    return Compare(Op.MATCH, None, text)


def variant(tag: int) -> CompiledVariant:
    """A stand-in form: the cache only keeps and returns what it is given."""
    return cast(CompiledVariant, (tag, {}, frozenset(), None, None))


def test_the_least_recently_used_query_goes_first() -> None:
    cache = CompiledCache()
    keys = [(word(f"word{n}"), False) for n in range(COMPILED_QUERIES)]
    for n, key in enumerate(keys):
        cache.add(key, variant(n))
    assert cache.variants(keys[0]) == [variant(0)]  # now the most recently used
    cache.add((MatchAll(), False), variant(-1))
    assert cache.variants(keys[1]) == []
    assert cache.variants(keys[0]) == [variant(0)]
    assert cache.variants((MatchAll(), False)) == [variant(-1)]


def test_a_query_keeps_its_newest_forms_and_hands_out_copies() -> None:
    cache = CompiledCache()
    key = (word("timeout"), True)
    for n in range(COMPILED_VARIANTS + 3):
        cache.add(key, variant(n))
    held = cache.variants(key)
    assert [form[0] for form in held] == list(range(3, COMPILED_VARIANTS + 3))
    held.clear()
    assert len(cache.variants(key)) == COMPILED_VARIANTS


def test_threads_adding_and_reading_at_once_never_fail() -> None:
    cache = CompiledCache()
    failures: list[BaseException] = []

    def churn(offset: int) -> None:
        try:
            for n in range(20_000):
                key = (word(f"w{(n * 7 + offset) % (COMPILED_QUERIES * 2)}"), False)
                cache.add(key, variant(n))
                cache.variants((word(f"w{n % (COMPILED_QUERIES * 2)}"), False))
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread is the finding
            failures.append(exc)

    threads = [threading.Thread(target=churn, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all(len(cache.variants((word(f"w{n}"), False))) <= COMPILED_VARIANTS for n in range(COMPILED_QUERIES * 2))


def test_variants_of_an_unknown_query_is_empty() -> None:
    assert CompiledCache().variants((word("never"), False)) == []
