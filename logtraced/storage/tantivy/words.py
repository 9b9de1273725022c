"""Each settled day-partition's message words held in memory, so a word piece open on its left is found by a scan.

Tantivy finds the indexed words containing `zq7xkw` (or ending in `timeout`) only by running an
automaton over the whole term dictionary: 15-150 ms for a day of 1.4M events and 500 000 distinct
words on this project's benchmark machine, paid by every search and every day it reads.  The same
words joined into one bytes string are scanned by RE2 in about a millisecond, and the query then
names exactly the words found (a term set, no walk).

Listing a dictionary through tantivy-py costs more than a walk (about 1.6 s for those 500 000
words), so a list is built once per partition and commit, in a background thread, and only for a
partition that has settled (no commit for `SETTLE_NS`): days before today, or any day while
ingestion pauses.  Partitions are listed one at a time, in the order searches first needed them.
Until its list is ready, a search walks the dictionary as before, so nothing ever waits for a
list.  A list is valid for a searcher no newer than the commit it was built from (its key is the
commit mark read before the index was opened); a newer commit makes the partition unsettled
again and its list stale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import re2

from logtraced.storage.tantivy import schema
from logtraced.storage.tantivy.partitions import CommitMark, Partition, PartitionLayout, open_index

# A partition whose last commit is at least this old is settled: its words are worth listing.
SETTLE_NS: Final = 60 * 1_000_000_000
# Partitions with more documents are not listed (listing holds every word as a Python object for
# a moment: about 60 MB per 500 000 words); their searches walk the dictionary.
MAX_LISTED_DOCS: Final = 8_000_000
# Bytes of word lists kept in memory; the least recently used lists go first.
LISTS_BUDGET_BYTES: Final = 256 * 1024 * 1024
# A word piece found in more words than this narrows through the dictionary walk instead.
MAX_FOUND_WORDS: Final = 10_000
_SEPARATOR: Final = b"\n"  # never inside an indexed word: the tokenizer splits on it
_YO_SPELLINGS: Final = {"е": "(?:е|ё)", "ё": "(?:е|ё)"}  # words are lowercased; е and ё match each other


@dataclass(frozen=True)
class WordList:
    """One partition's indexed message words, each between two separators."""

    blob: bytes

    def containing(self, piece: str, *, at_end: bool) -> list[str] | None:
        """The words holding `piece` (ending with it when `at_end`); None when more than MAX_FOUND_WORDS."""
        pattern = re2.compile(_piece_pattern(piece, at_end))
        found: set[str] = set()
        for match in pattern.finditer(self.blob):
            start = self.blob.rfind(_SEPARATOR, 0, match.start()) + 1
            end = match.end() - 1 if at_end else self.blob.find(_SEPARATOR, match.end())
            found.add(self.blob[start:end].decode())
            if len(found) > MAX_FOUND_WORDS:
                return None
        return sorted(found)


def _piece_pattern(piece: str, at_end: bool) -> bytes:
    """An RE2 pattern over UTF-8 bytes matching `piece` in any spelling of its е and ё."""
    text = "".join(_YO_SPELLINGS.get(char, re2.escape(char)) for char in piece)
    return (text.encode() + re2.escape(_SEPARATOR)) if at_end else text.encode()


class WordLists:
    """Word lists per partition, built one at a time in a background thread, bounded by LISTS_BUDGET_BYTES."""

    def __init__(self, layout: PartitionLayout) -> None:
        self._layout = layout
        self._lists: OrderedDict[Partition, tuple[CommitMark, WordList | None]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[Partition, CommitMark] = {}  # partitions to list, with the commit mark to list
        self._building = False
        self._lock = threading.Lock()

    def get(self, partition: Partition, mark: CommitMark) -> WordList | None:
        """The partition's list for commit `mark` if built; otherwise None, and it is queued if it has settled.

        Call with the mark read after taking the searcher the list will serve: that searcher is then
        no newer than the list.
        """
        with self._lock:
            entry = self._lists.get(partition)
            if entry is not None and entry[0] == mark:
                self._lists.move_to_end(partition)
                return entry[1]
            if not mark.known or time.time_ns() - mark.at_ns < SETTLE_NS:
                return None
            self._pending[partition] = mark
            if self._building:
                return None
            self._building = True
        threading.Thread(target=self._build_pending, name="word-lists", daemon=True).start()
        return None

    def drop(self, partitions: set[Partition]) -> None:
        """Forget partitions deleted by retention."""
        with self._lock:
            for partition in partitions:
                self._forget(partition)
                self._pending.pop(partition, None)

    def _build_pending(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._building = False
                    return
                partition = next(iter(self._pending))
                mark = self._pending.pop(partition)
            try:
                built = _list_words(self._layout, partition)
            except (OSError, ValueError):
                built = None  # unreadable now (retention removing it, say): searches walk its dictionary
            self._keep(partition, mark, built)

    def _keep(self, partition: Partition, mark: CommitMark, built: WordList | None) -> None:
        with self._lock:
            self._forget(partition)
            self._lists[partition] = (mark, built)
            self._bytes += _size(built)
            while self._bytes > LISTS_BUDGET_BYTES and len(self._lists) > 1:
                self._forget(next(iter(self._lists)))

    def _forget(self, partition: Partition) -> None:
        entry = self._lists.pop(partition, None)
        if entry is not None:
            self._bytes -= _size(entry[1])


def _size(words: WordList | None) -> int:
    return 0 if words is None else len(words.blob)


def _list_words(layout: PartitionLayout, partition: Partition) -> WordList | None:
    """The partition's message words as now committed; None when it is too large to list or gone.

    Opened afresh, after the caller read the commit mark, so the list holds at least that commit's words.
    """
    index = open_index(layout.path(partition), stemming=False, create=False)
    if index is None:
        return None
    searcher = index.searcher()
    if searcher.num_docs > MAX_LISTED_DOCS:
        return None
    found = searcher.terms_with_prefix(schema.MESSAGE, "", None, None)
    words = _SEPARATOR.join(word.encode() for word, _ in found)
    return WordList(_SEPARATOR + words + _SEPARATOR)
