"""Tests for pattern mining and insights: seeded families cluster into one pattern each, in any script."""

from __future__ import annotations

import random

import pytest

from logtraced.analysis.patterns import Pattern, compare_patterns, fits, mask_variables, mine_patterns
from logtraced.model import Event

T0 = 1_718_000_000 * 1_000_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND


def event(message: str, at: int = T0, level: str = "info") -> Event:
    return Event(timestamp=at, message=message, level=level)


def mine(messages: list[str], limit: int = 100) -> list[Pattern]:
    return mine_patterns([event(message) for message in messages], step_ns=MINUTE, limit=limit)


def templates(messages: list[str]) -> dict[str, int]:
    return {pattern.pattern: pattern.count for pattern in mine(messages)}


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("took 15ms to answer 1500 мс", "took <_> to answer <_> мс"),
        ("from 10.0.0.1 and fe80::1", "from <_> and <_>"),
        ("request 550e8400-e29b-41d4-a716-446655440000 hash 0xdeadbeef", "request <_> hash <_>"),
        ("GET /api/v1/orders/123", "GET <_>"),
        ('id=42 user="john doe" ok', "id=<_> user=<_> ok"),
        ("no variables here", "no variables here"),
        ("host db-01 down", "host <_> down"),
    ],
)
def test_variable_tokens_become_wildcards(message: str, masked: str) -> None:
    assert mask_variables(message) == masked


def test_numbers_ids_and_ips_vary_within_one_pattern_each() -> None:
    rng = random.Random(7)
    messages = []
    for _ in range(200):
        messages.append(f"user {rng.randrange(10**6)} logged in from 10.{rng.randrange(256)}.0.{rng.randrange(256)}")
        messages.append(f"order {rng.randrange(10**7)} shipped in {rng.randrange(1000)}ms")
        messages.append(f"cache miss for key session:{rng.getrandbits(64):016x}")
    assert templates(messages) == {
        "user <_> logged in from <_>": 200,
        "order <_> shipped in <_>": 200,
        "cache miss for key session:<_>": 200,
    }


def test_different_wording_makes_different_patterns() -> None:
    messages = ["user 1 logged in from 10.0.0.1", "user 2 logged out after 30s", "user 3 logged in from 10.0.0.2"]
    assert templates(messages) == {"user <_> logged in from <_>": 2, "user <_> logged out after <_>": 1}


def test_a_varying_word_becomes_a_wildcard_once_enough_of_the_message_repeats() -> None:
    names = ["alice", "bob", "мария", "ivan"]
    assert templates([f"user {name} logged in from 10.0.0.{i}" for i, name in enumerate(names)]) == {
        "user <_> logged in from <_>": 4
    }


def test_cyrillic_messages_cluster_like_english_ones() -> None:
    messages = [
        "Ошибка подключения к базе db-01 через 1500 мс",
        "Ошибка подключения к базе db-02 через 30 мс",
        "Заказ №123456 оформлен, сумма 1500 руб.",
        "Заказ №98 оформлен, сумма 20 руб.",
        "Пользователь мария вошёл в систему с адреса 10.0.0.1",
        "Пользователь ivan вошёл в систему с адреса 10.0.0.2",
    ]
    assert templates(messages) == {
        "Ошибка подключения к базе <_> через <_> мс": 2,
        "Заказ <_> оформлен, сумма <_> руб.": 2,
        "Пользователь <_> вошёл в систему с адреса <_>": 2,
    }


def test_counts_levels_first_last_seen_sample_and_series() -> None:
    events = [
        event("job 1 done in 5s", T0 + 10 * SECOND, "info"),
        event("job 2 done in 7s", T0 + 70 * SECOND, "warn"),
        event("job 3 done in 9s", T0 + 75 * SECOND, "warn"),
        event("job 4 done in 1s", T0 + 5 * SECOND, "info"),
        event("job 5 done in 2s", T0 + 190 * SECOND, "warn"),
        event("disk full", T0 + 20 * SECOND, "error"),
    ]
    job, disk = mine_patterns(events, step_ns=MINUTE, limit=10)
    assert job == Pattern(
        pattern="job <_> done in <_>",
        count=5,
        level="warn",
        first_seen=T0 + 5 * SECOND,
        last_seen=T0 + 190 * SECOND,
        sample="job 1 done in 5s",
        series=[(1_718_000_000 - 20, 2), (1_718_000_040, 2), (1_718_000_160, 1)],
    )
    assert (disk.pattern, disk.count, disk.level, disk.series) == ("disk full", 1, "error", [(1_717_999_980, 1)])


def test_a_level_tie_goes_to_the_more_severe_level() -> None:
    events = [event("restart 1", level="info"), event("restart 2", level="error")]
    assert mine_patterns(events, step_ns=MINUTE, limit=1)[0].level == "error"


def test_patterns_are_ordered_by_count_and_cut_at_limit() -> None:
    messages = ["a happened 1"] * 3 + ["b happened"] * 5 + ["c happened now"] * 4
    assert [(p.pattern, p.count) for p in mine(messages)] == [
        ("b happened", 5),
        ("c happened now", 4),
        ("a happened <_>", 3),
    ]
    assert [p.pattern for p in mine(messages, limit=2)] == ["b happened", "c happened now"]
    assert mine(messages, limit=0) == []


def test_no_events_no_patterns_and_step_must_be_positive() -> None:
    assert mine_patterns([], step_ns=MINUTE, limit=10) == []
    with pytest.raises(ValueError):
        mine_patterns([event("x")], step_ns=0, limit=10)


def test_seeded_families_each_give_exactly_one_pattern() -> None:
    rng = random.Random(3)
    makers = [
        lambda: f"GET /api/v1/items/{rng.randrange(10**6)} 200 {rng.randrange(900)}ms",
        lambda: f"connection to db-{rng.randrange(9):02d}:5432 refused after {rng.randrange(5)} retries",
        lambda: f"Платёж {rng.getrandbits(64):016x} отклонён банком: недостаточно средств",
        lambda: f"request {rng.getrandbits(128):032x} completed in {rng.randrange(900)}ms status=ok",
        lambda: f"consumer lag={rng.randrange(1000)} partition={rng.randrange(12)}",
    ]
    messages = [rng.choice(makers)() for _ in range(2000)]
    assert len(templates(messages)) == len(makers)
    assert sum(templates(messages).values()) == 2000


# --- insights ----------------------------------------------------------------------------------


def pattern(text: str, count: int, level: str = "info") -> Pattern:
    return Pattern(pattern=text, count=count, level=level, first_seen=T0, last_seen=T0, sample=text, series=[])


def test_new_patterns_are_those_absent_from_the_baseline_errors_first() -> None:
    window = [
        pattern("cache miss <_>", 50),
        pattern("disk <_> full", 3, "error"),
        pattern("worker <_> restarted", 20, "warn"),
        pattern("panic in <_>", 1, "fatal"),
        pattern("user <_> logged in", 100),
    ]
    baseline = [pattern("user <_> logged in", 1000), pattern("cache miss <_>", 500)]
    insights = compare_patterns(window, baseline, 3600, 36000)
    assert [(item.pattern, item.count, item.level) for item in insights.new] == [
        ("disk <_> full", 3, "error"),
        ("panic in <_>", 1, "fatal"),
        ("worker <_> restarted", 20, "warn"),
    ]
    assert insights.new[0].sample == "disk <_> full"
    assert insights.rising == []


def test_rising_compares_hourly_rates_and_puts_errors_first() -> None:
    window = [
        pattern("user <_> logged in", 100),  # 100/h against 100/h
        pattern("timeout calling <_>", 30, "error"),  # 30/h against 1/h
        pattern("cache miss <_>", 500),  # 500/h against 50/h
        pattern("retrying <_>", 40, "warn"),  # 40/h against 10/h
    ]
    baseline = [
        pattern("user <_> logged in", 2400),
        pattern("timeout calling <_>", 24, "error"),
        pattern("cache miss <_>", 1200),
        pattern("retrying <_>", 240, "warn"),
    ]
    insights = compare_patterns(window, baseline, 3600, 24 * 3600)
    assert insights.new == []
    assert [(item.pattern, item.baseline_count, item.ratio) for item in insights.rising] == [
        ("timeout calling <_>", 24, 30.0),
        ("cache miss <_>", 1200, 10.0),
        ("retrying <_>", 240, 4.0),
    ]
    assert insights.rising[0].level == "error"


def test_templates_of_two_runs_match_when_one_kept_a_literal_the_other_generalised() -> None:
    window = mine(["user alice logged in from 10.0.0.1"] * 10)  # one name: kept literal
    baseline = mine([f"user {name} logged in from 10.0.0.{i}" for i, name in enumerate(["bob", "olga", "petr"])])
    assert window[0].pattern == "user alice logged in from <_>"
    assert baseline[0].pattern == "user <_> logged in from <_>"
    insights = compare_patterns(window, baseline, 3600, 3600)
    assert insights.new == []
    assert [(item.pattern, item.baseline_count, item.ratio) for item in insights.rising] == [
        ("user alice logged in from <_>", 3, 3.333)
    ]


def test_templates_with_a_disagreeing_literal_do_not_match() -> None:
    insights = compare_patterns(
        [pattern("user <_> logged out", 5)], [pattern("user <_> logged in", 5)], window_seconds=60, baseline_seconds=60
    )
    assert [item.pattern for item in insights.new] == ["user <_> logged out"]


def test_periods_must_have_a_length() -> None:
    with pytest.raises(ValueError):
        compare_patterns([], [], 0, 3600)


def test_a_sampled_baseline_reports_its_count_scaled_to_the_whole_period() -> None:
    # 12 events read from a twentieth of the day: 240 estimated for the day, 10 an hour.
    insights = compare_patterns(
        [pattern("retrying <_>", 40, "warn")],
        [pattern("retrying <_>", 12, "warn")],
        3600,
        24 * 3600 / 20,
        baseline_scale=20,
    )
    assert [(item.baseline_count, item.ratio) for item in insights.rising] == [(240, 4.0)]


def test_a_message_fits_a_template_by_the_rule_templates_match_by() -> None:
    assert fits("payment <_> declined by bank", "payment 42 declined by bank")
    assert fits("user alice logged in from <_>", "user bob logged in from 10.0.0.1") is False
    assert fits("user <_> logged in from <_>", "user bob logged in from 10.0.0.1")
    assert fits("payment <_> declined by bank", "bank 7 declined by payment") is False
    assert fits("payment <_> declined by bank", "payment 7 declined by the bank") is False  # one token more
