"""Planning a sweep's cells from --precisions, --calibration and --calibration-seeds."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.quantize import get_precision
from qeval.variants import calibration_names, plan

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
PRECISIONS = ["fp32", "int8", "int4", "gptq-int4", "gptq-int8"]


@given(st.lists(NAME, min_size=1, max_size=5, unique=True), st.sampled_from([",", ", ", " ,"]))
def test_names_round_trip_through_the_comma_list(names, sep):
    assert calibration_names(sep.join(names)) == tuple(names)


@given(st.lists(NAME, min_size=1, max_size=4, unique=True), st.integers(0, 3))
def test_an_empty_entry_is_refused(names, where):
    parts = list(names)
    parts.insert(min(where, len(parts)), " ")
    with pytest.raises(UsageError, match="empty entry"):
        calibration_names(",".join(parts))


@given(
    st.lists(st.sampled_from(PRECISIONS), min_size=1, max_size=5, unique=True),
    st.lists(NAME, min_size=1, max_size=3, unique=True),
    st.integers(1, 3),
    st.integers(0, 100),
)
def test_plan_runs_uncalibrated_precisions_once_and_calibrated_ones_per_set_and_seed(names, sets, k, first):
    precisions = [get_precision(n) for n in names]
    variants = plan(precisions, ",".join(sets), first, k)
    calibrated = [p for p in precisions if p.needs_calibration]
    assert len(variants) == len(precisions) - len(calibrated) + len(calibrated) * len(sets) * k
    labels = [v.label for v in variants]
    assert len(set(labels)) == len(labels)
    assert [v.precision.name for v in variants if not v.precision.needs_calibration] == [
        p.name for p in precisions if not p.needs_calibration]
    for v in variants:
        if v.precision.needs_calibration:
            assert v.calibration in sets and first <= v.seed < first + k
            plain = len(sets) == 1 and k == 1
            assert (v.label == v.precision.name) == plain
        else:
            assert v.label == v.precision.name and v.calibration is None


def test_labels_name_the_set_and_the_seed():
    labels = [v.label for v in plan([get_precision("gptq-int4")], "generic,data/my set.jsonl", 5, 2)]
    assert labels == ["gptq-int4@generic/s5", "gptq-int4@generic/s6", "gptq-int4@my set/s5", "gptq-int4@my set/s6"]


def test_two_files_with_one_name_would_share_a_label_and_are_refused():
    with pytest.raises(UsageError, match="share the label"):
        plan([get_precision("gptq-int4")], "a/cal.jsonl,b/cal.jsonl")
