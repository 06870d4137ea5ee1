from hypothesis import assume, given
from hypothesis import strategies as st

from qeval.evaluate import cut_at_stop


@given(st.text(), st.lists(st.text(min_size=1), max_size=3))
def test_cut_at_stop_is_a_prefix_without_any_stop(text, stops):
    cut = cut_at_stop(text, stops)
    assert text.startswith(cut)
    assert not any(s in cut for s in stops)


@given(st.text(), st.text(min_size=1), st.text())
def test_cut_at_stop_cuts_at_the_first_stop(head, stop, tail):
    # only texts whose first occurrence of the stop is the planted one
    assume((head + stop + tail).find(stop) == len(head))
    assert cut_at_stop(head + stop + tail, [stop]) == head


def test_cut_without_stops_keeps_everything():
    assert cut_at_stop("a\nb", []) == "a\nb"
