"""Log pattern mining (Drain-style) and the comparison of two periods' patterns into new and rising ones.

Messages are clustered into templates whose varying tokens read `<_>`, as Loki writes patterns.
Variable tokens are found before clustering, in one substitution per message: any token holding a
digit (numbers, ids, IPs, UUIDs, hex, durations such as 15ms or 1500мс, hosts such as db-01, paths
with ids) and quoted strings; a `key=value` token keeps its key.  The masked message is then placed
with Drain (He et al., 2017): a fixed-depth prefix tree keyed by token count and the first tokens,
then the most similar template in that leaf above a similarity threshold, whose differing tokens
become `<_>`.  Most masked messages repeat exactly, so an exact-text cache answers them before the
tree is walked.  Tokens are split on whitespace only, so Cyrillic and mixed-script messages cluster
exactly as English ones do.

Why not drain3: its last release is from 2022, it pins old exact versions of jsonpickle and
cachetools, carries persistence machinery this has no use for, and on 100 000 messages with three
masking rules it took 1.2 s before any per-template statistics, over this module's budget; the
statistics here (level, first and last seen, series) and the cross-run matching need their own
bookkeeping anyway.

Templates from two runs are matched by exact text first, then by a second pass: the same token
count, every position equal or `<_>` on either side, and at least the mining similarity of equal
literal tokens (a period that saw one user name keeps it literal where the other wrote `<_>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from logtraced.model import Event

WILDCARD: Final = "<_>"
SIMILARITY: Final = 0.5  # share of a template's tokens a message must repeat to join it
# Tree depth below the token-count level.  One token, not Drain's usual two: a user or host name
# second ("user bob logged in") would otherwise split one pattern into a leaf per name.
PREFIX_TOKENS: Final = 1
MAX_CACHED_MESSAGES: Final = 200_000  # bounds the exact-text cache on very large inputs
NS_PER_SECOND: Final = 1_000_000_000
SECONDS_PER_HOUR: Final = 3600
# Most severe first; a level not listed ranks below all of them.
SEVERITY: Final = ("fatal", "error", "warn", "info", "debug", "trace")
ERROR_LEVELS: Final = frozenset(("fatal", "error"))

# A quoted string at a token start, or a token holding a digit (its `key=` or `key:` kept).
_VARIABLE: Final = re.compile(r"""(?<!\S)([^\s\d=:]+[=:])?(?:"[^"]*"|'[^']*'(?!\w)|[^\s\d]*\d\S*)""")


class Pattern(msgspec.Struct):
    """One template and how its messages were spread: `series` holds [bucket start in s, count] pairs."""

    pattern: str
    count: int
    level: str
    first_seen: int  # ns
    last_seen: int  # ns
    sample: str
    series: list[tuple[int, int]]


class NewPattern(msgspec.Struct):
    """A pattern of the window with no counterpart in the baseline."""

    pattern: str
    count: int
    level: str
    sample: str


class RisingPattern(msgspec.Struct):
    """A pattern whose hourly rate in the window is `ratio` times its baseline rate."""

    pattern: str
    count: int
    level: str
    sample: str
    baseline_count: int
    ratio: float


class Insights(msgspec.Struct):
    new: list[NewPattern]
    rising: list[RisingPattern]


class _Cluster:
    """A template being mined and the statistics of the messages it took."""

    __slots__ = ("buckets", "count", "first", "last", "levels", "sample", "tokens")

    def __init__(self, tokens: list[str], sample: str, timestamp: int) -> None:
        self.tokens = tokens
        self.sample = sample
        self.count = 0
        self.first = timestamp
        self.last = timestamp
        self.levels: dict[str, int] = {}
        self.buckets: dict[int, int] = {}

    def absorb(self, tokens: Sequence[str]) -> None:
        """Turns every position where `tokens` differ into a wildcard."""
        for index, token in enumerate(tokens):
            if self.tokens[index] != token:
                self.tokens[index] = WILDCARD


class _Drain:
    """The prefix tree: leaves keyed by (token count, first tokens), each a list of clusters."""

    def __init__(self, similarity: float) -> None:
        self.similarity = similarity
        self.leaves: dict[tuple[str | int, ...], list[_Cluster]] = {}
        self.clusters: list[_Cluster] = []

    def place(self, tokens: list[str], sample: str, timestamp: int) -> _Cluster:
        """The cluster that takes these masked tokens: the most similar one in their leaf, or a new one."""
        leaf = self.leaves.setdefault((len(tokens), *tokens[:PREFIX_TOKENS]), [])
        best, best_score = None, -1.0
        for cluster in leaf:
            score = similarity(cluster.tokens, tokens)
            if score > best_score:
                best, best_score = cluster, score
        if best is not None and best_score >= self.similarity:
            best.absorb(tokens)
            return best
        cluster = _Cluster(list(tokens), sample, timestamp)
        leaf.append(cluster)
        self.clusters.append(cluster)
        return cluster


def mask_variables(message: str) -> str:
    """`message` with its variable tokens written `<_>`: the text clustering works on."""
    return _VARIABLE.sub(_wildcard_for, message)


def _wildcard_for(match: re.Match[str]) -> str:
    key = match.group(1)
    return key + WILDCARD if key else WILDCARD


def similarity(template: Sequence[str], tokens: Sequence[str]) -> float:
    """Share of positions holding the same literal token, as Drain scores; 1 when the two are identical.

    Wildcards do not count as agreement, or two messages made mostly of numbers would merge on
    shape alone ("user <_> logged out after <_>" and "user bob logged in from <_>").
    """
    equal = 0
    identical = True
    for left, right in zip(template, tokens, strict=True):
        if left != right:
            identical = False
        elif left != WILDCARD:
            equal += 1
    return 1.0 if identical else equal / len(tokens)


def mine_patterns(events: Iterable[Event], *, step_ns: int, limit: int) -> list[Pattern]:
    """The `limit` most frequent patterns of `events`, counted and bucketed by `step_ns`, most frequent first."""
    if step_ns <= 0:
        raise ValueError("step_ns must be positive")
    drain = _Drain(SIMILARITY)
    cache: dict[str, _Cluster] = {}
    for event in events:
        message, timestamp = event.message, event.timestamp
        masked = mask_variables(message)
        cluster = cache.get(masked)
        if cluster is None:
            cluster = drain.place(masked.split(), message, timestamp)
            if len(cache) < MAX_CACHED_MESSAGES:
                cache[masked] = cluster
        cluster.count += 1
        levels = cluster.levels
        levels[event.level] = levels.get(event.level, 0) + 1
        if timestamp < cluster.first:
            cluster.first = timestamp
        elif timestamp > cluster.last:
            cluster.last = timestamp
        bucket = timestamp // step_ns
        cluster.buckets[bucket] = cluster.buckets.get(bucket, 0) + 1
    ranked = sorted(drain.clusters, key=lambda cluster: (-cluster.count, cluster.first, cluster.tokens))
    return [_pattern_of(cluster, step_ns) for cluster in ranked[: max(limit, 0)]]


def _pattern_of(cluster: _Cluster, step_ns: int) -> Pattern:
    return Pattern(
        pattern=" ".join(cluster.tokens),
        count=cluster.count,
        level=_most_common_level(cluster.levels),
        first_seen=cluster.first,
        last_seen=cluster.last,
        sample=cluster.sample,
        series=[(bucket * step_ns // NS_PER_SECOND, count) for bucket, count in sorted(cluster.buckets.items())],
    )


def _severity(level: str) -> int:
    return SEVERITY.index(level) if level in SEVERITY else len(SEVERITY)


def _most_common_level(levels: dict[str, int]) -> str:
    """The most frequent level; a tie goes to the more severe one, which is what a reader should see."""
    return min(levels.items(), key=lambda item: (-item[1], _severity(item[0]), item[0]))[0]


def compare_patterns(
    window: list[Pattern],
    baseline: list[Pattern],
    window_seconds: float,
    baseline_seconds: float,
    *,
    min_ratio: float = 2.0,
    baseline_scale: float = 1.0,
) -> Insights:
    """Patterns new in the window, and those whose hourly rate rose at least `min_ratio` times; errors first.

    `baseline_seconds` is the span the baseline patterns were counted over; when that is a sample
    of a longer period, `baseline_scale` (period over span read) turns their counts into the
    period's estimated counts, which is what `baseline_count` reports.
    """
    if window_seconds <= 0 or baseline_seconds <= 0:
        raise ValueError("both periods must be longer than zero seconds")
    index = _BaselineIndex(baseline)
    new: list[NewPattern] = []
    rising: list[RisingPattern] = []
    for pattern in window:
        counterpart = index.find(pattern.pattern)
        if counterpart is None:
            new.append(NewPattern(pattern.pattern, pattern.count, pattern.level, pattern.sample))
            continue
        ratio = (pattern.count / window_seconds) / (counterpart.count / baseline_seconds)
        if ratio >= min_ratio:
            estimated = round(counterpart.count * baseline_scale)
            rising.append(
                RisingPattern(pattern.pattern, pattern.count, pattern.level, pattern.sample, estimated, round(ratio, 3))
            )
    return ordered(new, rising)


def ordered(new: list[NewPattern], rising: list[RisingPattern]) -> Insights:
    """Both lists errors first, then new by count and rising by ratio (ties by count, then text)."""
    new = sorted(new, key=lambda item: (item.level not in ERROR_LEVELS, -item.count, item.pattern))
    rising = sorted(rising, key=lambda item: (item.level not in ERROR_LEVELS, -item.ratio, -item.count, item.pattern))
    return Insights(new=new, rising=rising)


def fits(template: str, message: str) -> bool:
    """Whether `message` would be matched to `template` as a baseline pattern is in `compare_patterns`.

    Its masked tokens are the template's, or as many, agreeing wherever neither holds `<_>` and
    sharing at least SIMILARITY of the template's tokens as literals.
    """
    tokens, template_tokens = mask_variables(message).split(), template.split()
    if tokens == template_tokens:
        return True
    return len(tokens) == len(template_tokens) and _compatible_similarity(template_tokens, tokens) >= SIMILARITY


class _BaselineIndex:
    """Finds the baseline pattern a template of another mining run stands for (see the module docstring)."""

    def __init__(self, baseline: list[Pattern]) -> None:
        self.exact = {pattern.pattern: pattern for pattern in baseline}
        self.by_length: dict[int, list[tuple[list[str], Pattern]]] = {}
        for pattern in baseline:
            tokens = pattern.pattern.split()
            self.by_length.setdefault(len(tokens), []).append((tokens, pattern))

    def find(self, template: str) -> Pattern | None:
        exact = self.exact.get(template)
        if exact is not None:
            return exact
        tokens = template.split()
        best, best_score = None, SIMILARITY
        for candidate_tokens, candidate in self.by_length.get(len(tokens), []):
            score = _compatible_similarity(candidate_tokens, tokens)
            if score > best_score or (score == best_score and (best is None or candidate.count > best.count)):
                best, best_score = candidate, score
        return best


def _compatible_similarity(left: Sequence[str], right: Sequence[str]) -> float:
    """Share of equal literal tokens, or -1 when a literal position disagrees (then they are different texts)."""
    equal = 0
    for one, other in zip(left, right, strict=True):
        if one == other and one != WILDCARD:
            equal += 1
        elif one != WILDCARD and other != WILDCARD:
            return -1.0
    return equal / len(left) if left else 1.0
