"""Choosing one group size per model, and refusing cleanly when none fits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import BackendUnavailable
from qeval.quantize import GROUP_SIZE_CANDIDATES, choose_group_size, get_precision


@pytest.mark.parametrize(
    ("widths", "expected"),
    [([256, 512], 128), ([576, 1536], 64), ([576, 576, 1536], 64), ([96, 160], 32)],
)
def test_largest_dividing_candidate(widths, expected):
    assert choose_group_size(widths, "int4") == expected


def test_none_divides_names_the_widths():
    with pytest.raises(BackendUnavailable, match=r"int4: no group size .* \(widths: 100, 256\)"):
        choose_group_size([256, 100], "int4")


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=6))
def test_choice_divides_all_and_is_largest(widths):
    try:
        group = choose_group_size(widths, "x")
    except BackendUnavailable:
        assert not any(all(w % g == 0 for w in widths) for g in GROUP_SIZE_CANDIDATES)
        return
    assert all(w % group == 0 for w in widths)
    assert not any(all(w % g == 0 for w in widths) for g in GROUP_SIZE_CANDIDATES if g > group)


@pytest.fixture(scope="module")
def odd_width_llama(tiny_llama_builder):
    # hidden 100: no candidate group size divides the attention/MLP input widths
    return lambda: tiny_llama_builder(hidden_size=100, intermediate_size=200, num_attention_heads=5, num_key_value_heads=5)


@pytest.mark.parametrize("name", ["int4", "hqq4"])
def test_impossible_group_size_is_a_clear_error(name, odd_width_llama):
    p = get_precision(name)
    model = odd_width_llama().to(p.load_dtype)
    with pytest.raises(BackendUnavailable) as info:
        p.apply(model, "cpu")
    assert f"{name}: no group size in (128, 64, 32)" in info.value.reason
    assert "widths: 100, 200" in info.value.reason
