"""runner.provision: the one step that turns a target into a loaded model or a recorded reason."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from qeval.errors import BackendUnavailable, ModelError, UsageError
from qeval.models import LoadedModel
from qeval.runner import Unprovisioned, provision


@dataclass
class _Target:
    raises: BaseException | None = None
    unavailable: str | None = None
    provisioned: int = 0

    def unavailable_reason(self, device: str) -> str | None:
        return self.unavailable

    def provision(self, device: str) -> LoadedModel:
        self.provisioned += 1
        if self.raises is not None:
            raise self.raises
        return LoadedModel(model=object(), load_s=0.5, quantize_s=0.0)  # type: ignore[arg-type]


def test_a_target_that_loads_is_its_loaded_model():
    got = provision(_Target(), "cpu")
    assert isinstance(got, LoadedModel) and got.load_s == 0.5


def test_a_target_that_cannot_run_here_is_skipped_without_loading():
    target = _Target(unavailable="needs CUDA")
    assert provision(target, "cpu") == Unprovisioned("skipped", "needs CUDA")
    assert target.provisioned == 0


def test_a_missing_backend_is_skipped_with_its_reason():
    got = provision(_Target(raises=BackendUnavailable("gptqmodel is not installed: pip install gptqmodel")), "cpu")
    assert isinstance(got, Unprovisioned) and got.status == "skipped" and "gptqmodel" in got.reason


def test_a_known_error_fails_with_its_message_and_no_traceback():
    got = provision(_Target(raises=ModelError("weights file is truncated")), "cpu")
    assert got == Unprovisioned("failed", "weights file is truncated")


def test_an_unexpected_error_fails_with_its_frames():
    got = provision(_Target(raises=RuntimeError("CUDA out of memory")), "cpu")
    assert isinstance(got, Unprovisioned) and got.status == "failed"
    assert got.reason == "RuntimeError: CUDA out of memory"
    assert got.traceback is not None and "raise self.raises" in got.traceback


def test_a_usage_error_is_the_users_to_fix_and_is_raised():
    with pytest.raises(UsageError, match="bad group size"):
        provision(_Target(raises=UsageError("bad group size")), "cpu")
