"""Compiles the query AST into a Tantivy query that narrows candidates; the only query module importing tantivy.

The query is built from Query objects directly, never from text for Tantivy's parser.  It always
matches a SUPERSET of what evaluate.py accepts; `needs_verification` says whether the executor must
check candidates with evaluate.py (it is False only when every part is exact in the index).

Narrowing by field:
- keywords (level lowercased, service, host, env, org, index, tags): exact term; globs, `$contains`
  and "non-empty" as anchored regexes over the raw term dictionary (exact).  A `$regex` (LogQL `=~`,
  `!~`) or a range is decided term by term: the partition's terms of the field (`keyword_terms`, a few
  to a few thousand values) are tested with the reference semantics (evaluate.keyword_value_test) and
  the comparison becomes the set of terms that pass (exact, so counts stay in the fast-field
  aggregation).  RE2 and the index's Rust regexes differ in syntax, so matching in Python is what
  keeps the meaning exact.  Without a term list (too many terms) a `$regex` narrows by its required
  literals (verified).
- timestamp: i64 range queries (exact).
- message: words as terms and phrases as positioned phrase queries (exact, on the stemmed field if
  stemming is on).  Substrings (`$contains`, globs, the required literals of a `$regex`) become
  conditions on the tokens they touch: a fully enclosed word is a term, a word cut by the literal's
  edge is a prefix/suffix/infix regex over the term dictionary (verified).
- attributes (dotted paths, every split into nested and dotted keys): typed terms for numbers and
  booleans, terms/phrases for string words, `exists` for everything else (verified).
- free text (no field): the message, exactly as `message:...` (the default search field; a regex
  over every attribute term was measured at seconds per query on 10M events).

ё and е.  The index keeps words as written, and the reference semantics read ё as е (evaluate.fold_yo),
so a query word stands for every spelling of its е/ё letters: a term per spelling (exact), a phrase per
combination of spellings (exact up to 16, then the words alone, verified), `[её]` classes in every
term-dictionary regex and in keyword comparisons.  Stems need none of this: the Russian stemmer already
writes ё as е.  Because nothing changed at index time, partitions written before are searched the same way.

Limits.  Words of 100+ bytes are not indexed (schema.TEXT_MAX_TOKEN_CHARS), so query words that long
narrow nothing and are left to verification.  The one way a match can be lost: a substring, glob
piece or regex literal that is only part of a word is looked up among indexed words, so an
occurrence inside a word of 100+ bytes (a base64 blob, say) is not a candidate.  Attribute values
the index stores without words (strings of punctuation only) are found through `exists`, which
relies on the attribute fast field keeping whole values (schema.fast_value_analyzer).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, NamedTuple, TypeAlias

import tantivy

from logtraced.query.ast import (
    KEYWORD_FIELDS,
    LEVEL,
    MESSAGE,
    RANGE_OPS,
    TAGS,
    TIMESTAMP,
    And,
    Compare,
    Exists,
    MatchAll,
    Node,
    Not,
    Op,
    Or,
    Scalar,
)
from logtraced.query.evaluate import as_number, date_value, glob_parts, keyword_value_test
from logtraced.query.timerange import parse_instant
from logtraced.storage.tantivy import schema as fields
from logtraced.storage.tantivy.words import WordList

_MAX_PATH_SEGMENTS = 6  # a path of n segments has 2**(n-1) nested/dotted readings
_MAX_LITERALS = 32  # beyond this many required literals a regex narrows by nothing
_RUST_META = frozenset("\\.+*?()|[]{}^$#&-~")
# Words are indexed as written, so a query word stands for each of its spellings with е and ё.
_YO_CLASSES = {"е": "её", "ё": "её", "Е": "ЕЁ", "Ё": "ЕЁ"}
_MAX_SPELLINGS = 16  # beyond this, a word is matched by a regex (substrings) or left to verification
_IGNORE_CASE_FLAG = re.compile(r"\(\?[a-zA-Z-]*i[a-zA-Z-]*[:)]")
# Terms of one keyword field a partition may have for a comparison to be decided term by term.
MAX_LISTED_TERMS: Final = 50_000
# A set of more terms than this is one term-set query; fewer are one term query each (`_Compiler._term_set`).
TERM_SET_FROM: Final = 256
_LISTED_OPS: Final = frozenset({Op.REGEX}) | RANGE_OPS
_PIECE_OPS: Final = frozenset({Op.CONTAINS, Op.WILDCARD, Op.REGEX})

# A partition's terms of the keyword fields a query compares term by term (see `keyword_terms`).
KeywordTerms: TypeAlias = Mapping[str, frozenset[str]]


class RequiredWords(NamedTuple):
    """Words every hit holds: the message field searched, each word's indexed spellings, and whether in a phrase."""

    field: str
    words: tuple[tuple[str, ...], ...]
    phrase: bool

    def bound(self, searcher: tantivy.Searcher) -> int:
        """At most how many events hold them all: the rarest word's document frequencies, summed over its spellings."""
        return min(sum(searcher.doc_freq(self.field, spelling) for spelling in word) for word in self.words)

    def exact_count(self, searcher: tantivy.Searcher) -> int | None:
        """Exactly how many events hold them: known for one word of one spelling (its document frequency)."""
        if len(self.words) == 1 and len(self.words[0]) == 1:
            return searcher.doc_freq(self.field, self.words[0][0])
        return None


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A candidate query and whether its hits must be checked with evaluate.py."""

    query: tantivy.Query
    needs_verification: bool
    walks_dictionary: bool = False  # some part walks a whole term dictionary each time the query runs
    # When the whole query is the set of message words a word list found (`$contains` of one word
    # piece): those words, whose document frequencies bound the candidates without running the query.
    listed_words: tuple[str, ...] | None = None
    # When the whole query is message words or a phrase of several: the field, each word's indexed
    # spellings; a hit holds one spelling of every word, so the rarest word's frequencies bound the hits.
    required_words: RequiredWords | None = None


def compile_query(
    node: Node,
    schema: tantivy.Schema,
    *,
    stemming: bool,
    terms: KeywordTerms | None = None,
    uncapitalised: frozenset[str] = frozenset(),
    words: WordList | None = None,
) -> Compiled:
    """Narrow `node` to a Tantivy query over a partition built by storage.schema.build_schema.

    `terms` are the partition's terms of the fields `listed_fields(node)` names (`keyword_terms`),
    `uncapitalised` the substrings no capitalised word of the partition contains (`uncapitalised`),
    `words` its message words (words.WordList): the compiled query is then only valid for that
    partition's searcher.
    """
    compiler = _Compiler(schema, stemming, terms or {}, uncapitalised, words)
    part = compiler.compile(node)
    listed = next((found for query, found in compiler.listed if query is part.query), None)
    required = next((found for query, found in compiler.required if query is part.query), None)
    return Compiled(part.query, not part.exact, compiler.walks_dictionary, listed, required)


def uncapitalised(searcher: tantivy.Searcher, schema: tantivy.Schema, node: Node) -> frozenset[str]:
    """The lowercase one-word substrings `node` looks for in the message that no capitalised word contains.

    For such a substring the lowercased word index is exact: a word holding it either had no
    capitals (so it was indexed as written) or had some (and is then in MESSAGE_CAPITALS, which
    says no; the field also holds some lowercase words beside capitalised ones, which can only
    make it say no more often).  Each check walks the partition's dictionary of that field, which
    is small where logs are mostly lowercase, and is made only where the answer pays for it (counts).
    """
    if not fields.has_field(schema, fields.MESSAGE_CAPITALS):
        return frozenset()
    splitter = _word_splitter()
    found: set[str] = set()
    for needle in _message_substrings(node):
        if splitter.analyze(needle) != [needle] or not fields.text_analyzer().analyze(needle):
            continue  # several words, capitals, or too long to be indexed
        pattern = f"(?s).*{_rust_literal(needle)}.*"
        query = tantivy.Query.regex_query(schema, fields.MESSAGE_CAPITALS, pattern)
        result: Any = searcher.search(query, 1, count=True)
        if not result.count:
            found.add(needle)
    return frozenset(found)


def scans_message_words(node: Node) -> bool:
    """Whether `node` looks for word pieces in the message (`$contains`, globs, regexes): a word list can serve it."""
    if isinstance(node, (And, Or)):
        return any(scans_message_words(child) for child in node.children)
    if isinstance(node, Not):
        return scans_message_words(node.child)
    return isinstance(node, Compare) and node.field in (None, MESSAGE) and node.op in _PIECE_OPS


def _message_substrings(node: Node) -> Iterator[str]:
    """The values of every `$contains` on the message (or free text) in `node`."""
    if isinstance(node, (And, Or)):
        for child in node.children:
            yield from _message_substrings(child)
    elif isinstance(node, Not):
        yield from _message_substrings(node.child)
    elif isinstance(node, Compare) and node.op is Op.CONTAINS and node.field in (None, MESSAGE):
        yield _text(node.value)


def _word_splitter() -> tantivy.TextAnalyzer:
    """Words as the message index splits them, lowercased, whatever their length."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.lowercase()).build()


def listed_fields(node: Node) -> frozenset[str]:
    """Keyword fields `node` compares term by term (regexes and ranges): what `keyword_terms` must list."""
    if isinstance(node, (And, Or)):
        return frozenset().union(*(listed_fields(child) for child in node.children))
    if isinstance(node, Not):
        return listed_fields(node.child)
    if isinstance(node, Compare) and node.field in KEYWORD_FIELDS and node.op in _LISTED_OPS:
        return frozenset({node.field})
    return frozenset()


def keyword_terms(searcher: tantivy.Searcher, names: frozenset[str]) -> dict[str, frozenset[str]]:
    """Every term of each field in the searcher's segments; a field with too many terms is left out.

    Reading a term dictionary of labels costs well under a millisecond.  The list must come from the
    searcher that then runs the query: a term committed after it was listed would be missed.
    """
    listed: dict[str, frozenset[str]] = {}
    for name in names:
        found = searcher.terms_with_prefix(name, "", None, MAX_LISTED_TERMS + 1)
        if len(found) <= MAX_LISTED_TERMS:
            listed[name] = frozenset(term for term, _ in found)
    return listed


class _Part(NamedTuple):
    """A compiled sub-query; `exact` means its hits are exactly the events the node accepts."""

    query: tantivy.Query
    exact: bool


class _Narrowing(NamedTuple):
    """A loose candidate query, and whether it only looks up the terms it names (no walk of the dictionary)."""

    query: tantivy.Query
    cheap: bool


class _Cond(NamedTuple):
    """A condition on one indexed token: equal to `token`, or containing it with open sides."""

    token: str
    open_left: bool
    open_right: bool


class _Lit(NamedTuple):
    """A literal string every match contains."""

    text: str


class _AllOf(NamedTuple):
    """Every item is required (a concatenation)."""

    items: tuple[_Formula, ...]


class _AnyOf(NamedTuple):
    """One of the items is required (an alternation)."""

    items: tuple[_Formula, ...]


# What a regex requires of any text it matches; None requires nothing.
_Formula: TypeAlias = _Lit | _AllOf | _AnyOf | None


def _all() -> tantivy.Query:
    return tantivy.Query.all_query()


def _exact(query: tantivy.Query) -> _Part:
    return _Part(query, True)


def _loose(query: tantivy.Query | None) -> _Part:
    return _Part(_all() if query is None else query, False)


def _must(queries: Iterable[tantivy.Query]) -> tantivy.Query | None:
    clauses = [(tantivy.Occur.Must, query) for query in queries]
    if not clauses:
        return None
    return clauses[0][1] if len(clauses) == 1 else tantivy.Query.boolean_query(clauses)


def _should(queries: Iterable[tantivy.Query]) -> tantivy.Query:
    clauses = [(tantivy.Occur.Should, query) for query in queries]
    if len(clauses) == 1:
        return clauses[0][1]
    return tantivy.Query.boolean_query(clauses) if clauses else tantivy.Query.empty_query()


class _Compiler:
    """Holds the schema and the analyzers that decide which tokens a value has in the index."""

    def __init__(
        self,
        schema: tantivy.Schema,
        stemming: bool,
        terms: KeywordTerms,
        uncapitalised: frozenset[str],
        word_list: WordList | None,
    ) -> None:
        self.schema = schema
        self.terms = terms
        self.uncapitalised = uncapitalised
        self.word_list = word_list
        self.walks_dictionary = False
        self.listed: list[tuple[tantivy.Query, tuple[str, ...]]] = []  # term sets of listed words, with the words
        self.required: list[tuple[tantivy.Query, RequiredWords]] = []  # word and phrase queries, with their words
        self.words_field = fields.MESSAGE_STEMMED if stemming else fields.MESSAGE
        self.splitter = _word_splitter()
        self.indexed = fields.text_analyzer()
        self.stemmer = fields.stemmed_analyzer() if stemming else None

    def compile(self, node: Node) -> _Part:
        if isinstance(node, MatchAll):
            return _exact(_all())
        if isinstance(node, And):
            parts = [self.compile(child) for child in node.children]
            return _Part(_must(part.query for part in parts) or _all(), all(part.exact for part in parts))
        if isinstance(node, Or):
            parts = [self.compile(child) for child in node.children]
            return _Part(_should(part.query for part in parts), all(part.exact for part in parts))
        if isinstance(node, Not):
            return self._negate(self.compile(node.child))
        if isinstance(node, Exists):
            return self._exists(node.field)
        return self._compare(node)

    def _negate(self, child: _Part) -> _Part:
        """NOT can only be pushed into the index when the child is exact; else verify everything."""
        if not child.exact:
            return _loose(None)
        clauses = [(tantivy.Occur.Must, _all()), (tantivy.Occur.MustNot, child.query)]
        return _exact(tantivy.Query.boolean_query(clauses))

    def _exists(self, field: str) -> _Part:
        if field == TIMESTAMP:
            return _exact(_all())
        if field == MESSAGE:
            return _loose(None)  # a message of punctuation only has no tokens
        if field in KEYWORD_FIELDS:
            return _exact(self._regex(field, "(?s).+"))
        paths = _attribute_paths(field)
        if paths is None:
            return _loose(None)
        return _exact(_should(tantivy.Query.exists_query(path, json_subpaths=True) for path in paths))

    def _compare(self, node: Compare) -> _Part:
        if node.field is None:
            return self._free_text(node)
        if node.field == TIMESTAMP:
            return _timestamp(self.schema, node)
        if node.field in KEYWORD_FIELDS:
            return self._keyword(node.field, node)
        if node.field == MESSAGE:
            return self._message(node)
        return self._attribute(node.field, node)

    # -- keywords -------------------------------------------------------------------------------

    def _keyword(self, field: str, node: Compare) -> _Part:
        listed = self.terms.get(field)
        if node.op in _LISTED_OPS and listed is not None:
            return self._listed(field, node, listed)
        if node.op is Op.REGEX:
            ignore_case = field == LEVEL or _IGNORE_CASE_FLAG.search(str(node.value)) is not None
            flags = "(?is)" if ignore_case else "(?s)"
            return _loose(
                self._kept(
                    self._formula_query(
                        _regex_formula(str(node.value)),
                        lambda text: _Narrowing(self._regex(field, f"{flags}.*{_rust_literal(text)}.*"), False),
                    )
                )
            )
        value = _text(node.value)
        if field == LEVEL:
            value = value.lower()
        if node.op in (Op.EQ, Op.MATCH, Op.PHRASE):
            if _rust_literal(value) == _rust_escape(value):
                return _exact(self._term(field, value))
            return _exact(self._regex(field, "(?s)" + _rust_literal(value)))
        if node.op is Op.WILDCARD:
            pieces, _, _ = glob_parts(value)
            return _exact(self._regex(field, "(?s)" + ".*".join(_rust_literal(piece) for piece in pieces)))
        if node.op is Op.CONTAINS:
            return _exact(self._regex(field, f"(?s).*{_rust_literal(value)}.*"))
        return _loose(None)

    def _listed(self, field: str, node: Compare, listed: frozenset[str]) -> _Part:
        """The terms that satisfy `node`, each tested as evaluate.py tests a stored value: exact.

        A field other than `tags` has one value per event, and an event without one reads as "":
        when "" satisfies the comparison, the events that match are those whose term is not one
        that fails (whether or not "" itself was indexed).  `tags` matches when any tag does, so an
        event without tags never matches.
        """
        test = keyword_value_test(node)
        passing = sorted(term for term in listed if test(term))
        if field != TAGS and test(""):
            failing = sorted(listed.difference(passing))
            if not failing:
                return _exact(_all())
            clauses = [(tantivy.Occur.Must, _all()), (tantivy.Occur.MustNot, self._term_set(field, failing))]
            return _exact(tantivy.Query.boolean_query(clauses))
        return _exact(self._term_set(field, passing) if passing else tantivy.Query.empty_query())

    # -- message ---------------------------------------------------------------------------------

    def _message(self, node: Compare) -> _Part:
        if node.op is Op.MATCH:
            return self._all_words(_text(node.value), self.words_field, self._message_stem())
        if node.op is Op.PHRASE:
            return self._phrase(self.words_field, _text(node.value), self._message_stem())
        if node.op is Op.EQ:
            if not self.splitter.analyze(_text(node.value)):
                return _loose(None)
            return _loose(self._phrase(self.words_field, _text(node.value), self._message_stem()).query)
        narrowing = self._substring_narrowing(node, fields.MESSAGE, prefix="")
        if node.op is Op.CONTAINS and _text(node.value) in self.uncapitalised:
            return _Part(narrowing or _all(), True)  # one lowercase word piece: see `uncapitalised`
        return _loose(narrowing)

    def _substring_narrowing(self, node: Compare, field: str, *, prefix: str) -> tantivy.Query | None:
        """Token conditions for a substring, a glob or a regex's literals; None narrows nothing."""
        if node.op is Op.CONTAINS:
            return self._kept(self._conds_query(self._conds(_text(node.value), True, True), field, prefix))
        if node.op is Op.WILDCARD:
            return self._kept(self._conds_query(self._glob_conds(_text(node.value)), field, prefix))
        if node.op is Op.REGEX:
            return self._kept(
                self._formula_query(
                    _regex_formula(str(node.value)),
                    lambda text: self._conds_query(self._conds(text, True, True), field, prefix),
                )
            )
        return None

    # -- attributes ------------------------------------------------------------------------------

    def _attribute(self, path: str, node: Compare) -> _Part:
        paths = _attribute_paths(path)
        if paths is None:
            return _loose(None)
        if node.op not in (Op.EQ, Op.MATCH, Op.PHRASE):
            return _loose(self._exists(path).query)
        branches = [branch for subpath in paths for branch in self._attribute_value(subpath, node)]
        if not branches:
            return _exact(tantivy.Query.empty_query())
        return _Part(_should(part.query for part in branches), all(part.exact for part in branches))

    def _attribute_value(self, subpath: str, node: Compare) -> list[_Part]:
        """One branch per JSON type the value may be stored as at `subpath`: number, bool, date, text."""
        value, text = node.value, _text(node.value)
        exists = tantivy.Query.exists_query(subpath, json_subpaths=True)
        if node.op is Op.EQ and isinstance(value, (int, float)) and not isinstance(value, bool):
            return [_loose(exists)]  # 400 also equals the strings "400.0", "0400", "4e2": only existence narrows
        branches = self._typed_terms(subpath, value)
        if date_value(value) is not None:
            branches.append(_loose(exists))  # RFC 3339 strings are stored as dates, not words
        tokens = self.splitter.analyze(text)
        if not tokens:  # "--" has no words: it can only be equal, and the index stores no word of it
            return branches + [_loose(exists)] if node.op is Op.EQ else branches
        single_word = len(tokens) == 1
        if node.op is Op.MATCH:
            words = self._all_words(text, subpath, None)
        else:
            words = self._phrase(subpath, text, None)
        # several words may be spread over array elements, and EQ is stricter than words
        branches.append(_Part(words.query, words.exact and single_word and node.op is not Op.EQ))
        return branches

    def _typed_terms(self, subpath: str, value: Scalar) -> list[_Part]:
        """Exact terms for the number or boolean a value spells (JSON leaves keep their type)."""
        terms: list[_Part] = []
        number = as_number(value)
        if number is not None:
            terms.extend(_exact(self._term(subpath, item)) for item in _json_numbers(number))
        if _text(value).lower() in ("true", "false"):
            terms.append(_exact(self._term(subpath, _text(value).lower() == "true")))
        return terms

    # -- free text -------------------------------------------------------------------------------

    def _free_text(self, node: Compare) -> _Part:
        """Free text searches the message, the default search field (attributes are reached by name)."""
        return self._message(node)

    # -- words and phrases -----------------------------------------------------------------------

    def _all_words(self, text: str, field: str, stem: Callable[[str], str] | None) -> _Part:
        """Every word as a term in each of its spellings; words too long to index are left to verification."""
        tokens = self.splitter.analyze(text)
        if not tokens:
            return _exact(tantivy.Query.empty_query())
        spelled = [self._spelled(token, stem) for token in tokens if self._is_indexed(token)]
        kept = [spellings for spellings in spelled if spellings is not None]
        query = _must(_should(self._term(field, spelling) for spelling in spellings) for spellings in kept)
        if query is None:
            return _Part(_all(), False)
        self.required.append((query, RequiredWords(field, tuple(map(tuple, kept)), phrase=False)))
        return _Part(query, len(kept) == len(tokens))

    def _phrase(self, field: str, text: str, stem: Callable[[str], str] | None) -> _Part:
        """Consecutive words as phrase queries, one per spelling, keeping the positions of words not narrowed."""
        tokens = self.splitter.analyze(text)
        if not tokens:
            return _exact(tantivy.Query.empty_query())
        kept = [
            (position, spellings)
            for position, token in enumerate(tokens)
            if self._is_indexed(token) and (spellings := self._spelled(token, stem)) is not None
        ]
        exact = len(kept) == len(tokens)
        if not kept:
            return _loose(None)
        if math.prod(len(spellings) for _, spellings in kept) > _MAX_SPELLINGS:
            words = (_should(self._term(field, spelling) for spelling in spellings) for _, spellings in kept)
            return _loose(_must(words))
        phrases = [
            self._term(field, combination[0]) if len(kept) == 1 else self._phrase_query(field, kept, combination)
            for combination in itertools.product(*(spellings for _, spellings in kept))
        ]
        query = _should(phrases)
        spelled = tuple(tuple(spellings) for _, spellings in kept)
        self.required.append((query, RequiredWords(field, spelled, phrase=len(kept) > 1)))
        return _Part(query, exact)

    def _phrase_query(self, field: str, kept: list[tuple[int, list[str]]], words: tuple[str, ...]) -> tantivy.Query:
        positioned: list[str | tuple[int, str]] = [
            (position, word) for (position, _), word in zip(kept, words, strict=True)
        ]
        return tantivy.Query.phrase_query(self.schema, field, positioned)

    def _spelled(self, token: str, stem: Callable[[str], str] | None) -> list[str] | None:
        """The indexed forms a query word stands for: its stem (stems read ё as е), or its ё/е spellings."""
        return [stem(token)] if stem is not None else _spellings(token)

    def _message_stem(self) -> Callable[[str], str] | None:
        return self._stemmed if self.stemmer is not None else None

    def _stemmed(self, token: str) -> str:
        if self.stemmer is None:
            return token
        stems: list[str] = self.stemmer.analyze(token)
        return stems[0] if stems else token

    def _is_indexed(self, token: str) -> bool:
        return bool(self.indexed.analyze(token))

    # -- substrings --------------------------------------------------------------------------------

    def _conds(self, literal: str, open_left: bool, open_right: bool) -> list[_Cond]:
        """Conditions on the tokens a literal touches; only its edge words can be partial."""
        tokens: list[str] = self.splitter.analyze(literal)
        if not tokens:
            return []
        left_word = bool(self.splitter.analyze(literal[0]))
        right_word = bool(self.splitter.analyze(literal[-1]))
        last = len(tokens) - 1
        return [
            _Cond(token, open_left and index == 0 and left_word, open_right and index == last and right_word)
            for index, token in enumerate(tokens)
        ]

    def _glob_conds(self, pattern: str) -> list[_Cond]:
        """Conditions for each literal piece of a glob; a piece next to `*` is open on that side."""
        pieces, open_start, open_end = glob_parts(pattern)
        last = len(pieces) - 1
        conds: list[_Cond] = []
        for index, piece in enumerate(pieces):
            if piece:
                conds.extend(self._conds(piece, index > 0 or open_start, index < last or open_end))
        return conds

    def _conds_query(self, conds: list[_Cond], field: str, prefix: str) -> _Narrowing | None:
        """AND of one query per condition; conditions on unindexable tokens are dropped.

        A token condition open on its left (`.*err`, `.*zq7x.*`) walks the whole term dictionary,
        one exact or prefix condition only the terms it names: when the conjunction has one of
        those, the open-left ones are left to verification (`ERR-\\d{5}-FATAL` looks up `fatal*`).
        A message word piece the partition's word list answers names the words holding it instead.
        """
        narrowings: list[_Narrowing] = []
        for cond in conds:
            if not self._is_indexed(cond.token):
                continue
            listed = self._listed_words(cond, field, prefix)
            if listed is not None:
                narrowings.append(listed)
                continue
            cheap = bool(prefix) or not cond.open_left
            spellings = _spellings(cond.token)
            if not prefix and not cond.open_left and not cond.open_right and spellings is not None:
                narrowings.append(_Narrowing(_should(self._term(field, spelling) for spelling in spellings), cheap))
                continue
            left = ".*" if cond.open_left else ""
            right = ".*" if cond.open_right else ""
            narrowings.append(
                _Narrowing(self._regex(field, f"{prefix}{left}{_rust_literal(cond.token)}{right}"), cheap)
            )
        return _all_narrowings(narrowings)

    def _kept(self, narrowing: _Narrowing | None) -> tantivy.Query | None:
        """The narrowing's query, noting whether running it walks a dictionary."""
        if narrowing is None:
            return None
        self.walks_dictionary = self.walks_dictionary or not narrowing.cheap
        return narrowing.query

    def _listed_words(self, cond: _Cond, field: str, prefix: str) -> _Narrowing | None:
        """The words of the partition's list holding an open-left message piece, as a term set; None: walk."""
        if self.word_list is None or field != fields.MESSAGE or prefix or not cond.open_left:
            return None
        found = self.word_list.containing(cond.token, at_end=not cond.open_right)
        if found is None:
            return None
        query = self._term_set(field, found) if found else tantivy.Query.empty_query()
        self.listed.append((query, tuple(found)))
        return _Narrowing(query, True)

    def _formula_query(self, formula: _Formula, literal: Callable[[str], _Narrowing | None]) -> _Narrowing | None:
        if formula is None:
            return None
        if isinstance(formula, _Lit):
            return literal(formula.text)
        children = [self._formula_query(item, literal) for item in formula.items]
        if isinstance(formula, _AllOf):
            return _all_narrowings([child for child in children if child is not None])
        kept = [child for child in children if child is not None]
        if len(kept) < len(children):
            return None
        return _Narrowing(_should(child.query for child in kept), all(child.cheap for child in kept))

    # -- query constructors ------------------------------------------------------------------------

    def _term(self, field: str, value: str | int | float | bool) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, field, value)

    def _term_set(self, field: str, values: list[str]) -> tantivy.Query:
        """Any of `values`: one term query each up to `TERM_SET_FROM` of them, a term-set query past that.

        A term-set query costs a fixed ~0.3 ms per day searched (measured on a day of 1.4M events:
        26 rare words 0.36 against 0.06 ms, 162 words 0.91 against 0.50 ms, 500 words about even,
        2 000 words 6.5 against 14.7 ms), which a label regex's few values or a rare word piece's
        few words would pay on every search.
        """
        if len(values) > TERM_SET_FROM:
            return tantivy.Query.term_set_query(self.schema, field, values)
        return _should(self._term(field, value) for value in values)

    def _regex(self, field: str, pattern: str) -> tantivy.Query:
        return tantivy.Query.regex_query(self.schema, field, pattern)


def _all_narrowings(narrowings: list[_Narrowing]) -> _Narrowing | None:
    """AND of the narrowings; when some are cheap, only those (the rest would walk the dictionary to narrow less)."""
    if not narrowings:
        return None
    cheap = [narrowing for narrowing in narrowings if narrowing.cheap]
    kept = cheap or narrowings
    query = _must(narrowing.query for narrowing in kept)
    return None if query is None else _Narrowing(query, bool(cheap))


def _timestamp(schema: tantivy.Schema, node: Compare) -> _Part:
    """Ranges on the i64 ns field; text operators on a timestamp are left to verification."""
    if node.op in (Op.CONTAINS, Op.REGEX, Op.WILDCARD):
        return _loose(None)
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int):
        value = parse_instant(value)
    bounds: dict[Op, tuple[int | None, int | None, bool, bool]] = {
        Op.GT: (value, None, False, True),
        Op.GTE: (value, None, True, True),
        Op.LT: (None, value, True, False),
        Op.LTE: (None, value, True, True),
    }
    lower, upper, include_lower, include_upper = bounds.get(node.op, (value, value, True, True))
    return _exact(
        tantivy.Query.range_query(
            schema, fields.TIMESTAMP, tantivy.FieldType.Integer, lower, upper, include_lower, include_upper
        )
    )


def _attribute_paths(path: str) -> list[str] | None:
    """Tantivy subpaths for every reading of a dotted name: nested keys and keys containing dots."""
    segments = path.split(".")
    if len(segments) > _MAX_PATH_SEGMENTS or not all(segments):
        return None
    readings: list[str] = []
    for cuts in itertools.product((False, True), repeat=len(segments) - 1):
        keys = [segments[0]]
        for segment, cut in zip(segments[1:], cuts, strict=True):
            if cut:
                keys.append(segment)
            else:
                keys[-1] += "." + segment
        readings.append(".".join([fields.ATTRIBUTES, *(key.replace(".", "\\.") for key in keys)]))
    return readings


def _json_numbers(number: int | float) -> set[int | float]:
    """The typed values a JSON number equal to `number` can be indexed as (i64/u64, f64)."""
    typed: set[int | float] = set()
    if isinstance(number, int) and -(2**63) <= number < 2**64:
        typed.add(number)
    try:
        as_float = float(number)
    except OverflowError:
        return typed
    if math.isfinite(as_float):
        typed.add(as_float)
        if as_float.is_integer() and -(2**63) <= int(as_float) < 2**64:
            typed.add(int(as_float))
    return typed


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _spellings(token: str) -> list[str] | None:
    """Every spelling of `token` with е and ё exchanged (evaluate.fold_yo); None when too many to list."""
    options = [_YO_CLASSES.get(char, char) for char in token]
    if math.prod(len(option) for option in options) > _MAX_SPELLINGS:
        return None
    return ["".join(letters) for letters in itertools.product(*options)]


def _rust_literal(text: str) -> str:
    """`text` as a Rust regex matching it in any spelling of its е and ё (the index keeps words as written)."""
    return "".join(f"[{_YO_CLASSES[char]}]" if char in _YO_CLASSES else _rust_escape(char) for char in text)


def _rust_escape(text: str) -> str:
    """Escape for the regex syntax of Tantivy's term-dictionary automata (Rust regex)."""
    return "".join("\\" + char if char in _RUST_META else char for char in text)


# -- required literals of an RE2 pattern ------------------------------------------------------------


class _Unsupported(Exception):
    """Syntax the literal scanner does not follow; the regex then narrows by nothing."""


class _Summary(NamedTuple):
    """A regex fragment: the one string it matches if it is a plain literal, and what it requires."""

    exact: str | None
    formula: _Formula


def _regex_formula(pattern: str) -> _Formula:
    """Literals every match must contain (an OR for alternations); None when nothing is required."""
    try:
        formula = _RegexScanner(pattern).scan()
    except (_Unsupported, IndexError):
        return None
    return formula if _literal_count(formula) <= _MAX_LITERALS else None


def _literal_count(formula: _Formula) -> int:
    if formula is None:
        return 0
    if isinstance(formula, _Lit):
        return 1
    return sum(_literal_count(item) for item in formula.items)


def _all_of(items: list[_Formula]) -> _Formula:
    kept = tuple(item for item in items if item is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else _AllOf(kept)


def _any_of(items: list[_Formula]) -> _Formula:
    if any(item is None for item in items):
        return None
    return items[0] if len(items) == 1 else _AnyOf(tuple(items))


class _RegexScanner:
    """A conservative reader of RE2 syntax (the pattern already compiled, so it is well formed)."""

    _REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
    _GROUP_PREFIX = re.compile(r"\?(?:P?<\w+>|[a-zA-Z-]*:|([a-zA-Z-]*)\))")
    _ZERO_WIDTH_ESCAPES = frozenset("bBAz")
    _CLASS_ESCAPES = frozenset("dDwWsSpPC")
    _CONTROL = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def scan(self) -> _Formula:
        summary = self._alternation()
        if self.pos != len(self.pattern):
            raise _Unsupported(self.pattern)
        return summary.formula

    def _peek(self) -> str:
        return self.pattern[self.pos : self.pos + 1]

    def _alternation(self) -> _Summary:
        branches = [self._concat()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._concat())
        if len(branches) == 1:
            return branches[0]
        return _Summary(None, _any_of([branch.formula for branch in branches]))

    def _concat(self) -> _Summary:
        run, exact, parts = "", "", []
        plain = True
        while self._peek() not in ("", "|", ")"):
            piece = self._repeat()
            if piece.exact is not None:
                run += piece.exact
                exact += piece.exact
                continue
            plain = False
            parts.extend([_Lit(run) if run else None, piece.formula])
            run = ""
        parts.append(_Lit(run) if run else None)
        return _Summary(exact if plain else None, _all_of(parts))

    def _repeat(self) -> _Summary:
        atom = self._atom()
        while True:
            char = self._peek()
            if char in ("*", "?", "+"):
                self.pos += 1
                atom = _Summary(None, atom.formula if char == "+" else None)
            elif char == "{" and (match := self._REPEAT.match(self.pattern, self.pos)):
                self.pos = match.end()
                low = int(match.group(1))
                fixed = match.group(2) is None
                exact = atom.exact * low if fixed and atom.exact is not None else None
                atom = _Summary(exact, atom.formula if low >= 1 else None)
            else:
                return atom
            if self._peek() == "?":
                self.pos += 1

    def _atom(self) -> _Summary:
        char = self.pattern[self.pos]
        if char == "(":
            return self._group()
        if char == "[":
            self._skip_class()
            return _Summary(None, None)
        self.pos += 1
        if char == ".":
            return _Summary(None, None)
        if char in "^$":
            return _Summary("", None)
        if char == "\\":
            return self._escape()
        return _Summary(char, _Lit(char))

    def _group(self) -> _Summary:
        self.pos += 1
        if self._peek() == "?":
            prefix = self._GROUP_PREFIX.match(self.pattern, self.pos)
            if prefix is None:
                raise _Unsupported(self.pattern)
            self.pos = prefix.end()
            if prefix.group(1) is not None:
                return _Summary("", None)  # (?i) only sets flags and matches nothing
        inner = self._alternation()
        if self._peek() != ")":
            raise _Unsupported(self.pattern)
        self.pos += 1
        return inner

    def _escape(self) -> _Summary:
        char = self.pattern[self.pos]
        self.pos += 1
        if char in self._ZERO_WIDTH_ESCAPES:
            return _Summary("", None)
        if char in self._CLASS_ESCAPES:
            if char in "pP":
                self._skip_braces_or_one()
            return _Summary(None, None)
        if char == "Q":
            end = self.pattern.find("\\E", self.pos)
            text = self.pattern[self.pos : end if end >= 0 else len(self.pattern)]
            self.pos = end + 2 if end >= 0 else len(self.pattern)
            return _Summary(text, _Lit(text) if text else None)
        if char == "x":
            return self._hex_escape()
        if char in self._CONTROL:
            return _Summary(self._CONTROL[char], _Lit(self._CONTROL[char]))
        if char.isalnum():
            raise _Unsupported(self.pattern)  # octal and other rarities
        return _Summary(char, _Lit(char))

    def _hex_escape(self) -> _Summary:
        if self._peek() == "{":
            end = self.pattern.index("}", self.pos)
            digits = self.pattern[self.pos + 1 : end]
            self.pos = end + 1
        else:
            digits = self.pattern[self.pos : self.pos + 2]
            self.pos += 2
        literal = chr(int(digits, 16))
        return _Summary(literal, _Lit(literal))

    def _skip_braces_or_one(self) -> None:
        if self._peek() == "{":
            self.pos = self.pattern.index("}", self.pos) + 1
        else:
            self.pos += 1

    def _skip_class(self) -> None:
        """Move past `[...]`, including `[:alpha:]` and escaped `]` inside it."""
        self.pos += 1
        if self._peek() == "^":
            self.pos += 1
        if self._peek() == "]":
            self.pos += 1
        while self._peek() != "]":
            if self._peek() == "":
                raise _Unsupported(self.pattern)
            if self.pattern.startswith("[:", self.pos):
                self.pos = self.pattern.index(":]", self.pos) + 2
            elif self._peek() == "\\":
                self.pos += 2
                if self.pattern[self.pos - 1] in "pPx" and self._peek() == "{":
                    self._skip_braces_or_one()
            else:
                self.pos += 1
        self.pos += 1
