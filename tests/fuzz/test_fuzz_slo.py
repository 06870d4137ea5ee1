"""Fuzzed SLO expressions: any text parses into an SLO or raises an SloError that quotes it and shows the fix."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qeval.errors import QevalError
from qeval.gates import SLO, SloError, parse_slo
from tests.fuzz._explained import check_message

FUZZ = settings(max_examples=200, deadline=None)
_METRICS = ["accuracy", "f1", "p95_ttft_ms", "p95_ttft", "p50_tpot_ms", "tokens_per_s", "weights", "peak_mb", "p97_e2e_ms", ""]
_TARGETS = st.sampled_from(_METRICS).flatmap(
    lambda m: st.sampled_from([m, f"{m}_drop_vs(bf16)", f"{m}_ratio_vs(baseline)", f"{m}_drop_vs()", f"{m}_ratio_vs(bf16"])
)
_OPS = st.sampled_from([">=", "<=", ">", "<", "=", "==", "=>", "!=", ""])
_NUMBERS = st.sampled_from(["0.9", "1e400", "-1e400", "nan", "inf", ".5", "5.", "1e-3", "+2", "abc", "", "0x10"])


def _check(text: str) -> None:
    try:
        slo = parse_slo(text)
    except QevalError as exc:
        assert isinstance(exc, SloError), type(exc)
        message = str(exc)
        if text.strip():
            assert repr(text) in message, message  # names the bad expression, as written
        check_message(message, path=None)
    else:
        assert isinstance(slo, SLO)
        assert parse_slo(str(slo)) == slo  # what parses prints back as itself


@FUZZ
@given(text=st.text(max_size=60))
def test_any_text(text):
    _check(text)


@FUZZ
@given(target=_TARGETS, op=_OPS, number=_NUMBERS, space=st.sampled_from(["", " ", "\t", "\n"]))
def test_near_misses(target, op, number, space):
    _check(f"{space}{target}{space}{op}{space}{number}{space}")


def test_not_a_string():
    for value in (None, 0.5, b"accuracy >= 0.5", ["accuracy >= 0.5"]):
        try:
            parse_slo(value)  # type: ignore[arg-type]
        except SloError as exc:
            check_message(str(exc), path=None)
