"""The ABBA interleaving of blocks."""

from hypothesis import given
from hypothesis import strategies as st

from qeval.perf import abba_order


def test_abba_alternates_direction_each_round():
    labels = [b.label for b in abba_order(["A", "B", "C"], [1, 8], rounds=2)]
    assert labels == [
        "0/A/1", "0/B/1", "0/C/1", "0/A/8", "0/B/8", "0/C/8",
        "1/C/1", "1/B/1", "1/A/1", "1/C/8", "1/B/8", "1/A/8",
    ]


@given(
    st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=5, unique=True),
    st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True),
    st.integers(1, 6),
)
def test_every_block_once_and_positions_balance(precisions, batch_sizes, rounds):
    blocks = abba_order(precisions, batch_sizes, rounds)
    assert len(blocks) == len(precisions) * len(batch_sizes) * rounds
    assert len({(b.round, b.precision, b.batch_size) for b in blocks}) == len(blocks)
    if rounds % 2 == 0:
        # over an even number of rounds every precision's mean position within its batch size is the same
        for size in batch_sizes:
            pos = {p: 0 for p in precisions}
            for r in range(rounds):
                names = [b.precision for b in blocks if b.round == r and b.batch_size == size]
                for i, p in enumerate(names):
                    pos[p] += i
            assert len(set(pos.values())) == 1
