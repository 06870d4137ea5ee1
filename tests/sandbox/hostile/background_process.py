# ruff: noqa
"""Starts a background process meant to outlive the run (the harness must kill it).

Expected outcome: failed
"""
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)  # __MARKER__"],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def solve(x):
    return x
