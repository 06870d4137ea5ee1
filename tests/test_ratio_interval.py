"""stats.ratio_from_intervals: bounds of a / b from intervals of a and b, infinite ones included."""

import math

from hypothesis import given
from hypothesis import strategies as st

from qeval.stats import ratio_from_intervals

# what quantile_ci and the bootstraps give for positive costs: a lower bound that is positive or
# unbounded (-inf), an upper bound that is positive or unbounded (+inf)
_interval = st.tuples(st.one_of(st.floats(0.01, 1e6), st.just(-math.inf)),
                      st.one_of(st.floats(0.01, 1e6), st.just(math.inf))).map(lambda t: tuple(sorted(t)))


@given(_interval, _interval, st.floats(0.01, 1e6), st.floats(0.01, 1e6))
def test_the_ratio_of_any_two_values_inside_lies_inside_and_no_bound_is_nan(num, den, a, b):
    lo, hi = ratio_from_intervals(num, den)
    assert not math.isnan(lo) and not math.isnan(hi) and 0.0 <= lo <= hi
    if num[0] <= a <= num[1] and den[0] <= b <= den[1]:
        assert lo <= a / b * (1 + 1e-9) and a / b <= hi * (1 + 1e-9)


def test_unbounded_order_statistics_give_an_unbounded_ratio_not_nan():
    assert ratio_from_intervals((-math.inf, 40.0), (10.0, math.inf)) == (0.0, 4.0)
    assert ratio_from_intervals((20.0, math.inf), (-math.inf, math.inf)) == (0.0, math.inf)
