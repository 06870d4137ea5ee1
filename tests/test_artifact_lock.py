"""The build lock beside a cached artifact: one builder at a time, the next one waits, and a
builder killed mid-build (SIGKILL) leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from qeval.artifact_lock import artifact_lock, lock_path

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from pathlib import Path
from qeval.artifact_lock import artifact_lock
with artifact_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(artifact: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(artifact)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_builder_waits_and_a_killed_holder_frees_the_lock(tmp_path):
    artifact = tmp_path / "models" / "smollm2"
    holder = _holder(artifact)
    assert lock_path(artifact) == tmp_path / ".locks" / "models--smollm2.lock"  # not among the artifacts
    said: list[str] = []
    got = threading.Event()

    def build():
        with artifact_lock(artifact, said.append):
            got.set()

    waiter = threading.Thread(target=build)
    waiter.start()
    time.sleep(0.5)
    assert not got.is_set() and said and "waiting for another process building" in said[0]
    holder.send_signal(signal.SIGKILL)  # died mid-build: the kernel drops its lock
    holder.wait(timeout=10)
    assert got.wait(timeout=10)
    waiter.join(timeout=10)


def test_builds_of_one_artifact_never_overlap(tmp_path):
    artifact = tmp_path / "quantized" / "gptq-int4-abc"
    spans: list[tuple[float, float]] = []

    def build():
        with artifact_lock(artifact):
            start = time.monotonic()
            time.sleep(0.05)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert len(spans) == 4 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_no_artifact_no_lock(tmp_path):
    with artifact_lock(None):
        pass
    assert not list(tmp_path.iterdir())
