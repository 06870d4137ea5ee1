"""A slow fake model for the subprocess kill/interrupt tests (``--model tests.resume_helpers:slow_source``)."""

import os
import time

from qeval.models import FakeSource
from tests.fakes import right_except_int4_on_odd

DELAY_S = float(os.environ.get("QEVAL_TEST_DELAY_S", "0.05"))


def slow_answer(prompt: str, precision: str) -> str:
    time.sleep(DELAY_S)
    return right_except_int4_on_odd(prompt, precision)


def slow_source() -> FakeSource:
    return FakeSource(responder=slow_answer)
