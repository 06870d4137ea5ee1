"""SLO grammar: parsing, canonical text, and clear errors for everything else."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.gates import SLO, SloError, is_cost_metric, parse_slo

QUALITY = st.sampled_from(["accuracy", "f1", "precision", "recall", "unparseable_rate", "tests_passed"])
PCT = st.sampled_from(["p50", "p95", "p99"])
KIND = st.sampled_from(["ttft", "tpot", "itl", "e2e", "tokenize"])
LATENCY_MS = st.builds(lambda p, k: f"{p}_{k}_ms", PCT, KIND)
COST_UNITLESS = st.one_of(st.builds(lambda p, k: f"{p}_{k}", PCT, KIND), st.sampled_from(["tokens_per_s", "weights", "peak"]))
OPS = st.sampled_from([">=", "<=", ">", "<"])
NUMS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
REFS = st.one_of(st.just("baseline"), st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True))

slos = st.one_of(
    st.builds(SLO, metric=st.one_of(QUALITY, LATENCY_MS, st.sampled_from(["tokens_per_s", "weights_mb", "peak_mb"])),
              op=OPS, threshold=NUMS),
    st.builds(SLO, metric=QUALITY, op=OPS, threshold=NUMS, relation=st.just("drop"), reference=REFS),
    st.builds(SLO, metric=COST_UNITLESS, op=OPS, threshold=NUMS, relation=st.just("ratio"), reference=REFS),
)


@given(slos)
def test_canonical_text_round_trips(slo):
    assert parse_slo(str(slo)) == slo


@given(slos, st.text(alphabet=" \t", max_size=3), st.text(alphabet=" \t", max_size=3))
def test_whitespace_is_free(slo, pad_a, pad_b):
    text = str(slo)
    target, op, num = text.split(" ")
    assert parse_slo(f"{pad_a}{target}{pad_b}{op}{pad_a}{num}{pad_b}") == slo


@given(st.text(max_size=40))
def test_garbage_never_raises_anything_but_slo_error(text):
    try:
        slo = parse_slo(text)
    except SloError as exc:
        assert str(exc)
    else:
        assert parse_slo(str(slo)) == slo


@pytest.mark.parametrize(
    "text, expected",
    [
        ("accuracy >= 0.92", SLO("accuracy", ">=", 0.92)),
        ("f1>=0.8", SLO("f1", ">=", 0.8)),
        ("p95_ttft_ms <= 300", SLO("p95_ttft_ms", "<=", 300.0)),
        ("p99_e2e_ms <= 2000", SLO("p99_e2e_ms", "<=", 2000.0)),
        ("tokens_per_s >= 20", SLO("tokens_per_s", ">=", 20.0)),
        ("weights_mb <= 200", SLO("weights_mb", "<=", 200.0)),
        ("unparseable_rate <= 0.05", SLO("unparseable_rate", "<=", 0.05)),
        ("accuracy_drop_vs(bf16) <= 0.02", SLO("accuracy", "<=", 0.02, "drop", "bf16")),
        ("p95_ttft_ratio_vs(bf16) <= 0.8", SLO("p95_ttft", "<=", 0.8, "ratio", "bf16")),
        ("accuracy_drop_vs(baseline) <= 0.01", SLO("accuracy", "<=", 0.01, "drop", "baseline")),
        ("accuracy_drop_vs( gptq-int4 ) < 1e-2", SLO("accuracy", "<", 0.01, "drop", "gptq-int4")),
    ],
)
def test_the_documented_examples(text, expected):
    assert parse_slo(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "Empty"),
        ("accuracy", "expected METRIC OP NUMBER"),
        ("accuracy => 0.9", "expected METRIC OP NUMBER"),
        ("accuracy >= high", "expected METRIC OP NUMBER"),
        (">= 0.9", "expected METRIC OP NUMBER"),
        ("p95_ttft >= 3", "needs its unit"),
        ("p90_ttft_ms <= 300", "unknown latency metric"),
        ("p95_ttft_ms_ratio_vs(bf16) <= 1", "without the unit"),
        ("accuracy_ratio_vs(bf16) <= 1", "use accuracy_drop_vs"),
        ("p95_ttft_ms_drop_vs(bf16) <= 1", "use a ratio"),
        ("accuracy >= 1e999", "finite"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text, fragment):
    with pytest.raises(SloError, match=fragment):
        parse_slo(text)


def test_cost_metrics_and_point_comparison():
    assert is_cost_metric("weights_mb") and not is_cost_metric("f1")
    assert parse_slo("accuracy >= 0.9").holds(0.9) and not parse_slo("accuracy > 0.9").holds(0.9)


def test_shipped_suites_default_slos_parse():
    from pathlib import Path

    from qeval.suites import load_suite

    for folder in sorted((Path(__file__).parents[1] / "suites").glob("*/suite.yaml")):
        for text in load_suite(folder.parent).slos:
            parse_slo(text)


# --- verdicts ---------------------------------------------------------------------------

from qeval.gates import decide  # noqa: E402
from qeval.stats import paired_rate_drop, proportion_ci  # noqa: E402


@given(st.integers(0, 300), st.integers(1, 300), st.floats(0, 1), st.sampled_from([">=", "<=", ">", "<"]))
def test_verdict_agrees_with_its_interval(k, n, t, op):
    k = min(k, n)
    slo = SLO("accuracy", op, t)
    ci = proportion_ci(k, n)
    v = decide(slo, k / n, ci, n)
    if v.outcome == "pass":
        assert slo.holds(ci[0]) and slo.holds(ci[1])
    elif v.outcome == "fail":
        assert not slo.holds(ci[0]) and not slo.holds(ci[1])
    else:
        assert slo.holds(ci[0]) != slo.holds(ci[1])
        assert v.needed_n is None or v.needed_n > n
    assert v.rule


def test_inconclusive_says_which_n_would_decide():
    v = decide(parse_slo("accuracy >= 0.8"), 0.85, proportion_ci(17, 20), 20)
    assert v.outcome == "inconclusive" and v.needed_n > 100
    # at that n, the same observed rate decides
    n = v.needed_n
    assert decide(parse_slo("accuracy >= 0.8"), 0.85, proportion_ci(round(0.85 * n), n), n).outcome == "pass"


def test_paired_drop_counts_flips_both_ways():
    ref = [True] * 6 + [False] * 4
    cur = [True, True, True, True, False, False, True, False, False, False]
    drop, ci, p, lost, gained = paired_rate_drop(ref, cur)
    assert (lost, gained) == (2, 1) and drop == pytest.approx(0.1)
    assert ci[0] < drop < ci[1] and 0 < p <= 1
    same, ci, p, *_ = paired_rate_drop(ref, ref)
    assert same == 0.0 and p == 1.0
    assert ci[0] < -0.1 and ci[1] > 0.1  # ten identical cases do not prove "no change"


def test_paired_drop_interval_is_not_conditional_on_the_flip_count():
    """All 6 flips one way: the interval must reach past the observed 0.5 drop."""
    drop, ci, *_ = paired_rate_drop([True] * 6 + [False] * 6, [False] * 12)
    assert drop == 0.5 and ci[1] > 0.7


def _simulate(rng, n, base, flip_down, flip_up):
    ref = rng.random(n) < base
    cur = ref.copy()
    u = rng.random(n)
    cur[ref & (u < flip_down)] = False
    cur[~ref & (u < flip_up)] = True
    return ref.tolist(), cur.tolist()


def test_drop_gate_false_fail_rate_is_at_most_nominal():
    """No true difference (symmetric noise flips): `drop <= 0` must fail <= 2.5% (+ MC slack)."""
    import numpy as np

    rng = np.random.default_rng(1)
    slo = parse_slo("accuracy_drop_vs(bf16) <= 0")
    runs = 2000
    fails = 0
    for _ in range(runs):
        ref, cur = _simulate(rng, 200, 0.7, 0.05, 0.05 * 0.7 / 0.3)  # equal expected flips both ways
        drop, ci, *_ = paired_rate_drop(ref, cur)
        fails += decide(slo, drop, ci, len(ref)).outcome == "fail"
    assert fails / runs <= 0.025 + 3 * (0.025 * 0.975 / runs) ** 0.5


def test_drop_gate_catches_a_planted_five_point_drop():
    """A 5-point drop on n=500 against `drop <= 0` is caught at least 80% of the time."""
    import numpy as np

    rng = np.random.default_rng(2)
    slo = parse_slo("accuracy_drop_vs(bf16) <= 0")
    runs, caught = 500, 0
    for _ in range(runs):
        # 0.7 base; 0.05/0.7 of passes lost => 5-point drop; plus 2% symmetric noise both ways
        ref, cur = _simulate(rng, 500, 0.7, 0.05 / 0.7 + 0.02, 0.02 * 0.7 / 0.3)
        drop, ci, *_ = paired_rate_drop(ref, cur)
        caught += decide(slo, drop, ci, len(ref)).outcome == "fail"
    assert caught / runs >= 0.8


def test_drop_gate_does_not_pass_a_real_drop_above_its_threshold():
    """True drop 3 points (flips one way only), gate `drop <= 0.02`: passes at most 2.5% (+ MC slack).

    An interval conditional on the number of flips passed this 28% of the time.
    """
    import numpy as np

    rng = np.random.default_rng(3)
    slo = parse_slo("accuracy_drop_vs(bf16) <= 0.02")
    runs, passed = 2000, 0
    for _ in range(runs):
        ref, cur = _simulate(rng, 200, 0.7, 0.03 / 0.7, 0.0)
        drop, ci, *_ = paired_rate_drop(ref, cur)
        passed += decide(slo, drop, ci, len(ref)).outcome == "pass"
    assert passed / runs <= 0.025 + 3 * (0.025 * 0.975 / runs) ** 0.5
