"""CellSpec: the cell as data (pickles, hashes, same result wherever it runs) and run_cells."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.cell import CellSpec, run_cells
from qeval.config import SweepConfig
from qeval.errors import UsageError
from qeval.models import FakeSource
from qeval.suites import load_suite
from qeval.sweep import run_sweep
from qeval.targets import parse_target
from tests.fakes import MINI, right_except_int4_on_odd

specs = st.builds(
    CellSpec,
    target=st.sampled_from([parse_target("a=fake@fp32"), parse_target("b=openai:http://127.0.0.1:8000/v1#m")]),
    suite=st.text(min_size=1, max_size=20), suite_hash=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    limit=st.one_of(st.none(), st.integers(1, 1000)), latency_samples=st.integers(0, 100),
)


@given(specs)
def test_a_cell_spec_pickles_and_keys_the_same_everywhere(spec):
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and hash(back) == hash(spec) and back.key() == spec.key()


@given(specs, specs)
def test_different_specs_have_different_keys(a, b):
    assert (a.key() == b.key()) == (a == b)


def test_run_cells_gives_the_sweep_s_cells(tmp_path):
    source = FakeSource(responder=right_except_int4_on_odd)
    suite = load_suite(MINI)
    spec = CellSpec(parse_target("int4=fake@int4"), str(MINI), suite.content_hash, latency_samples=0, device="cpu")
    (cell,) = run_cells([pickle.loads(pickle.dumps(spec))], source=source)
    record, _ = run_sweep(SweepConfig(model="fake", precisions=("int4",), suites=(str(MINI),), device="cpu",
                                      latency_samples=0, out_dir=str(tmp_path)), source=source)
    assert cell.cases == record.cells[0].cases and cell.accuracy == record.cells[0].accuracy == 0.5


def test_a_suite_changed_since_planning_is_refused():
    spec = CellSpec(parse_target("a=fake@fp32"), str(MINI), "0" * 64, device="cpu")
    with pytest.raises(UsageError, match="content changed"):
        run_cells([spec], source=FakeSource())
