"""Plugin tests: each runs pytest in a subprocess (pytester) on a fake model.

The scratch project holds the 12-case ``mini`` suite and ``fakemodel.py`` with
scripted model sources; ``python -m pytest`` puts the project on sys.path, so
``--qeval-model fakemodel:right`` resolves.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from tests.fakes import MINI


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
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    # hypothesis' plugin costs ~1.7 s per subprocess and nothing here uses it
    return project.runpytest_subprocess("-p", "no:hypothesispytest", *args)
