"""Plugin tests: each runs pytest in-process (pytester) on a fake model.

The scratch project holds the 12-case ``mini`` suite and ``fakemodel.py`` with
scripted model sources; ``python -m pytest`` puts the project on sys.path, so
``--qeval-model fakemodel:right`` resolves.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from tests.fakes import MINI

# Imported here, before any in-process run: pytester puts sys.modules back as it was
# after each run, and torch / numpy cannot be imported a second time in one process.
import matplotlib.pyplot  # noqa: E402,F401
import numpy  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import torch  # noqa: E402,F401

try:  # the GPTQ path imports datasets, which registers pyarrow types once per process
    import datasets  # noqa: E402,F401
except ImportError:
    pass

import qeval.quantize  # noqa: E402,F401
import qeval.report  # noqa: E402,F401
import qeval.sweep  # noqa: E402,F401


FAKE_MODELS = textwrap.dedent(
    '''
    import re
    from qeval.models import FakeSource

    def _sum(prompt):
        a, b = map(int, re.findall(r"What is (\\d+) \\+ (\\d+)\\?", prompt)[0])
        return a, b

    def _right(prompt, precision):
        a, b = _sum(prompt)
        return f"The answer is {a + b}."

    def _int4_wrong_on_odd(prompt, precision):
        a, b = _sum(prompt)
        return f"The answer is {a + b + (precision == 'int4' and a % 2 == 1)}."

    def _wrong_on_1_and_3(prompt, precision):
        a, b = _sum(prompt)
        return f"The answer is {a + b + (a in (2, 4))}."

    right = FakeSource(responder=_right)
    int4_odd = FakeSource(responder=_int4_wrong_on_odd)
    regressed = FakeSource(responder=_wrong_on_1_and_3)
    '''
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(MINI, pytester.path / "mini")
    pytester.makepyfile(fakemodel=FAKE_MODELS)
    pytester.syspathinsert()  # what `python -m pytest` does for the project folder
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In-process: a subprocess per run re-imports torch and transformers (~4 s each,
    # 40 runs). pytester restores sys.modules and sys.path after every run, so the
    # scratch project's `fakemodel` module does not leak between tests.
    return project.runpytest_inprocess("-p", "no:hypothesispytest", *args)
