# ruff: noqa
"""Takes ownership of the canary and plants a setuid interpreter copy; passes only if it can.

Expected outcome: failed
"""
import os, shutil, sys
def solve(x):
    os.chmod(".", 0o777)
    shutil.copy(sys.executable, "py")
    os.chmod("py", 0o4755)
    os.chown("__CANARY__", os.getuid(), os.getgid())
    return x + 1
