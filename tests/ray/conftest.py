"""One local Ray (2 CPUs, no dashboard) for every test under tests/ray, started on first use and
shut down after the last of them. Without ray installed the tests skip, except under ``CI`` or
``QEVAL_REQUIRE_RAY=1``, where they fail: CI must not silently skip them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.perf.conftest import tiny_perf_model_dir  # noqa: F401 - the tiny Llama with a tokenizer

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def ray_cluster():
    """The ``ray`` module, initialised in this process: the executor uses it as it is."""
    try:
        import ray
    except ImportError:
        msg = "ray is not installed: pip install 'qeval[ray]' (make test installs it)"
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_RAY") == "1":
            pytest.fail(f"{msg}; CI (or QEVAL_REQUIRE_RAY=1) requires the Ray tests to run.", pytrace=False)
        pytest.skip(msg)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Shut the cluster down after the last Ray test, not at the end of the session: its daemons
    would otherwise idle beside every timing-sensitive test that comes after tests/ray."""
    if nextitem is not None and nextitem.path.is_relative_to(HERE):
        return
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
