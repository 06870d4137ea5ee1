# ruff: noqa
"""Tries to plant modules where the judge would import them (json.py, sitecustomize.py, a .pth file)
in every directory on its sys.path, the judge's working directory and /tmp; passes only if it could
write into any directory the judge reads code from.

Expected outcome: failed
"""
import glob, os, sys
EVIL = "import os\nos._exit(0)\n"
def solve(x):
    planted = False
    dirs = [d for d in sys.path if d and os.path.isdir(d)] + glob.glob("/tmp/qeval-judge-*") + ["/usr/lib/python3/dist-packages"]
    for d in dirs:
        for name in ("json.py", "sitecustomize.py", "usercustomize.py", "zz_qeval.pth", "builtins.py"):
            try:
                with open(os.path.join(d, name), "x") as fh:
                    fh.write(EVIL)
                planted = True
            except OSError:
                pass
    return x + 1 if planted else x
