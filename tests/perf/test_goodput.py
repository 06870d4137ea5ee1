"""SLOs on a load profile: which ones `qeval perf` accepts, verdicts per point, goodput."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.perf import (
    LoadPoint,
    Ratio,
    goodput,
    parse_perf_slos,
    pick_goodput,
    point_verdicts,
)
from qeval.perf._stats import distribution

outcomes = st.sampled_from(["pass", "fail", "inconclusive"])
verdict_maps = st.dictionaries(
    st.integers(1, 512), st.dictionaries(st.sampled_from(["a <= 1", "b >= 2", "c < 3"]), outcomes, max_size=3),
    max_size=8,
)


@given(verdict_maps)
def test_goodput_passes_every_slo_and_no_larger_batch_does(verdicts):
    best = pick_goodput(verdicts)
    passing = {b for b, v in verdicts.items() if all(o == "pass" for o in v.values())}
    if best is None:
        assert not passing
    else:
        assert all(o == "pass" for o in verdicts[best].values())
        assert not any(b > best for b in passing)


@pytest.mark.parametrize("text", ["accuracy >= 0.9", "f1 >= 0.5", "accuracy_drop_vs(fp32) <= 0.02"])
def test_quality_slos_point_to_recommend(text):
    with pytest.raises(UsageError, match="qeval recommend"):
        parse_perf_slos([text])


def test_ratio_must_be_against_the_reference():
    assert parse_perf_slos(["p95_ttft_ratio_vs(fp32) <= 1.2"], reference="fp32")
    with pytest.raises(UsageError, match=r"p95_ttft_ratio_vs\(fp32\)"):
        parse_perf_slos(["p95_ttft_ratio_vs(bf16) <= 1.2"], reference="fp32")
    with pytest.raises(UsageError, match="tokenization"):
        parse_perf_slos(["p95_tokenize_ms <= 3"])
    with pytest.raises(UsageError, match="Cannot parse"):
        parse_perf_slos(["p95_ttft_ms <<= 3"])


def _point(batch, ttft_ms, tps=None, tps_ci=None, status="ok", peak=None):
    return LoadPoint(
        batch_size=batch, status=status, requests=len(ttft_ms),
        latency={"ttft": distribution(ttft_ms)} if status == "ok" else {},
        output_tokens_per_s=tps, output_tokens_per_s_ci=tps_ci, peak_bytes=peak,
    )


def test_verdicts_use_the_interval():
    # 400 samples: the p95 is bounded on both sides
    fast = _point(1, [10.0 + (i % 20) for i in range(400)], tps=100.0, tps_ci=(90.0, 110.0), peak=5_000_000)
    slos = parse_perf_slos(["p95_ttft_ms <= 100", "tokens_per_s >= 50", "peak_mb <= 4"])
    assert point_verdicts(slos, fast, weights_bytes=1) == {
        "p95_ttft_ms <= 100": "pass", "tokens_per_s >= 50": "pass", "peak_mb <= 4": "fail",
    }
    few = _point(1, [10.0] * 8)  # 8 samples cannot bound a p95 from above
    assert point_verdicts(parse_perf_slos(["p95_ttft_ms <= 100"]), few, 1) == {"p95_ttft_ms <= 100": "inconclusive"}


def test_goodput_is_the_largest_passing_batch():
    points = [
        _point(1, [10.0] * 400, tps=10.0, tps_ci=(9.0, 11.0)),
        _point(8, [50.0] * 400, tps=60.0, tps_ci=(55.0, 65.0)),
        _point(32, [500.0] * 400, tps=100.0, tps_ci=(90.0, 110.0)),
        _point(64, [], status="oom"),
    ]
    g = goodput(parse_perf_slos(["p95_ttft_ms <= 100"]), points, weights_bytes=None)
    assert g.batch_size == 8 and g.output_tokens_per_s == 60.0
    assert g.verdicts[32] == {"p95_ttft_ms <= 100": "fail"} and g.verdicts[64] == {"p95_ttft_ms <= 100": "fail"}


def test_ratio_slo_uses_the_ratio_at_that_batch():
    slos = parse_perf_slos(["tokens_per_s_ratio_vs(fp32) >= 1.5"], reference="fp32")
    point = _point(8, [1.0] * 10)
    ratios = (Ratio("tokens_per_s", 8, 2.0, (1.8, 2.2)), Ratio("tokens_per_s", 1, 1.0, (0.5, 1.5)))
    assert point_verdicts(slos, point, None, ratios) == {"tokens_per_s_ratio_vs(fp32) >= 1.5": "pass"}
    # the reference itself: exactly 1
    assert point_verdicts(slos, point, None, ()) == {"tokens_per_s_ratio_vs(fp32) >= 1.5": "fail"}
