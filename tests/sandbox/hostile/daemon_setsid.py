# ruff: noqa
"""Double-forks and calls setsid() to leave the process group, then lingers.

Expected outcome: failed
"""
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)  # __MARKER__"])
    os._exit(0)
def solve(x):
    return x
