"""Loading a model does not import hqq (and torch's compiler stack with it) unless asked to."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.skipif(importlib.util.find_spec("hqq") is None, reason="hqq is not installed: nothing to keep out")
def test_an_fp32_load_keeps_hqq_out_and_transformers_still_sees_it():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from qeval.models import resolve_model
        loaded = resolve_model("smollm2-135m").load("fp32", "cpu")  # the bundled model
        import transformers.utils, transformers.utils.import_utils
        print("hqq" in sys.modules, transformers.utils.is_hqq_available(),
              transformers.utils.import_utils.is_hqq_available())
    """)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "True"]
